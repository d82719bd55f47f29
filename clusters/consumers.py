"""WebSocket consumers: the agents' tunnel endpoint, and operators' live view of a cluster."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from agent import protocol as p
from clusters import bus, infrastructure, services
from clusters.access import get_cluster_for_operator
from clusters.converge import aconverge
from clusters.models import DesiredProject
from lib.realtime import GroupEventsConsumer

log = logging.getLogger("clusters.agent")

RESYNC_TIMEOUT = 120.0
ACCEPT_AFTER = 0.05  # seconds: a call still unanswered by then gets an "accepted" ack (see clusters.rpc)


class Heartbeats:
    """One task per process pings every live agent, drops silent ones, and records last_seen for
    all that spoke since the previous sweep in one statement.

    A task (or a database write) per connection would cost memory on every one of thousands of idle sockets; a sweep
    over a set of consumers costs one task in total.
    """

    def __init__(self) -> None:
        self.consumers: set[AgentConsumer] = set()
        self.task: asyncio.Task | None = None

    def add(self, consumer: AgentConsumer) -> None:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:  # new loop: tests
            self.consumers = set()
            self.task = loop.create_task(self._run(consumer.heartbeat))
        self.consumers.add(consumer)

    def discard(self, consumer: AgentConsumer) -> None:
        self.consumers.discard(consumer)

    async def _run(self, interval: float) -> None:
        last_sweep = time.monotonic()
        while self.consumers:
            await asyncio.sleep(interval)
            now = time.monotonic()
            seen = [c.cluster_id for c in self.consumers if c.helloed and c.last_rx > last_sweep]
            last_sweep = now
            for consumer in list(self.consumers):
                try:
                    await consumer.heartbeat_tick(now)
                except Exception:  # one broken socket must not stop the others' heartbeats
                    log.exception("heartbeat for cluster %s failed", consumer.cluster_slug)
                    self.consumers.discard(consumer)
            try:
                await database_sync_to_async(services.agents_seen)(seen)
            except Exception:  # the database away for a moment: last_seen catches up next sweep
                log.exception("could not record last_seen for %d agents", len(seen))


heartbeats = Heartbeats()


class AgentConsumer(AsyncWebsocketConsumer):
    """One agent's socket. Authenticated before accept(); at most one live session per cluster."""

    cluster_id: int | None = None
    address = ""  # of this session in the process's inbox (clusters.bus), once the agent said hello
    channel_layer_alias = None  # no channel (and receive task) per socket: the inbox delivers to all sessions
    groups = ()  # none; and no empty list per instance

    async def __call__(self, scope, receive, send) -> None:
        # Channels' loop runs every receive() in a task of its own (to wait on a channel layer as well):
        # a task, its context and an asyncio.wait() per idle socket. Without a layer a plain loop does.
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def connect(self) -> None:
        headers = dict(self.scope.get("headers") or [])
        auth = headers.get(p.TOKEN_HEADER.lower().encode(), b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        client = (self.scope.get("client") or ["?"])[0]
        cluster = await self._authenticate(token.strip()) if scheme == p.TOKEN_SCHEME and token else None
        if cluster is None:
            # Once per burst: a flood of bad tokens must not flood the log either.
            level = logging.WARNING if await self._rejected(token) else logging.DEBUG
            log.log(level, "agent connection from %s refused: bad or revoked token", client)
            await self.close()  # before accept(): the agent sees HTTP 403 and stops retrying
            return
        self.cluster_id = cluster.pk
        self.cluster_slug = cluster.slug
        self.session_id = secrets.token_hex(8)
        self.heartbeat = float(settings.AGENT_HEARTBEAT_SECONDS)
        self.max_bytes = int(settings.AGENT_MAX_MESSAGE_BYTES)
        self.helloed = False
        self.last_rx = time.monotonic()
        self.rpc_ids = itertools.count(1)
        self.stream_ids = itertools.count(1)
        self.pending: dict[int, str] = {}  # rpc id -> the caller's address
        self.streams: dict[int, str] = {}  # stream id -> owner's channel
        self.tasks: set[asyncio.Task] = set()
        await self.accept()
        log.info("agent for cluster %s connected from %s (session %s)", cluster.slug, client, self.session_id)
        heartbeats.add(self)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' own dispatch first hops to the one shared sync thread to close stale database
        # connections, for every frame: thousands of agents' heartbeats would queue there. Every database
        # call here goes through database_sync_to_async, which does that itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def disconnect(self, code: int) -> None:
        if self.cluster_id is None:
            return
        heartbeats.discard(self)
        if self.address:
            (await bus.inbox()).unregister(self.address)
        for task in list(self.tasks):
            task.cancel()
        for waiter in list(self.pending.values()):
            await bus.post(waiter, {"type": "rpc.error", "code": "offline", "message": "the agent disconnected"})
        self.pending.clear()
        for sid, owner in list(self.streams.items()):
            await bus.post(owner, {"type": "stream.closed", "id": sid, "reason": "agent disconnected"})
        self.streams.clear()
        if self.helloed:
            reason = p.CLOSE_REASONS.get(code, f"close code {code}")
            marked = await database_sync_to_async(services.agent_disconnected)(self.cluster_id, self.session_id, reason)
            log.info("agent for cluster %s disconnected (%s)%s", self.cluster_slug, reason,
                     "" if marked else "; a newer session is live")

    # --- frames from the agent --------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        if size > self.max_bytes:
            log.warning("cluster %s: %d-byte frame over the %d-byte limit; closing", self.cluster_slug, size,
                        self.max_bytes)
            await self.close(code=p.CLOSE_TOO_BIG)
            return
        self.last_rx = time.monotonic()  # the heartbeat sweep turns this into last_seen, for all agents at once
        if bytes_data is not None:
            sid, data = p.unpack_data(bytes_data)
            if owner := self.streams.get(sid):
                await bus.post(owner, {"type": "stream.data", "id": sid, "data": data})
            return
        try:
            message = p.decode(text_data or "")
        except ValueError:
            await self.close(code=p.CLOSE_PROTOCOL_ERROR)
            return
        kind = message["type"]
        if not self.helloed:
            await self._hello(message)
        elif kind == "ping":
            await self.send(text_data=p.encode({"type": "pong", "t": message.get("t")}))
        elif kind in ("rpc.reply", "rpc.error"):
            waiter = self.pending.pop(message.get("id"), None)
            if waiter is not None:
                await bus.post(waiter, message)
        elif kind == "event":
            await self._event(message)
        elif kind in ("stream.credit", "stream.close"):
            sid = message.get("id")
            owner = self.streams.get(sid) if kind == "stream.credit" else self.streams.pop(sid, None)
            if owner:
                relay = ({"type": "stream.credit", "id": sid, "bytes": int(message.get("bytes", 0))}
                         if kind == "stream.credit" else
                         {"type": "stream.closed", "id": sid, "reason": message.get("reason", "")})
                await bus.post(owner, relay)

    async def _hello(self, message: dict[str, Any]) -> None:
        if message["type"] != "hello" or message.get("protocol") != p.PROTOCOL_VERSION:
            log.warning("cluster %s: expected hello with protocol %s, got %s", self.cluster_slug, p.PROTOCOL_VERSION,
                        {k: message.get(k) for k in ("type", "protocol")})
            await self.close(code=p.CLOSE_PROTOCOL_ERROR)
            return
        self.address = (await bus.inbox()).register(self.on_bus, key=self.session_id)
        previous = await database_sync_to_async(services.agent_connected)(
            self.cluster_id, self.session_id, self.address, message)
        if previous:
            log.info("cluster %s: replacing the previous agent session", self.cluster_slug)
            await bus.post(previous, {"type": "agent.close", "code": p.CLOSE_REPLACED})
        self.helloed = True
        await self.send(text_data=p.encode({"type": "welcome", "cluster": self.cluster_slug,
                                            "heartbeat": self.heartbeat, "max_message_bytes": self.max_bytes}))
        self._spawn(self._resync())

    async def _event(self, message: dict[str, Any]) -> None:
        data = message.get("data") or {}
        if message.get("kind") == "observed" and isinstance(data.get("namespace"), str):
            await database_sync_to_async(services.record_observed)(self.cluster_id, data["namespace"],
                                                                    data.get("state"))
        elif message.get("kind") == "bootstrap.progress":
            await database_sync_to_async(infrastructure.record_bootstrap_progress)(self.cluster_id, data)

    # --- messages from the rest of the control plane (clusters.bus) --------------------------

    async def on_bus(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("agent.rpc", "agent.stream.open") and message.get("cluster", self.cluster_id) != self.cluster_id:
            await bus.undeliverable(message)  # an address cached for a cluster that no longer has this session
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is not None and kind.startswith("agent."):
            await handler(message)

    async def agent_rpc(self, message: dict[str, Any]) -> None:
        rid = next(self.rpc_ids)
        self.pending[rid] = message["reply_to"]
        # Fast answers need no ack (one message less); slower ones tell the caller that a live consumer
        # holds the call, so it waits for the full timeout instead of giving up as "offline".
        loop = asyncio.get_running_loop()
        loop.call_later(ACCEPT_AFTER, self._acknowledge, rid)
        # The caller gave up by then; forget the entry so a silent agent cannot grow `pending`.
        loop.call_later(float(message.get("timeout") or 30.0) + 1, self.pending.pop, rid, None)
        await self.send(text_data=p.encode({"type": "rpc", "id": rid, "op": message["op"],
                                            "payload": message.get("payload") or {}}))

    async def agent_close(self, message: dict[str, Any]) -> None:
        code = int(message.get("code", p.CLOSE_NORMAL))
        log.info("closing agent session of cluster %s: %s", self.cluster_slug, p.CLOSE_REASONS.get(code, code))
        await self.close(code=code)

    async def agent_stream_open(self, message: dict[str, Any]) -> None:
        sid = next(self.stream_ids)
        self.streams[sid] = message["owner"]
        window = int(message.get("window") or p.DEFAULT_STREAM_WINDOW)
        await self.send(text_data=p.encode({"type": "stream.open", "id": sid, "op": message["op"],
                                            "payload": message.get("payload") or {}, "window": window}))
        # The agent's receive window is the protocol default: that is the caller's initial credit.
        await bus.post(message["owner"], {"type": "stream.opened", "id": sid, "window": p.DEFAULT_STREAM_WINDOW})

    async def agent_stream_data(self, message: dict[str, Any]) -> None:
        if message["id"] in self.streams:
            await self.send(bytes_data=p.pack_data(message["id"], message["data"]))

    async def agent_stream_credit(self, message: dict[str, Any]) -> None:
        if message["id"] in self.streams:
            await self.send(text_data=p.encode({"type": "stream.credit", "id": message["id"],
                                                "bytes": message["bytes"]}))

    async def agent_stream_close(self, message: dict[str, Any]) -> None:
        if self.streams.pop(message["id"], None):
            await self.send(text_data=p.encode({"type": "stream.close", "id": message["id"], "reason": "closed"}))

    # --- helpers ----------------------------------------------------------------------------

    def _acknowledge(self, rid: int) -> None:
        if waiter := self.pending.get(rid):
            self._spawn(bus.post(waiter, {"type": "rpc.accepted", "id": rid}))

    async def _resync(self) -> None:
        """After every (re)connect, converge every namespace of this cluster to its latest desired revision."""
        desired = await database_sync_to_async(
            lambda: list(DesiredProject.objects.filter(cluster_id=self.cluster_id)))()
        if desired:
            log.info("cluster %s: re-sending %d desired project(s)", self.cluster_slug, len(desired))
        for project in desired:
            await aconverge(project, timeout=RESYNC_TIMEOUT)

    async def heartbeat_tick(self, now: float) -> None:
        """Called by `heartbeats` each interval: ping, or drop an agent silent for too long (or without hello)."""
        dead_after = p.dead_after(self.heartbeat)
        if now - self.last_rx > dead_after:
            log.warning("cluster %s: no frame from the agent for %.0fs; closing", self.cluster_slug, dead_after)
            heartbeats.discard(self)
            await self.close(code=p.CLOSE_HEARTBEAT_TIMEOUT)
        elif self.helloed:
            await self.send(text_data=p.encode({"type": "ping", "t": time.time()}))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _authenticate(self, token: str):
        # Not on the shared thread every consumer's database work queues on: daphne rejects (HTTP 403) a
        # handshake still pending after a few seconds, and a burst of reconnecting agents must not hit that.
        return await database_sync_to_async(services.authenticate_agent, thread_sensitive=False)(token)

    @database_sync_to_async
    def _rejected(self, token: str) -> bool:
        cluster_id = token.partition(".")[0]
        return services.record_rejected_connection(int(cluster_id) if cluster_id.isdigit() else None,
                                            "bad, expired or revoked token")


class ClusterLiveConsumer(GroupEventsConsumer):
    """Operators' cluster page: status, observed state and agent events as they happen."""

    def group(self) -> str:
        cluster = get_cluster_for_operator(self.scope["user"], self.scope["url_route"]["kwargs"]["slug"])
        return services.cluster_group(cluster.pk)
