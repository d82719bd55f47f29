"""Continuous backups of the shared PostgreSQL: bucket, Secret, the Cluster's WAL archive and the ScheduledBackup,
driven against kubesim with CloudNativePG 1.30.0's CRDs (the operator's visible part is played, see test_bootstrap).
"""

# ruff: noqa: F811 (pytest fixtures imported from test_bootstrap are parameters here)
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from agent import bootstrap as b
from agent import charts
from agent import protocol as p
from agent.data import services
from agent.handlers import build_ops
from agent.ops import OpError
from agent.tests.test_bootstrap import (  # noqa: F401 (bare_k3s, boot, local_postgres: fixtures)
    all_ready,
    bare_k3s,
    boot,
    drive,
    local_postgres,
    set_cluster_condition,
)
from kubesim.schema import validate_object
from paas.testing.agent_account import admin_kube

DOCS = Path(__file__).resolve().parents[2] / "docs" / "infrastructure.md"


def applied(obj: dict) -> dict:
    """The object as the agent sent it (no status, no server-set metadata)."""
    clean = {k: v for k, v in obj.items() if k != "status"}
    clean["metadata"] = {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "labels")}
    return clean


def test_a_bootstrapped_cluster_archives_to_its_own_garage_bucket(kubesim, boot, double):
    statuses = drive(kubesim, boot, all_ready)
    assert statuses["backups"].state == b.READY
    assert "WAL archiving works; last base backup 2026-12-01T03:00:09Z" in statuses["backups"].reason
    assert statuses["backups"].version == charts.versions()["backups"]

    # The bucket and a key allowed to read and write it, nothing more.
    assert double.permissions(charts.BACKUP_BUCKET, charts.BACKUP_BUCKET) == {"read": True, "write": True,
                                                                              "owner": False}
    key = next(k for k in double.keys.values() if k["name"] == charts.BACKUP_BUCKET)
    secret = services.read_secret(boot.kube, charts.DATA_NAMESPACE, charts.BACKUP_S3_SECRET)
    assert secret == {"ACCESS_KEY_ID": key["id"], "ACCESS_SECRET_KEY": key["secret"],
                      "REGION": "garage"}

    spec = kubesim.get("Cluster.postgresql.cnpg.io", "paas-data", "paas-postgres")["spec"]
    store = spec["backup"]["barmanObjectStore"]
    assert spec["backup"]["retentionPolicy"] == "30d"
    assert store["destinationPath"] == "s3://paas-postgres-backups/"
    assert store["endpointURL"] == "http://garage.paas-data.svc.cluster.local:3900"
    assert store["serverName"] == "paas-postgres"
    assert store["s3Credentials"]["secretAccessKey"] == {"name": "paas-backup-s3", "key": "ACCESS_SECRET_KEY"}
    assert {e["name"] for e in spec["env"]} == {"AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION"}

    scheduled = kubesim.get("ScheduledBackup", "paas-data", "paas-postgres-daily")
    assert scheduled["spec"] == {"cluster": {"name": "paas-postgres"}, "schedule": "0 0 3 * * *",
                                 "method": "barmanObjectStore", "immediate": True, "backupOwnerReference": "self",
                                 **{k: v for k, v in scheduled["spec"].items()
                                    if k not in ("cluster", "schedule", "method", "immediate", "backupOwnerReference")}}
    for obj in (kubesim.get("Cluster.postgresql.cnpg.io", "paas-data", "paas-postgres"), scheduled,
                kubesim.get("Secret", "paas-data", "paas-backup-s3")):
        assert validate_object(applied(obj)) == [], obj["kind"]


def test_the_secret_never_reaches_the_cluster_spec_or_the_status(kubesim, boot, double):
    statuses = drive(kubesim, boot, all_ready)
    key = next(k for k in double.keys.values() if k["name"] == charts.BACKUP_BUCKET)
    cluster = kubesim.get("Cluster.postgresql.cnpg.io", "paas-data", "paas-postgres")
    assert key["secret"] not in repr(cluster)
    assert key["secret"] not in repr(boot.snapshot()) and key["secret"] not in repr(statuses)


