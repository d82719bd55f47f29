"""Converging a namespace: send its desired state to the agent and record what the agent made of it.

This is the one way a namespace is applied. The deploy pipeline (projects.pipeline) converges inline
so it can follow the rollout at once, `clusters.tasks.push_desired_project` converges what
`set_desired_project(..., push=True)` stored, and the agent consumer converges every desired
namespace of its cluster after each (re)connect (`aconverge`: consumers must not block on rpc.call).
Each records the outcome on the DesiredProject (and a cluster event when something failed) and
returns it as an `Applied`, whose `error` is the one summary of a failed apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async

from agent import protocol
from clusters import rpc
from clusters.models import DesiredProject
from clusters.services import record_apply_result

APPLY_OP = protocol.OP_APPLY_PROJECT
OFFLINE = "offline"  # no agent connected: nothing was sent, the next (re)connect converges
TIMEOUT = "timeout"  # sent, but no answer in time


@dataclass(frozen=True)
class Applied:
    """What one apply_project came to: the agent's answer, or why there is none."""

    result: dict[str, Any] | None = None  # the agent's answer ({"results": [...]}); None when it refused or was away
    code: str = ""  # "" when it answered; OFFLINE, TIMEOUT or the agent's error code (agent.protocol.ERR_*)
    error: str = ""  # "" when every object applied; else what went wrong, for people
    failed: list[dict[str, Any]] = field(default_factory=list)  # the objects the agent could not apply

    @classmethod
    def answered(cls, result: dict[str, Any]) -> Applied:
        failed = [r for r in result.get("results", []) if r.get("action") == "failed"]
        return cls(result=result, failed=failed,
                   error="; ".join(f"{r['kind']}/{r['name']}: {r.get('message', '')}" for r in failed))

    @classmethod
    def refused(cls, exc: rpc.RPCError) -> Applied:
        if isinstance(exc, rpc.AgentError):
            return cls(code=exc.code, error=exc.message)
        return cls(code=OFFLINE if isinstance(exc, rpc.AgentOffline) else TIMEOUT, error=str(exc))

    @property
    def results(self) -> list[dict[str, Any]]:
        return (self.result or {}).get("results", [])

    @property
    def ok(self) -> bool:
        return not self.code and not self.error


def converge(desired: DesiredProject, *, timeout: float) -> Applied:
    """Apply `desired` on its cluster now (for sync callers: the deploy task, the push task)."""
    try:
        applied = Applied.answered(rpc.call(desired.cluster_id, APPLY_OP, desired.rpc_payload(), timeout=timeout))
    except rpc.RPCError as exc:
        applied = Applied.refused(exc)
    _record(desired, applied)
    return applied


async def aconverge(desired: DesiredProject, *, timeout: float) -> Applied:
    """converge() for async callers (the agent consumer's resync)."""
    try:
        applied = Applied.answered(await rpc.acall(desired.cluster_id, APPLY_OP, desired.rpc_payload(), timeout))
    except rpc.RPCError as exc:
        applied = Applied.refused(exc)
    await database_sync_to_async(_record)(desired, applied)
    return applied


def _record(desired: DesiredProject, applied: Applied) -> None:
    if applied.code == OFFLINE:
        return  # nothing reached an agent: not an apply failure, the reconnect re-sends
    record_apply_result(desired.pk, desired.revision, applied.result, applied.error)
