"""The kubectl proxy (docs/kubectl.md): a raw ASGI application under kubeaccess.PROXY_PREFIX, served by daphne.

`/kube/<project uid>/<Kubernetes API path>` with `Authorization: Bearer <kubectl credential>`. Each request is
authenticated and authorized again (projects.kubeaccess.resolve), checked to stay inside the project's
namespace (agent.protocol.kube_api_path_allowed) and relayed through the cluster's agent as a `kube_api`
stream, which impersonates the member's project ServiceAccount. Plain requests stream their response (a watch
stays open); WebSocket requests (exec, attach, port-forward) relay message by message. A watch or a WebSocket
that is open when the credential is revoked, the member leaves or the role changes is closed within a second: it
re-checks the credential every ACCESS_RECHECK_SECONDS.

Raw ASGI rather than Django or Channels' consumers: a response must stream for as long as a watch lasts, and a
consumer's dispatch loop would not hear the access notice while its handler streams.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async

from agent import protocol as p
from clusters import rpc
from projects import kubeaccess
from projects.kubeaccess import KubeTarget

log = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ACCESS_RECHECK_SECONDS = 1.0  # how often an open watch or WebSocket re-checks its credential and the member's role
RECV_POLL = 30.0  # seconds: a quiet watch is normal, so reads keep waiting past the stream's own timeout
CLOSE_NO_ACCESS = 4403


class Refusal(Exception):
    """A request answered by the proxy itself, with a Kubernetes Status body kubectl can show."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 413: "RequestEntityTooLarge",
            502: "InternalError", 503: "ServiceUnavailable"}


def _status(code: int, message: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
                       "reason": _REASONS.get(code, "InternalError"), "code": code}).encode()


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _split(path: str) -> tuple[str, str]:
    """(project uid, Kubernetes API path) of a proxy URL."""
    uid, _, api_path = path[len(kubeaccess.PROXY_PREFIX):].partition("/")
    return uid, "/" + api_path


async def _authorize(scope: dict[str, Any], method: str) -> tuple[KubeTarget, str]:
    uid, api_path = _split(scope["path"])
    scheme, _, token = _headers(scope).get("authorization", "").partition(" ")
    target = None
    if scheme.lower() == "bearer" and token.strip():
        target = await database_sync_to_async(kubeaccess.resolve)(token.strip(), uid)
    if target is None:
        raise Refusal(401, "Unauthorized: this kubectl credential is unknown, revoked, or not for this project")
    if not p.kube_api_path_allowed(method, api_path, target.namespace):
        raise Refusal(403, f"forbidden: {method} {api_path} is outside this project's namespace {target.namespace}; "
                           "this kubeconfig reaches only that namespace")
    return target, api_path


def _long_lived(query: str, websocket: bool) -> bool:
    options = {part.partition("=")[0]: part.partition("=")[2] for part in query.split("&")}
    return websocket or options.get("watch") in ("true", "1") or options.get("follow") in ("true", "1")


async def _access_lost(target: KubeTarget) -> None:
    """Returns once the target's access is gone: revoked credential, lost membership or project, changed role.

    Checked every ACCESS_RECHECK_SECONDS while the stream is open. (Listening for the user's `access.changed`
    notices on the channel layer instead left a cancelled channel-layer receive hanging in daphne after every
    exec, which held kubectl's session open: polling is bounded and needs nothing to be cancelled cleanly.)"""
    while True:
        await asyncio.sleep(ACCESS_RECHECK_SECONDS)
        if not await database_sync_to_async(kubeaccess.still_valid)(target):
            return


async def _open(target: KubeTarget, payload: dict[str, Any]) -> tuple[rpc.AgentStream, dict[str, Any],
                                                                      p.KubeFrameReader, list[tuple[int, bytes]]]:
    """Open the agent stream and read the response head; also returns frames that came with it."""
    try:
        stream = await rpc.open_stream(target.cluster_id, p.STREAM_KUBE_API, {**target.payload(), **payload})
    except rpc.RPCError:
        raise Refusal(503, "the project's cluster is not connected to the control plane right now") from None
    reader = p.KubeFrameReader()
    while True:
        try:
            data = await stream.recv(timeout=RECV_POLL)
        except TimeoutError:
            continue
        if data is None:
            reason = stream.close_reason or "the cluster's agent ended the request"
            code = 403 if reason.startswith("forbidden") else 400 if reason.startswith("bad request") else 502
            raise Refusal(code, reason)
        frames = reader.feed(data)
        if frames:
            kind, head = frames[0]
            if kind != p.KUBE_HEAD:
                await stream.close()
                raise Refusal(502, "the cluster's agent answered out of order")
            return stream, json.loads(head), reader, frames[1:]