def test_the_cluster_refers_to_the_bucket_only_once_it_exists(kubesim, boot, double):
    kubesim.fail_helm_chart("kube-system", "garage")
    statuses = drive(kubesim, boot, lambda s: s["postgres"].state == b.READY)
    assert statuses["backups"].state == b.PENDING
    assert statuses["backups"].reason == "waiting for Garage"
    assert "backup" not in kubesim.get("Cluster.postgresql.cnpg.io", "paas-data", "paas-postgres")["spec"]
    assert kubesim.get("ScheduledBackup", "paas-data", "paas-postgres-daily") is None

    kubesim.fail_helm_chart("kube-system", "garage", fail=False)
    boot.clock.now += 10_000  # past the chart's backoff
    drive(kubesim, boot, all_ready)
    assert kubesim.get("Cluster.postgresql.cnpg.io", "paas-data", "paas-postgres")["spec"]["backup"]
    assert kubesim.get("ScheduledBackup", "paas-data", "paas-postgres-daily") is not None


def test_it_shows_failing_wal_archiving_with_the_operators_message(kubesim, boot):
    drive(kubesim, boot, all_ready)
    set_cluster_condition(kubesim, "ContinuousArchiving", "False", "ContinuousArchivingFailing",
                          "unexpected failure invoking barman-cloud-wal-archive: exit status 4")
    status = boot.run_pass()["backups"]
    assert status.state == b.FAILED
    assert status.reason == ("WAL archiving to s3://paas-postgres-backups/ fails: unexpected failure invoking "
                             "barman-cloud-wal-archive: exit status 4")
    set_cluster_condition(kubesim, "ContinuousArchiving", "True", "ContinuousArchivingSuccess")
    assert boot.run_pass()["backups"].state == b.READY


def test_it_shows_a_failed_base_backup(kubesim, boot):
    drive(kubesim, boot, all_ready)
    set_cluster_condition(kubesim, "LastBackupSucceeded", "False", "LastBackupFailed", "can't upload: 403")
    status = boot.run_pass()["backups"]
    assert (status.state, status.reason) == (b.FAILED, "the last base backup failed: can't upload: 403")


def test_it_waits_for_the_first_base_backup_before_saying_ready(kubesim, boot):
    # The operator archives WAL but has not taken a base backup yet: nothing could be restored so far.
    drive(kubesim, boot, all_ready)
    admin = admin_kube(kubesim)
    for obj in kubesim.list("Backup", "paas-data"):
        admin.delete(b.PG_BACKUP, obj["metadata"]["name"], "paas-data")
    set_cluster_condition(kubesim, "ContinuousArchiving", "True", "ContinuousArchivingSuccess")
    statuses = boot.run_pass()
    assert (statuses["backups"].state, statuses["backups"].reason) == (
        b.INSTALLING, "WAL archiving works; waiting for the first base backup")


def test_schedule_and_retention_come_from_the_settings(kubesim, boot):
    boot.store_settings({"backup_schedule": "0 30 1 * * 0", "backup_retention": "8w",
                         "backup_server_name": "paas-postgres-2"})
    drive(kubesim, boot, all_ready)
    assert kubesim.get("ScheduledBackup", "paas-data", "paas-postgres-daily")["spec"]["schedule"] == "0 30 1 * * 0"
    spec = kubesim.get("Cluster.postgresql.cnpg.io", "paas-data", "paas-postgres")["spec"]["backup"]
    assert spec["retentionPolicy"] == "8w"
    assert spec["barmanObjectStore"]["serverName"] == "paas-postgres-2"


