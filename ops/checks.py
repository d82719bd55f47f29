"""Readiness checks of the control plane's dependencies: each answers (ok, detail) and never raises.

A process is ready when every dependency a request may touch answers: the database, Redis, the channel
layer (live pages, the agent tunnel) and Celery (a broker that takes tasks and at least one worker that
runs them: a control plane that accepts deploys nobody runs is not ready).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

CHECK_TIMEOUT = 2.0  # seconds each check may take; a probe must answer well within its own timeout


def database() -> tuple[bool, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return True, connection.vendor


def redis_server() -> tuple[bool, str]:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=CHECK_TIMEOUT,
                                  socket_connect_timeout=CHECK_TIMEOUT)
    try:
        client.ping()
    finally:
        client.close()
    return True, "PONG"


def channel_layer() -> tuple[bool, str]:
    """A message sent to a fresh channel of the default layer comes back: the layer both writes and reads."""
    layer = get_channel_layer()

    async def round_trip() -> bool:
        channel = await layer.new_channel("readyz.")
        token = uuid.uuid4().hex
        await layer.send(channel, {"type": "readyz", "token": token})
        async with asyncio.timeout(CHECK_TIMEOUT):
            return (await layer.receive(channel)).get("token") == token

    return async_to_sync(round_trip)(), "round trip"


def celery() -> tuple[bool, str]:
    from celery import current_app as app  # the project's app (paas.celery), set as current at start-up

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT)
    replies = app.control.ping(timeout=1.0)
    if not replies:
        return False, "the broker answers but no worker replied to ping within 1s: start one (bin/run does)"
    return True, f"{len(replies)} worker(s)"


CHECKS: dict[str, Callable[[], tuple[bool, str]]] = {
    "database": database,
    "redis": redis_server,
    "channel_layer": channel_layer,
    "celery": celery,
}


def run_all() -> dict[str, dict[str, object]]:
    """Every check's outcome by name: {"ok": bool, "detail": str}. An exception is a failed check."""
    results: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        try:
            ok, detail = check()
        except Exception as exc:  # noqa: BLE001 - a probe reports what broke instead of answering 500
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        results[name] = {"ok": ok, "detail": detail}
    return results
