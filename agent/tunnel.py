"""The tunnel: one WebSocket to the control plane, kept up forever.

Transport, framing, heartbeats, reconnect with backoff and streams. It knows nothing of
Kubernetes: operations and stream handlers are plain async functions handed to it by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from agent import metrics
from agent import protocol as p
from agent.ops import OpError, OpHandler, StreamHandler

log = logging.getLogger("agent.tunnel")

EXIT_TOKEN_REJECTED = 3


class Fatal(Exception):
    """Retrying cannot help (the token was revoked): the process should exit with `code`."""

    def __init__(self, message: str, code: int = EXIT_TOKEN_REJECTED) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Backoff:
    """Exponential backoff with full jitter: sleep uniform(0, min(cap, base * 2**attempt))."""

    base: float = 0.5
    cap: float = 30.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self.rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0

    def exhaust(self) -> None:
        """Make the next delays sit at the cap (used after being replaced by another agent)."""
        self.attempt = max(self.attempt, 64)


class Stream:
    """One multiplexed byte stream with credit-based flow control in both directions (an ops.Stream)."""

    def __init__(self, tunnel: Tunnel, stream_id: int, send_window: int, recv_window: int) -> None:
        self.id = stream_id
        self._tunnel = tunnel
        self._inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._credit = send_window  # bytes we may still send
        self._credit_changed = asyncio.Event()
        self._recv_window = recv_window
        self._unacked = 0  # bytes consumed by our handler and not yet granted back
        self.closed = False

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            while self._credit <= 0:
                if self.closed:
                    raise ConnectionError("stream closed")
                self._credit_changed.clear()
                await self._credit_changed.wait()
            if self.closed:
                raise ConnectionError("stream closed")
            chunk = bytes(view[: self._credit])
            view = view[len(chunk) :]
            self._credit -= len(chunk)
            await self._tunnel.send_binary(p.pack_data(self.id, chunk))

    @property
    def credit(self) -> int:
        """Bytes the peer is ready to take now: a sender that must not block (logs) drops when this is 0."""
        return self._credit

    async def writable(self) -> None:
        """Wait until the peer grants credit (or the stream closes)."""
        while self._credit <= 0 and not self.closed:
            self._credit_changed.clear()
            await self._credit_changed.wait()

    async def recv(self) -> bytes | None:
        """The next chunk from the peer, or None once the peer closed the stream."""
        data = await self._inbox.get()
        if data is None:
            self._inbox.put_nowait(None)  # keep answering None
            return None
        self._unacked += len(data)
        if self._unacked >= self._recv_window // 2:
            granted, self._unacked = self._unacked, 0
            await self._tunnel.send_control({"type": "stream.credit", "id": self.id, "bytes": granted})
        return data

    async def close(self, reason: str = "") -> None:
        if not self.closed:
            self._finish()
            self._tunnel.streams.pop(self.id, None)
            with contextlib.suppress(ConnectionError, ConnectionClosed):
                await self._tunnel.send_control({"type": "stream.close", "id": self.id, "reason": reason})

    def _feed(self, data: bytes) -> None:
        self._inbox.put_nowait(data)

    def _grant(self, amount: int) -> None:
        self._credit += amount
        self._credit_changed.set()

    def _finish(self) -> None:
        self.closed = True
        self._inbox.put_nowait(None)
        self._credit_changed.set()


class Tunnel:
    """Keeps one authenticated WebSocket open and dispatches what arrives on it."""

    def __init__(
        self,
        url: str,
        token: Callable[[], str],
        hello: Callable[[], Awaitable[dict[str, Any]]],
        ops: dict[str, OpHandler],
        stream_ops: dict[str, StreamHandler] | None = None,
        *,
        heartbeat: float = p.DEFAULT_HEARTBEAT,
        open_timeout: float = 10.0,
        backoff: Backoff | None = None,
        ssl: Any = None,
        refused_grace: float = 30.0,
    ) -> None:
        self.url = url
        self.token = token
        self.hello = hello
        self.ops = ops
        self.stream_ops = stream_ops or {}
        self.heartbeat = heartbeat
        self.open_timeout = open_timeout
        self.backoff = backoff or Backoff()
        self.ssl = ssl
        self.refused_grace = refused_grace
        self._refused_since = 0.0
        self.connected = asyncio.Event()
        self.on_connect: list[Callable[[], Awaitable[None]]] = []
        self.streams: dict[int, Stream] = {}
        self.welcome: dict[str, Any] = {}
        self._ws: ClientConnection | None = None
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self._last_rx = 0.0

    # --- public -------------------------------------------------------------------------------

    async def run(self) -> int:
        """Connect, serve, reconnect; until stop() (returns 0) or a revoked token (returns non-zero)."""
        while not self._stop.is_set():
            try:
                await self._session()
            except Fatal as exc:
                log.error("%s; exiting", exc)
                return exc.code
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError, ValueError) as exc:
                log.warning("connection to %s failed: %s", self.url, exc or type(exc).__name__)
            if self._stop.is_set():
                break
            delay = self.backoff.next()
            metrics.RECONNECTS.inc()
            log.info("reconnecting in %.2fs (attempt %d)", delay, self.backoff.attempt)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        return 0

    def stop(self) -> None:
        self._stop.set()

    async def send_control(self, message: dict[str, Any]) -> None:
        if self._ws is None:
            raise ConnectionError("not connected")
        await self._ws.send(p.encode(message))

    async def send_binary(self, frame: bytes) -> None:
        if self._ws is None:
            raise ConnectionError("not connected")
        await self._ws.send(frame)

    async def send_event(self, kind: str, data: dict[str, Any]) -> bool:
        """Push an event if connected. Returns False (dropped) otherwise: callers re-send on connect."""
        if not self.connected.is_set():
            return False
        try:
            await self.send_control({"type": "event", "kind": kind, "data": data})
        except (ConnectionError, ConnectionClosed):
            return False
        return True

    # --- one connection -----------------------------------------------------------------------

    async def _session(self) -> None:
        try:
            ws = await connect(
                self.url,
                # Read on every attempt: a rotated token lands in the mounted Secret file without a restart.
                additional_headers={p.TOKEN_HEADER: f"{p.TOKEN_SCHEME} {self.token()}"},
                open_timeout=self.open_timeout,
                ping_interval=self.heartbeat,
                ping_timeout=p.dead_after(self.heartbeat),
                close_timeout=5,
                max_size=p.DEFAULT_MAX_MESSAGE_BYTES,
                ssl=self.ssl,
            )
        except InvalidStatus as exc:
            if exc.response.status_code not in (401, 403):
                raise
            # A 403 also comes from an overloaded daphne that timed out the handshake, so only a refusal that
            # persists for `refused_grace` seconds is taken as final.
            now = time.monotonic()
            self._refused_since = self._refused_since or now
            if now - self._refused_since >= self.refused_grace:
                raise Fatal(f"the control plane refused the agent token (HTTP {exc.response.status_code}): "
                            "it was revoked or is not valid") from None
            raise ConnectionError(f"the control plane refused the connection (HTTP {exc.response.status_code}); "
                                  f"giving up if it still does after {self.refused_grace:g}s") from None
        self._refused_since = 0.0
        try:
            await self._handshake(ws)
            self._ws = ws
            self.connected.set()
            metrics.TUNNEL_CONNECTED.set(1)
            self.backoff.reset()
            log.info("connected to %s as cluster %s", self.url, self.welcome.get("cluster"))
            for callback in self.on_connect:
                self._spawn(callback())
            await self._serve(ws)
        finally:
            self.connected.clear()
            metrics.TUNNEL_CONNECTED.set(0)
            self._ws = None
            for task in list(self._tasks):
                task.cancel()
            for stream in list(self.streams.values()):
                stream._finish()
            self.streams.clear()
            await ws.close()
        code = ws.close_code
        if code == p.CLOSE_TOKEN_REVOKED:
            raise Fatal("the control plane revoked the agent token")
        if code == p.CLOSE_REPLACED:
            log.warning("another agent connected for this cluster and replaced this one; backing off")
            self.backoff.exhaust()
        elif not self._stop.is_set():
            log.warning("connection closed (code %s %s)", code, p.CLOSE_REASONS.get(code or 0, ws.close_reason or ""))

    async def _handshake(self, ws: ClientConnection) -> None:
        hello = {"type": "hello", "protocol": p.PROTOCOL_VERSION, **(await self.hello())}
        hello["capabilities"] = {
            **hello.get("capabilities", {}),
            "ops": sorted(self.ops),
            "streams": sorted(self.stream_ops),
        }
        await ws.send(p.encode(hello))
        async with asyncio.timeout(self.open_timeout):
            while True:
                raw = await ws.recv()
                if isinstance(raw, str):
                    message = p.decode(raw)
                    if message["type"] == "welcome":
                        break
        self.welcome = message
        self.heartbeat = float(message.get("heartbeat") or self.heartbeat)

    async def _serve(self, ws: ClientConnection) -> None:
        self._last_rx = time.monotonic()
        reader = asyncio.create_task(self._read(ws))
        beater = asyncio.create_task(self._beat(ws))
        stopper = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({reader, beater, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, beater, stopper):
                task.cancel()
        if self._stop.is_set():
            # SIGTERM: tell the peer every stream ends, then close the socket cleanly.
            for stream in list(self.streams.values()):
                await stream.close("agent shutting down")
            await ws.close(p.CLOSE_GOING_AWAY, "agent shutting down")
        elif reader.done() and reader.exception() and not isinstance(reader.exception(), ConnectionClosed):
            raise reader.exception()

    async def _beat(self, ws: ClientConnection) -> None:
        while True:
            await asyncio.sleep(self.heartbeat)
            if time.monotonic() - self._last_rx > p.dead_after(self.heartbeat):
                log.warning("nothing heard from the control plane for %.0fs; reconnecting",
                            p.dead_after(self.heartbeat))
                # A half-open socket may never complete a closing handshake: don't wait for it.
                ws.transport.abort()
                return
            await ws.send(p.encode({"type": "ping", "t": time.time()}))

    async def _read(self, ws: ClientConnection) -> None:
        async for raw in ws:
            self._last_rx = time.monotonic()
            if isinstance(raw, bytes):
                stream_id, data = p.unpack_data(raw)
                stream = self.streams.get(stream_id)
                if stream is not None:
                    stream._feed(data)
                continue
            try:
                message = p.decode(raw)
            except ValueError:
                log.warning("ignoring an unparseable control frame")
                continue
            await self._dispatch(message)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "ping":
            await self.send_control({"type": "pong", "t": message.get("t")})
        elif kind == "rpc":
            self._spawn(self._run_op(message))
        elif kind == "stream.open":
            self._open_stream(message)
        elif kind == "stream.credit":
            if stream := self.streams.get(message.get("id")):
                stream._grant(int(message.get("bytes", 0)))
        elif kind == "stream.close":
            if stream := self.streams.pop(message.get("id"), None):
                stream._finish()
        # pong and unknown control types are fine to ignore: receiving them already proved liveness.

    async def _run_op(self, message: dict[str, Any]) -> None:
        rid, op = message.get("id"), message.get("op")
        handler = self.ops.get(op)
        if handler is None:
            reply = {"type": "rpc.error", "id": rid, "code": p.ERR_UNSUPPORTED,
                     "message": f"this agent does not support the operation {op!r}"}
        else:
            try:
                result = await handler(message.get("payload") or {})
                reply = {"type": "rpc.reply", "id": rid, "result": result}
            except OpError as exc:
                reply = {"type": "rpc.error", "id": rid, "code": exc.code, "message": exc.message}
            except Exception as exc:
                log.exception("operation %s failed", op)
                reply = {"type": "rpc.error", "id": rid, "code": p.ERR_FAILED,
                         "message": f"{type(exc).__name__}: {exc}"}
        with contextlib.suppress(ConnectionError, ConnectionClosed):
            await self.send_control(reply)

    def _open_stream(self, message: dict[str, Any]) -> None:
        sid, op = int(message["id"]), message.get("op")
        stream = Stream(self, sid, int(message.get("window") or p.DEFAULT_STREAM_WINDOW), p.DEFAULT_STREAM_WINDOW)
        handler = self.stream_ops.get(op)
        self.streams[sid] = stream
        if handler is None:
            self._spawn(stream.close(f"unsupported stream operation {op!r}"))
            return

        async def run() -> None:
            try:
                await handler(stream, message.get("payload") or {})
            except (ConnectionError, ConnectionClosed):
                pass
            except Exception as exc:
                log.exception("stream %s (%s) failed", sid, op)
                await stream.close(f"{type(exc).__name__}: {exc}")
                return
            await stream.close()

        self._spawn(run())

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
