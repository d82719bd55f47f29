"""Celery tasks that push desired state to agents. They take primary keys and are safe to run twice."""

from __future__ import annotations

import logging

from celery import shared_task

from agent import protocol
from clusters import infrastructure, rpc, services
from clusters.converge import converge
from clusters.models import DesiredProject, EventKind

log = logging.getLogger(__name__)

APPLY_TIMEOUT = 120.0


@shared_task(ignore_result=True)
def push_desired_project(desired_pk: int, revision: int) -> None:
    desired = DesiredProject.objects.filter(pk=desired_pk).first()
    if desired is None or desired.revision != revision:
        return  # deleted, or a newer revision was queued and will be pushed by its own task
    if desired.in_sync and desired.last_result:
        return  # this revision is applied already (a second run of the task): nothing new to send
    applied = converge(desired, timeout=APPLY_TIMEOUT)
    if applied.code:
        # Offline is not an error for the project: the agent's next (re)connect re-sends every desired project.
        log.info("apply of %s r%s not done (%s): %s", desired.namespace, revision, applied.code, applied.error)


@shared_task(ignore_result=True)
def delete_project_namespace(cluster_pk: int, namespace: str, labels: dict[str, str] | None = None) -> None:
    if DesiredProject.objects.filter(cluster_id=cluster_pk, namespace=namespace).exists():
        # Desired again: the project was restored before this ran. Deleting now would take its new release.
        log.info("not deleting namespace %s on cluster %s: it is desired again", namespace, cluster_pk)
        return
    try:
        rpc.call(cluster_pk, protocol.OP_DELETE_PROJECT, {"namespace": namespace, "labels": labels or {}},
                 timeout=APPLY_TIMEOUT)
    except rpc.AgentError as exc:
        # The agent refused (e.g. the namespace is not the project's): operators see it on the cluster page.
        services.record_event(cluster_pk, EventKind.APPLY_FAILED, f"delete of {namespace} refused: {exc.message}")
    except rpc.RPCError as exc:
        log.warning("could not delete namespace %s on cluster %s: %s", namespace, cluster_pk, exc)


@shared_task
def agent_rpc(cluster_pk: int, op: str, payload: dict, timeout: float = 30.0) -> dict:
    """Run one RPC from a worker and return {"result"} or {"error", "code"} (used by tests and the bench)."""
    try:
        return {"result": rpc.call(cluster_pk, op, payload, timeout=timeout)}
    except rpc.AgentError as exc:
        return {"error": exc.message, "code": exc.code}
    except rpc.RPCError as exc:
        return {"error": str(exc), "code": type(exc).__name__}


@shared_task(ignore_result=True)
def run_cluster_bootstrap(cluster_pk: int) -> None:
    """Ask the agent to re-run its bootstrap; progress then arrives as bootstrap.progress events."""
    try:
        infrastructure.start_bootstrap(cluster_pk)
    except rpc.RPCError as exc:
        log.warning("bootstrap of cluster %s not started: %s", cluster_pk, exc)
        services.record_event(cluster_pk, EventKind.BOOTSTRAP, f"could not reach the agent: {exc}")
