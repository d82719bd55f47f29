"""The Sablier stand-in speaks Sablier's HTTP API and scales workloads through the Kubernetes API."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
from kubernetes import client

from kubesim.sablier import parse_duration
from kubesim.testing import KubeSim
from kubesim.tests.edge_helpers import NS, Reply, deploy, fetch, ready


def call(sim: KubeSim, strategy: str, *params: tuple[str, str]) -> Reply:
    return fetch(f"{sim.sablier_url}/api/strategies/{strategy}?{urlencode(params)}")


def replicas(sim: KubeSim, name: str) -> int:
    return (sim.get("Deployment", NS, name) or {})["spec"]["replicas"]


def test_health(sim: KubeSim) -> None:
    reply = fetch(sim.sablier_url + "/health")
    assert (reply.status, reply.text) == (200, "OK")


@pytest.mark.parametrize(("params", "status", "detail"), [
    ((), 400, "'names' or 'group' query parameter must be set"),
    ((("group", "g"), ("names", "deployment_default_web_1")), 400, "only one must be set"),
    ((("names", "web"),), 400, "invalid name [web] should be: kind_namespace_name_replicas"),
    ((("group", "g"), ("session_duration", "soon")), 400, 'invalid duration "soon"'),
    ((("group", "nobody"),), 404, "group 'nobody' not found"),
])
def test_bad_requests_are_problems(sim: KubeSim, params: tuple[tuple[str, str], ...], status: int,
                                   detail: str) -> None:
    for strategy in ("dynamic", "blocking"):
        reply = call(sim, strategy, *params)
        assert reply.status == status and reply.headers["Content-Type"].startswith("application/problem+json")
        assert detail in json.loads(reply.text)["detail"]


def test_dynamic_wakes_a_group_through_the_scale_subresource(sim: KubeSim, api: client.ApiClient) -> None:
    sim.set_pod_start_delay(0.3)
    deploy(api, "web", replicas=0, group="shop")
    deploy(api, "worker", replicas=0, group="shop")
    deploy(api, "other", replicas=0, group="elsewhere")
    deploy(api, "plain", replicas=0)  # not sablier.enable
    reply = call(sim, "dynamic", ("group", "shop"), ("display_name", "Shop"), ("refresh_frequency", "2s"))
    assert reply.status == 200 and reply.headers["X-Sablier-Session-Status"] == "not-ready"
    assert "deployment_default_web_1" in reply.text and "deployment_default_worker_1" in reply.text
    assert 'content="2"' in reply.text and "Starting Shop" in reply.text
    assert [replicas(sim, n) for n in ("web", "worker", "other", "plain")] == [1, 1, 0, 0]
    managers = {(m["manager"], m.get("subresource")) for m in sim.get("Deployment", NS, "web")["metadata"][
        "managedFields"]}
    assert ("sablier", "scale") in managers
    sim.wait_for(lambda: ready(sim, "web") and ready(sim, "worker"))
    assert call(sim, "dynamic", ("group", "shop")).headers["X-Sablier-Session-Status"] == "ready"


def test_the_group_annotation_wins_over_the_label_and_may_list_groups(sim: KubeSim, api: client.ApiClient) -> None:
    deploy(api, "web", replicas=0, group="from-label")
    client.AppsV1Api(api).patch_namespaced_deployment("web", NS, {"metadata": {"annotations": {
        "sablier.group": "a, b"}}})
    assert call(sim, "dynamic", ("group", "from-label")).status == 404
    assert call(sim, "dynamic", ("group", "b")).status == 200
    assert replicas(sim, "web") == 1


def test_an_unknown_theme_is_refused(sim: KubeSim, api: client.ApiClient) -> None:
    deploy(api, "web", replicas=0, group="shop")
    reply = call(sim, "dynamic", ("group", "shop"), ("theme", "neon"))
    assert reply.status == 404 and "theme 'neon' not found" in reply.text
    assert call(sim, "dynamic", ("group", "shop"), ("theme", "ghost")).status == 200


def test_blocking_by_names_waits_until_ready(sim: KubeSim, api: client.ApiClient) -> None:
    sim.set_pod_start_delay(0.5)
    deploy(api, "web", replicas=0, group="shop")
    started = time.monotonic()
    reply = call(sim, "blocking", ("names", "deployment_default_web_1"), ("timeout", "10s"))
    assert time.monotonic() - started >= 0.5
    assert reply.status == 200 and reply.headers["X-Sablier-Session-Status"] == "ready"
    instance = json.loads(reply.text)["session"]["instances"][0]["instance"]
    assert instance == {"name": "deployment_default_web_1", "currentReplicas": 1, "desiredReplicas": 1,
                        "status": "ready"}
    assert ready(sim, "web")


def test_blocking_times_out_with_a_problem(sim: KubeSim, api: client.ApiClient) -> None:
    sim.set_pod_start_delay(5)
    deploy(api, "web", replicas=0, group="shop")
    started = time.monotonic()
    reply = call(sim, "blocking", ("group", "shop"), ("timeout", "400ms"))
    assert 0.4 <= time.monotonic() - started < 3
    assert reply.status == 500 and "not ready after 400ms" in json.loads(reply.text)["detail"]


def test_sessions_expire_and_scale_back_to_zero(sim: KubeSim, api: client.ApiClient) -> None:
    deploy(api, "web", replicas=0, group="shop")
    call(sim, "blocking", ("group", "shop"), ("session_duration", "1s"))
    assert ready(sim, "web")
    time.sleep(0.6)
    call(sim, "dynamic", ("group", "shop"), ("session_duration", "1s"))  # a request extends the session
    time.sleep(0.6)
    assert replicas(sim, "web") == 1
    sim.wait_for(lambda: replicas(sim, "web") == 0, timeout=3)
    sim.wait_for(lambda: not sim.list("Pod", NS))


def test_a_crash_looping_workload_is_reported_with_the_kubelet_message(sim: KubeSim, api: client.ApiClient) -> None:
    deploy(api, "web", replicas=0, group="shop", image="shop:crash")
    call(sim, "dynamic", ("group", "shop"))
    page = sim.wait_for(lambda: "unrecoverable" in (r := call(sim, "dynamic", ("group", "shop"))).text and r)
    assert "CrashLoopBackOff" in page.text and "could not start" in page.text
    reply = call(sim, "blocking", ("group", "shop"), ("timeout", "30s"))
    assert reply.status == 500 and "CrashLoopBackOff" in json.loads(reply.text)["detail"]


def test_go_durations() -> None:
    assert parse_duration("1h30m") == 5400 and parse_duration("250ms") == 0.25 and parse_duration("0") == 0
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("10")


def test_it_acts_as_its_own_service_account_under_rbac(sim: KubeSim, api: client.ApiClient) -> None:
    """Without the binding to Sablier's ClusterRole, the stand-in's scale request is refused (403)."""
    deploy(api, "web", replicas=0, group="shop")
    client.RbacAuthorizationV1Api(api).delete_cluster_role_binding("kubesim-sablier")
    reply = call(sim, "blocking", ("names", "deployment_default_web_1"), ("timeout", "5s"))
    detail = json.loads(reply.text)["detail"]
    assert reply.status == 500 and 'User "system:serviceaccount:kube-system:kubesim-sablier" cannot' in detail
    assert replicas(sim, "web") == 0
