"""Shell sessions in a service's container, through the cluster agent's `exec` stream.

The one door for the browser terminal (projects.consumers) and the SSH gateway:

    session = await open_shell(user, "acme", "shop", "web", cols=120, rows=40, channel="terminal")
    await session.send(b"ls\\r")
    async for channel, data in session: ...      # agent.protocol.EXEC_STDOUT / EXEC_STDERR
    session.exit_code                             # once the process ended
    await session.close()                         # always: records the session in the audit log

Only members whose role may deploy get a session; viewers are refused, outsiders get "not found".
Nothing typed or printed is logged or stored: the audit event carries sizes and the exit status only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from channels.db import database_sync_to_async
from django.core.exceptions import PermissionDenied
from django.http import Http404

from accounts.models import User
from agent import protocol as p
from audit.services import Action, record_session
from clusters import rpc
from projects.access import get_service_for_user
from projects.models import Project, Service
from projects.wake import WakeError, wake_service

log = logging.getLogger(__name__)

Channel = Literal["terminal", "ssh"]
Progress = Callable[[str], Awaitable[None]]  # tells the user what the session waits for ("waking web…")
AUDIT_ACTIONS = {"terminal": Action.TERMINAL_SESSION, "ssh": Action.SSH_SESSION}
RECV_POLL = 30.0  # seconds: an idle shell is normal, so recv() keeps waiting past the stream's own timeout
POD_AFTER_WAKE = 15.0  # seconds for the agent's pod list to show the pod Sablier reported ready
KEEP_AWAKE_MAX = 300.0  # seconds between two session refreshes at most


class ShellRefused(Exception):
    """No session: the message says why, for the user. `code` is "not_found", "forbidden" or "unavailable"."""

    def __init__(self, message: str, code: str = "unavailable") -> None:
        super().__init__(message)
        self.message, self.code = message, code


@dataclass(frozen=True)
class Target:
    """What a session needs from the database, read once before any await on the network."""

    user: User
    project: Project
    service: Service

    @property
    def payload(self) -> dict[str, Any]:
        return {"namespace": self.project.namespace, "labels": self.project.labels, "service": self.service.name}


def _target(user: User, org_slug: str, project_slug: str, service_name: str) -> Target:
    try:
        service, _ = get_service_for_user(user, org_slug, project_slug, service_name, permission="deploy")
    except Http404:
        raise ShellRefused(f"no service {project_slug}.{service_name} in {org_slug}", "not_found") from None
    except PermissionDenied as exc:
        raise ShellRefused(f"{exc} Opening a shell needs a role that may deploy.", "forbidden") from None
    return Target(user, service.project, service)


async def find_target(user: User, org_slug: str, project_slug: str, service_name: str) -> Target:
    """Check access (members who may deploy) and load the project and service."""
    return await database_sync_to_async(_target)(user, org_slug, project_slug, service_name)


async def service_pods(target: Target) -> list[dict[str, Any]]:
    """The service's pods as the agent sees them: [{name, phase, deleting, containers}], newest first."""
    try:
        return await rpc.acall(target.project.cluster_id, p.OP_SERVICE_PODS, target.payload, timeout=10)
    except rpc.RPCError as exc:
        raise _unavailable(exc) from None


def service_pods_sync(target: Target) -> list[dict[str, Any]]:
    """service_pods() for views."""
    try:
        return rpc.call(target.project.cluster_id, p.OP_SERVICE_PODS, target.payload, timeout=10)
    except rpc.RPCError as exc:
        raise _unavailable(exc) from None


def _unavailable(exc: rpc.RPCError) -> ShellRefused:
    if isinstance(exc, rpc.AgentOffline):
        return ShellRefused("the project's cluster is offline; try again when its agent is connected")
    return ShellRefused(f"could not list the service's pods: {exc}")


