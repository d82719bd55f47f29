"""Writes about clusters: registration, agent credentials, the live session, desired and observed state.

Views, consumers, tasks, management commands and (later) the projects app go through these
functions. The agent consumer calls the session functions from its database helpers.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import Organization, User
from agent import protocol
from audit import services as audit
from clusters import observed, rpc
from clusters.models import (
    Cluster,
    ClusterEvent,
    ClusterStatus,
    DesiredProject,
    EventKind,
    ObservedProject,
    hash_secret,
    install_secret_ttl,
)
from clusters.signals import observed_changed
from lib.realtime import publish

log = logging.getLogger(__name__)

KEEP_EVENTS = 200
REJECTED_BURST_GAP = timedelta(minutes=10)  # refused connections closer than this count as one event


def cluster_group(cluster_id: int) -> str:
    """Browsers watching one cluster (operators' cluster page; later per-project pages too)."""
    return f"cluster_{cluster_id}"


def record_event(cluster: Cluster | int, kind: str, message: str = "") -> ClusterEvent:
    cluster_id = cluster if isinstance(cluster, int) else cluster.pk
    event = ClusterEvent.objects.create(cluster_id=cluster_id, kind=kind, message=message[:500])
    stale = ClusterEvent.objects.filter(cluster_id=cluster_id).values_list("pk", flat=True)[KEEP_EVENTS:]
    if stale:
        ClusterEvent.objects.filter(pk__in=list(stale)).delete()
    transaction.on_commit(lambda: publish(cluster_group(cluster_id), "cluster.event", {
        "kind": event.kind, "label": event.get_kind_display(), "message": event.message,
        "time": event.created_at.isoformat(),
    }))
    return event


def _unique_slug(name: str) -> str:
    base = slugify(name)[:32] or "cluster"
    slug, n = base, 1
    while Cluster.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def create_cluster(name: str, base_domain: str, ssh_endpoint: str = "", *, simulated: bool = False,
                   all_organizations: bool = True, organizations: list[Organization] | tuple = (),
                   slug: str | None = None) -> Cluster:
    if not name.strip():
        raise ValidationError("A cluster needs a name.")
    cluster = Cluster.objects.create(
        name=name.strip(), slug=slug or _unique_slug(name), base_domain=base_domain.strip().strip("."),
        ssh_endpoint=ssh_endpoint.strip(), simulated=simulated, all_organizations=all_organizations,
    )
    if organizations:
        cluster.organizations.set(organizations)
    log.info("cluster %s registered", cluster.slug)
    return cluster


# --- credentials --------------------------------------------------------------------------------


def _new_token(cluster: Cluster) -> str:
    # The cluster id in front lets the consumer find the cluster without searching by hash.
    return f"{cluster.pk}.{secrets.token_urlsafe(32)}"


@transaction.atomic
def issue_token(cluster: Cluster, *, actor: User | None = None) -> str:
    """A new agent token (returned once, stored hashed). An existing token stays valid for the grace period."""
    raw = _new_token(cluster)
    now = timezone.now()
    rotating = bool(cluster.token_hash)
    if rotating:
        cluster.previous_token_hash = cluster.token_hash
        cluster.previous_token_valid_until = now + timedelta(minutes=settings.AGENT_TOKEN_GRACE_MINUTES)
    cluster.token_hash = hash_secret(raw)
    cluster.token_created_at = now
    cluster.save(update_fields=["token_hash", "token_created_at", "previous_token_hash", "previous_token_valid_until"])
    if rotating:
        record_event(cluster, EventKind.TOKEN_ROTATED,
                     f"previous token valid until {cluster.previous_token_valid_until:%Y-%m-%d %H:%M} UTC")
    else:
        record_event(cluster, EventKind.TOKEN_ISSUED)
    audit.record(audit.Action.CLUSTER_TOKEN_ROTATED if rotating else audit.Action.CLUSTER_TOKEN_ISSUED, actor=actor,
                 target=cluster, details={"previous_valid_until": cluster.previous_token_valid_until}
                 if rotating else {})
    return raw


@transaction.atomic
def revoke_token(cluster: Cluster, *, actor: User | None = None) -> None:
    """Invalidate every token of the cluster and close the live agent connection at once."""
    cluster.token_hash = cluster.previous_token_hash = ""
    cluster.previous_token_valid_until = None
    cluster.install_secret_hash = ""
    cluster.save(update_fields=["token_hash", "previous_token_hash", "previous_token_valid_until",
                                "install_secret_hash"])
    record_event(cluster, EventKind.TOKEN_REVOKED)
    audit.record(audit.Action.CLUSTER_TOKEN_REVOKED, actor=actor, target=cluster)
    # Read the live session's channel now: the caller's copy of the cluster may predate the connection.
    channel = Cluster.objects.filter(pk=cluster.pk).values_list("channel_name", flat=True).first()
    if channel:
        transaction.on_commit(lambda: rpc.post(channel, {"type": "agent.close", "code": protocol.CLOSE_TOKEN_REVOKED}))


def issue_install_secret(cluster: Cluster) -> str:
    """A short-lived, single-use secret for the install URL (never the long-lived token)."""
    raw = secrets.token_urlsafe(24)
    cluster.install_secret_hash = hash_secret(raw)
    cluster.install_secret_expires_at = timezone.now() + install_secret_ttl()
    cluster.save(update_fields=["install_secret_hash", "install_secret_expires_at"])
    return raw


def redeem_install_secret(cluster_id: int, raw: str) -> tuple[Cluster, str] | None:
    """Consume the install secret and mint the token the manifest's Secret will carry; None if not valid."""
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().filter(pk=cluster_id).first()
        if cluster is None or not cluster.install_secret_matches(raw):
            return None
        cluster.install_secret_hash = ""
        cluster.save(update_fields=["install_secret_hash"])
        token = issue_token(cluster)
        record_event(cluster, EventKind.INSTALL_FETCHED)
    return cluster, token


def authenticate_agent(raw_token: str) -> Cluster | None:
    cluster_id, _, _secret = raw_token.partition(".")
    if not cluster_id.isdigit():
        return None
    cluster = Cluster.objects.filter(pk=int(cluster_id)).first()
    if cluster is None or not cluster.token_matches(raw_token):
        return None
    return cluster


# --- the live session (called by clusters.consumers.AgentConsumer) ------------------------------


def status_payload(cluster: Cluster) -> dict[str, Any]:
    return {
        "status": cluster.status, "label": cluster.get_status_display(), "connected": cluster.is_connected,
        "last_seen": cluster.last_seen.isoformat() if cluster.last_seen else None,
        "agent_version": cluster.agent_version, "kubernetes_version": cluster.kubernetes_version,
        "nodes": cluster.nodes, "components": cluster.components,
    }


def agent_connected(cluster_id: int, session_id: str, channel_name: str, hello: dict[str, Any]) -> str:
    """Make this session the cluster's live one. Returns the channel of the session it replaces ('' if none)."""
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
        previous = cluster.channel_name if cluster.session_id != session_id else ""
        capabilities = hello.get("capabilities") or {}
        reachable = capabilities.get("kubernetes_reachable", True)
        # Degraded too while the shared infrastructure is not ready (clusters.infrastructure keeps it current).
        pending = cluster.infrastructure_pending()
        cluster.status = ClusterStatus.ONLINE if reachable and not pending else ClusterStatus.DEGRADED
        cluster.session_id, cluster.channel_name = session_id, channel_name
        cluster.connected_at = cluster.last_seen = timezone.now()
        cluster.agent_version = str(hello.get("agent_version", ""))[:40]
        cluster.kubernetes_version = str(hello.get("kubernetes_version", ""))[:40]
        cluster.nodes = hello.get("nodes") or []
        cluster.capabilities = capabilities
        cluster.components = hello.get("components") or {}
        cluster.save()
        if previous:
            record_event(cluster, EventKind.REPLACED, "a newer agent connection took over")
        record_event(cluster, EventKind.CONNECTED,
                     f"agent {cluster.agent_version}, Kubernetes {cluster.kubernetes_version or 'unreachable'}")
        payload = status_payload(cluster)
    transaction.on_commit(lambda: publish(cluster_group(cluster_id), "cluster.status", payload))
    return previous


def agents_seen(cluster_ids: list[int], chunk: int = 500) -> None:
    """Mark clusters whose agents spoke since the last sweep as seen now: one statement per chunk,
    so thousands of idle agents cost a few queries per heartbeat, not one each."""
    now = timezone.now()
    for i in range(0, len(cluster_ids), chunk):
        Cluster.objects.filter(pk__in=cluster_ids[i : i + chunk]).update(last_seen=now)


def agent_disconnected(cluster_id: int, session_id: str, reason: str) -> bool:
    """Mark the cluster offline, unless a newer session already took over. Returns whether it did."""
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().filter(pk=cluster_id, session_id=session_id).first()
        if cluster is None:
            return False
        cluster.status = ClusterStatus.OFFLINE
        cluster.session_id = cluster.channel_name = ""
        cluster.save(update_fields=["status", "session_id", "channel_name"])
        record_event(cluster, EventKind.DISCONNECTED, reason)
        payload = status_payload(cluster)
    transaction.on_commit(lambda: publish(cluster_group(cluster_id), "cluster.status", payload))
    return True


def record_rejected_connection(cluster_id: int | None, reason: str, now: datetime | None = None) -> bool:
    """Count a refused agent connection: one event per burst, however many attempts it holds.

    Anyone can send bad tokens naming any cluster, so each attempt must not be an event of its own
    (they would push out the ones operators need). Attempts less than REJECTED_BURST_GAP apart add to
    the latest "connection refused" event (its count and last time). Returns True when a new event
    started, so the caller can log once per burst too.
    """
    if cluster_id is None or not Cluster.objects.filter(pk=cluster_id).exists():
        return False
    now = now or timezone.now()
    burst = ClusterEvent.objects.filter(cluster_id=cluster_id, kind=EventKind.REJECTED).filter(
        Q(last_at__gte=now - REJECTED_BURST_GAP) | Q(last_at__isnull=True, created_at__gte=now - REJECTED_BURST_GAP)
    ).order_by("-created_at", "-id").first()
    if burst is not None:
        ClusterEvent.objects.filter(pk=burst.pk).update(count=F("count") + 1, last_at=now)
        return False
    record_event(cluster_id, EventKind.REJECTED, reason)
    return True


# --- desired and observed state -----------------------------------------------------------------


def set_desired_project(cluster: Cluster, namespace: str, labels: dict[str, str], revision: int,
                        objects: list[dict[str, Any]], *, push: bool = True) -> DesiredProject:
    """Record what `namespace` on `cluster` should hold and, with `push`, converge it (a task, after commit).

    Revisions only move forward: an older revision than the stored one is refused. The projects
    app calls this for every release and converges it itself (push=False, see clusters.converge);
    if the agent is offline, the reconnect re-sends it.
    """
    from clusters.tasks import push_desired_project

    with transaction.atomic():
        desired = DesiredProject.objects.select_for_update().filter(cluster=cluster, namespace=namespace).first()
        if desired and revision < desired.revision:
            raise ValidationError(f"revision {revision} is older than the desired revision {desired.revision}")
        if desired is None:
            desired = DesiredProject(cluster=cluster, namespace=namespace)
        desired.labels, desired.revision, desired.manifests = labels, revision, objects
        desired.save()
    if push:
        transaction.on_commit(lambda: push_desired_project.delay(desired.pk, revision))
    return desired


def desired_revision(cluster: Cluster | int, namespace: str) -> int:
    """The namespace's desired revision (0 when none): new revisions must be above it."""
    cluster_id = cluster if isinstance(cluster, int) else cluster.pk
    return DesiredProject.objects.filter(cluster_id=cluster_id, namespace=namespace).values_list(
        "revision", flat=True).first() or 0


def delete_desired_project(cluster: Cluster, namespace: str, labels: dict[str, str]) -> None:
    """Forget the namespace's desired state and ask the agent to delete the namespace (after commit).

    `labels` name the project and carry its uid: the agent deletes the namespace only if it is that project's.
    """
    from clusters.tasks import delete_project_namespace

    DesiredProject.objects.filter(cluster=cluster, namespace=namespace).delete()
    ObservedProject.objects.filter(cluster=cluster, namespace=namespace).delete()
    transaction.on_commit(lambda: delete_project_namespace.delay(cluster.pk, namespace, labels))


def record_apply_result(desired_pk: int, revision: int, result: dict[str, Any] | None, error: str = "") -> None:
    updates: dict[str, Any] = {"last_result": result or {}, "last_error": error}
    if result is not None:
        updates["applied_revision"] = revision
    # Only record against the revision it was for: a newer desired revision may have arrived meanwhile.
    DesiredProject.objects.filter(pk=desired_pk, revision=revision).update(**updates)
    if error:
        desired = DesiredProject.objects.filter(pk=desired_pk).first()
        if desired:
            record_event(desired.cluster_id, EventKind.APPLY_FAILED, f"{desired.namespace} r{revision}: {error}")


def record_observed(cluster_id: int, namespace: str, state: dict[str, Any] | None) -> None:
    if state is None:
        ObservedProject.objects.filter(cluster_id=cluster_id, namespace=namespace).delete()
    else:
        ObservedProject.objects.update_or_create(cluster_id=cluster_id, namespace=namespace,
                                                 defaults={"state": state})
    observed_changed.send(sender=ObservedProject, cluster_id=cluster_id, namespace=namespace, state=state)
    transaction.on_commit(lambda: observed.poke(cluster_id, namespace))  # a deploy task following a rollout
    transaction.on_commit(lambda: publish(cluster_group(cluster_id), "cluster.observed",
                                          {"namespace": namespace, "state": state}))
