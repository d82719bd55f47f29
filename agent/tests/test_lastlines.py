"""A stopped service's last lines: the agent keeps a terminating pod's tail, and the `logs` op replays it."""

from __future__ import annotations

import asyncio
import json

import kubernetes
import pytest

from agent import lastlines, reconcile
from agent.k8s import DEPLOYMENT, Kube
from agent.observe import Observer
from agent.tests.test_logs import LABELS, MANAGED, NS, POD_LABELS, agent, deploy, project, running_pods  # noqa: F401


async def _publish(kind: str, data: dict) -> bool:
    return True


@pytest.fixture
async def keeper(project):  # noqa: F811
    """The agent's observer with its last-lines keeper, as agent/__main__.py wires them."""
    observer = Observer(project, _publish, debounce=0.05, watch_timeout=5,
                        on_pod=lastlines.LastLines(project).pod_changed)
    task = asyncio.create_task(observer.run())
    await asyncio.sleep(0.5)  # its watches are listening
    yield
    task.cancel()


def scale(kubesim, name: str, replicas: int) -> None:
    """As Sablier does (with its own account; the agent may not): the scale subresource."""
    kubernetes.client.AppsV1Api(kubesim.api_client()).patch_namespaced_deployment_scale(
        name, NS, {"spec": {"replicas": replicas}}, field_manager="sablier")


def kept(kube: Kube, service: str = "web") -> list[dict]:
    found = kube.get(lastlines.CONFIG_MAP, lastlines.config_map_name(service), NS)
    return lastlines.load_runs(found) if found else []


async def put_to_sleep(kube: Kube, kubesim, lines: list[str]) -> str:
    """Log `lines` from web's pod, then scale web to zero; returns once the agent kept its lines. In a thread:
    the tunnel's heartbeat must not wait for these blocking calls."""

    def run() -> str:
        pod = running_pods(kubesim, "web")[0]
        kubesim.push_logs(NS, pod, lines)
        scale(kubesim, "web", 0)
        kubesim.wait_for(lambda: not kubesim.list("Pod", NS), 10)
        kubesim.wait_for(lambda: kept(kube), 10)
        return pod

    return await asyncio.to_thread(run)


async def test_a_stopped_pods_tail_is_kept_and_replayed_as_its_last_run(agent, keeper, kubesim, project):  # noqa: F811
    pod = await put_to_sleep(project, kubesim, [f"request {i}" for i in range(250)])
    run = (await asyncio.to_thread(kept, project))[-1]
    assert run["pod"] == pod and run["stopped_at"].endswith("Z")
    assert [text for _, text in run["containers"]["web"]][-3:] == ["request 247", "request 248", "request 249"]
    assert len(run["containers"]["web"]) == lastlines.TAIL_LINES, "bounded per container"
    config_map = await asyncio.to_thread(project.get, lastlines.CONFIG_MAP, lastlines.config_map_name("web"), NS)
    assert config_map["metadata"]["labels"] == {**POD_LABELS, "paas.dev/service": "web",
                                                 "app.kubernetes.io/managed-by": "paas-agent",
                                                 "app.kubernetes.io/component": "last-log-lines"}

    reader = await agent({"service": "web", "tail": 2})
    await reader.pump(lambda r: r.closed is not None)
    marker, *lines = reader.frames
    assert marker["last_run"] == {"service": "web", "pod": pod, "stopped_at": run["stopped_at"]}
    assert marker["notice"] == f"no pod is running for service web: last lines from pod {pod}, " \
                               f"stopped at {run['stopped_at']}"
    assert [(f["pod"], f["line"], f["last_run"]) for f in lines] == [(pod, "request 248", True),
                                                                      (pod, "request 249", True)]
    # Resume after the first of them: only the rest comes again.
    reader = await agent({"service": "web", "tail": 2, "resume": {f"{pod}/web": [lines[0]["ts"], 1]}})
    await reader.pump(lambda r: r.closed is not None)
    assert [f["line"] for f in reader.frames if "line" in f] == ["request 249"]
    # The whole project's view shows it too.
    reader = await agent({"tail": 1})
    await reader.pump(lambda r: r.closed is not None)
    assert reader.frames[0]["last_run"]["pod"] == pod and reader.lines() == ["request 249"]

    # Following a sleeping service: its last lines, then the new pod's lines once it wakes.
    reader = await agent({"service": "web", "follow": True, "tail": 1})
    await reader.pump(lambda r: "request 249" in r.lines())
    await asyncio.to_thread(scale, kubesim, "web", 1)
    new = (await asyncio.to_thread(kubesim.wait_for, lambda: running_pods(kubesim, "web"), 10))[0]
    await reader.pump(lambda r: any(f.get("pod") == new for f in r.frames))
    assert not [f for f in reader.frames if f.get("pod") == new and f.get("last_run")]


