"""The control plane's side of the bootstrap: progress events, cluster status, the page, the command, data calls."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.urls import reverse

from agent import protocol as p
from clusters import data, infrastructure, manifest, services, tasks
from clusters.models import BootstrapComponent, ClusterStatus, ComponentState, EventKind
from clusters.tests.test_agent_consumer import connect_agent
from clusters.tests.test_integration import LABELS

COMPONENTS = ("traefik", "cnpg", "sablier", "garage", "postgres")


def progress(component: str, state: str, reason: str = "", **extra) -> dict:
    return {"component": component, "state": state, "reason": reason, "logs": [], "attempt": 0,
            "version": {"chart": "x 1.0", "app": "1.0"}, **extra}


async def in_thread(fn, *args):
    """Run a blocking control-plane call the way a Celery worker would: in a thread of its own (not the
    consumer's database thread, which it would otherwise block), closing its connection afterwards."""
    def run():
        try:
            return fn(*args)
        finally:
            connection.close()
    return await asyncio.to_thread(run)


def connected(cluster):
    cluster.status, cluster.channel_name, cluster.session_id = ClusterStatus.ONLINE, "test-channel", "s1"
    cluster.save()
    return cluster


# --- progress events ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_agent_progress_events_become_component_rows_and_the_cluster_status(cluster):
    ws = await connect_agent(await database_sync_to_async(services.issue_token)(cluster))

    async def send(data: dict) -> None:
        await ws.send_to(text_data=json.dumps({"type": "event", "kind": "bootstrap.progress", "data": data}))

    async def wait_for(check) -> None:
        for _ in range(200):
            if await database_sync_to_async(check)():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("not recorded")

    await send(progress("sablier", "failed", "helm install failed; retrying in 30s", attempt=1,
                        logs=["+ helm_v3 install", "Error: INSTALLATION FAILED"]))
    await wait_for(lambda: BootstrapComponent.objects.filter(cluster=cluster, name="sablier").exists())
    row = await BootstrapComponent.objects.aget(cluster=cluster, name="sablier")
    assert (row.state, row.attempt, row.logs[-1]) == ("failed", 1, "Error: INSTALLATION FAILED")
    await cluster.arefresh_from_db()
    assert cluster.status == ClusterStatus.DEGRADED and cluster.is_connected

    for name in COMPONENTS:
        await send(progress(name, "ready", "ok"))
    await wait_for(lambda: not BootstrapComponent.objects.filter(cluster=cluster).exclude(state="ready").exists()
                   and BootstrapComponent.objects.filter(cluster=cluster).count() == 5)
    await cluster.arefresh_from_db()
    assert cluster.status == ClusterStatus.ONLINE
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_re_running_the_bootstrap_sends_the_configured_sizing_to_the_agent(cluster):
    ws = await connect_agent(await database_sync_to_async(services.issue_token)(cluster))
    with override_settings(PAAS_BOOTSTRAP={"postgres_storage": "50Gi", "postgres_instances": 2}):
        task = asyncio.create_task(in_thread(tasks.run_cluster_bootstrap, cluster.pk))
        request = json.loads(await ws.receive_from(timeout=5))
        assert (request["type"], request["op"]) == ("rpc", "bootstrap")
        assert request["payload"]["settings"] == {"postgres_storage": "50Gi", "postgres_instances": 2}
        await ws.send_to(text_data=json.dumps({"type": "rpc.reply", "id": request["id"],
                                               "result": {"started": True, "components": {}}}))
        await asyncio.wait_for(task, 5)
    await ws.disconnect()


def test_malformed_progress_is_dropped(cluster):
    assert infrastructure.record_bootstrap_progress(cluster.pk, {"component": "cnpg", "state": "exploded"}) is None
    assert infrastructure.record_bootstrap_progress(cluster.pk, {"state": "ready"}) is None
    assert not BootstrapComponent.objects.exists()


def test_progress_updates_one_row_per_component_and_caps_logs(cluster):
    connected(cluster)
    infrastructure.record_bootstrap_progress(cluster.pk, progress("garage", "installing", "Job running"))
    infrastructure.record_bootstrap_progress(cluster.pk, progress("garage", "failed", "boom",
                                                                  logs=[f"line {i}" for i in range(100)]))
    row = BootstrapComponent.objects.get(cluster=cluster, name="garage")
    assert row.state == ComponentState.FAILED and len(row.logs) == infrastructure.MAX_LOG_LINES
    assert row.logs[-1] == "line 99"
    assert BootstrapComponent.objects.count() == 1


def test_an_offline_cluster_stays_offline_whatever_the_components_say(cluster):
    cluster.status = ClusterStatus.OFFLINE
    cluster.save()
    infrastructure.record_bootstrap_progress(cluster.pk, progress("cnpg", "failed", "x"))
    cluster.refresh_from_db()
    assert cluster.status == ClusterStatus.OFFLINE


def test_an_agent_that_reconnects_while_something_is_not_ready_comes_back_degraded(cluster):
    BootstrapComponent.objects.create(cluster=cluster, name="postgres", state=ComponentState.INSTALLING)
    services.agent_connected(cluster.pk, "s2", "chan", {"capabilities": {"kubernetes_reachable": True}})
    cluster.refresh_from_db()
    assert cluster.status == ClusterStatus.DEGRADED


# --- page, command, manifest -----------------------------------------------------------------------------


def test_the_cluster_page_shows_each_component_with_its_failure(client, operator, cluster):
    connected(cluster)
    infrastructure.record_bootstrap_progress(cluster.pk, progress("sablier", "failed", "helm install failed",
                                                                  logs=["Error: INSTALLATION FAILED"], attempt=2))
    infrastructure.record_bootstrap_progress(cluster.pk, progress("traefik", "ready", "1 workload(s) ready"))
    client.force_login(operator)
    page = client.get(reverse("cluster_detail", args=[cluster.slug])).content.decode()
    assert 'data-component="sablier"' in page and "Error: INSTALLATION FAILED" in page and "attempt 2" in page
    assert page.index('data-component="traefik"') < page.index('data-component="sablier"')
    assert "Re-run bootstrap" in page


def test_operators_can_re_run_the_bootstrap_from_the_page(client, operator, cluster,
                                                          django_capture_on_commit_callbacks):
    connected(cluster)
    client.force_login(operator)
    with django_capture_on_commit_callbacks() as queued:
        response = client.post(reverse("cluster_bootstrap", args=[cluster.slug]))
    assert response.status_code == 302
    assert cluster.events.filter(kind=EventKind.BOOTSTRAP, message=f"by {operator.email}").exists()
    assert len(queued) >= 1  # the Celery task goes out after the commit


def test_the_bootstrap_button_needs_a_connected_agent(client, operator, cluster):
    client.force_login(operator)
    response = client.post(reverse("cluster_bootstrap", args=[cluster.slug]), follow=True)
    assert "agent is not connected" in response.content.decode()
    assert not cluster.events.filter(kind=EventKind.BOOTSTRAP).exists()


@pytest.mark.parametrize("who", ["owner", "member", "outsider"])
def test_tenants_cannot_trigger_a_bootstrap(client, personas, cluster, who):
    client.force_login(getattr(personas, who))
    assert client.post(reverse("cluster_bootstrap", args=[cluster.slug])).status_code == 404
    assert client.get(reverse("cluster_detail", args=[cluster.slug])).status_code == 404


def test_the_command_reports_an_unknown_cluster_and_an_absent_agent(cluster):
    with pytest.raises(CommandError, match="no cluster"):
        call_command("cluster_bootstrap", "nope")
    with pytest.raises(CommandError, match="cannot reach the agent"):
        call_command("cluster_bootstrap", cluster.slug)


def test_the_task_records_that_the_agent_was_not_reachable(cluster):
    tasks.run_cluster_bootstrap(cluster.pk)
    assert cluster.events.filter(kind=EventKind.BOOTSTRAP, message__startswith="could not reach the agent").exists()


def test_the_install_manifest_turns_the_bootstrap_on_and_grants_what_it_needs(cluster):
    objects = manifest.objects(cluster, "token", "wss://paas.example.com/agent/ws")
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "AGENT_BOOTSTRAP", "value": "true"} in env
    role = next(o for o in objects if o["kind"] == "ClusterRole")
    groups = {g for rule in role["rules"] for g in rule["apiGroups"]}
    assert {"helm.cattle.io", "postgresql.cnpg.io"} <= groups
    assert any("pods/log" in rule["resources"] for rule in role["rules"])


