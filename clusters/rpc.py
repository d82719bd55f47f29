"""Call an agent from anywhere in Django: views, Celery tasks, consumers.

The caller makes a one-off reply channel, sends {"type": "agent.rpc"} to the channel of the
consumer holding the cluster's socket (it may live in another daphne process; the Redis channel
layer carries it), and waits for the reply on its own channel.

    result = rpc.call(cluster, "apply_project", payload, timeout=30)   # sync callers
    result = await rpc.acall(cluster, "ping", {})                       # async callers

Consumers must use acall: call() blocks its thread for the whole call, and inside a consumer's
database_sync_to_async that thread is the one every consumer's database work runs in.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels import DEFAULT_CHANNEL_LAYER
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer

from agent import protocol
from clusters.models import Cluster

DELIVERY_TIMEOUT = 3.0  # seconds for the consumer holding the socket to acknowledge a call


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


def split_address(address: str) -> tuple[str, str]:
    """A live session's address is "<channel of its daphne process>#<session id>"."""
    channel, _, session = address.rpartition("#")
    return channel, session


async def send_to_session(layer: Any, address: str, message: dict[str, Any]) -> None:
    channel, session = split_address(address)
    await layer.send(channel, {**message, "session": session})


async def _live_channel(cluster_id: int) -> str:
    return await database_sync_to_async(_channel_of)(cluster_id)


def _channel_of(cluster_id: int) -> str:
    return Cluster.objects.filter(pk=cluster_id).values_list("channel_name", flat=True).first() or ""


async def acall(cluster: Cluster | int, op: str, payload: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
    cluster_id = cluster if isinstance(cluster, int) else cluster.pk
    return await _call_channel(cluster_id, await _live_channel(cluster_id), op, payload, timeout)


async def _call_channel(cluster_id: int, channel: str, op: str, payload: dict[str, Any] | None,
                        timeout: float, layer: Any = None) -> Any:
    if not channel:
        raise AgentOffline(f"cluster {cluster_id} has no connected agent")
    layer = layer or get_channel_layer()
    reply_to = await layer.new_channel("agent-rpc")
    await send_to_session(layer, channel, {"type": "agent.rpc", "op": op, "payload": payload or {},
                                           "reply_to": reply_to, "timeout": timeout})
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        # A live consumer answers (or acknowledges) within moments. Without that, a channel left behind
        # by a daphne process that died would make every call wait for its full timeout.
        async with asyncio.timeout(min(timeout, DELIVERY_TIMEOUT)):
            reply = await layer.receive(reply_to)
    except TimeoutError:
        raise AgentOffline(f"no control plane process holds a connection for cluster {cluster_id}") from None
    try:
        async with asyncio.timeout_at(deadline):
            while reply.get("type") == "rpc.accepted":
                reply = await layer.receive(reply_to)
    except TimeoutError:
        raise AgentTimeout(f"the agent of cluster {cluster_id} did not answer {op!r} within {timeout:g}s") from None
    if reply.get("type") == "rpc.reply":
        return reply.get("result")
    if reply.get("code") == "offline":
        raise AgentOffline(reply.get("message", "the agent disconnected"))
    raise AgentError(reply.get("code", protocol.ERR_FAILED), reply.get("message", ""))


_loop: asyncio.AbstractEventLoop | None = None
_layer: Any = None
_loop_pid = 0
_loop_lock = threading.Lock()


def _background_loop() -> tuple[asyncio.AbstractEventLoop, Any]:
    """One long-lived event loop (and channel layer instance) per process for sync callers.

    async_to_sync would make a fresh loop per call, and channels_redis keeps its Redis connections
    per loop: every call would connect anew. The layer is our own instance because one instance
    refuses receive() from two loops at once (daphne's and this one, for a sync view under ASGI).
    Re-created after fork (Celery prefork workers).
    """
    global _loop, _layer, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="agent-rpc", daemon=True).start()
            _loop, _layer, _loop_pid = loop, channel_layers.make_backend(DEFAULT_CHANNEL_LAYER), os.getpid()
        return _loop, _layer


