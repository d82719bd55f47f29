"""The HTTP edge routes like Traefik's Ingress + CRD providers; emulated pods answer HTTP after their start delay."""

from __future__ import annotations

import time

import pytest
from kubernetes import client

from kubesim.testing import KubeSim
from kubesim.tests.edge_helpers import NS, deploy, get, ingress, ready, sablier_middleware

HOST = "shop.apps.localhost"


def pod_of(reply_headers: dict[str, str]) -> str:
    return reply_headers.get("X-Kubesim-Pod", "").split("/")[-1]


def test_it_routes_by_host_and_path(sim: KubeSim, api: client.ApiClient) -> None:
    """Prefix matches whole path elements, Exact only the path, the longest rule wins, other hosts get 404."""
    deploy(api, "web")
    deploy(api, "api")
    deploy(api, "health")
    ingress(api, "shop", HOST, [("/", "Prefix", "web"), ("/api", "Prefix", "api"), ("/healthz", "Exact", "health")])
    sim.wait_for(lambda: all(ready(sim, n) for n in ("web", "api", "health")))

    def served_by(path: str, host: str = HOST) -> str:
        reply = get(sim, host, path)
        assert reply.status == 200, (path, reply.status, reply.text)
        return pod_of(reply.headers).rsplit("-", 2)[0]

    assert served_by("/") == "web"
    assert served_by("/api") == "api" and served_by("/api/orders?x=1") == "api"
    assert served_by("/apix") == "web"  # not an element of /api
    assert served_by("/healthz") == "health"
    assert served_by("/healthz/deep") == "web"  # Exact does not match below it
    assert get(sim, "other.apps.localhost", "/").status == 404
    assert get(sim, "other.apps.localhost", "/").text == "404 page not found\n"


def test_ingresses_of_another_class_are_not_routed(sim: KubeSim, api: client.ApiClient) -> None:
    client.NetworkingV1Api(api).create_ingress_class({"metadata": {"name": "nginx"},
                                                      "spec": {"controller": "k8s.io/ingress-nginx"}})
    deploy(api, "web")
    ingress(api, "shop", HOST, [("/", "Prefix", "web")], ingress_class="nginx")
    sim.wait_for(lambda: ready(sim, "web"))
    assert get(sim, HOST).status == 404


def test_forwarding_names_the_pod_image_and_revision_and_balances(sim: KubeSim, api: client.ApiClient) -> None:
    deploy(api, "web", replicas=2, image="registry.example/shop:v7", revision="12")
    ingress(api, "shop", HOST, [("/", "Prefix", "web")])
    sim.wait_for(lambda: ready(sim, "web"))
    replies = [get(sim, HOST, "/cart") for _ in range(4)]
    assert {r.status for r in replies} == {200}
    pods = {p["metadata"]["name"] for p in sim.list("Pod", NS)}
    assert {pod_of(r.headers) for r in replies} == pods and len(pods) == 2
    page = replies[0].text
    assert pod_of(replies[0].headers) in page and "registry.example/shop:v7" in page
    assert "<dd>12</dd>" in page and "/cart" in page


def test_a_service_without_ready_endpoints_is_503_and_a_missing_service_404(sim: KubeSim,
                                                                           api: client.ApiClient) -> None:
    """allowEmptyServices: the route stays and answers 503 while the Service has no ready pod."""
    deploy(api, "web", replicas=0)
    ingress(api, "shop", HOST, [("/", "Prefix", "web"), ("/gone", "Prefix", "missing")])
    assert get(sim, HOST).status == 503
    assert get(sim, HOST, "/gone").status == 404
    client.AppsV1Api(api).patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 1}})
    sim.wait_for(lambda: ready(sim, "web"))
    assert get(sim, HOST).status == 200


def test_a_target_port_nobody_listens_on_is_502(sim: KubeSim, api: client.ApiClient) -> None:
    deploy(api, "web", port=8080, target_port=9999)
    ingress(api, "shop", HOST, [("/", "Prefix", "web")])
    sim.wait_for(lambda: ready(sim, "web"))
    assert get(sim, HOST).status == 502


def test_an_unknown_middleware_is_404_until_it_exists(sim: KubeSim, api: client.ApiClient) -> None:
    """Traefik drops a router whose middleware does not resolve; the running service is then unreachable."""
    deploy(api, "web", group="shop-web")
    ingress(api, "shop", HOST, [("/", "Prefix", "web")], middlewares=f"{NS}-sablier-web@kubernetescrd")
    sim.wait_for(lambda: ready(sim, "web"))
    assert get(sim, HOST).status == 404
    sablier_middleware(api, "sablier-web", "shop-web")
    assert get(sim, HOST).status == 200


