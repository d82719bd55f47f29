"""The `logs` stream operation, through the real tunnel, against kubesim over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

from agent import protocol as p
from agent.handlers import build_ops, build_stream_ops
from agent.k8s import DEPLOYMENT, NAMESPACE, Kube
from agent.logs import BUFFER_BYTES
from agent.tests.test_tunnel import FakeControlPlane, hello
from agent.tunnel import Backoff, Tunnel

NS = "t-acme-shop"
LABELS = {"paas.dev/organization": "acme", "paas.dev/project": "shop", "paas.dev/project-uid": "uid-shop"}
POD_LABELS = {"paas.dev/organization": "acme", "paas.dev/project": "shop"}  # the uid marks only the namespace
MANAGED = {"app.kubernetes.io/managed-by": "paas"}
EVIL = {"paas.dev/organization": "evil", "paas.dev/project": "x", "paas.dev/project-uid": "uid-x"}


def deploy(kube: Kube, service: str, replicas: int = 1, namespace: str = NS, labels: dict | None = None,
           image: str = "nginx:1.27") -> None:
    labels = {**(labels or POD_LABELS), **MANAGED, "paas.dev/service": service}
    kube.apply(DEPLOYMENT, {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": service, "namespace": namespace, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"paas.dev/service": service}},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": service, "image": image}]}}},
    }, namespace)


def running_pods(kubesim, service: str, namespace: str = NS) -> list[str]:
    return sorted(pod["metadata"]["name"] for pod in kubesim.list("Pod", namespace)
                  if pod["metadata"]["labels"].get("paas.dev/service") == service
                  and (pod.get("status") or {}).get("phase") == "Running")


@pytest.fixture
def project(kube, kubesim):
    kube.apply(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": NS, "labels": {**LABELS, **MANAGED}}})
    deploy(kube, "web")
    kubesim.wait_for(lambda: running_pods(kubesim, "web"))
    return kube


class Reader:
    """The control plane's end of one stream: NDJSON frames in, credit out (or not, when `greedy` is off)."""

    def __init__(self, plane: FakeControlPlane, ws, sid: int, window: int) -> None:
        self.plane, self.ws, self.sid, self.window = plane, ws, sid, window
        self.pending = b""
        self.frames: list[dict[str, Any]] = []
        self.received = 0
        self.closed: str | None = None

    async def pump(self, until, timeout: float = 10.0, grant: bool = True) -> None:
        async with asyncio.timeout(timeout):
            while not until(self):
                _, message = await self.plane.inbox.get()
                if isinstance(message, dict):
                    if message.get("type") == "stream.close" and message.get("id") == self.sid:
                        self.closed = message.get("reason", "")
                    continue
                sid, data = p.unpack_data(message)
                assert sid == self.sid
                self.received += len(data)
                *lines, self.pending = (self.pending + data).split(b"\n")
                self.frames += [json.loads(line) for line in lines]
                if grant:
                    await self.ws.send(p.encode({"type": "stream.credit", "id": self.sid, "bytes": len(data)}))

    def lines(self) -> list[str]:
        return [f["line"] for f in self.frames if "line" in f]


@pytest.fixture
async def agent(project):
    plane = FakeControlPlane()
    await plane.start()
    tunnel = Tunnel(plane.url, lambda: "1.secret", hello, build_ops(project), build_stream_ops(project),
                    backoff=Backoff(base=0.05, cap=0.2), open_timeout=2)
    task = asyncio.create_task(tunnel.run())
    await asyncio.wait_for(tunnel.connected.wait(), 5)
    ids = iter(range(1, 1000))

    async def open_logs(payload: dict[str, Any], window: int = p.DEFAULT_STREAM_WINDOW) -> Reader:
        sid = next(ids)
        ws = plane.connections[0]
        await ws.send(p.encode({"type": "stream.open", "id": sid, "op": "logs", "window": window,
                                "payload": {"namespace": NS, "labels": LABELS, **payload}}))
        return Reader(plane, ws, sid, window)

    yield open_logs
    tunnel.stop()
    await asyncio.wait_for(task, 5)
    await plane.stop()