def call(cluster: Cluster | int, op: str, payload: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
    """Synchronous call(); raises AgentOffline, AgentTimeout or AgentError. Not for use inside an event loop."""
    cluster_id = cluster if isinstance(cluster, int) else cluster.pk
    # The lookup runs here, in the caller's thread and database connection (its transaction, in tests).
    channel = _channel_of(cluster_id)
    if getattr(SyncToAsync.threadlocal, "main_event_loop", None) is not None:
        # Inside sync_to_async (a sync view or a database_sync_to_async helper under daphne): wait on the
        # outer loop, so asgiref can keep running that loop's other sync work in this thread meanwhile.
        return async_to_sync(_call_channel)(cluster_id, channel, op, payload, timeout)
    loop, layer = _background_loop()
    future = asyncio.run_coroutine_threadsafe(_call_channel(cluster_id, channel, op, payload, timeout, layer), loop)
    try:
        return future.result(timeout + DELIVERY_TIMEOUT + 5)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise AgentTimeout(f"no answer to {op!r} within {timeout:g}s") from None


class AgentStream:
    """A byte stream to a stream operation on the agent (logs, exec later; "echo" today).

    Flow control: we send at most the credit the agent granted; we grant credit back as we read.
    """

    def __init__(self, layer: Any, consumer_channel: str, own_channel: str, window: int) -> None:
        self.layer = layer
        self.consumer_channel = consumer_channel
        self.channel = own_channel
        self.window = window
        self.id: int | None = None
        self.credit = 0
        self.closed = False
        self.close_reason = ""
        self._consumed = 0
        self._buffer: list[bytes] = []

    async def _next(self, timeout: float) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            return await self.layer.receive(self.channel)

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "stream.opened":
            self.id, self.credit = message["id"], message["window"]
        elif kind == "stream.data":
            self._buffer.append(message["data"])
        elif kind == "stream.credit":
            self.credit += message["bytes"]
        elif kind == "stream.closed":
            self.closed, self.close_reason = True, message.get("reason", "")

    async def send(self, data: bytes, timeout: float = 30.0) -> None:
        while data:
            while self.credit <= 0 and not self.closed:
                await self._handle(await self._next(timeout))
            if self.closed:
                raise ConnectionError(f"stream closed: {self.close_reason}")
            chunk, data = data[: self.credit], data[self.credit :]
            self.credit -= len(chunk)
            await send_to_session(self.layer, self.consumer_channel,
                                  {"type": "agent.stream.data", "id": self.id, "data": chunk})

    async def recv(self, timeout: float = 30.0) -> bytes | None:
        """The next chunk, or None when the agent closed the stream."""
        while not self._buffer and not self.closed:
            await self._handle(await self._next(timeout))
        if not self._buffer:
            return None
        data = self._buffer.pop(0)
        self._consumed += len(data)
        if self._consumed >= self.window // 2:
            await send_to_session(self.layer, self.consumer_channel,
                                  {"type": "agent.stream.credit", "id": self.id, "bytes": self._consumed})
            self._consumed = 0
        return data

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await send_to_session(self.layer, self.consumer_channel, {"type": "agent.stream.close", "id": self.id})


async def open_stream(cluster: Cluster | int, op: str, payload: dict[str, Any] | None = None,
                      timeout: float = 10.0, window: int = protocol.DEFAULT_STREAM_WINDOW) -> AgentStream:
    cluster_id = cluster if isinstance(cluster, int) else cluster.pk
    channel = await _live_channel(cluster_id)
    if not channel:
        raise AgentOffline(f"cluster {cluster_id} has no connected agent")
    layer = get_channel_layer()
    stream = AgentStream(layer, channel, await layer.new_channel("agent-stream"), window)
    await send_to_session(layer, channel, {"type": "agent.stream.open", "op": op, "payload": payload or {},
                                           "owner": stream.channel, "window": window})
    try:
        while stream.id is None and not stream.closed:
            await stream._handle(await stream._next(timeout))
    except TimeoutError:
        raise AgentTimeout(f"the agent of cluster {cluster_id} did not open a stream within {timeout:g}s") from None
    return stream