def test_a_middleware_reference_without_provider_or_from_another_provider_is_404(sim: KubeSim,
                                                                               api: client.ApiClient) -> None:
    deploy(api, "web", group="shop-web")
    sablier_middleware(api, "sablier-web", "shop-web")
    ingress(api, "a", "a.apps.localhost", [("/", "Prefix", "web")], middlewares="default-sablier-web@file")
    ingress(api, "b", "b.apps.localhost", [("/", "Prefix", "web")], middlewares="default-sablier-web")
    ingress(api, "c", "c.apps.localhost", [("/", "Prefix", "web")], middlewares="default-sablier-web@kubernetescrd")
    sim.wait_for(lambda: ready(sim, "web"))
    assert [get(sim, f"{h}.apps.localhost").status for h in "abc"] == [404, 404, 200]


def test_pods_answer_only_after_their_start_delay(sim: KubeSim, api: client.ApiClient) -> None:
    sim.set_pod_start_delay(0.6)
    started = time.monotonic()
    deploy(api, "web")
    ingress(api, "shop", HOST, [("/", "Prefix", "web")])
    sim.wait_for(lambda: sim.list("Pod", NS))
    assert get(sim, HOST).status == 503
    assert sim.list("Pod", NS)[0]["status"]["phase"] == "Pending"
    sim.wait_for(lambda: get(sim, HOST).status == 200, timeout=5)
    assert time.monotonic() - started >= 0.6


def test_the_dynamic_strategy_shows_the_starting_page_then_the_pod(sim: KubeSim, api: client.ApiClient) -> None:
    """A sleeping service: the first request gets Sablier's page (not-ready) and wakes it; later ones the pod."""
    sim.set_pod_start_delay(0.3)
    deploy(api, "web", replicas=0, group="shop-web")
    ingress(api, "shop", HOST, [("/", "Prefix", "web")], middlewares=sablier_middleware(api, "sablier-web", "shop-web"))
    first = get(sim, HOST)
    assert first.status == 200 and first.headers["X-Sablier-Session-Status"] == "not-ready"
    assert "Starting My app" in first.text and 'http-equiv="refresh" content="1"' in first.text
    assert "X-Kubesim-Pod" not in first.headers
    reply = sim.wait_for(lambda: (r := get(sim, HOST)).headers.get("X-Kubesim-Pod") and r, timeout=5)
    assert reply.status == 200 and "Hello from web-" in reply.text


def test_the_blocking_strategy_holds_the_first_request_until_the_pod_answers(sim: KubeSim,
                                                                          api: client.ApiClient) -> None:
    sim.set_pod_start_delay(0.5)
    deploy(api, "web", replicas=0, group="shop-web")
    mw = sablier_middleware(api, "sablier-web", "shop-web", strategy="blocking", timeout="10s")
    ingress(api, "shop", HOST, [("/", "Prefix", "web")], middlewares=mw)
    started = time.monotonic()
    reply = get(sim, HOST)
    assert reply.status == 200 and "Hello from web-" in reply.text
    assert time.monotonic() - started >= 0.5


def test_a_service_that_cannot_start_gets_an_error_not_a_hang(sim: KubeSim, api: client.ApiClient) -> None:
    deploy(api, "web", replicas=0, group="shop-web", image="shop:crash")
    deploy(api, "api", replicas=0, group="shop-api", image="does-not-exist/api:1")
    ingress(api, "shop", HOST, [("/", "Prefix", "web")], middlewares=sablier_middleware(api, "sablier-web", "shop-web"))
    blocking = sablier_middleware(api, "sablier-api", "shop-api", strategy="blocking", timeout="30s")
    ingress(api, "api", "api.apps.localhost", [("/", "Prefix", "api")], middlewares=blocking)
    get(sim, HOST)  # wakes it
    page = sim.wait_for(lambda: "CrashLoopBackOff" in (r := get(sim, HOST)).text and r, timeout=5)
    assert page.headers["X-Sablier-Session-Status"] == "not-ready" and "could not start" in page.text
    started = time.monotonic()
    reply = get(sim, "api.apps.localhost")
    assert reply.status == 500 and "ImagePullBackOff" in reply.text
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert time.monotonic() - started < 5  # well before the 30s timeout


def test_the_edge_prints_the_url_of_each_routed_host(sim: KubeSim, api: client.ApiClient,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    deploy(api, "web")
    ingress(api, "shop", HOST, [("/", "Prefix", "web")])
    port = sim.edge_url.rsplit(":", 1)[1]
    sim.wait_for(lambda: f"http://{HOST}:{port}/ serves {NS}/shop" in capsys.readouterr().out, timeout=5)