def choose_pod(target: Target, pods: list[dict[str, Any]], pod: str | None) -> dict[str, Any]:
    running = [p_ for p_ in pods if p_["phase"] == "Running" and not p_["deleting"]]
    if pod:
        chosen = next((p_ for p_ in pods if p_["name"] == pod), None)
        if chosen is None:
            raise ShellRefused(f"{pod} is not a pod of service {target.service.name}")
        if chosen not in running:
            raise ShellRefused(f"pod {pod} is not running ({'terminating' if chosen['deleting'] else chosen['phase']})")
        return chosen
    if running:
        return running[0]
    raise ShellRefused(f"service {target.service.name} has no running pod")


def _running(pods: list[dict[str, Any]]) -> bool:
    return any(p_["phase"] == "Running" and not p_["deleting"] for p_ in pods)


def may_be_asleep(target: Target) -> bool:
    """No running pod, and the service is one Sablier scales to zero (or its organization is suspended, which
    wake_service refuses with the suspended message): waking is the way to a pod."""
    return target.service.sleeps or target.project.suspended


async def wake(target: Target, progress: Progress | None) -> list[dict[str, Any]]:
    """Wake the service through Sablier (projects.wake.wake_service) and return its pods once one runs.

    Waits up to the service's blocking timeout, the same bound an API client's request has; a service that
    cannot start (crash loop, image pull error) ends the wait with Sablier's reason and what to do about it.
    """
    service = target.service
    if progress is not None and not target.project.suspended:  # a suspended one is refused below, not woken
        await progress(f"waking {service.name}…")
    try:
        # Not thread-sensitive: the wait may take a minute and must not hold daphne's shared database thread.
        await database_sync_to_async(wake_service, thread_sensitive=False)(service, timeout=service.blocking_timeout)
    except WakeError as exc:
        raise ShellRefused(await _wake_failure(target, exc), "forbidden" if exc.code == "suspended" else "unavailable"
                           ) from None
    deadline = time.monotonic() + POD_AFTER_WAKE
    while not _running(pods := await service_pods(target)):
        if time.monotonic() > deadline:
            raise ShellRefused(f"service {service.name} woke up but none of its pods is running yet; try again")
        await asyncio.sleep(0.3)
    return pods


async def _wake_failure(target: Target, exc: WakeError) -> str:
    text = " ".join(exc.messages)
    if exc.code == "suspended":
        return text
    service = target.service
    # The agent's observed state may name the kubelet's reason (CrashLoopBackOff, ImagePullBackOff) by now.
    observed = await database_sync_to_async(
        lambda: Service.objects.filter(pk=service.pk).values_list("message", flat=True).first())() or ""
    reason = f" ({observed})" if observed and observed not in text else ""
    waited = f" after {service.blocking_timeout} s (its blocking timeout)" if "in time" in text else ""
    return (f"service {service.name} could not be woken{waited}: {text}{reason}. "
            f"Its logs show the last lines of its pods; fix the image or its command and deploy again.")


async def open_shell(user: User, org_slug: str, project_slug: str, service_name: str, *, pod: str | None = None,
                     container: str | None = None, command: list[str] | None = None, tty: bool = True,
                     cols: int = 80, rows: int = 24, client_ip: str | None = None,
                     channel: Channel = "terminal", progress: Progress | None = None) -> ShellSession:
    """A running shell (command=None: bash, else sh) or command in a pod of the service; see the module doc.

    A sleeping service is woken first (progress() hears "waking <service>…"), and the session keeps it awake
    while it is open."""
    target = await find_target(user, org_slug, project_slug, service_name)
    pods = await service_pods(target)
    if pod is None and not _running(pods) and may_be_asleep(target):
        pods = await wake(target, progress)
    chosen = choose_pod(target, pods, pod)
    if container is not None and container not in chosen["containers"]:
        raise ShellRefused(f"pod {chosen['name']} has no container {container}; it has: "
                           f"{', '.join(chosen['containers'])}")
    container = container or chosen["containers"][0]
    payload = {**target.payload, "pod": chosen["name"], "container": container, "command": command, "tty": tty,
               "stdin": True, "cols": cols, "rows": rows}
    try:
        stream = await rpc.open_stream(target.project.cluster_id, p.STREAM_EXEC, payload)
    except rpc.RPCError as exc:
        raise ShellRefused(f"could not reach the project's cluster: {exc}") from None
    session = ShellSession(stream, target, chosen["name"], container, channel, client_ip)
    if target.service.sleeps:
        session.keeping_awake = asyncio.create_task(keep_awake(target.service))
    return session


