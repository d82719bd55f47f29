"""The agent operations for bootstrap and data services, and the progress events the control plane receives."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest

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
    play_cnpg_operator,
)
from agent.tests.test_data_garage import (
    s3_client,
    s3_server,  # noqa: F401 (fixture)
)
from agent.tests.test_reconcile import LABELS


@pytest.fixture
def ops(boot, bare_k3s, s3_server) -> dict[str, Any]:  # noqa: F811
    # The process-wide Bootstrapper, pointed at the test's endpoints (local PostgreSQL, Garage double, moto).
    boot.endpoints = replace(boot.endpoints, garage_s3_url=s3_server)
    b._BOOTSTRAPPERS[bare_k3s] = boot
    return build_ops(bare_k3s)


async def call(ops: dict[str, Any], op: str, **payload: Any) -> Any:
    return await ops[op](payload)


def test_the_agent_offers_the_infrastructure_operations(ops):
    assert {"bootstrap", "bootstrap_status", "ensure_database", "drop_database", "ensure_bucket", "delete_bucket",
            "data_credentials"} <= set(ops)
    assert {"ping", "apply_project"} <= set(ops)  # the tunnel engineer's operations are still there


@pytest.mark.parametrize("namespace", ["kube-system", "paas-data", "Not_A_Label", "", None, "-x"])
async def test_data_operations_refuse_namespaces_that_are_not_projects(ops, namespace):
    for op in ("ensure_database", "ensure_bucket", "drop_database", "delete_bucket"):
        with pytest.raises(OpError) as refused:
            await call(ops, op, namespace=namespace)
        assert refused.value.code == p.ERR_BAD_REQUEST


async def test_data_operations_say_not_ready_before_the_bootstrap(ops):
    with pytest.raises(OpError, match="not ready: .*paas-postgres-superuser"):
        await call(ops, "ensure_database", namespace="acme-shop", labels=LABELS)


async def test_bootstrap_refuses_bad_settings_and_stores_good_ones(ops, kubesim, boot):  # noqa: F811
    with pytest.raises(OpError) as bad:
        await call(ops, "bootstrap", settings={"postgres_storage": "lots"})
    assert bad.value.code == p.ERR_BAD_REQUEST
    result = await call(ops, "bootstrap", settings={"postgres_storage": "20Gi", "postgres_instances": 2})
    assert result["started"] is True and result["settings"]["postgres_storage"] == "20Gi"
    await boot.stop()
    stored = kubesim.get("ConfigMap", "kube-system", "paas-bootstrap")
    assert json.loads(stored["data"]["settings"])["postgres_instances"] == 2


async def test_bootstrap_status_only_reports_and_never_installs(ops, kubesim, boot):  # noqa: F811
    fresh = await call(ops, "bootstrap_status")
    assert fresh["components"] == {} and fresh["ready"] is False and fresh["running"] is False
    assert fresh["versions"]["cnpg"]["chart"] == "cloudnative-pg 0.29.0"
    assert kubesim.list("HelmChart", "kube-system") == [kubesim.get("HelmChart", "kube-system", "traefik")]
    await asyncio.to_thread(boot.run_pass)
    seen = await call(ops, "bootstrap_status")
    assert set(seen["components"]) == set(b.COMPONENTS)


async def test_bootstrap_reports_each_transition_and_everything_again_after_a_reconnect(boot, kubesim):  # noqa: F811
    events: list[dict[str, Any]] = []

    async def publish(kind: str, data: dict[str, Any]) -> bool:
        assert kind == "bootstrap.progress"
        events.append(data)
        return True

    boot.publish = publish
    runner = asyncio.create_task(boot.run())
    try:
        while not runner.done():
            await asyncio.to_thread(play_cnpg_operator, kubesim)
            await asyncio.sleep(0.02)
        snapshot = await asyncio.wait_for(runner, 30)
    finally:
        runner.cancel()
    assert snapshot["ready"] is True
    for component in b.COMPONENTS:
        mine = [(e["state"], e["reason"]) for e in events if e["component"] == component]
        assert mine[-1][0] == b.READY, mine
        assert all(x != y for x, y in zip(mine, mine[1:], strict=False)), "repeats are not transitions"
    assert {e["state"] for e in events} >= {b.PENDING, b.INSTALLING, b.READY}

    events.clear()
    await boot.on_connect()  # a reconnect: the control plane gets every component again
    await boot.stop()
    assert sorted(e["component"] for e in events[:len(b.COMPONENTS)]) == sorted(b.COMPONENTS)


async def test_after_bootstrap_a_project_gets_a_database_and_a_bucket(ops, boot, kubesim, double,  # noqa: F811
                                                                      s3_server):  # noqa: F811
    await asyncio.to_thread(drive, kubesim, boot, all_ready)
    database = await call(ops, "ensure_database", namespace="acme-shop", labels=LABELS)
    bucket = await call(ops, "ensure_bucket", namespace="acme-shop", labels=LABELS)
    revealed_s3 = (await call(ops, "data_credentials", namespace="acme-shop", service="bucket"))["values"]
    # moto stands in for Garage's S3 port: the bucket Garage made must exist there too.
    s3_client(s3_server, revealed_s3).create_bucket(Bucket="acme-shop",
                                                    CreateBucketConfiguration={"LocationConstraint": "garage"})
    try:
        assert database["host"] == charts.POSTGRES_HOST and database["secret"] == "paas-database"
        assert bucket["bucket"] == "acme-shop" and bucket["secret"] == "paas-bucket"
        revealed = await call(ops, "data_credentials", namespace="acme-shop", service="database")
        password = revealed["values"]["PGPASSWORD"]
        assert password and password not in json.dumps(database)
        s3 = await call(ops, "data_credentials", namespace="acme-shop", service="bucket")
        assert s3["values"]["S3_SECRET_ACCESS_KEY"] not in json.dumps(bucket)
    finally:
        await call(ops, "drop_database", namespace="acme-shop")
        await call(ops, "delete_bucket", namespace="acme-shop")
    assert kubesim.get("Secret", "acme-shop", p.DATABASE_SECRET) is None


async def test_credentials_are_only_read_from_secrets_the_agent_wrote(ops, kubesim, bare_k3s):  # noqa: F811
    bare_k3s.apply(b.NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme-shop"}})
    bare_k3s.apply(services.SECRET, services.secret_object("acme-shop", p.DATABASE_SECRET,
                                                           {"PGPASSWORD": "planted"}, {}), "acme-shop")
    with pytest.raises(OpError, match="no database provisioned"):
        await call(ops, "data_credentials", namespace="acme-shop", service="database")
    with pytest.raises(OpError) as bad:
        await call(ops, "data_credentials", namespace="acme-shop", service="tls")
    assert bad.value.code == p.ERR_BAD_REQUEST