@pytest.mark.parametrize(("raw", "message"), [
    ({"backup_schedule": "0 3 * * *"}, "backup_schedule '0 3 * * *' is not a six-field cron expression"),
    ({"backup_schedule": "0 0 3 * * * ; rm"}, "is not a six-field cron expression"),
    ({"backup_retention": "30"}, "backup_retention '30' is not a number of days, weeks or months"),
    ({"backup_retention": "0d"}, "is not a number of days, weeks or months"),
    ({"backup_server_name": "Paas/Postgres"}, "backup_server_name 'Paas/Postgres' must be lower-case"),
])
async def test_the_bootstrap_operation_refuses_bad_backup_settings_and_keeps_the_old_ones(boot, bare_k3s, raw,
                                                                                           message):
    b._BOOTSTRAPPERS[bare_k3s] = boot
    ops = build_ops(bare_k3s)
    with pytest.raises(OpError) as refused:
        await ops[p.OP_BOOTSTRAP]({"settings": raw})
    assert refused.value.code == p.ERR_BAD_REQUEST
    assert message in refused.value.message
    assert boot.settings() == b.Settings()


def test_a_second_pass_changes_nothing_and_a_lost_secret_comes_back(kubesim, boot):
    drive(kubesim, boot, all_ready)
    before = kubesim.get("Secret", "paas-data", "paas-backup-s3")
    scheduled = kubesim.get("ScheduledBackup", "paas-data", "paas-postgres-daily")
    assert all_ready(boot.run_pass())
    assert kubesim.get("Secret", "paas-data", "paas-backup-s3")["metadata"]["resourceVersion"] == \
        before["metadata"]["resourceVersion"]
    assert kubesim.get("ScheduledBackup", "paas-data", "paas-postgres-daily")["metadata"]["resourceVersion"] == \
        scheduled["metadata"]["resourceVersion"]

    admin_kube(kubesim).delete(services.SECRET, "paas-backup-s3", "paas-data")
    boot.run_pass()
    assert kubesim.get("Secret", "paas-data", "paas-backup-s3")["data"] == before["data"]  # the same key


def test_the_documented_recovery_cluster_validates_against_the_cnpg_crd():
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), re.S)
    recovery = [yaml.safe_load(block) for block in blocks if "bootstrap:\n    recovery:" in block]
    assert len(recovery) == 1
    cluster = recovery[0]
    assert validate_object(cluster) == []
    source = cluster["spec"]["bootstrap"]["recovery"]["source"]
    external = next(c for c in cluster["spec"]["externalClusters"] if c["name"] == source)
    # It restores from where the bootstrap archives, and archives somewhere else.
    wanted = b.backup_configuration(b.Settings())["barmanObjectStore"]
    for key in ("destinationPath", "endpointURL", "serverName", "s3Credentials"):
        assert external["barmanObjectStore"][key] == wanted[key], key
    assert cluster["spec"]["backup"]["barmanObjectStore"]["serverName"] != wanted["serverName"]
    assert cluster["metadata"]["name"] == charts.POSTGRES_CLUSTER


def test_the_apiservers_defaults_in_the_backup_section_are_not_drift(kubesim, boot):
    drive(kubesim, boot, all_ready)
    # What a real apiserver (the CRD's defaults) and CNPG's defaulting webhook put into spec.backup.
    admin_kube(kubesim).request("PATCH", b.PG_CLUSTER.item(charts.POSTGRES_CLUSTER, charts.DATA_NAMESPACE),
                                body={"spec": {"backup": {"target": "prefer-standby"}}},
                                content_type="application/merge-patch+json")
    version = kubesim.get("Cluster.postgresql.cnpg.io", "paas-data", "paas-postgres")["metadata"]["resourceVersion"]
    statuses = boot.run_pass()
    assert statuses["postgres"].state == b.READY and statuses["backups"].state == b.READY
    assert kubesim.get("Cluster.postgresql.cnpg.io", "paas-data", "paas-postgres")["metadata"]["resourceVersion"] \
        == version
