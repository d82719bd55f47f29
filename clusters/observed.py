"""Waiting for a namespace's next observed state without polling the database.

`clusters.services.record_observed` (in the daphne process holding the agent's socket) pokes a Redis
pub/sub channel per namespace once the new state is committed. A deploy task following a rollout opens
a `Watch` before it reads the stored state, so nothing committed between its read and its wait is missed,
and then sleeps in `wait()` until the next poke. Whatever else should make a waiter look again (a newer
release superseding the one it follows) pokes the same channel. Pub/sub delivers at most once (a Redis
hiccup loses a poke), so waiters still look again after a while without one.
"""

from __future__ import annotations

import functools
import logging
import time
from types import TracebackType

import redis
from django.conf import settings

log = logging.getLogger(__name__)


@functools.cache
def _client() -> redis.Redis:
    # redis-py's pool re-connects after a fork (Celery's prefork workers).
    return redis.Redis.from_url(settings.REDIS_URL)


def channel(cluster_id: int, namespace: str) -> str:
    # Pub/sub channels are server-wide, not per database: the db number keeps installs (and test runs) apart.
    db = _client().connection_pool.connection_kwargs.get("db", 0)
    return f"paas.observed.{db}.{cluster_id}.{namespace}"


def poke(cluster_id: int, namespace: str) -> None:
    """Wake whoever waits on the namespace (a lost poke only delays them until their next look)."""
    try:
        _client().publish(channel(cluster_id, namespace), b"1")
    except redis.RedisError as exc:
        log.warning("could not notify waiters of %s on cluster %s: %s", namespace, cluster_id, exc)


class Watch:
    """A subscription to one namespace's pokes; use as a context manager."""

    def __init__(self, cluster_id: int, namespace: str) -> None:
        self._channel = channel(cluster_id, namespace)
        self._pubsub = _client().pubsub()
        self._pubsub.subscribe(self._channel)
        # Wait for the confirmation: from then on every poke reaches us, so a read of the stored state
        # made after this cannot miss a change.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            message = self._pubsub.get_message(timeout=deadline - time.monotonic())
            if message is not None and message["type"] == "subscribe":
                break

    def wait(self, timeout: float) -> bool:
        """Block until the next poke or for `timeout` seconds; True when poked. Pokes queued meanwhile count once."""
        deadline = time.monotonic() + timeout
        poked = False
        try:
            while not poked and (left := deadline - time.monotonic()) > 0:
                message = self._pubsub.get_message(timeout=left)
                poked = message is not None and message["type"] == "message"
            while poked and self._pubsub.get_message(timeout=0.0) is not None:
                pass  # a burst of states: one look at the latest is enough
        except redis.RedisError as exc:
            # Redis restarting: the caller looks at the stored state again anyway; subscribe afresh meanwhile.
            log.warning("watch lost its subscription, subscribing again: %s", exc)
            time.sleep(max(0.0, min(1.0, deadline - time.monotonic())))
            self._resubscribe()
        return poked

    def _resubscribe(self) -> None:
        try:
            self._pubsub.close()
            self._pubsub = _client().pubsub()
            self._pubsub.subscribe(self._channel)
        except redis.RedisError as exc:
            log.warning("watch could not subscribe yet: %s", exc)

    def close(self) -> None:
        self._pubsub.close()

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
