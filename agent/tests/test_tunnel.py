"""The tunnel against a small WebSocket server standing in for the control plane (no Kubernetes here)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from agent import protocol as p
from agent.ops import OpError
from agent.tunnel import EXIT_TOKEN_REJECTED, Backoff, Tunnel

TOKEN = "1.secret"


class FakeControlPlane:
    """Accepts agents with TOKEN, answers hello with welcome, and records what it sees."""

    def __init__(self, heartbeat: float = 0.3) -> None:
        self.heartbeat = heartbeat
        self.connections: list[ServerConnection] = []
        self.hellos: list[dict[str, Any]] = []
        self.inbox: asyncio.Queue[tuple[ServerConnection, Any]] = asyncio.Queue()
        self.answer_pings = True
        self.server = None
        self.port = 0

    async def start(self, port: int = 0) -> None:
        self.server = await serve(self.handler, "127.0.0.1", port, process_request=self.check_token)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/agent/ws"

    def check_token(self, connection: ServerConnection, request) -> Response | None:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return Response(403, "Forbidden", Headers(), b"")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        hello = json.loads(await ws.recv())
        self.hellos.append(hello)
        self.connections.append(ws)
        await ws.send(p.encode({"type": "welcome", "cluster": "c1", "heartbeat": self.heartbeat}))
        with contextlib.suppress(Exception):
            async for raw in ws:
                if isinstance(raw, str) and json.loads(raw)["type"] == "ping":
                    if self.answer_pings:
                        await ws.send(p.encode({"type": "pong"}))
                    continue
                await self.inbox.put((ws, json.loads(raw) if isinstance(raw, str) else raw))

    async def next_message(self, kind: str, timeout: float = 5.0) -> tuple[ServerConnection, Any]:
        async with asyncio.timeout(timeout):
            while True:
                ws, message = await self.inbox.get()
                if isinstance(message, bytes) and kind == "binary" or isinstance(message, dict) and message[
                        "type"] == kind:
                    return ws, message


async def hello() -> dict[str, Any]:
    return {"agent_version": "test", "kubernetes_version": "v1.35.0", "nodes": [], "components": {}}


def make_tunnel(url: str, ops: dict | None = None, token: str = TOKEN, **kwargs) -> Tunnel:
    async def boom(payload: dict) -> dict:
        raise RuntimeError("kaput")

    async def stale(payload: dict) -> dict:
        raise OpError(p.ERR_STALE_REVISION, "revision 1 is older than 2")

    async def echo_op(payload: dict) -> dict:
        return {"echo": payload}

    from agent.handlers import STREAM_OPS

    return Tunnel(url, lambda: token, hello, ops or {"echo": echo_op, "boom": boom, "stale": stale}, STREAM_OPS,
                  backoff=Backoff(base=0.05, cap=0.2), open_timeout=2, refused_grace=0.3, **kwargs)


@pytest.fixture
async def plane():
    cp = FakeControlPlane()
    await cp.start()
    yield cp
    await cp.stop()


async def wait_for(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def rpc(ws: ServerConnection, plane: FakeControlPlane, op: str, payload: dict, rid: int = 1) -> dict:
    await ws.send(p.encode({"type": "rpc", "id": rid, "op": op, "payload": payload}))
    async with asyncio.timeout(5):
        while True:
            _, message = await plane.inbox.get()
            if isinstance(message, dict) and message.get("id") == rid:
                return message


async def test_it_sends_a_hello_and_answers_operations(plane):
    tunnel = make_tunnel(plane.url)
    task = asyncio.create_task(tunnel.run())
    await asyncio.wait_for(tunnel.connected.wait(), 5)
    assert plane.hellos[0]["protocol"] == p.PROTOCOL_VERSION
    assert plane.hellos[0]["kubernetes_version"] == "v1.35.0"
    assert set(plane.hellos[0]["capabilities"]["ops"]) == {"echo", "boom", "stale"}
    ws = plane.connections[0]
    assert (await rpc(ws, plane, "echo", {"a": 1}))["result"] == {"echo": {"a": 1}}
    unsupported = await rpc(ws, plane, "launch_rockets", {}, rid=2)
    assert unsupported["type"] == "rpc.error" and unsupported["code"] == p.ERR_UNSUPPORTED
    failed = await rpc(ws, plane, "boom", {}, rid=3)
    assert failed["code"] == p.ERR_FAILED and "kaput" in failed["message"]
    stale = await rpc(ws, plane, "stale", {}, rid=4)
    assert stale["code"] == p.ERR_STALE_REVISION
    # Still connected after all that: errors are replies, not crashes.
    assert (await rpc(ws, plane, "echo", {}, rid=5))["type"] == "rpc.reply"
    tunnel.stop()
    assert await asyncio.wait_for(task, 5) == 0


async def test_it_reconnects_after_the_control_plane_restarts():
    plane = FakeControlPlane()
    await plane.start()
    port = plane.port
    tunnel = make_tunnel(plane.url)
    task = asyncio.create_task(tunnel.run())
    await asyncio.wait_for(tunnel.connected.wait(), 5)
    await plane.stop()
    await wait_for(lambda: not tunnel.connected.is_set())
    await asyncio.sleep(0.5)  # a few failed attempts while nothing listens
    restarted = FakeControlPlane()
    await restarted.start(port)
    await asyncio.wait_for(tunnel.connected.wait(), 5)
    assert len(restarted.hellos) == 1
    tunnel.stop()
    assert await asyncio.wait_for(task, 5) == 0
    await restarted.stop()


async def test_it_keeps_retrying_when_the_name_does_not_resolve():
    tunnel = make_tunnel("ws://no-such-host.invalid:9/agent/ws")
    task = asyncio.create_task(tunnel.run())
    await wait_for(lambda: tunnel.backoff.attempt >= 3)
    assert not task.done()
    tunnel.stop()
    assert await asyncio.wait_for(task, 5) == 0


async def test_it_exits_non_zero_when_the_token_is_refused(plane, caplog):
    tunnel = make_tunnel(plane.url, token="1.wrong")
    started = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(tunnel.run(), 5) == EXIT_TOKEN_REJECTED
    assert "refused the agent token" in caplog.text
    # An overloaded daphne also answers 403 (handshake timeout): the refusal must persist before giving up.
    assert asyncio.get_running_loop().time() - started >= 0.3
    assert tunnel.backoff.attempt >= 2


async def test_a_passing_refusal_is_retried(plane):
    tunnel = make_tunnel(plane.url, token="1.wrong")
    tunnel.refused_grace = 10
    task = asyncio.create_task(tunnel.run())
    await wait_for(lambda: tunnel.backoff.attempt >= 2)
    tunnel.token = lambda: TOKEN  # e.g. the control plane recovered, or the Secret was updated
    await asyncio.wait_for(tunnel.connected.wait(), 5)
    tunnel.stop()
    assert await asyncio.wait_for(task, 5) == 0


async def test_it_exits_non_zero_when_the_token_is_revoked_mid_session(plane, caplog):
    tunnel = make_tunnel(plane.url)
    task = asyncio.create_task(tunnel.run())
    await asyncio.wait_for(tunnel.connected.wait(), 5)
    await plane.connections[0].close(p.CLOSE_TOKEN_REVOKED, "token revoked")
    assert await asyncio.wait_for(task, 5) == EXIT_TOKEN_REJECTED
    assert "revoked the agent token" in caplog.text


class RecordedJitter(random.Random):
    """The tunnel's real jitter source, remembering each draw: when, the ceiling asked for, the delay slept."""

    def __init__(self) -> None:
        super().__init__(7)
        self.draws: list[tuple[float, float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        delay = super().uniform(a, b)
        self.draws.append((time.monotonic(), b, delay))
        return delay


def assert_jittered(draws: list[tuple[float, float, float]], ceilings: list[float]) -> None:
    assert [ceiling for _, ceiling, _ in draws] == pytest.approx(ceilings)
    assert all(0 <= delay <= ceiling for _, ceiling, delay in draws)


async def test_its_delays_grow_to_the_cap_and_stay_there_while_the_plane_is_down(plane):
    jitter = RecordedJitter()
    tunnel = make_tunnel(plane.url)  # base 0.05 s, cap 0.2 s
    tunnel.backoff.rng = jitter
    task = asyncio.create_task(tunnel.run())
    await asyncio.wait_for(tunnel.connected.wait(), 5)
    assert jitter.draws == []  # the first connection does not wait
    await plane.stop()
    await wait_for(lambda: len(jitter.draws) >= 7)
    tunnel.stop()
    assert await asyncio.wait_for(task, 5) == 0
    assert_jittered(jitter.draws[:7], [0.05, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2])
    # Each delay is slept, not only drawn: the next attempt (and its draw) comes no sooner.
    for (drawn_at, _, delay), (next_drawn_at, _, _) in itertools.pairwise(jitter.draws[:7]):
        assert next_drawn_at - drawn_at >= delay


async def test_it_backs_off_to_the_cap_when_replaced(plane):
    jitter = RecordedJitter()
    tunnel = make_tunnel(plane.url)
    tunnel.backoff.rng = jitter
    task = asyncio.create_task(tunnel.run())
    await asyncio.wait_for(tunnel.connected.wait(), 5)
    await plane.connections[0].close(p.CLOSE_REPLACED, "replaced")
    await wait_for(lambda: len(plane.connections) == 2)  # it does come back, after one wait drawn up to the cap
    assert_jittered(jitter.draws, [0.2])  # not the base: a replaced agent does not race the one that replaced it
    drawn_at, _, delay = jitter.draws[0]
    assert time.monotonic() - drawn_at >= delay
    # Connected again, the backoff starts over from the base on the next drop.
    await plane.connections[1].close(1001, "going away")
    await wait_for(lambda: len(jitter.draws) == 2)
    assert_jittered(jitter.draws, [0.2, 0.05])
    tunnel.stop()
    assert await asyncio.wait_for(task, 5) == 0


async def test_it_detects_a_silent_peer_and_reconnects(plane):
    plane.answer_pings = False
    tunnel = make_tunnel(plane.url)
    task = asyncio.create_task(tunnel.run())
    await asyncio.wait_for(tunnel.connected.wait(), 5)
    first = plane.connections[0]
    # A half-open socket: the peer's TCP stays up but nothing arrives. Pause reading on the server side
    # so not even WebSocket-level pongs come back.
    first.transport.pause_reading()
    plane.answer_pings = True
    # Heartbeat 0.3 s: dead after 0.9 s, so a new connection must appear well within 3 s.
    await wait_for(lambda: len(plane.hellos) >= 2, timeout=3)
    first.transport.abort()
    tunnel.stop()
    await asyncio.wait_for(task, 5)


async def test_it_answers_pings_from_the_control_plane(plane):
    tunnel = make_tunnel(plane.url)
    task = asyncio.create_task(tunnel.run())
    await asyncio.wait_for(tunnel.connected.wait(), 5)
    await plane.connections[0].send(p.encode({"type": "ping", "t": 1}))
    _, pong = await plane.next_message("pong")
    assert pong["t"] == 1
    tunnel.stop()
    await asyncio.wait_for(task, 5)


async def test_it_streams_with_flow_control(plane):
    tunnel = make_tunnel(plane.url)
    task = asyncio.create_task(tunnel.run())
    await asyncio.wait_for(tunnel.connected.wait(), 5)
    ws = plane.connections[0]
    window = 1024
    await ws.send(p.encode({"type": "stream.open", "id": 7, "op": "echo", "payload": {}, "window": window}))
    payload = bytes(random.Random(1).randbytes(5000))
    await ws.send(p.pack_data(7, payload))
    received = b""
    while len(received) < window:  # the agent may send no more than our window before we grant credit
        _, frame = await plane.next_message("binary")
        sid, data = p.unpack_data(frame)
        assert sid == 7
        received += data
    assert len(received) == window
    with pytest.raises(TimeoutError):
        await plane.next_message("binary", timeout=0.3)
    await ws.send(p.encode({"type": "stream.credit", "id": 7, "bytes": 10_000}))
    while len(received) < len(payload):
        _, frame = await plane.next_message("binary")
        received += p.unpack_data(frame)[1]
    assert received == payload
    await ws.send(p.encode({"type": "stream.close", "id": 7}))
    await wait_for(lambda: 7 not in tunnel.streams)
    unknown = {"type": "stream.open", "id": 8, "op": "nope", "payload": {}, "window": window}
    await ws.send(p.encode(unknown))
    _, closed = await plane.next_message("stream.close")
    assert closed["id"] == 8 and "unsupported" in closed["reason"]
    tunnel.stop()
    await asyncio.wait_for(task, 5)


def test_backoff_is_exponential_with_full_jitter_and_capped():
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(42))
    ceilings = [1, 2, 4, 8, 8, 8]
    for ceiling in ceilings:
        delay = backoff.next()
        assert 0 <= delay <= ceiling
    samples = [Backoff(base=1.0, cap=8.0, attempt=10, rng=random.Random(i)).next() for i in range(200)]
    assert max(samples) <= 8.0 and min(samples) < 1.0  # full jitter: anywhere from 0 to the cap
    backoff.reset()
    assert backoff.next() <= 1.0


def test_binary_frames_carry_the_stream_id():
    assert p.unpack_data(p.pack_data(513, b"hi")) == (513, b"hi")
    with pytest.raises(ValueError):
        p.unpack_data(b"\x00")
