"""A deleted project's database credentials outlive its namespace for the grace period, so a restore gets the
same ones back; kubesim for Kubernetes, the machine's PostgreSQL for the database, the Garage double."""

# ruff: noqa: F811 (pytest fixtures imported from other test modules are parameters here)
from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

from agent import charts
from agent import protocol as p
from agent.data import postgres
from agent.ops import OpError
from agent.tests.test_bootstrap import all_ready, bare_k3s, boot, drive, local_postgres  # noqa: F401
from agent.tests.test_bootstrap_ops import call, ops  # noqa: F401
from agent.tests.test_data_garage import s3_client, s3_server  # noqa: F401
from agent.tests.test_data_postgres import superuser
from agent.tests.test_reconcile import LABELS

NAMESPACE = "tenant-acme-web"
RETAINED = f"retained-{NAMESPACE}-database"


async def revealed(ops: dict[str, Any], service: str) -> dict[str, str]:
    return (await call(ops, "data_credentials", namespace=NAMESPACE, service=service))["values"]


async def gone(kubesim, namespace: str) -> None:
    await asyncio.to_thread(kubesim.wait_for, lambda: kubesim.get("Namespace", None, namespace) is None, 15)


@pytest.fixture
async def provisioned(ops, boot, kubesim, double, s3_server):
    await asyncio.to_thread(drive, kubesim, boot, all_ready)
    await call(ops, "ensure_database", namespace=NAMESPACE, labels=LABELS)
    await call(ops, "ensure_bucket", namespace=NAMESPACE, labels=LABELS)
    # moto stands in for Garage's S3 port: the bucket Garage made must exist there too (purge empties it).
    s3 = s3_client(s3_server, await revealed(ops, "bucket"))
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):  # moto's server lives for the whole module
        s3.create_bucket(Bucket=NAMESPACE, CreateBucketConfiguration={"LocationConstraint": "garage"})
    yield ops
    try:
        await call(ops, "drop_database", namespace=NAMESPACE)
    finally:
        await call(ops, "delete_bucket", namespace=NAMESPACE)


async def test_a_restored_project_gets_the_same_database_and_bucket_credentials(provisioned, kubesim):
    ops = provisioned
    database, bucket = await revealed(ops, "database"), await revealed(ops, "bucket")

    result = await call(ops, p.OP_DELETE_PROJECT, namespace=NAMESPACE, labels=LABELS)
    assert result == {"namespace": NAMESPACE, "deleted": True}
    await gone(kubesim, NAMESPACE)
    kept = kubesim.get("Secret", charts.DATA_NAMESPACE, RETAINED)
    assert kept["metadata"]["labels"][p.RETAINED_SECRET_LABEL] == NAMESPACE
    assert database["PGPASSWORD"] not in json.dumps(result)

    again = await call(ops, "ensure_database", namespace=NAMESPACE, labels=LABELS)
    await call(ops, "ensure_bucket", namespace=NAMESPACE, labels=LABELS)
    assert (again["created"], again["rotated"]) == (False, False)
    assert await revealed(ops, "database") == database
    assert await revealed(ops, "bucket") == bucket
    # PostgreSQL still holds the verifier of that very password: the app's DATABASE_URL works unchanged.
    with superuser("postgres") as conn:
        verifier = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                                (database["PGUSER"],)).fetchone()[0]
    assert postgres.verifier_matches(verifier, database["PGPASSWORD"])
    assert kubesim.get("Secret", charts.DATA_NAMESPACE, RETAINED) is None  # back where it belongs, and only there


async def test_purging_the_data_also_removes_the_kept_credentials(provisioned, kubesim):
    ops = provisioned
    await call(ops, p.OP_DELETE_PROJECT, namespace=NAMESPACE, labels=LABELS)
    await gone(kubesim, NAMESPACE)
    assert kubesim.get("Secret", charts.DATA_NAMESPACE, RETAINED) is not None
    await call(ops, "drop_database", namespace=NAMESPACE)
    assert kubesim.get("Secret", charts.DATA_NAMESPACE, RETAINED) is None


async def test_deleting_another_projects_namespace_copies_nothing(provisioned, kubesim):
    intruder = {**LABELS, p.PROJECT_UID_LABEL: "00000000-0000-0000-0000-000000000000"}
    with pytest.raises(OpError) as refused:
        await call(provisioned, p.OP_DELETE_PROJECT, namespace=NAMESPACE, labels=intruder)
    assert refused.value.code == p.ERR_NOT_OWNED
    assert kubesim.get("Secret", charts.DATA_NAMESPACE, RETAINED) is None
    assert kubesim.get("Namespace", None, NAMESPACE) is not None
