"""A lean HTTP/1.1 client with a keep-alive connection pool, for the edge's per-request call to Sablier.

Traefik's Sablier plugin builds its request to Sablier once, when the middleware is loaded, and sends a clone of
it on every request through a Go `http.Client{}` (default transport: pooled keep-alive connections). aiohttp's
client costs about three times the edge's whole no-middleware request in CPU (bench/coldstart_bench.py), so the
edge sends the plugin's prebuilt request bytes over pooled connections here instead: one write, one parse.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

from multidict import CIMultiDict

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
