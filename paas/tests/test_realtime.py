"""Integration: a Celery task through a real worker, and live events through real daphne + Redis."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from asgiref.sync import sync_to_async
from django.test import Client

from paas.celery import ping
from paas.realtime import apublish, org_group

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
