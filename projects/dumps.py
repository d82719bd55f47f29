"""Owners' logical dumps and restores of their project's database, through the cluster's agent (agent.dumps).

A dump is pg_dump's custom format (`pg_dump --format=custom`), streamed from the agent's `db_dump` stream to the
HTTP response a chunk at a time: the tunnel's credit reaches back to pg_dump, so a slow download slows pg_dump
instead of filling memory. A restore streams an uploaded file (Django keeps an upload above 2.5 MB in a
temporary file, not in memory) into pg_restore --clean --if-exists --no-owner --single-transaction on the
agent's `db_restore` stream: a restore that fails changes nothing, and pg_restore's messages say why.

Both run with the project's own database credentials in a Job in the project's namespace (never the superuser),
are audited (names only) and publish their progress to the organization's browsers ("database.transfer").
Who may: DUMP_PERMISSION (owners and admins), reached through projects.access.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.http import StreamingHttpResponse

from accounts.models import User
from agent import protocol as p
from audit import services as audit
from clusters import rpc
from lib.realtime import apublish, org_group
from projects.models import Project

# Owners and admins: whoever may delete the project (and its data) may take its data out and put it back.
DUMP_PERMISSION = "manage_organization"
START_TIMEOUT = 300.0  # seconds until pg_dump's first byte: the Job's pod is scheduled and pulls its image
CHUNK_TIMEOUT = 300.0  # seconds pg_dump / pg_restore may stay silent (a large table, a slow index build)
FRAME = 32 * 1024  # upload bytes per tunnel frame: well under half the agent's window, so never split
MESSAGES_LIMIT = 64 * 1024  # pg_restore's messages kept for the user (the last ones)
PROGRESS_INTERVAL = 0.5  # seconds between progress events
EVENT = "database.transfer"


class DumpError(Exception):
    """Nothing was dumped or restored; `message` says why, `status` is the HTTP status that fits."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass
class RestoreResult:
    ok: bool
    bytes: int
    exit_code: int
    messages: str = ""  # pg_restore's errors and warnings, as it printed them


@dataclass
class _Progress:
    project: Project
    kind: str  # "dump" or "restore"
    total: int | None = None
    done: int = 0
    _last: float = field(default=0.0)

    async def publish(self, state: str, force: bool = False, **extra: Any) -> None:
        now = time.monotonic()
        if not force and now - self._last < PROGRESS_INTERVAL:
            return
        self._last = now
        await apublish(org_group(self.project.organization_id), EVENT, {
            "project": self.project.slug, "kind": self.kind, "state": state, "bytes": self.done,
            "total": self.total, **extra})


def filename(project: Project) -> str:
    return f"{project.organization.slug}-{project.slug}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.dump"


def _payload(project: Project) -> dict[str, Any]:
    if not project.wants_database:
        raise DumpError("This project has no database.", 404)
    return {"namespace": project.namespace, "labels": project.labels}


async def _open(project: Project, op: str) -> rpc.AgentStream:
    payload = _payload(project)
    try:
        return await rpc.open_stream(project.cluster_id, op, payload)
    except (rpc.AgentOffline, rpc.AgentTimeout) as exc:
        raise DumpError(f"The cluster's agent is not reachable right now ({exc}); try again later.", 503) from None


def _refusal(stream: rpc.AgentStream) -> DumpError:
    reason = stream.close_reason or "the agent ended the stream"
    if reason.startswith("no database"):
        return DumpError("The database is not provisioned yet: deploy the project once first.", 409)
    return DumpError(f"The agent could not start it: {reason}", 502)


def _record(action: audit.Action, project: Project, actor: User, details: dict[str, Any]) -> None:
    audit.record(action, actor=actor, organization=project.organization, target=project,
                 details={"project": project.slug, "database": "postgres", **details})


async def start_dump(project: Project, actor: User) -> AsyncIterator[bytes]:
    """Open the dump and wait for its first bytes; then the rest, a chunk at a time, from the returned iterator.

    Raises DumpError when nothing can be dumped (no database, agent offline, pg_dump failed at once), so the
    caller can answer with an error instead of a truncated file.
    """
    stream = await _open(project, p.STREAM_DB_DUMP)
    progress = _Progress(project, "dump")
    await progress.publish("starting", force=True)
    try:
        first, status = await _next_output(stream, START_TIMEOUT)
    except TimeoutError:
        await stream.close()
        await progress.publish("failed", force=True, error="no answer from the agent")
        raise DumpError(f"The dump did not start within {START_TIMEOUT:g} s; try again later.", 504) from None
    except BaseException:
        await stream.close()
        raise
    if first is None:
        await stream.close()
        error = _failure(status) if status else _refusal(stream)
        await progress.publish("failed", force=True, error=error.message)
        raise error
    await database_sync_to_async(_record)(audit.Action.DATABASE_DUMPED, project, actor, {"format": "custom"})
    return _rest(stream, first, progress)


