"""AgentConsumer in-process (WebsocketCommunicator over the real ASGI app and the Redis channel layer)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from agent import protocol as p
from clusters import bus, rpc, services
from clusters.models import Cluster, ClusterStatus, EventKind
from paas.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = {"type": "hello", "protocol": p.PROTOCOL_VERSION, "agent_version": "0.1.0", "kubernetes_version": "v1.35.0",
         "nodes": [{"name": "n1", "roles": ["control-plane"], "ingress_ready": True, "ready": True,
                    "capacity": {"cpu": "4"}}],
         "capabilities": {"kubernetes_reachable": True}, "components": {"traefik": {"version": "3.3"}}}


def agent_socket(token: str) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, "/agent/ws", headers=[(b"authorization", f"Bearer {token}".encode())])


async def connect_agent(token: str) -> WebsocketCommunicator:
    ws = agent_socket(token)
    connected, _ = await ws.connect()
    assert connected
    await ws.send_to(text_data=json.dumps(HELLO))
    welcome = json.loads(await ws.receive_from(timeout=5))
    assert welcome["type"] == "welcome"
    return ws


@pytest.fixture
def token(cluster):
    return services.issue_token(cluster)


async def refresh(cluster: Cluster) -> Cluster:
    await cluster.arefresh_from_db()
    return cluster


async def test_it_refuses_a_bad_token_before_accepting(cluster, token):
    ws = agent_socket(token + "nope")
    connected, _ = await ws.connect()
    assert not connected
    assert await database_sync_to_async(lambda: cluster.events.filter(kind=EventKind.REJECTED).count())() == 1


async def test_a_flood_of_bad_tokens_is_one_counted_event_not_a_flood(cluster, token):
    for _ in range(60):
        connected, _ = await agent_socket(f"{cluster.pk}.guess").connect()
        assert not connected
    events = await database_sync_to_async(lambda: list(cluster.events.all()[:30]))()  # what the page shows
    assert [e.kind for e in events] == [EventKind.REJECTED, EventKind.TOKEN_ISSUED]
    assert events[0].count == 60 and events[0].last_at is not None


def test_refusals_far_apart_are_separate_events(cluster):
    start = timezone.now()
    assert services.record_rejected_connection(cluster.pk, "bad token", now=start) is True
    assert services.record_rejected_connection(cluster.pk, "bad token", now=start + timedelta(minutes=9)) is False
    # A burst lasts while attempts keep coming less than REJECTED_BURST_GAP apart.
    assert services.record_rejected_connection(cluster.pk, "bad token", now=start + timedelta(minutes=18)) is False
    assert services.record_rejected_connection(cluster.pk, "bad token", now=start + timedelta(minutes=29)) is True
    assert [e.count for e in cluster.events.filter(kind=EventKind.REJECTED)] == [1, 3]
    assert services.record_rejected_connection(9999, "bad token") is False  # no such cluster: nothing recorded


async def test_it_marks_the_cluster_online_with_what_the_agent_reports(cluster, token):
    ws = await connect_agent(token)
    cluster = await refresh(cluster)
    assert cluster.status == ClusterStatus.ONLINE
    assert cluster.kubernetes_version == "v1.35.0"
    assert cluster.ingress_nodes()[0]["name"] == "n1"
    assert cluster.components["traefik"]["version"] == "3.3"
    await ws.disconnect()
    cluster = await refresh(cluster)
    assert cluster.status == ClusterStatus.OFFLINE and not cluster.channel_name


async def test_it_routes_an_rpc_through_the_channel_layer(cluster, token):
    ws = await connect_agent(token)
    call = asyncio.create_task(rpc.acall(cluster, "ping", {"x": 1}, timeout=5))
    request = json.loads(await ws.receive_from(timeout=5))
    assert request["type"] == "rpc" and request["op"] == "ping" and request["payload"] == {"x": 1}
    await ws.send_to(text_data=json.dumps({"type": "rpc.reply", "id": request["id"], "result": {"pong": True}}))
    assert await call == {"pong": True}

    call = asyncio.create_task(rpc.acall(cluster, "apply_project", {}, timeout=5))
    request = json.loads(await ws.receive_from(timeout=5))
    await ws.send_to(text_data=json.dumps({"type": "rpc.error", "id": request["id"], "code": p.ERR_STALE_REVISION,
                                           "message": "revision 1 is older than 2"}))
    with pytest.raises(rpc.AgentError) as exc:
        await call
    assert exc.value.code == p.ERR_STALE_REVISION and "older" in exc.value.message
    await ws.disconnect()


async def test_a_pending_call_fails_at_once_when_the_agent_disconnects(cluster, token):
    ws = await connect_agent(token)
    call = asyncio.create_task(rpc.acall(cluster, "ping", {}, timeout=10))
    await ws.receive_from(timeout=5)
    await ws.disconnect()
    with pytest.raises(rpc.AgentOffline):
        await asyncio.wait_for(call, 5)
    with pytest.raises(rpc.AgentOffline):
        await rpc.acall(cluster, "ping", {}, timeout=1)


async def test_a_newer_connection_replaces_the_older(cluster, token):
    first = await connect_agent(token)
    second = await connect_agent(token)
    closed = await first.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": p.CLOSE_REPLACED}
    await first.disconnect()  # the replaced session's cleanup must not mark the cluster offline
    cluster = await refresh(cluster)
    assert cluster.status == ClusterStatus.ONLINE
    call = asyncio.create_task(rpc.acall(cluster, "ping", {}, timeout=5))
    request = json.loads(await second.receive_from(timeout=5))
    await second.send_to(text_data=json.dumps({"type": "rpc.reply", "id": request["id"], "result": "second"}))
    assert await call == "second"
    await second.disconnect()


async def test_a_call_follows_the_agent_to_its_new_session(cluster, token):
    first = await connect_agent(token)
    call = asyncio.create_task(rpc.acall(cluster, "ping", {}, timeout=5))
    request = json.loads(await first.receive_from(timeout=5))
    await first.send_to(text_data=json.dumps({"type": "rpc.reply", "id": request["id"], "result": "first"}))
    assert await call == "first"
    await first.disconnect()
    # The agent reconnects: this process still holds the old session's address (see rpc.ADDRESS_TTL).
    second = await connect_agent(token)
    call = asyncio.create_task(rpc.acall(cluster, "ping", {}, timeout=5))
    request = json.loads(await second.receive_from(timeout=5))
    await second.send_to(text_data=json.dumps({"type": "rpc.reply", "id": request["id"], "result": "second"}))
    assert await asyncio.wait_for(call, 2) == "second"  # re-sent at once, not after a delivery timeout
    await second.disconnect()


async def test_a_stale_address_never_reaches_another_clusters_agent(cluster, token):
    other = await database_sync_to_async(services.create_cluster)("Helsinki 1", "apps.example.org")
    other_ws = await connect_agent(await database_sync_to_async(services.issue_token)(other))
    other = await refresh(other)
    # As if `cluster` had held this session's address (an id reused after a delete, on SQLite).
    rpc._addresses[cluster.pk] = (other.channel_name, time.monotonic())
    with pytest.raises(rpc.AgentOffline):
        await rpc.acall(cluster, "ping", {}, timeout=2)
    assert await other_ws.receive_nothing(timeout=0.3)
    await other_ws.disconnect()


async def test_revoking_closes_the_live_connection_with_its_own_code(cluster, token):
    ws = await connect_agent(token)
    await database_sync_to_async(services.revoke_token)(cluster)
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": p.CLOSE_TOKEN_REVOKED}
    await ws.disconnect()


async def test_it_closes_on_a_frame_over_the_size_limit(cluster, token, settings):
    settings.AGENT_MAX_MESSAGE_BYTES = 2048
    ws = await connect_agent(token)
    await ws.send_to(text_data=json.dumps({"type": "event", "kind": "observed", "data": {"pad": "x" * 4096}}))
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": p.CLOSE_TOO_BIG}
    await ws.disconnect()


async def test_it_requires_a_hello_with_the_right_protocol(cluster, token):
    ws = agent_socket(token)
    await ws.connect()
    await ws.send_to(text_data=json.dumps({**HELLO, "protocol": 999}))
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": p.CLOSE_PROTOCOL_ERROR}
    await ws.disconnect()


async def test_it_answers_pings_and_stores_observed_state(cluster, token):
    ws = await connect_agent(token)
    await ws.send_to(text_data=json.dumps({"type": "ping", "t": 5}))
    assert json.loads(await ws.receive_from(timeout=5)) == {"type": "pong", "t": 5}
    state = {"deployments": {"web": {"ready": 1, "replicas": 1, "rollout": "complete"}}, "pods": {}, "events": []}
    await ws.send_to(text_data=json.dumps({"type": "event", "kind": "observed",
                                           "data": {"namespace": "acme-web", "state": state}}))
    await ws.send_to(text_data=json.dumps({"type": "ping", "t": 6}))
    await ws.receive_from(timeout=5)  # the event was handled before this pong
    observed = await database_sync_to_async(lambda: cluster.observed_projects.get(namespace="acme-web").state)()
    assert observed == state
    await ws.disconnect()


async def test_the_cluster_page_socket_is_for_operators_only(cluster, personas, operator):
    from channels.auth import AuthMiddlewareStack  # noqa: F401  (the real stack is inside `application`)
    from django.test import Client

    for user, allowed in ((personas.owner, False), (operator, True)):
        client = Client()
        await database_sync_to_async(client.force_login)(user)
        cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
        ws = WebsocketCommunicator(application, f"/ws/clusters/{cluster.slug}/",
                                   headers=[(b"cookie", cookie), (b"origin", b"http://testserver"),
                                            (b"host", b"testserver")])
        connected, _ = await ws.connect()
        assert connected is allowed
        if connected:
            await database_sync_to_async(services.record_observed)(cluster.pk, "acme-web", {"pods": {}})
            message = await ws.receive_json_from(timeout=5)
            assert message == {"event": "cluster.observed", "data": {"namespace": "acme-web", "state": {"pods": {}}}}
        await ws.disconnect()


async def test_a_sync_caller_in_another_thread_gets_the_reply(cluster, token):
    # As a Celery task or a management command would call it (never from database_sync_to_async inside a
    # consumer: that thread is shared by every consumer's database work; consumers use rpc.acall).
    ws = await connect_agent(token)
    call = asyncio.create_task(asyncio.to_thread(rpc.call, cluster.pk, "ping", {}, 5))
    request = json.loads(await ws.receive_from(timeout=5))
    await ws.send_to(text_data=json.dumps({"type": "rpc.reply", "id": request["id"], "result": "from a thread"}))
    assert await asyncio.wait_for(call, 10) == "from a thread"
    await ws.disconnect()


async def test_the_heartbeat_sweep_records_last_seen_for_agents_that_spoke(cluster, token, settings):
    settings.AGENT_HEARTBEAT_SECONDS = 1
    ws = await connect_agent(token)
    connected_at = (await refresh(cluster)).last_seen
    ping = json.loads(await ws.receive_from(timeout=3))  # the sweep pings every live agent
    assert ping["type"] == "ping"
    await ws.send_to(text_data=json.dumps({"type": "pong", "t": ping["t"]}))
    for _ in range(40):
        if (await refresh(cluster)).last_seen > connected_at:
            break
        await asyncio.sleep(0.1)
    assert cluster.last_seen > connected_at
    await ws.disconnect()


async def test_a_stream_to_an_ended_session_fails_at_once(cluster):
    # The row still names a session that no inbox holds any more (it ended a moment ago).
    cluster.channel_name = f"{(await bus.inbox()).channel}#ended-session"
    await cluster.asave(update_fields=["channel_name"])
    started = time.monotonic()
    with pytest.raises(rpc.AgentOffline, match="ended"):
        await rpc.open_stream(cluster, "echo", {}, timeout=5)
    with pytest.raises(rpc.AgentOffline, match="ended"):
        await rpc.acall(cluster, "ping", {}, timeout=5)
    assert time.monotonic() - started < 1