# --- project data services -------------------------------------------------------------------------------


def test_data_calls_ask_to_be_retried_while_the_agent_is_away(cluster):
    for outcome in (data.ensure_database(cluster, "acme-shop", LABELS),
                    data.ensure_bucket(cluster, "acme-shop", LABELS),
                    data.drop_database(cluster, "acme-shop"), data.delete_bucket(cluster, "acme-shop")):
        assert not outcome.ok and outcome.retry and "no connected agent" in outcome.error
    assert data.reveal_credentials(cluster, "acme-shop", "database") is None


async def answer_one_call(ws, reply: dict) -> dict:
    """Play the agent: take the next RPC off the socket and answer it."""
    request = json.loads(await ws.receive_from(timeout=5))
    await ws.send_to(text_data=json.dumps({**reply, "id": request["id"]}))
    return request


@pytest.mark.django_db(transaction=True)
async def test_a_not_ready_answer_asks_for_a_retry(cluster):
    ws = await connect_agent(await database_sync_to_async(services.issue_token)(cluster))
    call = asyncio.create_task(in_thread(data.ensure_database, cluster.pk, "acme-shop", LABELS))
    request = await answer_one_call(ws, {"type": "rpc.error", "code": p.ERR_FAILED,
                                         "message": "not ready: no superuser Secret"})
    assert (request["op"], request["payload"]) == ("ensure_database", {"namespace": "acme-shop", "labels": LABELS,
                                                                        "rotate": False})
    outcome = await asyncio.wait_for(call, 10)
    assert not outcome.ok and outcome.retry and outcome.error.startswith("not ready")
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_successful_answer_is_returned_as_the_outcome(cluster):
    ws = await connect_agent(await database_sync_to_async(services.issue_token)(cluster))
    call = asyncio.create_task(in_thread(data.ensure_bucket, cluster.pk, "acme-shop", LABELS))
    await answer_one_call(ws, {"type": "rpc.reply", "result": {"bucket": "acme-shop", "secret": "paas-bucket"}})
    outcome = await asyncio.wait_for(call, 10)
    assert outcome.ok and outcome.result["secret"] == p.BUCKET_SECRET
    await ws.disconnect()
