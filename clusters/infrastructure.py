"""A cluster's shared infrastructure (agent/bootstrap.py): live component states, re-running the bootstrap.

The agent reports each component's transitions as `bootstrap.progress` events; the consumer hands
them to `record_bootstrap_progress`, which keeps one row per component, marks the cluster degraded
while anything is not ready, and pushes the change to the cluster page.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from agent import protocol
from clusters import rpc
from clusters.models import BootstrapComponent, Cluster, ClusterStatus, ComponentState, EventKind
from clusters.services import cluster_group, record_event, status_payload
from lib.realtime import publish

log = logging.getLogger(__name__)

MAX_LOG_LINES = 30
COMPONENT_ORDER = ("traefik", "cnpg", "sablier", "garage", "postgres", "backups", "tls")  # agent.bootstrap.COMPONENTS


def component_payload(component: BootstrapComponent) -> dict[str, Any]:
    return {"component": component.name, "state": component.state, "label": component.get_state_display(),
            "reason": component.reason, "logs": component.logs, "attempt": component.attempt,
            "version": component.version, "updated_at": component.updated_at.isoformat()}


def components_for(cluster: Cluster) -> list[BootstrapComponent]:
    """In the order they matter to an operator (the ingress first, the database last)."""
    rank = {name: i for i, name in enumerate(COMPONENT_ORDER)}
    return sorted(cluster.bootstrap_components.all(), key=lambda c: (rank.get(c.name, 99), c.name))


def _clean_logs(raw: Any) -> list[str]:
    lines = raw if isinstance(raw, list) else []
    return [str(line)[:500] for line in lines][-MAX_LOG_LINES:]


def derive_status(cluster: Cluster) -> bool:
    """Online only when Kubernetes is reachable and every reported component is ready. Returns whether it changed."""
    if cluster.status not in (ClusterStatus.ONLINE, ClusterStatus.DEGRADED):
        return False  # offline / pending: the connection decides, not the infrastructure
    reachable = (cluster.capabilities or {}).get("kubernetes_reachable", True)
    wanted = ClusterStatus.ONLINE if reachable and not cluster.infrastructure_pending() else ClusterStatus.DEGRADED
    if wanted == cluster.status:
        return False
    cluster.status = wanted
    cluster.save(update_fields=["status"])
    return True


def record_bootstrap_progress(cluster_id: int, data: dict[str, Any]) -> BootstrapComponent | None:
    """Store one `bootstrap.progress` event. Malformed events are dropped (the agent is trusted, not its bugs)."""
    name, state = data.get("component"), data.get("state")
    if not isinstance(name, str) or not name or state not in ComponentState.values:
        log.warning("cluster %s: ignoring malformed bootstrap.progress %r", cluster_id, data)
        return None
    attempt = data.get("attempt")
    version = data.get("version")
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().filter(pk=cluster_id).first()
        if cluster is None:
            return None
        component, _ = BootstrapComponent.objects.update_or_create(cluster=cluster, name=name[:20], defaults={
            "state": state, "reason": str(data.get("reason") or "")[:2000], "logs": _clean_logs(data.get("logs")),
            "attempt": attempt if isinstance(attempt, int) and attempt >= 0 else 0,
            "version": version if isinstance(version, dict) else {},
        })
        changed = derive_status(cluster)
        payload = component_payload(component)
        status = status_payload(cluster) if changed else None
    group = cluster_group(cluster_id)
    transaction.on_commit(lambda: publish(group, "cluster.bootstrap", payload))
    if status is not None:
        transaction.on_commit(lambda: publish(group, "cluster.status", status))
    return component


def bootstrap_settings() -> dict[str, Any]:
    return dict(settings.PAAS_BOOTSTRAP)


def request_bootstrap(cluster: Cluster, requested_by: str = "") -> None:
    """Re-run the bootstrap on the cluster: recorded now, sent by a Celery task once this transaction commits."""
    from clusters.tasks import run_cluster_bootstrap

    record_event(cluster, EventKind.BOOTSTRAP, f"by {requested_by}" if requested_by else "")
    transaction.on_commit(lambda: run_cluster_bootstrap.delay(cluster.pk))


def start_bootstrap(cluster: Cluster | int, timeout: float = 30.0) -> dict[str, Any]:
    """Send the sizing and start a run on the agent (it answers at once; progress arrives as events).

    Raises clusters.rpc.RPCError subclasses (offline, timeout, agent error).
    """
    return rpc.call(cluster, protocol.OP_BOOTSTRAP, {"settings": bootstrap_settings()}, timeout=timeout)


def fetch_bootstrap_status(cluster: Cluster | int, timeout: float = 30.0) -> dict[str, Any]:
    """The agent's current view, read from the cluster (also recorded, in case events were missed)."""
    snapshot = rpc.call(cluster, protocol.OP_BOOTSTRAP_STATUS, {}, timeout=timeout)
    cluster_id = cluster if isinstance(cluster, int) else cluster.pk
    for data in (snapshot.get("components") or {}).values():
        record_bootstrap_progress(cluster_id, data)
    return snapshot
