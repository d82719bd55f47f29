"""Scale to zero in the rendered release: Sablier labels, no replicas, the Middleware, the Ingress reference,
and the suspended form of a release. Pure rendering, no database."""

from __future__ import annotations

from typing import Any

from projects.compose import SleepSettings, render_project
from projects.compose import sleep as S
from projects.tests.compose_helpers import invalid_objects, make_ctx

COMPOSE = """
services:
  web:
    image: nginx:1.27
    ports: ["8080:80"]
  api:
    image: ghcr.io/acme/api:1
    expose: ["9000"]
  worker:
    image: ghcr.io/acme/worker:1
"""


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    return next((o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name), None)


def middlewares(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == "Middleware"]


def test_a_public_web_service_sleeps_by_default_through_sablier() -> None:
    ctx = make_ctx()
    objects = render_project(COMPOSE, ctx).objects
    web = find(objects, "Deployment", "web")
    assert web["metadata"]["labels"][S.ENABLE] == "true"
    group = web["metadata"]["labels"][S.GROUP]
    assert "replicas" not in web["spec"], "Sablier owns replicas: the release must not send them"
    [middleware] = middlewares(objects)
    config = middleware["spec"]["plugin"]["sablier"]
    assert config == {"sablierUrl": "http://sablier-sablier.sablier-system.svc.cluster.local:10000",
                      "group": group, "sessionDuration": "15m",
                      "dynamic": {"displayName": "web", "showDetails": True, "refreshFrequency": "2s"}}
    ingress = find(objects, "Ingress", "web")
    assert ingress["metadata"]["annotations"][S.MIDDLEWARES] == (
        f"{ctx.namespace}-{middleware['metadata']['name']}@kubernetescrd")
    assert invalid_objects(objects) == {}


def test_private_services_and_workers_keep_their_compose_replicas() -> None:
    objects = render_project(COMPOSE, make_ctx()).objects
    for name in ("api", "worker"):
        deployment = find(objects, "Deployment", name)
        assert deployment["spec"]["replicas"] == 1
        assert S.ENABLE not in deployment["metadata"]["labels"]


def test_blocking_strategy_idle_timeout_and_turning_it_off() -> None:
    ctx = make_ctx(sleep={"web": SleepSettings(idle_timeout=90, strategy="blocking", blocking_timeout=30)})
    objects = render_project(COMPOSE, ctx).objects
    config = middlewares(objects)[0]["spec"]["plugin"]["sablier"]
    assert config["sessionDuration"] == "90s" and config["blocking"] == {"timeout": "30s"}
    assert "dynamic" not in config
    assert invalid_objects(objects) == {}

    off = render_project(COMPOSE, make_ctx(sleep={"web": SleepSettings(enabled=False)})).objects
    assert middlewares(off) == []
    assert find(off, "Deployment", "web")["spec"]["replicas"] == 1
    assert S.MIDDLEWARES not in (find(off, "Ingress", "web")["metadata"].get("annotations") or {})


def test_middleware_references_and_groups_never_collide_across_namespaces() -> None:
    # Traefik joins `<namespace>-<name>`: tenant-a + "b-web" must not meet tenant-a-b + "web".
    first = (S.middleware_ref("tenant-a", S.middleware_name("b-web")), S.group("tenant-a", "b-web"))
    second = (S.middleware_ref("tenant-a-b", S.middleware_name("web")), S.group("tenant-a-b", "web"))
    assert first[0] != second[0] and first[1] != second[1]
    assert "-" not in S.middleware_name("b-web"), "a dashless name splits the reference at one place only"


def test_a_suspended_release_cannot_wake_and_points_at_the_suspended_page() -> None:
    objects = render_project(COMPOSE, make_ctx()).objects
    page = "https://paas.example.com/suspended/1234/"
    out = S.suspended(objects, page)
    for deployment in (o for o in out if o["kind"] == "Deployment"):
        assert deployment["spec"]["replicas"] == 0
        assert S.ENABLE not in deployment["metadata"]["labels"]
    assert not any(S.sleeps_middleware(o) for o in out)
    redirect = find(out, "Middleware", S.SUSPENDED_MIDDLEWARE)
    assert redirect["spec"]["redirectRegex"] == {"regex": "^.*$", "replacement": page}
    ingress = find(out, "Ingress", "web")
    namespace = ingress["metadata"]["namespace"]
    assert ingress["metadata"]["annotations"][S.MIDDLEWARES] == f"{namespace}-suspended@kubernetescrd"
    assert invalid_objects(out) == {}
    assert find(objects, "Deployment", "web")["metadata"]["labels"][S.ENABLE] == "true", "input left untouched"
