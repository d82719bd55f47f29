"""Call an agent from anywhere in Django: views, Celery tasks, consumers.

The caller registers for the reply in its process's inbox, posts {"type": "agent.rpc"} to the
address of the session holding the cluster's socket (it may live in another daphne process; see
clusters.bus), and waits for the reply.

    result = rpc.call(cluster, "apply_project", payload, timeout=30)   # sync callers
    result = await rpc.acall(cluster, "ping", {})                       # async callers

Consumers must use acall: call() blocks its thread for the whole call, and inside a consumer's
database_sync_to_async that thread is the one every consumer's database work runs in.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
import time
from typing import Any

import redis
from asgiref.sync import SyncToAsync, async_to_sync
from channels.db import database_sync_to_async
from prometheus_client import Gauge, Histogram

from agent import protocol
from clusters import bus
from clusters.models import Cluster

log = logging.getLogger(__name__)

DELIVERY_TIMEOUT = 3.0  # seconds for the consumer holding the socket to acknowledge a call

RPC_SECONDS = Histogram("paas_agent_rpc_seconds", "Agent calls through the tunnel, from post to reply.",
                        ["op", "outcome"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30))
OPEN_STREAMS = Gauge("paas_streams_open", "Streams (logs, exec) open to agents from this control plane.", ["op"],
                     multiprocess_mode="livesum")


class RPCError(Exception):
    """Base of everything call() raises."""


class AgentOffline(RPCError):
    """No agent is connected for this cluster (or it went away before answering)."""


class AgentTimeout(RPCError):
    """The agent did not answer in time."""


class AgentError(RPCError):
    """The agent answered with an error. `code` is one of agent.protocol.ERROR_CODES."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


ADDRESS_TTL = 5.0  # seconds a process reuses a cluster's session address before reading it again
_addresses: dict[int, tuple[str, float]] = {}


def session_address(cluster_id: int, fresh: bool = False) -> str:
    """Where the cluster's live agent session is reachable ("" when no agent is connected).

    Read from the database, then reused for a few seconds: a burst of calls (a deploy) pays one query.
    A stale address is harmless: the message reaches no session and comes back undelivered, and the
    caller then reads the address anew (see call and acall).
    """
    address = None if fresh else cached_address(cluster_id)
    if address is None:
        address = Cluster.objects.filter(pk=cluster_id).values_list("channel_name", flat=True).first() or ""
        _addresses[cluster_id] = (address, time.monotonic())
    return address


def cached_address(cluster_id: int) -> str | None:
    """The address if this process read it lately, else None. No database access: safe in async code."""
    cached = _addresses.get(cluster_id)
    return cached[0] if cached and time.monotonic() - cached[1] < ADDRESS_TTL else None


def forget_addresses() -> None:
    _addresses.clear()


class _Undelivered(AgentOffline):
    """The call reached no live session (or no answer came to say it did): sent again only to a newer one."""


