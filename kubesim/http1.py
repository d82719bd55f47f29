"""A lean HTTP/1.1 client with a keep-alive connection pool, for the edge's per-request call to Sablier.

Traefik's Sablier plugin builds its request to Sablier once, when the middleware is loaded, and sends a clone of
it on every request through a Go `http.Client{}` (default transport: pooled keep-alive connections). aiohttp's
client costs about three times the edge's whole no-middleware request in CPU (bench/coldstart_bench.py), so the
edge sends the plugin's prebuilt request bytes over pooled connections here instead: one write, one parse.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web
from multidict import CIMultiDict, MultiDictProxy
from yarl import URL

log = logging.getLogger("kubesim.http1")

MAX_IDLE = 16  # idle connections kept per pool; more concurrent calls open more, as Go's transport does
MAX_HEAD = 64 * 1024


@dataclass
class Reply:
    status: int
    headers: CIMultiDict[str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One connection, one request at a time; parses a response with Content-Length, chunked, or read-to-close."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[Reply] | None = None
        self.closed = False
        self.received = False  # any byte of the current response: a failure after that is not retried
        self._head: tuple[int, CIMultiDict[str]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is None or self.waiter.done():
            return
        if self._head is not None and "content-length" not in self._head[1] and not self._chunked():
            self._finish(len(self.buf))  # the body ends with the connection
        else:
            self.waiter.set_exception(ConnectionResetError("Sablier closed the connection before answering"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.received = True
        if self.waiter is None or self.waiter.done():
            return
        try:
            self._parse()
        except ValueError as err:
            self.waiter.set_exception(ConnectionError(f"bad response from Sablier: {err}"))
            self.close()

    def _chunked(self) -> bool:
        return self._head is not None and "chunked" in self._head[1].get("transfer-encoding", "").lower()

    def _parse(self) -> None:
        if self._head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    raise ValueError("response head too long")
                return
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            del self.buf[:end + 4]
            version, status, *_ = lines[0].split(" ", 2)
            if not version.startswith("HTTP/1."):
                raise ValueError(f"not an HTTP/1.x status line: {lines[0]!r}")
            headers: CIMultiDict[str] = CIMultiDict()
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers.add(name.strip(), value.strip())
            self._head = (int(status), headers)
        headers = self._head[1]
        if "content-length" in headers:
            if len(self.buf) >= int(headers["content-length"]):
                self._finish(int(headers["content-length"]))
        elif self._chunked():
            self._parse_chunks()

    def _parse_chunks(self) -> None:
        body, pos = bytearray(), 0
        while True:
            eol = self.buf.find(b"\r\n", pos)
            if eol < 0:
                return
            size = int(bytes(self.buf[pos:eol]).split(b";")[0], 16)
            if size == 0:
                end = self.buf.find(b"\r\n\r\n", eol)  # no trailers expected; the last chunk ends with a blank line
                if end < 0:
                    return
                del self.buf[:end + 4]
                self.buf[:0] = body
                self._finish(len(body))
                return
            if len(self.buf) < eol + 2 + size + 2:
                return
            body += self.buf[eol + 2:eol + 2 + size]
            pos = eol + 2 + size + 2

    def _finish(self, length: int) -> None:
        assert self._head is not None and self.waiter is not None
        status, headers = self._head
        body = bytes(self.buf[:length])
        del self.buf[:length]
        self._head = None
        if headers.get("connection", "").lower() == "close" or not (
                "content-length" in headers or "chunked" in headers.get("transfer-encoding", "").lower()):
            self.close()
        if not self.waiter.done():
            self.waiter.set_result(Reply(status, headers, body))

    async def send(self, request: bytes) -> Reply:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.received = False
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Keep-alive connections to one HTTP origin (`http://host:port`)."""

    def __init__(self, origin: str) -> None:
        parts = urlsplit(origin)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// origins are supported, not {origin!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.authority = parts.netloc
        self.idle: list[_Connection] = []

    def request_bytes(self, path_qs: str, headers: dict[str, str]) -> bytes:
        """A GET request, built once and sent as many times as needed (what the plugin's New() prepares)."""
        lines = [f"GET {path_qs} HTTP/1.1", f"Host: {self.authority}",
                 *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _connect(self) -> _Connection:
        _, conn = await asyncio.get_running_loop().create_connection(_Connection, self.host, self.port)
        return conn

    async def send(self, request: bytes) -> Reply:
        """Send on an idle connection (a new one if none); a reused connection the server closed meanwhile is
        retried once on a fresh one, as Go's transport retries an idempotent request."""
        while self.idle:
            conn = self.idle.pop()
            if conn.closed:
                continue
            try:
                return await self._send(conn, request)
            except ConnectionError:
                if conn.received:
                    raise
            break
        return await self._send(await self._connect(), request)

    async def _send(self, conn: _Connection, request: bytes) -> Reply:
        try:
            reply = await conn.send(request)
        except BaseException:  # cancelled or failed mid-response: the connection's state is unknown
            conn.close()
            raise
        if not conn.closed and len(self.idle) < MAX_IDLE:
            self.idle.append(conn)
        elif not conn.closed:
            conn.close()
        return reply

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


# --- server ----------------------------------------------------------------------------------------

@dataclass
class Request:
    """What the Sablier stand-in's handlers read of a request (a subset of aiohttp's web.Request)."""

    method: str
    path: str
    query: MultiDictProxy[str]
    headers: CIMultiDict[str]


Handler = Callable[[Request], Awaitable[web.Response]]


class _ServerConnection(asyncio.Protocol):
    """Serves requests one after the other on one connection (keep-alive unless the client says close)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.busy: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.busy is not None:
            self.busy.cancel()  # the client left: a held (blocking) request stops waiting

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.busy is None:
            self._next()

    def _next(self) -> None:
        assert self.transport is not None
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEAD:
                self._answer(web.Response(status=431, text="request head too long\n"), close=True)
            return
        try:
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            headers: CIMultiDict[str] = CIMultiDict()
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep:
                    raise ValueError(line)
                headers.add(name.strip(), value.strip())
            length = int(headers.get("Content-Length", "0"))
        except ValueError:
            self._answer(web.Response(status=400, text="malformed request\n"), close=True)
            return
        if len(self.buf) < end + 4 + length:
            return  # the body (which no endpoint reads) has not all arrived
        del self.buf[:end + 4 + length]
        close = version != "HTTP/1.1" or headers.get("Connection", "").lower() == "close"
        url = URL(target)
        request = Request(method, url.path, url.query, headers)
        handler = self.server.routes.get(url.path) if method in ("GET", "HEAD") else None
        self.busy = asyncio.get_running_loop().create_task(self._serve(handler, request, close))

    async def _serve(self, handler: Handler | None, request: Request, close: bool) -> None:
        try:
            response = await handler(request) if handler else web.Response(status=404, text="404 page not found\n")
        except Exception:  # noqa: BLE001 - a handler bug answers 500, as a server would, and is logged
            log.exception("http1: %s %s failed", request.method, request.path)
            response = web.Response(status=500, text="internal error\n")
        self.busy = None
        self._answer(response, close=close, head_only=request.method == "HEAD")
        if not close and self.buf:
            self._next()

    def _answer(self, response: web.Response, *, close: bool, head_only: bool = False) -> None:
        assert self.transport is not None
        body = response.body if isinstance(response.body, bytes) else b""
        head = [f"HTTP/1.1 {response.status} {response.reason}", f"Content-Length: {len(body)}",
                *(f"{k}: {v}" for k, v in response.headers.items() if k.lower() != "content-length")]
        if close:
            head.append("Connection: close")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body))
        if close:
            self.transport.close()


class Server:
    """`await Server({path: handler}).start(host, port)` -> base URL; GET/HEAD routes by exact path."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        self.routes = routes
        self.connections: set[_ServerConnection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> str:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self._server = await asyncio.get_running_loop().create_server(lambda: _ServerConnection(self), sock=sock)
        bound = sock.getsockname()[1]
        return f"http://{'[' + host + ']' if ':' in host else host}:{bound}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        if self._server is not None:
            await self._server.wait_closed()
