"""A project's browser sockets: live logs (LogConsumer), the terminal (TerminalConsumer) and one command
(ExecConsumer, for the CLI).

Terminal, browser -> server: binary frames are keystrokes; text frames are JSON {"type": "resize", "cols", "rows"}.
Terminal, server -> browser: binary frames are the terminal's output; text frames are JSON events:
  {"type": "waking", "message"} (a sleeping service is being woken first), {"type": "ready", "pod", "container"},
  {"type": "exit", "exit_code", "message"},
  {"type": "idle", "message"}, {"type": "error", "message"} (each of the last three ends the session).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404

from audit.services import ip_from_scope
from lib.realtime import AccessCheckedConsumer
from projects import logs
from projects.access import get_project_for_user, get_service_for_user
from projects.models import Project
from projects.terminal import ShellRefused, ShellSession, open_shell

# Bytes sent to the browser and not yet acknowledged. At the limit the consumer stops reading from the agent,
# whose stream then runs out of credit: the agent drops lines and sends a "skipped" marker, so a slow browser
# costs daphne at most this much (plus the agent stream's window), never an unbounded buffer.
BROWSER_WINDOW = 1024 * 1024


class LogConsumer(AccessCheckedConsumer):
    """Browser -> server: {"type": "start", "follow", "tail", "resume"}, {"type": "stop"}, {"type": "ack", "seq"}.
    Server -> browser: {"type": "lines", "seq"} followed, after a newline, by the agent's NDJSON frames (see
    agent/logs.py); {"type": "end"}; {"type": "error", "message", "retry"}."""

    project: Project
    service: str | None

    async def connect(self) -> None:
        self.pump: asyncio.Task | None = None
        self.seq = 0
        self.in_flight: deque[tuple[int, int]] = deque()  # (seq, bytes) not yet acknowledged
        self.acked = asyncio.Event()
        await super().connect()  # closes the socket (4403) unless authorize() lets the user in

    def authorize(self) -> list[str] | None:
        """Viewers may read logs; anyone else gets the same refusal for a foreign and a missing project.
        Runs again whenever the user's access changes: losing it closes the socket and so the agent stream."""
        kwargs = self.scope["url_route"]["kwargs"]
        user = self.scope["user"]
        try:
            if "service" in kwargs:
                service, _ = get_service_for_user(user, kwargs["org_slug"], kwargs["project_slug"], kwargs["service"])
                self.project, self.service = service.project, service.name
            else:
                self.project, _ = get_project_for_user(user, kwargs["org_slug"], kwargs["project_slug"])
                self.service = None
            self.project.cluster  # noqa: B018 (loaded here: the pump runs outside the database thread)
        except (Http404, PermissionDenied):
            return None
        return []  # no groups: the lines come from the agent stream this socket opens

    async def disconnect(self, code: int) -> None:
        await self._stop()
        await super().disconnect(code)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ack":
            self._ack(content.get("seq"))
        elif kind == "start":
            try:
                options = logs.LogOptions.parse({**content, "service": self.service})
            except ValueError as exc:
                await self.send_json({"type": "error", "message": str(exc)})
                return
            await self._stop()
            self.pump = asyncio.create_task(self._pump(options))
        elif kind == "stop":
            await self._stop()
        else:
            await self.send_json({"type": "error", "message": "unknown message type"})

    def _ack(self, seq: Any) -> None:
        if not isinstance(seq, int):
            return
        while self.in_flight and self.in_flight[0][0] <= seq:
            self.in_flight.popleft()
        self.acked.set()

    def _unacked_bytes(self) -> int:
        return sum(size for _, size in self.in_flight)

    async def _stop(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.pump
            self.pump = None
        self.in_flight.clear()

    async def _pump(self, options: logs.LogOptions) -> None:
        try:
            async with logs.open_logs(self.project, options) as lines:
                while True:
                    while self._unacked_bytes() >= BROWSER_WINDOW:
                        self.acked.clear()
                        await self.acked.wait()
                    chunk = await lines.next_chunk()
                    if chunk is None:
                        break
                    if chunk:
                        # The agent's NDJSON goes out as it came, after a one-line header: daphne parses nothing.
                        self.seq += 1
                        text = json.dumps({"type": "lines", "seq": self.seq}) + "\n" + chunk.decode()
                        self.in_flight.append((self.seq, len(text)))
                        await self.send(text_data=text)
            await self.send_json({"type": "end"})
        except logs.LogsUnavailable as exc:
            await self.send_json({"type": "error", "message": str(exc), "retry": exc.retry})
        except TimeoutError:
            await self.send_json({"type": "error", "message": "the cluster's agent stopped sending logs",
                                  "retry": True})


def _size(query: dict[str, list[str]], key: str, default: int) -> int:
    value = (query.get(key) or [""])[0]
    return max(1, min(int(value), 1000)) if value.isdigit() else default


class TerminalConsumer(AccessCheckedConsumer):
    """Outsiders and viewers are refused before the socket opens; a user who loses the deploy role (or the
    membership, or the account) while a session is open has it closed at once with CLOSE_NO_ACCESS."""

    session: ShellSession | None = None
    tasks: list[asyncio.Task]
    forwarding: asyncio.Task | None = None

    def authorize(self) -> list[str] | None:
        kwargs = self.scope["url_route"]["kwargs"]
        try:
            get_service_for_user(self.scope["user"], kwargs["org_slug"], kwargs["project_slug"], kwargs["name"],
                                 permission="deploy")
        except (Http404, PermissionDenied):
            return None
        return []

    async def connect(self) -> None:
        self.tasks = []
        await super().connect()
        if not getattr(self, "joined", None):
            return  # refused
        # Opening may first wake a sleeping service (up to its blocking timeout): a task, so that the socket's
        # own messages (a close, an access change) are handled meanwhile.
        self.tasks = [asyncio.create_task(self._open())]

    async def _open(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        query = parse_qs(self.scope.get("query_string", b"").decode())
        try:
            self.session = await open_shell(
                self.scope["user"], kwargs["org_slug"], kwargs["project_slug"], kwargs["name"],
                pod=(query.get("pod") or [None])[0] or None, container=(query.get("container") or [None])[0] or None,
                cols=_size(query, "cols", 80), rows=_size(query, "rows", 24), client_ip=ip_from_scope(self.scope),
                channel="terminal", progress=lambda message: self._event(type="waking", message=message),
                **self.process(query))
        except ShellRefused as exc:
            await self._event(type="error", message=exc.message)
            await self.close(code=4000)
            return
        self.last_activity = time.monotonic()
        await self._event(type="ready", pod=self.session.pod, container=self.session.container)
        self.forwarding = asyncio.create_task(self._forward())
        self.tasks += [self.forwarding, asyncio.create_task(self._watch_idle())]

    def process(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """What runs: an interactive shell in a TTY (ExecConsumer runs a command)."""
        return {}

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session is None or self.session.ended:
            return
        self.last_activity = time.monotonic()
        # A malformed control frame is ignored: it must not end the shell.
        with contextlib.suppress(ConnectionError, ValueError, KeyError, TypeError, AttributeError):
            if bytes_data:
                await self.session.send(bytes_data)
            elif text_data:
                message = json.loads(text_data)
                if message.get("type") == "resize":
                    await self.session.resize(int(message["cols"]), int(message["rows"]))
                elif message.get("type") == "eof":
                    await self.session.eof()

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        for task in self.tasks:
            task.cancel()
        if self.session is not None:
            await self.session.close()

    async def _forward(self) -> None:
        session = self.session
        async for channel, data in session:  # with a TTY, stderr is already merged into stdout
            self.last_activity = time.monotonic()
            await self.send(bytes_data=self.output(channel, data))
        await self._event(type="exit", exit_code=session.exit_code, message=session.message)
        await self._end()

    def output(self, channel: int, data: bytes) -> bytes:
        return data  # xterm.js shows one stream

    async def _watch_idle(self) -> None:
        timeout = settings.TERMINAL_IDLE_TIMEOUT
        while (left := self.last_activity + timeout - time.monotonic()) > 0:
            await asyncio.sleep(left)
        minutes = f"{timeout // 60} minutes" if timeout % 60 == 0 else f"{timeout} seconds"
        await self._event(type="idle", message=f"Session closed after {minutes} without activity.")
        if self.forwarding is not None:
            self.forwarding.cancel()
        await self._end()

    async def _end(self) -> None:
        if self.session is not None:
            await self.session.close()
        await self.close(code=1000)

    async def _event(self, **event: Any) -> None:
        await self.send(text_data=json.dumps(event))


class ExecConsumer(TerminalConsumer):
    """One command in a service's container, for `paas exec` and scripts: the terminal's access, audit and idle
    timeout, with the command as repeated `?cmd=` arguments (argv, no shell) and `tty=1` for a TTY.
    Server -> client binary frames carry a channel byte first (agent.protocol EXEC_STDOUT 1, EXEC_STDERR 2);
    client -> server binary frames are stdin, and the text frame {"type": "eof"} closes it."""

    def process(self, query: dict[str, list[str]]) -> dict[str, Any]:
        command = query.get("cmd") or None  # none: the shell, as in the terminal
        return {"command": command, "tty": (query.get("tty") or ["0"])[0] == "1"}

    def output(self, channel: int, data: bytes) -> bytes:
        return bytes([channel]) + data
