"""Integration: a Celery task through a real worker, and live events through real daphne + Redis."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.test import Client

from lib.realtime import CLOSE_NO_ACCESS, apublish, org_group
from paas.celery import ping

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def test_a_task_runs_on_a_real_worker_and_returns_through_redis(celery_worker):
    assert ping.delay("hello").get(timeout=20) == "pong:hello"


async def _connect(base: str, slug: str, cookie: str, origin: str | None = None):
    url = base.replace("http://", "ws://") + f"/ws/o/{slug}/events/"
    return await websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": origin or base},
                                    open_timeout=10)


async def test_it_pushes_organization_events_to_members_only(daphne_server, personas):
    owner_cookie = await sync_to_async(session_cookie)(personas.owner)
    outsider_cookie = await sync_to_async(session_cookie)(personas.outsider)

    async with await _connect(daphne_server, "acme", owner_cookie) as socket:
        # Subscription happens during connect; publish until the first event arrives.
        for _ in range(20):
            await apublish(org_group(personas.org.pk), "deploy.progress", {"step": "applied"})
            try:
                message = json.loads(await asyncio.wait_for(socket.recv(), 0.5))
                break
            except TimeoutError:
                continue
        assert message == {"event": "deploy.progress", "data": {"step": "applied"}}

        # Events of another organization never reach this socket.
        await apublish(org_group(personas.outsider_org.pk), "deploy.progress", {"secret": "theirs"})
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(socket.recv(), 0.5)

    with pytest.raises(websockets.InvalidStatus) as refused:
        await _connect(daphne_server, "acme", outsider_cookie)
    assert refused.value.response.status_code == 403


async def test_it_refuses_sockets_from_foreign_origins(daphne_server, personas):
    cookie = await sync_to_async(session_cookie)(personas.owner)
    with pytest.raises(websockets.InvalidStatus):
        await _connect(daphne_server, "acme", cookie, origin="https://evil.example")


async def _first_event(socket, group: str) -> dict:
    # Subscription happens during connect; publish until the first event arrives.
    for _ in range(20):
        await apublish(group, "ping", {})
        try:
            return json.loads(await asyncio.wait_for(socket.recv(), 0.5))
        except TimeoutError:
            continue
    raise AssertionError("no event reached the socket")


async def _next_event(socket) -> dict:
    """The next event other than the pings _first_event may have left queued."""
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), 5))
        if message["event"] != "ping":
            return message


async def _closed_with(socket) -> int | None:
    """The close code once the server closes the socket (events sent meanwhile are skipped)."""
    try:
        async with asyncio.timeout(5):
            while True:
                await socket.recv()
    except websockets.ConnectionClosed:
        return socket.close_code
    except TimeoutError:
        return None


async def test_a_removed_member_s_open_socket_is_closed_at_once(daphne_server, personas):
    from accounts.models import Membership, Role
    from accounts.services import change_role, remove_member

    owner = await Membership.objects.aget(user=personas.owner, organization=personas.org)
    bob = await Membership.objects.aget(user=personas.member, organization=personas.org)
    bob_cookie = await sync_to_async(session_cookie)(personas.member)
    owner_cookie = await sync_to_async(session_cookie)(personas.owner)
    group = org_group(personas.org.pk)
    async with (await _connect(daphne_server, "acme", bob_cookie) as bobs,
                await _connect(daphne_server, "acme", owner_cookie) as owners):
        await _first_event(bobs, group)
        await _first_event(owners, group)

        # A role that still may view keeps the socket.
        await sync_to_async(change_role)(owner, bob, Role.VIEWER)
        await asyncio.sleep(0.5)
        await apublish(group, "deploy.progress", {"step": "still here"})
        assert (await _next_event(bobs))["data"] == {"step": "still here"}
        assert (await _next_event(owners))["data"] == {"step": "still here"}

        await sync_to_async(remove_member)(owner, bob)
        assert await _closed_with(bobs) == CLOSE_NO_ACCESS
        await apublish(group, "deploy.progress", {"step": "after"})
        assert (await _next_event(owners))["data"] == {"step": "after"}  # others stay


async def test_a_deactivated_user_s_socket_is_closed(daphne_server, personas):
    cookie = await sync_to_async(session_cookie)(personas.member)
    async with await _connect(daphne_server, "acme", cookie) as socket:
        await _first_event(socket, org_group(personas.org.pk))
        personas.member.is_active = False
        await personas.member.asave()
        assert await _closed_with(socket) == CLOSE_NO_ACCESS


async def test_an_operator_who_loses_staff_is_cut_off_the_cluster_page(daphne_server, personas):
    from clusters import services

    cluster = await sync_to_async(services.create_cluster)("Falkenstein 1", "apps.example.com")
    operator = personas.outsider
    operator.is_staff = True
    await operator.asave()
    cookie = await sync_to_async(session_cookie)(operator)
    url = daphne_server.replace("http://", "ws://") + f"/ws/clusters/{cluster.slug}/"
    async with await websockets.connect(url, additional_headers={"Cookie": cookie, "Origin": daphne_server},
                                        open_timeout=10) as socket:
        await _first_event(socket, services.cluster_group(cluster.pk))
        operator.is_staff = False
        await operator.asave(update_fields=["is_staff"])
        # It says why before closing, so the page stops reconnecting even when the close code is lost on the way.
        assert (await _next_event(socket))["event"] == "access.lost"
        assert await _closed_with(socket) == CLOSE_NO_ACCESS
