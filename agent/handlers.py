"""Operations the control plane may call, one small function each, and the stream operations."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import aiohttp

from agent import charts, dumps, infra, kubeapi, logs, metrics, reconcile, shell
from agent import protocol as p
from agent.data import services as data_services
from agent.k8s import DEPLOYMENT, POD, Kube, KubeError
from agent.ops import OpError, OpHandler, Stream, StreamHandler


def _require(payload: dict[str, Any], key: str, kind: type) -> Any:
    value = payload.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise OpError(p.ERR_BAD_REQUEST, f"{key!r} must be a {kind.__name__}")
    return value


def _require_identity(labels: dict[str, Any]) -> None:
    try:
        reconcile.require_identity(labels)
    except ValueError as exc:
        raise OpError(p.ERR_BAD_REQUEST, str(exc)) from None


def build_ops(kube: Kube) -> dict[str, OpHandler]:
    async def ping(payload: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "time": time.time()}

    async def version(payload: dict[str, Any]) -> dict[str, Any]:
        return {"kubernetes_version": await asyncio.to_thread(kube.version)}

    async def cluster_info(payload: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(lambda: {
            "kubernetes_version": kube.version(), "nodes": kube.nodes(), "components": kube.components(),
        })

    async def apply_project(payload: dict[str, Any]) -> dict[str, Any]:
        namespace = _require(payload, "namespace", str)
        labels = _require(payload, "labels", dict)
        revision = _require(payload, "revision", int)
        objects = _require(payload, "objects", list)
        _require_identity(labels)
        started, outcome = time.perf_counter(), "error"
        try:
            result = await asyncio.to_thread(reconcile.apply_project, kube, namespace, labels, revision, objects)
            outcome = "ok"
            return result
        except reconcile.StaleRevision as exc:
            outcome = "stale"
            raise OpError(p.ERR_STALE_REVISION, str(exc)) from None
        except reconcile.NotOwned as exc:
            outcome = "refused"
            raise OpError(p.ERR_NOT_OWNED, str(exc)) from None
        finally:
            metrics.APPLY_SECONDS.labels(outcome).observe(time.perf_counter() - started)

    async def delete_project(payload: dict[str, Any]) -> dict[str, Any]:
        namespace = _require(payload, "namespace", str)
        labels = _require(payload, "labels", dict)
        _require_identity(labels)
        try:
            return await asyncio.to_thread(data_services.delete_project_keeping_credentials, kube, namespace, labels)
        except reconcile.NotOwned as exc:
            raise OpError(p.ERR_NOT_OWNED, str(exc)) from None

    async def pod_logs(payload: dict[str, Any]) -> dict[str, Any]:
        namespace = _require(payload, "namespace", str)
        pod = _require(payload, "pod", str)
        tail = payload.get("tail", 20)
        if not isinstance(tail, int) or isinstance(tail, bool) or not 0 < tail <= 1000:
            raise OpError(p.ERR_BAD_REQUEST, "'tail' must be an int between 1 and 1000")
        return await asyncio.to_thread(_pod_logs, kube, namespace, pod, tail)

    async def wake(payload: dict[str, Any]) -> dict[str, Any]:
        namespace = _require(payload, "namespace", str)
        name = _require(payload, "deployment", str)
        session = _require(payload, "session_duration", str)
        timeout = payload.get("timeout", 60)
        if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= 600:
            raise OpError(p.ERR_BAD_REQUEST, "'timeout' must be an int between 1 and 600 (seconds)")
        group = await asyncio.to_thread(_sleep_group, kube, namespace, name)
        return await wake_group(sablier_url(), group, session, timeout)

    async def service_pods(payload: dict[str, Any]) -> list[dict[str, Any]]:
        namespace = _require(payload, "namespace", str)
        labels = _require(payload, "labels", dict)
        service = _require(payload, "service", str)
        if not labels:
            raise OpError(p.ERR_BAD_REQUEST, "'labels' must name the project")
        return await asyncio.to_thread(shell.service_pods, kube, namespace, labels, service)

    return {p.OP_PING: ping, p.OP_VERSION: version, p.OP_CLUSTER_INFO: cluster_info,
            p.OP_APPLY_PROJECT: apply_project, p.OP_DELETE_PROJECT: delete_project, p.OP_POD_LOGS: pod_logs,
            p.OP_SERVICE_PODS: service_pods, p.OP_WAKE: wake,
            **infra.build_ops(kube)}  # bootstrap and project data services


def _pod_logs(kube: Kube, namespace: str, pod_name: str, tail: int) -> dict[str, Any]:
    """The last lines of a pod's failing container (its previous run when it crashed), with its image.

    Only pods the platform manages are readable, so the op cannot be used to read system pods.
    """
    pod = kube.get(POD, pod_name, namespace)
    labels = ((pod or {}).get("metadata") or {}).get("labels") or {}
    if pod is None or labels.get(p.MANAGED_BY_LABEL) != p.MANAGED_BY_VALUE:
        raise OpError(p.ERR_BAD_REQUEST,
                      f"no managed pod {pod_name} in {namespace}")
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    failing = next((s for s in statuses if (s.get("state") or {}).get("waiting")), statuses[0] if statuses else {})
    container = failing.get("name") or pod["spec"]["containers"][0]["name"]
    image = next((c.get("image", "") for c in pod["spec"]["containers"] if c["name"] == container), "")
    lines: list[str] = []
    previous = bool(failing.get("lastState", {}).get("terminated"))
    for attempt in ((True, False) if previous else (False,)):
        try:
            text = kube.pod_log(pod_name, namespace, container=container, tail_lines=tail, previous=attempt)
        except KubeError:
            continue
        lines = text.splitlines()[-tail:]
        previous = attempt
        break
    return {"pod": pod_name, "container": container, "image": image, "service": labels.get(p.SERVICE_LABEL, ""),
            "previous": previous, "lines": lines}


def sablier_url() -> str:
    """The cluster's Sablier: the in-cluster Service, or AGENT_SABLIER_URL (the try-out's and tests' stand-in)."""
    return (os.environ.get("AGENT_SABLIER_URL") or charts.SABLIER_URL).rstrip("/")