async def _next_output(stream: rpc.AgentStream, timeout: float) -> tuple[bytes | None, dict[str, Any] | None]:
    """The next stdout bytes; (None, status) once pg_dump exited, (None, None) when the stream closed."""
    errors = b""
    while True:
        frame = await stream.recv(timeout=timeout)
        if frame is None:
            return None, None
        channel, data = frame[:1], frame[1:]
        if channel == bytes([p.EXEC_STDOUT]) and data:
            return data, None
        if channel == bytes([p.EXEC_STDERR]):
            errors = (errors + data)[-MESSAGES_LIMIT:]
        elif channel == bytes([p.EXEC_STATUS]):
            status = json.loads(data)
            return None, {**status, "stderr": errors.decode(errors="replace")}


def _failure(status: dict[str, Any]) -> DumpError:
    if status.get("exit_code") == 0:
        return DumpError("pg_dump produced no output.", 502)
    said = (status.get("stderr") or status.get("message") or "").strip()
    return DumpError(f"pg_dump failed: {said}", 502)


async def _rest(stream: rpc.AgentStream, first: bytes, progress: _Progress) -> AsyncIterator[bytes]:
    progress.done = len(first)
    outcome = "failed"
    error = "the download was interrupted"
    try:
        yield first
        while True:
            await progress.publish("running")
            try:
                data, status = await _next_output(stream, CHUNK_TIMEOUT)
            except TimeoutError:
                error = f"pg_dump sent nothing for {CHUNK_TIMEOUT:g} s"
                return
            if data is None:
                if status is not None and status.get("exit_code") == 0:
                    outcome = "done"
                elif status is not None:
                    error = _failure(status).message
                else:
                    error = stream.close_reason or error
                return  # a failed dump ends the download early: the file is short, and the page says why
            progress.done += len(data)
            yield data
    finally:
        await stream.close()
        await progress.publish(outcome, force=True, **({"error": error} if outcome == "failed" else {}))


async def restore(project: Project, actor: User, chunks: Iterator[bytes], size: int) -> RestoreResult:
    """Feed an uploaded dump to pg_restore, a frame at a time with the agent's flow control, and wait for its end.

    `size` is the upload's size (already checked against DATABASE_RESTORE_MAX_BYTES by `check_upload`).
    """
    stream = await _open(project, p.STREAM_DB_RESTORE)
    progress = _Progress(project, "restore", total=size)
    await progress.publish("starting", force=True)
    messages = b""
    try:
        try:
            while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:  # a file read: off the loop
                for start in range(0, len(chunk), FRAME - 1):
                    await stream.send_frame(bytes([p.EXEC_STDIN]) + chunk[start:start + FRAME - 1],
                                            timeout=START_TIMEOUT if progress.done == 0 else CHUNK_TIMEOUT)
                    progress.done += min(FRAME - 1, len(chunk) - start)
                    await progress.publish("running")
            await stream.send_frame(bytes([p.EXEC_STDIN_EOF]), timeout=CHUNK_TIMEOUT)
        except ConnectionError:
            pass  # pg_restore stopped reading (it gave up): its status says why
        status = None
        while status is None:
            frame = await stream.recv(timeout=CHUNK_TIMEOUT)
            if frame is None:
                break
            if frame[:1] == bytes([p.EXEC_STATUS]):
                status = json.loads(frame[1:])
            elif frame[:1] == bytes([p.EXEC_STDERR]):
                messages = (messages + frame[1:])[-MESSAGES_LIMIT:]
    except TimeoutError:
        await progress.publish("failed", force=True, error="the agent stopped answering")
        raise DumpError("The agent stopped answering during the restore; it may still be running.", 504) from None
    finally:
        await stream.close()
    if status is None:
        error = _refusal(stream)
        await progress.publish("failed", force=True, error=error.message)
        raise error
    text = messages.decode(errors="replace").strip()
    result = RestoreResult(ok=status.get("exit_code") == 0, bytes=progress.done,
                           exit_code=int(status.get("exit_code", 1)), messages=text or status.get("message", ""))
    await database_sync_to_async(_record)(audit.Action.DATABASE_RESTORED, project, actor,
                                          {"bytes": result.bytes, "ok": result.ok})
    await progress.publish("done" if result.ok else "failed", force=True,
                           **({} if result.ok else {"error": result.messages[-2000:]}))
    return result


def download_response(project: Project, chunks: AsyncIterator[bytes]) -> StreamingHttpResponse:
    """The HTTP answer streaming the dump (served chunk by chunk by daphne: the iterator is asynchronous)."""
    response = StreamingHttpResponse(chunks, content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{filename(project)}"'
    response["Cache-Control"] = "no-store"
    return response


def check_upload(size: int | None) -> None:
    """Refuse an upload that is missing, empty or larger than DATABASE_RESTORE_MAX_BYTES before anything runs."""
    if not size:
        raise DumpError("Choose a dump file (made by pg_dump --format=custom) to restore.", 400)
    limit = settings.DATABASE_RESTORE_MAX_BYTES
    if size > limit:
        raise DumpError(f"The file is {size} bytes; restores take at most {limit} bytes "
                        "(DATABASE_RESTORE_MAX_BYTES).", 413)