async def acall(cluster: Cluster | int, op: str, payload: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
    cluster_id = cluster if isinstance(cluster, int) else cluster.pk
    lookup = database_sync_to_async(session_address)
    address = cached_address(cluster_id)  # no hop to the database thread when it is known
    if address is None:
        address = await lookup(cluster_id)
    try:
        return await _call(cluster_id, address, op, payload, timeout)
    except _Undelivered:
        if (current := await lookup(cluster_id, fresh=True)) == address:
            raise
        return await _call(cluster_id, current, op, payload, timeout)


async def _call(cluster_id: int, address: str, op: str, payload: dict[str, Any] | None, timeout: float) -> Any:
    started, outcome = time.perf_counter(), "error"
    try:
        result = await _call_once(cluster_id, address, op, payload, timeout)
        outcome = "ok"
        return result
    except AgentOffline:
        outcome = "offline"
        raise
    except AgentTimeout:
        outcome = "timeout"
        raise
    finally:
        RPC_SECONDS.labels(op, outcome).observe(time.perf_counter() - started)


async def _post_call(address: str, message: dict[str, Any]) -> None:
    """Post a call on the bus, once more after a moment if Redis dropped the connection (a restart leaves one
    stale connection per process); nothing was sent when it still fails, so the agent counts as offline."""
    for attempt in (1, 2):
        try:
            await bus.post(address, message)
            return
        except (OSError, redis.RedisError) as exc:
            if attempt == 2:
                raise AgentOffline(f"the control plane's message bus (Redis) is not reachable: {exc}") from None
            log.warning("posting a call failed, trying once more: %s", exc)
            await asyncio.sleep(0.5)


async def _call_once(cluster_id: int, address: str, op: str, payload: dict[str, Any] | None, timeout: float) -> Any:
    if not address:
        raise AgentOffline(f"cluster {cluster_id} has no connected agent")
    box = await bus.inbox()
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    reply_to = box.register(replies.put_nowait)
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        await _post_call(address, {"type": "agent.rpc", "cluster": cluster_id, "op": op, "payload": payload or {},
                                   "reply_to": reply_to, "timeout": timeout})
        try:
            # A live consumer answers (or acknowledges) within moments. Without that, an address left behind
            # by a daphne process that died would make every call wait for its full timeout.
            async with asyncio.timeout(min(timeout, DELIVERY_TIMEOUT)):
                reply = await replies.get()
        except TimeoutError:
            raise _Undelivered(f"no control plane process holds a connection for cluster {cluster_id}") from None
        try:
            async with asyncio.timeout_at(deadline):
                while reply.get("type") == "rpc.accepted":
                    reply = await replies.get()
        except TimeoutError:
            raise AgentTimeout(f"the agent of cluster {cluster_id} did not answer {op!r} within {timeout:g}s") from None
    finally:
        box.unregister(reply_to)
    if reply.get("type") == "rpc.reply":
        return reply.get("result")
    if reply.get("code") == "offline":
        error = _Undelivered if reply.get("delivered") is False else AgentOffline
        raise error(reply.get("message", "the agent disconnected"))
    raise AgentError(reply.get("code", protocol.ERR_FAILED), reply.get("message", ""))


_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    """One long-lived event loop per process for sync callers, with its own inbox.

    async_to_sync would make a fresh loop per call, and with it a fresh inbox subscription and Redis
    connections. Re-created after fork (Celery prefork workers).
    """
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid():
            _loop, _loop_pid = asyncio.new_event_loop(), os.getpid()
            thread = threading.Thread(target=_loop.run_forever, name="agent-rpc", daemon=True)
            thread.start()
            # Stop it before exit hooks registered earlier (an embedded Redis) pull its connections away.
            atexit.register(_stop_loop, _loop, thread)
        return _loop


async def _await(coro: Any) -> Any:
    return await coro


def run_sync(coro: Any, timeout: float) -> Any:
    """Run a coroutine of this module for a sync caller. Not for use inside an event loop."""
    outer = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if outer is not None and outer.is_running():
        # Inside sync_to_async (a sync view or a database_sync_to_async helper under daphne): run it on the
        # outer loop, so asgiref can keep running that loop's other sync work in this thread meanwhile. asgiref
        # leaves the thread-local set after a call ends, so a loop that no longer runs means we are not inside
        # one: then the background loop, whose database helpers use their own thread and connection.
        return async_to_sync(_await)(coro)
    future = asyncio.run_coroutine_threadsafe(coro, _background_loop())
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise AgentTimeout(f"no answer within {timeout:g}s") from None


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join(2)


def call(cluster: Cluster | int, op: str, payload: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
    """Synchronous call(); raises AgentOffline, AgentTimeout or AgentError. Not for use inside an event loop."""
    cluster_id = cluster if isinstance(cluster, int) else cluster.pk
    wait = timeout + DELIVERY_TIMEOUT + 5
    # The lookup runs here, in the caller's thread and database connection (its transaction, in tests).
    address = session_address(cluster_id)
    try:
        return run_sync(_call(cluster_id, address, op, payload, timeout), wait)
    except _Undelivered:
        if (current := session_address(cluster_id, fresh=True)) == address:
            raise
        return run_sync(_call(cluster_id, current, op, payload, timeout), wait)


def post(address: str, message: dict[str, Any]) -> None:
    """Synchronous bus.post(), e.g. to close a session from a view."""
    run_sync(bus.post(address, message), DELIVERY_TIMEOUT)


class AgentStream:
    """A byte stream to a stream operation on the agent (logs, exec later; "echo" today).

    Flow control: we send at most the credit the agent granted; we grant credit back as we read.
    """

    def __init__(self, session: str, window: int, op: str = "") -> None:
        self.session = session  # the address of the agent's session
        self.op = op
        self._counted = False  # in OPEN_STREAMS, from opened until finished
        self.window = window
        self.address = ""  # ours, in this process's inbox
        self._box: bus.Inbox | None = None
        self.id: int | None = None
        self.credit = 0
        self.closed = False
        self.close_reason = ""
        self._consumed = 0
        self._buffer: list[bytes] = []
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def _next(self, timeout: float) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            return await self._inbox.get()

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "stream.opened":
            self.id, self.credit = message["id"], message["window"]
            if not self.closed:
                OPEN_STREAMS.labels(self.op).inc()
                self._counted = True
        elif kind == "stream.data":
            self._buffer.append(message["data"])
        elif kind == "stream.credit":
            self.credit += message["bytes"]
        elif kind == "stream.closed":
            self._finish(message.get("reason", ""))

    def _finish(self, reason: str) -> None:
        self.closed, self.close_reason = True, reason
        if self._counted:
            OPEN_STREAMS.labels(self.op).dec()
            self._counted = False
        if self._box is not None:
            self._box.unregister(self.address)

    async def _await_credit(self, needed: int, timeout: float) -> None:
        """Handle the agent's messages until it granted `needed` bytes of credit; ConnectionError once closed."""
        while self.credit < needed and not self.closed:
            message = await self._next(timeout)
            await self._handle(message)
            if message["type"] in ("stream.data", "stream.closed"):
                self._inbox.put_nowait({"type": "wake"})  # a recv() waiting meanwhile must look again
        if self.closed:
            raise ConnectionError(f"stream closed: {self.close_reason}")

    async def send(self, data: bytes, timeout: float = 30.0) -> None:
        while data:
            await self._await_credit(1, timeout)
            chunk, data = data[: self.credit], data[self.credit :]
            self.credit -= len(chunk)
            await bus.post(self.session, {"type": "agent.stream.data", "id": self.id, "data": chunk})

    async def send_frame(self, frame: bytes, timeout: float = 30.0) -> None:
        """Send `frame` as one data message, never split across credit: a frame that starts with a channel byte
        (exec, db_restore) keeps it. Waits until the agent granted credit for all of it; `frame` must be at most
        half the agent's window (it grants credit back once it has read that much)."""
        await self._await_credit(len(frame), timeout)
        self.credit -= len(frame)
        await bus.post(self.session, {"type": "agent.stream.data", "id": self.id, "data": frame})

    async def recv(self, timeout: float = 30.0) -> bytes | None:
        """The next chunk, or None when the agent closed the stream."""
        while not self._buffer and not self.closed:
            await self._handle(await self._next(timeout))
        if not self._buffer:
            return None
        data = self._buffer.pop(0)
        self._consumed += len(data)
        if self._consumed >= self.window // 2:
            await bus.post(self.session, {"type": "agent.stream.credit", "id": self.id, "bytes": self._consumed})
            self._consumed = 0
        return data

    async def close(self) -> None:
        if not self.closed:
            self._finish("closed")
            await bus.post(self.session, {"type": "agent.stream.close", "id": self.id})


async def open_stream(cluster: Cluster | int, op: str, payload: dict[str, Any] | None = None,
                      timeout: float = 10.0, window: int = protocol.DEFAULT_STREAM_WINDOW) -> AgentStream:
    cluster_id = cluster if isinstance(cluster, int) else cluster.pk
    session = await database_sync_to_async(session_address)(cluster_id, fresh=True)
    if not session:
        raise AgentOffline(f"cluster {cluster_id} has no connected agent")
    stream = AgentStream(session, window, op)
    stream._box = await bus.inbox()
    stream.address = stream._box.register(stream._inbox.put_nowait)
    await bus.post(session, {"type": "agent.stream.open", "cluster": cluster_id, "op": op, "payload": payload or {},
                             "owner": stream.address, "window": window})
    try:
        while stream.id is None and not stream.closed:
            await stream._handle(await stream._next(timeout))
    except TimeoutError:
        stream._finish("not opened")
        raise AgentTimeout(f"the agent of cluster {cluster_id} did not open a stream within {timeout:g}s") from None
    if stream.id is None:  # the session ended before the stream opened
        raise AgentOffline(f"cluster {cluster_id}: {stream.close_reason}")
    return stream