def _sleep_group(kube: Kube, namespace: str, name: str) -> str:
    """The Sablier group of a managed, sleeping-enabled Deployment: nothing else can be woken through the agent."""
    deployment = kube.get(DEPLOYMENT, name, namespace)
    labels = ((deployment or {}).get("metadata") or {}).get("labels") or {}
    if deployment is None or labels.get(p.MANAGED_BY_LABEL) != p.MANAGED_BY_VALUE:
        raise OpError(p.ERR_BAD_REQUEST, f"no managed deployment {name} in {namespace}")
    if labels.get(p.SLEEP_ENABLE_LABEL) != "true" or not labels.get(p.SLEEP_GROUP_LABEL):
        raise OpError(p.ERR_BAD_REQUEST, f"{namespace}/{name} does not sleep when idle")
    return labels[p.SLEEP_GROUP_LABEL]


async def wake_group(base_url: str, group: str, session_duration: str, timeout: int) -> dict[str, Any]:
    """Sablier's blocking strategy for the group: Sablier scales it up and holds a session, so it puts the
    service back to sleep itself when the session expires. Returns once ready (or with Sablier's error)."""
    params = {"group": group, "session_duration": session_duration, "timeout": f"{timeout}s"}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout + 10)) as http, \
                http.get(f"{base_url}/api/strategies/blocking", params=params) as response:
            body = await response.text()
            status = response.headers.get("X-Sablier-Session-Status", "")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise OpError(p.ERR_FAILED, f"Sablier did not answer: {exc}") from None
    if response.status == 200 and status == "ready":
        return {"group": group, "ready": True}
    return {"group": group, "ready": False, "error": _problem_detail(body) or f"Sablier answered {response.status}"}


def _problem_detail(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    return str(data.get("detail") or data.get("title") or "")[:300] if isinstance(data, dict) else ""


async def echo(stream: Stream, payload: dict[str, Any]) -> None:
    """Sends back every byte it receives: exercises streams and flow control end to end."""
    while (data := await stream.recv()) is not None:
        await stream.send(data)


STREAM_OPS: dict[str, StreamHandler] = {p.STREAM_ECHO: echo}


def build_stream_ops(kube: Kube) -> dict[str, StreamHandler]:
    """Every stream operation: STREAM_OPS plus those that reach Kubernetes."""

    async def exec_op(stream: Stream, payload: dict[str, Any]) -> None:
        await shell.exec_stream(kube, stream, payload)

    async def pod_logs_stream(stream: Stream, payload: dict[str, Any]) -> None:
        await logs.serve(kube, stream, payload)

    async def db_dump(stream: Stream, payload: dict[str, Any]) -> None:
        await dumps.serve(kube, stream, payload, "dump")

    async def db_restore(stream: Stream, payload: dict[str, Any]) -> None:
        await dumps.serve(kube, stream, payload, "restore")

    relay = kubeapi.KubeApiRelay(kube)

    async def kube_api(stream: Stream, payload: dict[str, Any]) -> None:
        await relay.serve(stream, payload)

    return {**STREAM_OPS, p.STREAM_EXEC: exec_op, p.STREAM_LOGS: pod_logs_stream, p.STREAM_DB_DUMP: db_dump,
            p.STREAM_DB_RESTORE: db_restore, p.STREAM_KUBE_API: kube_api}