async def test_it_tails_a_service_and_ends(agent, kubesim):
    pod = running_pods(kubesim, "web")[0]
    kubesim.push_logs(NS, pod, [f"line {i}" for i in range(10)])
    reader = await agent({"service": "web", "tail": 3})
    await reader.pump(lambda r: r.closed is not None)
    assert reader.lines() == ["line 7", "line 8", "line 9"]
    assert {(f["pod"], f["container"]) for f in reader.frames} == {(pod, "web")}
    assert all(f["ts"].endswith("Z") for f in reader.frames)


async def test_it_follows_lines_and_pods_that_start_later(agent, kubesim, project):
    first = running_pods(kubesim, "web")[0]
    reader = await agent({"service": "web", "follow": True, "tail": 0})
    await asyncio.sleep(0.3)
    kubesim.push_logs(NS, first, ["hello from the first pod"])
    await reader.pump(lambda r: "hello from the first pod" in r.lines())
    deploy(project, "web", replicas=2)
    kubesim.wait_for(lambda: len(running_pods(kubesim, "web")) == 2)
    second = next(name for name in running_pods(kubesim, "web") if name != first)
    await reader.pump(lambda r: any(f.get("pod") == second for f in r.frames))  # its start-up lines
    kubesim.push_logs(NS, second, ["hello from the second pod"])
    await reader.pump(lambda r: "hello from the second pod" in r.lines())
    assert reader.closed is None  # following never ends by itself


