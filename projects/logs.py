"""Logs of a project's services, read through the cluster's agent (its `logs` stream operation).

Callers reach the project through projects.access first; this module only builds the request the agent
checks again (namespace and labels of that project) and turns the agent's NDJSON frames into dicts:

    async with open_logs(project, service="web", follow=True, tail=100) as lines:
        async for frame in lines: ...        # {"pod", "container", "ts", "line"} | {"skipped": N} | {"notice"}
                                             # | {"last_run": {service, pod, stopped_at}, "notice"}, then lines
                                             #   with "last_run": true (a service with no pod: kept lines)

    last_lines(project, "web", tail=500)     # sync callers (REST download): the frames, then the stream ends
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from agent import protocol
from clusters import rpc
from projects.models import Project

MAX_TAIL = 10_000  # the most lines a download or a first screen asks for
MAX_FRAME = 64 * 1024  # the agent cuts lines at 16 KiB; a longer partial frame is garbage, not a reason to grow
SLEEPING = ("sleeping", "waking")  # Service.status of a sleeping-enabled service Sablier holds at zero


class LogsUnavailable(Exception):
    """The logs cannot be read (the cluster's agent is offline or went away, or refused the request); says why.
    `retry`: worth asking again shortly (the agent was away), as opposed to a refusal."""

    def __init__(self, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass
class LogOptions:
    service: str | None = None
    pod: str | None = None
    container: str | None = None
    follow: bool = False
    tail: int | None = 100
    since_seconds: int | None = None
    previous: bool = False
    # "pod/container" -> [RFC3339Nano ts, lines already shown with exactly that ts]: resume without duplicates.
    resume: dict[str, list[Any]] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: dict[str, Any]) -> LogOptions:
        """From a browser or API request; raises ValueError naming the bad field."""
        def optional_int(key: str, low: int, high: int) -> int | None:
            value = data.get(key)
            if value in (None, ""):
                return None
            try:
                number = int(value)
            except (TypeError, ValueError):
                raise ValueError(f"{key} must be a whole number") from None
            if not low <= number <= high:
                raise ValueError(f"{key} must be between {low} and {high}")
            return number

        def optional_str(key: str) -> str | None:
            value = data.get(key)
            if value in (None, ""):
                return None
            if not isinstance(value, str) or len(value) > 253:
                raise ValueError(f"{key} must be a name")
            return value

        resume = data.get("resume") or {}
        if not isinstance(resume, dict) or len(resume) > 1000 or not all(
                isinstance(k, str) and isinstance(v, list) and len(v) == 2 and isinstance(v[0], str)
                and isinstance(v[1], int) and not isinstance(v[1], bool) for k, v in resume.items()):
            raise ValueError("resume must map pod/container to [timestamp, count]")
        return cls(service=optional_str("service"), pod=optional_str("pod"), container=optional_str("container"),
                   follow=data.get("follow") in (True, "1", "true", "on"), tail=optional_int("tail", 0, MAX_TAIL),
                   since_seconds=optional_int("since_seconds", 1, 30 * 86400),
                   previous=data.get("previous") in (True, "1", "true", "on"), resume=resume)


def stream_payload(project: Project, options: LogOptions) -> dict[str, Any]:
    """What the agent needs: the project's namespace and labels (it checks the pods carry them) and the options."""
    return {"namespace": project.namespace, "labels": project.labels, "service": options.service,
            "pod": options.pod, "container": options.container, "follow": options.follow, "tail": options.tail,
            "since_seconds": options.since_seconds, "previous": options.previous, "timestamps": True,
            "resume": options.resume}


class LogLines:
    """The frames of one agent `logs` stream. Reading is what grants the agent credit: stop reading and the
    agent drops lines (and later says how many), so nothing here or in Redis grows without bound."""

    def __init__(self, stream: rpc.AgentStream) -> None:
        self.stream = stream
        self._pending = b""
        self._frames: list[dict[str, Any]] = []

    async def next_chunk(self, timeout: float = 3600.0) -> bytes | None:
        """The complete NDJSON lines of the next chunk the agent sent (maybe b""), or None once the stream ended."""
        chunk = await self.stream.recv(timeout=timeout)
        if chunk is None:
            reason = self.stream.close_reason
            if reason.startswith(("forbidden", "bad request", "failed")):
                raise LogsUnavailable(reason)
            if reason:  # the agent disconnected or shut down mid-stream
                raise LogsUnavailable(f"the cluster's agent went away ({reason})", retry=True)
            return None
        data = self._pending + chunk
        cut = data.rfind(b"\n") + 1
        complete, self._pending = data[:cut], data[cut:]
        if len(self._pending) > MAX_FRAME:
            self._pending = b""
        return complete

    async def next_batch(self, timeout: float = 3600.0) -> list[dict[str, Any]] | None:
        """next_chunk() as dicts, or None once the stream ended."""
        chunk = await self.next_chunk(timeout)
        return None if chunk is None else [json.loads(line) for line in chunk.splitlines() if line]

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while (batch := await self.next_batch()) is not None:
            for frame in batch:
                yield frame

    async def close(self) -> None:
        await self.stream.close()


@asynccontextmanager
async def open_logs(project: Project, options: LogOptions) -> AsyncIterator[LogLines]:
    try:
        stream = await rpc.open_stream(project.cluster_id, protocol.STREAM_LOGS, stream_payload(project, options))
    except rpc.RPCError as exc:
        raise LogsUnavailable(f"the cluster {project.cluster.name} cannot be reached: {exc}", retry=True) from None
    lines = LogLines(stream)
    try:
        yield lines
    finally:
        await lines.close()


async def collect(project: Project, options: LogOptions, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every frame of a stream that ends by itself (no follow), in arrival order."""
    options.follow = False
    frames: list[dict[str, Any]] = []
    async with open_logs(project, options) as lines:
        while (batch := await lines.next_batch(timeout=timeout)) is not None:
            frames += batch
    return frames


def last_lines(project: Project, options: LogOptions, timeout: float = 30.0) -> list[dict[str, Any]]:
    """collect() for sync callers (views, the CLI)."""
    try:
        return rpc.run_sync(collect(project, options, timeout), timeout + 10)
    except rpc.RPCError as exc:
        raise LogsUnavailable(f"the cluster {project.cluster.name} cannot be reached: {exc}") from None
    except TimeoutError:
        raise LogsUnavailable("the cluster's agent sent no logs in time") from None


def sleeping_services(project: Project) -> list[str]:
    """Services Sablier holds at zero: their kept last lines are introduced as a sleeping service's."""
    return list(project.services.filter(status__in=SLEEPING).values_list("name", flat=True))


def last_run_notice(run: dict[str, Any], sleeping: list[str]) -> str:
    """How a service's kept lines are introduced (the browser's log view words it the same way)."""
    state = "is sleeping" if run.get("service") in sleeping else "has no running pod"
    return (f"service {run.get('service')} {state} — last lines from pod {run.get('pod')}, "
            f"stopped at {run.get('stopped_at')}")


def as_text(frames: list[dict[str, Any]], sleeping: list[str] | None = None) -> str:
    """Plain text for a download: `ts pod/container line`, markers in brackets."""
    out = []
    for frame in frames:
        if "line" in frame:
            out.append(f"{frame.get('ts', '')} {frame['pod']}/{frame['container']} {frame['line']}".lstrip())
        elif "skipped" in frame:
            out.append(f"[{frame['skipped']} lines skipped]")
        elif "last_run" in frame:
            out.append(f"[{last_run_notice(frame['last_run'], sleeping or [])}]")
        elif "notice" in frame:
            out.append(f"[{frame.get('pod') or 'logs'}: {frame['notice']}]")
    return "\n".join(out) + ("\n" if out else "")