async def keep_awake(service: Service) -> None:
    """Refresh the service's Sablier session while a shell is open: Sablier scales a group to zero when its
    session expires, whether or not a shell runs in it, and only requests through Traefik refresh it. Three
    refreshes per idle timeout, so one slow call does not let it lapse; after the shell closes the service
    stays up for one more idle timeout, as after a last request."""
    interval = min(max(service.idle_timeout / 3, 0.5), KEEP_AWAKE_MAX)
    while True:
        await asyncio.sleep(interval)
        try:
            await database_sync_to_async(wake_service, thread_sensitive=False)(service, timeout=10)
        except WakeError as exc:  # suspended meanwhile, or Sablier unreachable: the shell decides nothing here
            log.info("could not refresh the session of %s: %s", service, " ".join(exc.messages))


class ShellSession:
    """One exec stream with its byte counts; close() ends it and writes the audit event (once)."""

    def __init__(self, stream: rpc.AgentStream, target: Target, pod: str, container: str, channel: Channel,
                 client_ip: str | None) -> None:
        self.stream, self.target, self.pod, self.container = stream, target, pod, container
        self.channel, self.client_ip = channel, client_ip
        self.bytes_in = self.bytes_out = 0
        self.exit_code: int | None = None
        self.message = ""  # the status message from the container runtime, or why the agent refused
        self.started = time.monotonic()
        self.keeping_awake: asyncio.Task | None = None  # keep_awake() while open, for a sleeping-enabled service
        self._recorded = False

    @property
    def ended(self) -> bool:
        return self.stream.closed

    async def send(self, data: bytes) -> None:
        """Keystrokes or piped input for the process."""
        if data:
            self.bytes_in += len(data)
            await self.stream.send(bytes([p.EXEC_STDIN]) + data)

    async def resize(self, cols: int, rows: int) -> None:
        cols, rows = max(1, min(int(cols), 1000)), max(1, min(int(rows), 1000))
        await self.stream.send(bytes([p.EXEC_RESIZE]) + json.dumps({"Width": cols, "Height": rows}).encode())

    async def eof(self) -> None:
        await self.stream.send(bytes([p.EXEC_STDIN_EOF]))

    async def recv(self) -> tuple[int, bytes] | None:
        """The next (EXEC_STDOUT or EXEC_STDERR, bytes), or None once the process ended (see exit_code)."""
        while True:
            try:
                frame = await self.stream.recv(timeout=RECV_POLL)
            except TimeoutError:
                continue  # nothing printed for a while: still running
            if frame is None:
                if self.exit_code is None:
                    self.message = self.message or self.stream.close_reason or "the session ended"
                return None
            channel, data = frame[0], frame[1:]
            if channel == p.EXEC_STATUS:
                status = json.loads(data)
                self.exit_code, self.message = int(status["exit_code"]), str(status.get("message", ""))
            elif data:
                self.bytes_out += len(data)
                return channel, data

    def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]:
        return self

    async def __anext__(self) -> tuple[int, bytes]:
        frame = await self.recv()
        if frame is None:
            raise StopAsyncIteration
        return frame

    async def close(self) -> None:
        """End the process if it still runs, and record the session (idempotent)."""
        if self.keeping_awake is not None:
            self.keeping_awake.cancel()
        with contextlib.suppress(rpc.RPCError, ConnectionError, TimeoutError):
            await asyncio.shield(self.stream.close())
        if not self._recorded:
            self._recorded = True
            await database_sync_to_async(self._record)()

    def _record(self) -> None:
        record_session(AUDIT_ACTIONS[self.channel], actor=self.target.user,
                       organization=self.target.project.organization, target=self.target.service, pod=self.pod,
                       container=self.container, duration_seconds=time.monotonic() - self.started,
                       bytes_in=self.bytes_in, bytes_out=self.bytes_out, exit_status=self.exit_code, ip=self.client_ip)
