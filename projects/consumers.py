"""The browser terminal's socket: xterm.js on one end, a shell in the service's container (projects.terminal).

Browser -> server: binary frames are keystrokes; text frames are JSON {"type": "resize", "cols", "rows"}.
Server -> browser: binary frames are the terminal's output; text frames are JSON events:
  {"type": "ready", "pod", "container"}, {"type": "exit", "exit_code", "message"},
  {"type": "idle", "message"}, {"type": "error", "message"} (each of the last three ends the session).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404

from audit.services import ip_from_scope
from paas.realtime import AccessCheckedConsumer
from projects.access import get_service_for_user
from projects.terminal import ShellRefused, ShellSession, open_shell


def _size(query: dict[str, list[str]], key: str, default: int) -> int:
    value = (query.get(key) or [""])[0]
    return max(1, min(int(value), 1000)) if value.isdigit() else default


class TerminalConsumer(AccessCheckedConsumer):
    """Outsiders and viewers are refused before the socket opens; a user who loses the deploy role (or the
    membership, or the account) while a session is open has it closed at once with CLOSE_NO_ACCESS."""

    session: ShellSession | None = None
    tasks: list[asyncio.Task]

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
        kwargs = self.scope["url_route"]["kwargs"]
        query = parse_qs(self.scope.get("query_string", b"").decode())
        try:
            self.session = await open_shell(
                self.scope["user"], kwargs["org_slug"], kwargs["project_slug"], kwargs["name"],
                pod=(query.get("pod") or [None])[0] or None, container=(query.get("container") or [None])[0] or None,
                cols=_size(query, "cols", 80), rows=_size(query, "rows", 24), client_ip=ip_from_scope(self.scope),
                channel="terminal")
        except ShellRefused as exc:
            await self._event(type="error", message=exc.message)
            await self.close(code=4000)
            return
        self.last_activity = time.monotonic()
        await self._event(type="ready", pod=self.session.pod, container=self.session.container)
        self.tasks = [asyncio.create_task(self._forward()), asyncio.create_task(self._watch_idle())]

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

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        for task in self.tasks:
            task.cancel()
        if self.session is not None:
            await self.session.close()

    async def _forward(self) -> None:
        session = self.session
        async for _channel, data in session:  # with a TTY, stderr is already merged into stdout
            self.last_activity = time.monotonic()
            await self.send(bytes_data=data)
        await self._event(type="exit", exit_code=session.exit_code, message=session.message)
        await self._end()

    async def _watch_idle(self) -> None:
        timeout = settings.TERMINAL_IDLE_TIMEOUT
        while (left := self.last_activity + timeout - time.monotonic()) > 0:
            await asyncio.sleep(left)
        minutes = f"{timeout // 60} minutes" if timeout % 60 == 0 else f"{timeout} seconds"
        await self._event(type="idle", message=f"Session closed after {minutes} without activity.")
        self.tasks[0].cancel()
        await self._end()

    async def _end(self) -> None:
        if self.session is not None:
            await self.session.close()
        await self.close(code=1000)

    async def _event(self, **event: Any) -> None:
        await self.send(text_data=json.dumps(event))