async def _frames(stream: rpc.AgentStream, reader: p.KubeFrameReader):  # type: ignore[no-untyped-def]
    while True:
        try:
            data = await stream.recv(timeout=RECV_POLL)
        except TimeoutError:
            continue
        if data is None:
            return
        for frame in reader.feed(data):
            yield frame


CANCEL_GRACE = 2.0  # seconds the cancelled sides get to wind down before the response is ended anyway


async def _first(*coros: Awaitable[Any]) -> None:
    """Run until the first finishes (the response ended, the client left, access was lost); cancel the rest.

    The rest get a bounded time to finish: a cancelled channel-layer receive may take its time, and the client
    (kubectl waits for the server to close an exec) must not wait for it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        _, pending = await asyncio.wait(tasks, timeout=CANCEL_GRACE)
        if pending:
            log.info("kubectl proxy: %d side(s) still winding down after %ss: %s", len(pending), CANCEL_GRACE,
                     ", ".join(t.get_coro().__name__ for t in pending))


async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await _http(scope, receive, send)
    elif scope["type"] == "websocket":
        await _websocket(scope, receive, send)


async def _respond(send: Send, code: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("the client went away")
        body += message.get("body", b"")
        if len(body) > p.KUBE_MAX_REQUEST_BODY:
            raise Refusal(413, f"the request body is over {p.KUBE_MAX_REQUEST_BODY} bytes")
        if not message.get("more_body"):
            return body


def _request(scope: dict[str, Any], method: str, api_path: str, body: bytes, websocket: bool) -> dict[str, Any]:
    headers = {k: v for k, v in _headers(scope).items() if k in p.KUBE_REQUEST_HEADERS}
    return {"method": method, "path": api_path, "query": scope.get("query_string", b"").decode("latin-1"),
            "headers": headers, "body": base64.b64encode(body).decode(), "websocket": websocket,
            "subprotocols": list(scope.get("subprotocols") or [])}


async def _http(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    method = scope["method"].upper()
    try:
        target, api_path = await _authorize(scope, method)
        body = await _read_body(receive)
        stream, head, reader, early = await _open(target, _request(scope, method, api_path, body, False))
    except Refusal as exc:
        await _respond(send, exc.code, _status(exc.code, exc.message))
        return
    except ConnectionError:
        return
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in head.get("headers", [])
               if k.lower() in p.KUBE_RESPONSE_HEADERS]
    await send({"type": "http.response.start", "status": int(head["status"]), "headers": headers})

    async def pump() -> None:
        for kind, data in early:
            if kind == p.KUBE_BODY:
                await send({"type": "http.response.body", "body": data, "more_body": True})
        async for kind, data in _frames(stream, reader):
            if kind == p.KUBE_BODY:
                await send({"type": "http.response.body", "body": data, "more_body": True})

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    waits = [pump(), client_gone()]
    if _long_lived(scope.get("query_string", b"").decode("latin-1"), False):
        waits.append(_access_lost(target))
    try:
        await _first(*waits)
    finally:
        await stream.close()
        with contextlib.suppress(Exception):  # the client may be gone already
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _websocket(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    try:
        target, api_path = await _authorize(scope, "GET")
        stream, head, reader, early = await _open(target, _request(scope, "GET", api_path, b"", True))
    except Refusal as exc:
        log.info("kubectl websocket refused path=%s code=%s", scope["path"], exc.code)
        await send({"type": "websocket.close", "code": CLOSE_NO_ACCESS})  # before accept: daphne answers 403
        return
    if int(head.get("status", 0)) != 101:
        await stream.close()
        await send({"type": "websocket.close", "code": CLOSE_NO_ACCESS})
        return
    await send({"type": "websocket.accept", "subprotocol": head.get("subprotocol") or None})

    async def to_client() -> None:
        async def deliver(kind: int, data: bytes) -> None:
            if kind == p.KUBE_BINARY:
                await send({"type": "websocket.send", "bytes": data})
            elif kind == p.KUBE_TEXT:
                await send({"type": "websocket.send", "text": data.decode(errors="replace")})

        for kind, data in early:
            await deliver(kind, data)
        async for kind, data in _frames(stream, reader):
            await deliver(kind, data)

    async def to_agent() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await stream.send(p.pack_kube_frame(p.KUBE_BINARY, message["bytes"]))
            elif message.get("text") is not None:
                await stream.send(p.pack_kube_frame(p.KUBE_TEXT, message["text"].encode()))

    lost = False

    async def watch_access() -> None:
        nonlocal lost
        await _access_lost(target)
        lost = True

    try:
        await _first(to_client(), to_agent(), watch_access())
    finally:
        await stream.close()
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": CLOSE_NO_ACCESS if lost else 1000})