async def test_a_project_stream_merges_every_service_but_not_other_projects(agent, kubesim, project):
    deploy(project, "worker")
    project.apply(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": "t-evil-x", "labels": {**EVIL, **MANAGED}}})
    deploy(project, "web", namespace="t-evil-x", labels=EVIL)
    kubesim.wait_for(lambda: running_pods(kubesim, "worker") and running_pods(kubesim, "web", "t-evil-x"))
    kubesim.push_logs(NS, running_pods(kubesim, "worker")[0], ["worker line"])
    kubesim.push_logs(NS, running_pods(kubesim, "web")[0], ["web line"])
    kubesim.push_logs("t-evil-x", running_pods(kubesim, "web", "t-evil-x")[0], ["secret of another tenant"])
    reader = await agent({})
    await reader.pump(lambda r: r.closed is not None)
    assert {"worker line", "web line"} <= set(reader.lines())
    assert "secret of another tenant" not in reader.lines()


async def test_a_foreign_namespace_or_pod_is_refused(agent, kubesim, project):
    project.apply(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": "t-evil-x", "labels": {**EVIL, **MANAGED}}})
    deploy(project, "web", namespace="t-evil-x", labels=EVIL)
    foreign_pod = kubesim.wait_for(lambda: running_pods(kubesim, "web", "t-evil-x"))[0]
    # Our labels, their namespace: the namespace does not carry our project's identity.
    reader = await agent({"namespace": "t-evil-x"})
    await reader.pump(lambda r: r.closed is not None)
    assert reader.closed.startswith("forbidden: namespace t-evil-x") and not reader.frames
    # Another tenant's pod name, asked for in our namespace: not one of ours.
    reader = await agent({"pod": foreign_pod})
    await reader.pump(lambda r: r.closed is not None)
    assert reader.closed.startswith("forbidden: pod") and not reader.frames
    # Our namespace, but a pod of another service than the one asked for.
    reader = await agent({"service": "db", "pod": running_pods(kubesim, "web")[0]})
    await reader.pump(lambda r: r.closed is not None)
    assert reader.closed.startswith("forbidden: pod") and not reader.frames


async def test_since_and_timestamps(agent, kubesim):
    pod = running_pods(kubesim, "web")[0]
    kubesim.push_logs(NS, pod, ["old line"])
    await asyncio.sleep(2.1)
    kubesim.push_logs(NS, pod, ["new line"])
    reader = await agent({"pod": pod, "since_seconds": 1, "timestamps": False})
    await reader.pump(lambda r: r.closed is not None)
    assert reader.lines() == ["new line"]
    assert "ts" not in reader.frames[0]


async def test_previous_reads_the_crashed_container(agent, kubesim, project):
    deploy(project, "crashy", image="app:crash")
    pod = kubesim.wait_for(lambda: [p["metadata"]["name"] for p in kubesim.list("Pod", NS)
                                    if p["metadata"]["labels"]["paas.dev/service"] == "crashy"
                                    and p.get("status", {}).get("containerStatuses")])[0]
    reader = await agent({"service": "crashy", "previous": True})
    await reader.pump(lambda r: r.closed is not None)
    assert "[kubesim] fatal error: simulated crash" in reader.lines()
    reader = await agent({"service": "web", "previous": True})
    await reader.pump(lambda r: r.closed is not None)
    assert "previous terminated container" in reader.frames[0]["notice"]
    reader = await agent({"pod": pod, "previous": True, "container": "crashy"})
    await reader.pump(lambda r: r.closed is not None)
    assert reader.lines()[-1] == "[kubesim] fatal error: simulated crash"


async def test_resume_skips_exactly_what_was_shown(agent, kubesim):
    pod = running_pods(kubesim, "web")[0]
    kubesim.push_logs(NS, pod, ["a", "b", "c"])  # one push: the same timestamp for all three
    reader = await agent({"pod": pod})
    await reader.pump(lambda r: r.closed is not None)
    shown = [f for f in reader.frames if f["line"] in ("a", "b")]
    mark = shown[-1]["ts"]
    count = sum(1 for f in reader.frames if f["ts"] == mark and f["line"] in ("a", "b"))
    kubesim.push_logs(NS, pod, ["d"])
    reader = await agent({"pod": pod, "resume": {f"{pod}/web": [mark, count]}})
    await reader.pump(lambda r: r.closed is not None)
    assert reader.lines() == ["c", "d"]


async def test_a_slow_reader_gets_a_skipped_marker_and_the_agent_buffer_stays_bounded(agent, kubesim):
    pod = running_pods(kubesim, "web")[0]
    window = 4096
    reader = await agent({"pod": pod, "follow": True, "tail": 0}, window=window)
    await asyncio.sleep(0.3)
    # Far more than the window plus the agent's buffer, while the reader grants no credit.
    total = 20_000
    kubesim.push_logs(NS, pod, [f"flood {i:06d} " + "x" * 100 for i in range(total)])
    await asyncio.sleep(2)
    await reader.pump(lambda r: r.received >= window, grant=False)
    with pytest.raises(TimeoutError):  # not one byte beyond the window without credit
        await reader.pump(lambda r: r.received > window, timeout=0.5, grant=False)
    await reader.ws.send(p.encode({"type": "stream.credit", "id": reader.sid, "bytes": reader.received}))
    probes = 0
    while not any(line.startswith("probe") for line in reader.lines()):  # lines sent while dropping are dropped too
        probes += 1
        kubesim.push_logs(NS, pod, [f"probe {probes}"])
        with contextlib.suppress(TimeoutError):
            await reader.pump(lambda r: any(line.startswith("probe") for line in r.lines()), timeout=0.5)
    skipped = sum(f.get("skipped", 0) for f in reader.frames)
    shown = sum(1 for f in reader.frames if f.get("line", "").startswith("flood"))
    first_probe = next(i for i, f in enumerate(reader.frames) if f.get("line", "").startswith("probe"))
    assert all("skipped" not in f for f in reader.frames[first_probe:])  # the marker sits where lines went missing
    assert skipped > 0
    assert shown + skipped == total + probes - 1  # every line is either shown or counted
    assert shown * 120 < window + BUFFER_BYTES + 16 * 1024  # what got through fits the bounded buffer