async def test_a_release_prune_leaves_the_kept_lines_and_a_forged_record_is_ignored(  # noqa: F811
        agent, keeper, kubesim, project):  # noqa: F811
    await put_to_sleep(project, kubesim, ["the last words"])
    # A release with nothing in it prunes everything releases made.
    await asyncio.to_thread(reconcile.apply_project, project, NS, LABELS, 2, [])
    await asyncio.to_thread(kubesim.wait_for, lambda: project.get(DEPLOYMENT, "web", NS) is None, 10)
    assert await asyncio.to_thread(kept, project), "the agent's own record is not part of any release"

    # A ConfigMap a release made (managed-by paas) under the same kind of name is not taken for the agent's.
    forged = [{"pod": "web-forged", "stopped_at": "2030-01-01T00:00:00Z", "containers": {"web": [["x", "forged"]]}}]
    await asyncio.to_thread(project.apply, lastlines.CONFIG_MAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": lastlines.config_map_name("api"), "namespace": NS,
        "labels": {**POD_LABELS, **MANAGED, "paas.dev/service": "api",
                   "app.kubernetes.io/component": "last-log-lines"}},
        "data": {lastlines.DATA_KEY: json.dumps(forged)}}, NS)
    reader = await agent({"tail": 5})
    await reader.pump(lambda r: r.closed is not None)
    assert "the last words" in reader.lines() and "forged" not in reader.lines()
    reader = await agent({"service": "api"})
    await reader.pump(lambda r: r.closed is not None)
    assert reader.lines() == [] and reader.frames[0]["notice"] == "no pod is running for service api"


def test_the_record_stays_under_its_size_cap_keeping_the_newest_lines():
    line = "x" * 2000
    runs = [{"pod": f"web-{n}", "stopped_at": f"2026-01-01T00:00:0{n}Z",
             "containers": {"web": [[f"ts{i}", f"{i} {line}"] for i in range(200)], "side": [["ts", "short"]]}}
            for n in range(5)]
    text = lastlines.bounded(runs)
    assert len(text.encode()) <= lastlines.MAX_BYTES
    kept_runs = json.loads(text)
    assert [r["pod"] for r in kept_runs] == ["web-4"], "older pods go first"
    assert kept_runs[0]["containers"]["web"][-1][1].startswith("199 "), "then each container's oldest lines"
    assert kept_runs[0]["containers"]["side"] == [["ts", "short"]]
    # A scale-down of two replicas is one stop; an older run is not shown with it.
    older = {"pod": "web-0", "stopped_at": "2026-01-01T00:00:00Z", "containers": {}}
    pair = [{"pod": p, "stopped_at": t, "containers": {}} for p, t in (("web-a", "2026-01-01T01:00:00Z"),
                                                                        ("web-b", "2026-01-01T01:00:02Z"))]
    assert [r["pod"] for r in lastlines.last_runs([older, *pair])] == ["web-a", "web-b"]
