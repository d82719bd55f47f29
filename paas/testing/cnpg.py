"""The CloudNativePG operator's visible part for backups, played where no operator runs (kubesim): tests and the
e2e dry run. Called with an administrator's `Kube` (the operator's identity, not the agent's)."""

from __future__ import annotations

from agent import charts
from agent.bootstrap import PG_BACKUP, PG_CLUSTER, PG_SCHEDULED_BACKUP
from agent.k8s import Kube

FIRST_BACKUP = f"{charts.SCHEDULED_BACKUP}-20261201030000"


def set_cluster_condition(kube: Kube, ctype: str, status: str, reason: str, message: str = "") -> None:
    cluster = kube.get(PG_CLUSTER, charts.POSTGRES_CLUSTER, charts.DATA_NAMESPACE) or {}
    conditions = [c for c in (cluster.get("status") or {}).get("conditions") or [] if c["type"] != ctype]
    conditions.append({"type": ctype, "status": status, "reason": reason, "message": message,
                       "lastTransitionTime": "2026-12-01T03:00:00Z"})
    kube.request("PATCH", PG_CLUSTER.item(charts.POSTGRES_CLUSTER, charts.DATA_NAMESPACE) + "/status",
                 body={"status": {"conditions": conditions}}, content_type="application/merge-patch+json")


def play_cnpg_backups(kube: Kube) -> None:
    """WAL archiving once the Cluster has a backup section (the ContinuousArchiving condition), and the immediate
    base backup of the ScheduledBackup (a Backup labelled with its parent, completed)."""
    cluster = kube.get(PG_CLUSTER, charts.POSTGRES_CLUSTER, charts.DATA_NAMESPACE) or {}
    if not (cluster.get("spec") or {}).get("backup"):
        return
    if not any(c["type"] == "ContinuousArchiving" for c in (cluster.get("status") or {}).get("conditions") or []):
        set_cluster_condition(kube, "ContinuousArchiving", "True", "ContinuousArchivingSuccess")
    scheduled = kube.get(PG_SCHEDULED_BACKUP, charts.SCHEDULED_BACKUP, charts.DATA_NAMESPACE)
    if scheduled is None or not scheduled["spec"].get("immediate") or kube.get(PG_BACKUP, FIRST_BACKUP,
                                                                               charts.DATA_NAMESPACE):
        return
    kube.apply(PG_BACKUP, {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Backup", "metadata": {
        "name": FIRST_BACKUP, "namespace": charts.DATA_NAMESPACE,
        "labels": {"cnpg.io/scheduled-backup": charts.SCHEDULED_BACKUP, "cnpg.io/cluster": charts.POSTGRES_CLUSTER}},
        "spec": {"cluster": {"name": charts.POSTGRES_CLUSTER}, "method": "barmanObjectStore"}},
        charts.DATA_NAMESPACE)
    kube.request("PATCH", PG_BACKUP.item(FIRST_BACKUP, charts.DATA_NAMESPACE) + "/status",
                 body={"status": {"phase": "completed", "startedAt": "2026-12-01T03:00:00Z",
                                  "stoppedAt": "2026-12-01T03:00:09Z", "method": "barmanObjectStore",
                                  "destinationPath": charts.BACKUP_DESTINATION}},
                 content_type="application/merge-patch+json")
