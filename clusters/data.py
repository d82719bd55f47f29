"""Per-project data services on a cluster's shared infrastructure, for the projects app's Celery tasks.

Each function calls the cluster's agent and returns an `Outcome` the caller records; none of them
stores or logs a password or secret key. Credentials live in the project namespace's Secrets
(protocol.DATA_SECRETS); `reveal_credentials` reads them live for a member who asked, and
the caller shows them without storing them.

    outcome = data.ensure_database(cluster, namespace)      # safe to call again: keeps the password
    if outcome.retry: ...                                   # agent offline / infrastructure not ready
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent import protocol
from clusters import rpc
from clusters.models import Cluster

DATA_TIMEOUT = 120.0  # emptying a bucket before deleting it can take a while
USAGE_TIMEOUT = 30.0  # one size query to PostgreSQL and one GetBucketInfo per bucket


@dataclass(frozen=True)
class Outcome:
    ok: bool
    result: dict[str, Any] = field(default_factory=dict)  # what the agent answered (never a secret)
    error: str = ""
    retry: bool = False  # worth retrying later: the agent is away or the shared service is not ready yet
    agent_away: bool = False  # no agent answered (offline, or gone with the call in flight)


def _call(cluster: Cluster | int, op: str, payload: dict[str, Any], timeout: float = DATA_TIMEOUT) -> Outcome:
    try:
        return Outcome(True, rpc.call(cluster, op, payload, timeout=timeout) or {})
    except (rpc.AgentOffline, rpc.AgentTimeout) as exc:
        return Outcome(False, error=str(exc), retry=True, agent_away=True)
    except rpc.AgentError as exc:
        not_ready = exc.code == protocol.ERR_FAILED and exc.message.startswith("not ready")
        return Outcome(False, error=exc.message, retry=not_ready)


def ensure_database(cluster: Cluster | int, namespace: str, labels: dict[str, str], *, rotate: bool = False) -> Outcome:
    """A role and a database for the project, closed to other tenants; DATABASE_URL etc. in its Secret.

    `labels` are the project's (Project.labels, with its uid): the agent refuses anyone else's namespace.
    """
    return _call(cluster, protocol.OP_ENSURE_DATABASE, {"namespace": namespace, "labels": labels, "rotate": rotate})


def drop_database(cluster: Cluster | int, namespace: str) -> Outcome:
    """For project deletion, once its grace period is over."""
    return _call(cluster, protocol.OP_DROP_DATABASE, {"namespace": namespace})


def ensure_bucket(cluster: Cluster | int, namespace: str, labels: dict[str, str]) -> Outcome:
    """A bucket and a key allowed on it only; S3_* in the project's Secret (`labels` as for ensure_database)."""
    return _call(cluster, protocol.OP_ENSURE_BUCKET, {"namespace": namespace, "labels": labels})


def delete_bucket(cluster: Cluster | int, namespace: str) -> Outcome:
    """Empties the bucket, then removes it and its key (after the grace period)."""
    return _call(cluster, protocol.OP_DELETE_BUCKET, {"namespace": namespace})


def data_usage(cluster: Cluster | int, namespaces: list[str]) -> Outcome:
    """Database and bucket sizes in bytes of these project namespaces, in one call for the whole cluster.

    `result["items"]`: one `{"namespace", "database_bytes", "bucket_bytes", "errors"}` per namespace; a size is
    None where there is no such database or bucket, or where it could not be measured (`errors[service]` says why).
    """
    return _call(cluster, protocol.OP_DATA_USAGE, {"namespaces": namespaces}, timeout=USAGE_TIMEOUT)


def reveal_credentials(cluster: Cluster | int, namespace: str, service: str) -> dict[str, str] | None:
    """The values of the project's `database` or `bucket` Secret, read from the cluster now; None if unavailable.

    The caller must have checked that the user is a member of the project's organization.
    """
    outcome = _call(cluster, protocol.OP_DATA_CREDENTIALS, {"namespace": namespace, "service": service})
    return outcome.result.get("values") if outcome.ok else None
