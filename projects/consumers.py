"""Live logs of a service or of a whole project, pushed to the browser's log view."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404

from paas.realtime import AccessCheckedConsumer
from projects import logs
from projects.access import get_project_for_user, get_service_for_user
from projects.models import Project

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
