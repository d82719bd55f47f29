"""Operations the control plane may call, one small function each, and the stream operations."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agent import infra, reconcile
from agent import protocol as p
from agent.k8s import Kube
from agent.tunnel import OpError, OpHandler, Stream, StreamHandler


def _require(payload: dict[str, Any], key: str, kind: type) -> Any:
    value = payload.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise OpError(p.ERR_BAD_REQUEST, f"{key!r} must be a {kind.__name__}")
    return value


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
        if not labels:
            raise OpError(p.ERR_BAD_REQUEST, "'labels' must name the project (pruning selects by them)")
        try:
            return await asyncio.to_thread(reconcile.apply_project, kube, namespace, labels, revision, objects)
        except reconcile.StaleRevision as exc:
            raise OpError(p.ERR_STALE_REVISION, str(exc)) from None

    async def delete_project(payload: dict[str, Any]) -> dict[str, Any]:
        namespace = _require(payload, "namespace", str)
        try:
            return await asyncio.to_thread(reconcile.delete_project, kube, namespace)
        except reconcile.NotManaged as exc:
            raise OpError(p.ERR_BAD_REQUEST, str(exc)) from None

    return {"ping": ping, "version": version, "cluster_info": cluster_info,
            "apply_project": apply_project, "delete_project": delete_project,
            **infra.build_ops(kube)}  # bootstrap and project data services


async def echo(stream: Stream, payload: dict[str, Any]) -> None:
    """Sends back every byte it receives: exercises streams and flow control end to end."""
    while (data := await stream.recv()) is not None:
        await stream.send(data)


STREAM_OPS: dict[str, StreamHandler] = {"echo": echo}
