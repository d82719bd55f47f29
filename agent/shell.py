"""The `exec` stream op: a command, or an interactive shell, in a container of one project's pod.

The control plane sends the project's labels; the pod must sit in a namespace carrying them and carry
them itself, so a control-plane bug cannot open a shell in another tenant's (or a system) pod.
Frames carry one channel byte first (agent.protocol EXEC_*), as Kubernetes' channel protocol does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from agent import protocol as p
from agent.k8s import NAMESPACE, POD, ExecConnection, Kube, KubeError
from agent.ops import Stream
from agent.protocol import MANAGED_BY_LABEL, MANAGED_BY_VALUE, SERVICE_LABEL
from agent.reconcile import require_identity

log = logging.getLogger("agent.shell")

SHELLS = (["bash"], ["sh"])  # an interactive session tries them in order
# How a container runtime says the command does not exist (containerd/runc, CRI-O, kubesim).
NOT_FOUND = ("executable file not found", "no such file or directory", "not found in $path")
OUTPUT_FRAMES = 8  # frames of output read ahead of the tunnel's flow control
SMALL_WRITE = 4096  # input up to this size is written from the event loop (fits any socket buffer at once)
REPLAY_LIMIT = 64 * 1024  # stdin kept for the next shell until the first one is known to have started


KIND_NAMES = {str: "a string", int: "an integer", bool: "a boolean", list: "a list", dict: "an object"}


class Refused(Exception):
    """The request names something this project may not reach, or that cannot run a command now."""


@dataclass
class ExecRequest:
    namespace: str
    labels: dict[str, str]
    pod: str
    container: str | None = None
    command: list[str] | None = None
    service: str | None = None
    tty: bool = True
    stdin: bool = True
    cols: int = 80
    rows: int = 24

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> ExecRequest:
        def get(key: str, kind: type, default: Any = None, required: bool = False) -> Any:
            value = payload.get(key, default)
            if value is None and not required:
                return default
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise Refused(f"bad request: {key!r} must be {KIND_NAMES[kind]}")
            return value

        labels = get("labels", dict, required=True)
        try:
            require_identity(labels)  # organization, project and the project's uid (the namespace's owner mark)
        except ValueError as exc:
            raise Refused(f"bad request: {exc}") from None
        if not all(isinstance(v, str) for v in labels.values()):
            raise Refused("bad request: 'labels' values must be strings")
        command = get("command", list)
        if command is not None and (not command or not all(isinstance(w, str) for w in command)):
            raise Refused("bad request: 'command' must be a non-empty list of strings, or null for a shell")
        cols, rows = get("cols", int, 80), get("rows", int, 24)
        if not (0 < cols <= 1000 and 0 < rows <= 1000):
            raise Refused("bad request: 'cols' and 'rows' must be between 1 and 1000")
        return cls(namespace=get("namespace", str, required=True), labels=labels, pod=get("pod", str, required=True),
                   container=get("container", str), command=command, service=get("service", str),
                   tty=get("tty", bool, True), stdin=get("stdin", bool, True), cols=cols, rows=rows)


def _carries(obj: dict[str, Any], labels: dict[str, str]) -> bool:
    own = (obj.get("metadata") or {}).get("labels") or {}
    return all(own.get(k) == v for k, v in labels.items())


def pod_labels(labels: dict[str, str]) -> dict[str, str]:
    """What the project's pods carry: its labels without the uid, which only marks the namespace (see reconcile)."""
    return {k: v for k, v in labels.items() if k != p.PROJECT_UID_LABEL} | {MANAGED_BY_LABEL: MANAGED_BY_VALUE}


def check_target(kube: Kube, req: ExecRequest) -> str:
    """The container to exec into, after checking the pod belongs to the project (and service) named."""
    project = {**req.labels, MANAGED_BY_LABEL: MANAGED_BY_VALUE}
    namespace = kube.get(NAMESPACE, req.namespace)
    if namespace is None or not _carries(namespace, project):
        raise Refused(f"forbidden: namespace {req.namespace} does not belong to this project")
    pod = kube.get(POD, req.pod, req.namespace)
    if pod is None:
        raise Refused(f"not found: there is no pod {req.pod} in {req.namespace}")
    wanted = {**pod_labels(req.labels), **({SERVICE_LABEL: req.service} if req.service else {})}
    if not _carries(pod, wanted):
        raise Refused(f"forbidden: pod {req.pod} does not belong to this {'service' if req.service else 'project'}")
    phase = (pod.get("status") or {}).get("phase", "Pending")
    if phase != "Running":
        raise Refused(f"pod {req.pod} is not running ({phase})")
    names = [c["name"] for c in pod["spec"].get("containers") or []]
    container = req.container or names[0]
    if container not in names:
        raise Refused(f"pod {req.pod} has no container {container}; it has: {', '.join(names)}")
    return container


def exit_status(raw: bytes) -> tuple[int, str]:
    """(exit code, message) from the apiserver's status channel (a metav1.Status in v4/v5, text before)."""
    try:
        status = json.loads(raw)
    except ValueError:
        return 1, raw.decode(errors="replace")
    if status.get("status") == "Success":
        return 0, ""
    message = status.get("message", "")
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            return int(cause.get("message", 1)), message
    return (127 if is_not_found(message) else 1), message


def is_not_found(message: str) -> bool:
    return any(marker in message.lower() for marker in NOT_FOUND)


@dataclass
class _Attempt:
    exit_code: int | None = None
    message: str = ""
    started: bool = False  # the command printed something, so it exists


@dataclass
class ExecSession:
    kube: Kube
    stream: Stream
    req: ExecRequest
    container: str
    conn: ExecConnection | None = None
    size: tuple[int, int] = (80, 24)
    replay: list[bytes] | None = field(default_factory=list)  # None once no fallback can happen any more
    stdin_eof: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def run(self) -> None:
        self.size = (self.req.cols, self.req.rows)
        pump = asyncio.create_task(self._pump_input())
        try:
            for command in [self.req.command] if self.req.command else SHELLS:
                try:
                    attempt = await self._attempt(command)
                except KubeError as exc:
                    return await self._finish(1, f"could not start {command[0]}: {exc.message}")
                if self.req.command or attempt.started or not is_not_found(attempt.message):
                    return await self._finish(attempt.exit_code, attempt.message)
            message = (f"neither bash nor sh is available in container {self.container} of pod {self.req.pod}; "
                       "run a command instead, or add a shell to the image")
            await self.stream.send(bytes([p.EXEC_STDERR]) + message.encode() + b"\r\n")
            await self._finish(127, message)
        finally:
            pump.cancel()
            if self.conn is not None:
                await asyncio.to_thread(self.conn.close)

    async def _attempt(self, command: list[str]) -> _Attempt:
        req = self.req
        async with self.lock:  # input arriving meanwhile waits, then goes to the new connection in order
            if self.conn is not None:
                await asyncio.to_thread(self.conn.close)
                self.conn = None
            conn = await asyncio.to_thread(self.kube.exec, req.pod, req.namespace, command,
                                           container=self.container, tty=req.tty, stdin=req.stdin)
            self.conn = conn
            if req.tty:
                await asyncio.to_thread(conn.resize, *self.size)
            for chunk in self.replay or []:
                await asyncio.to_thread(conn.write, p.EXEC_STDIN, chunk)
            if self.stdin_eof:
                await asyncio.to_thread(conn.close_stdin)
        return await self._pump_output(conn)

    async def _pump_output(self, conn: ExecConnection) -> _Attempt:
        """Forward the container's output until it exits; blocking reads run in a thread of this session's own."""
        loop = asyncio.get_running_loop()
        frames: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue()
        # At most OUTPUT_FRAMES read ahead: while the tunnel has no credit, the container's output waits in
        # the apiserver's socket instead of piling up here.
        slots = threading.Semaphore(OUTPUT_FRAMES)
        done = threading.Event()

        def reader() -> None:
            while not done.is_set():
                slots.acquire()
                frame = None if done.is_set() else conn.read()
                try:
                    loop.call_soon_threadsafe(frames.put_nowait, frame)
                except RuntimeError:
                    return  # the loop is gone
                if frame is None:
                    return

        threading.Thread(target=reader, name=f"exec-{self.req.pod}", daemon=True).start()
        attempt = _Attempt()
        try:
            while (frame := await frames.get()) is not None:
                slots.release()
                channel, data = frame
                if channel in (p.EXEC_STDOUT, p.EXEC_STDERR) and data:
                    attempt.started, self.replay = True, None
                    await send_channel(self.stream, channel, data)
                elif channel == p.EXEC_STATUS:
                    attempt.exit_code, attempt.message = exit_status(data)
        finally:  # also when ended early (the tunnel went away): let the reader thread finish
            done.set()
            conn.close()
            slots.release()
        return attempt

    async def _pump_input(self) -> None:
        while (data := await self.stream.recv()) is not None:
            if not data:
                continue
            channel, body = data[0], data[1:]
            if channel == p.EXEC_RESIZE:
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    size = {k.lower(): int(v) for k, v in json.loads(body).items()}
                    self.size = (max(1, size["width"]), max(1, size["height"]))
            self.stdin_eof = self.stdin_eof or channel == p.EXEC_STDIN_EOF
            async with self.lock:  # with _attempt's replay: each byte reaches each connection once, in order
                if channel == p.EXEC_STDIN and self.replay is not None:
                    self.replay.append(body)
                    if sum(map(len, self.replay)) > REPLAY_LIMIT:
                        self.replay = None
                conn = self.conn
                if conn is None:
                    continue
                if channel == p.EXEC_STDIN and len(body) <= SMALL_WRITE:
                    conn.write(p.EXEC_STDIN, body)  # a keystroke: a thread hop would cost more than the send
                elif channel == p.EXEC_STDIN:
                    await asyncio.to_thread(conn.write, p.EXEC_STDIN, body)
                elif channel == p.EXEC_RESIZE and self.req.tty:
                    await asyncio.to_thread(conn.resize, *self.size)
                elif channel == p.EXEC_STDIN_EOF:
                    await asyncio.to_thread(conn.close_stdin)
        # The control plane closed the stream (the user left): end the process's connection.
        if self.conn is not None:
            await asyncio.to_thread(self.conn.close)

    async def _finish(self, exit_code: int | None, message: str) -> None:
        if exit_code is None:
            exit_code, message = 1, message or "the connection to the container ended without an exit status"
        status = {"exit_code": exit_code, "message": message}
        await send_whole(self.stream, bytes([p.EXEC_STATUS]) + json.dumps(status).encode())


async def send_channel(stream: Stream, channel: int, data: bytes) -> None:
    """`data` in frames that each fit the peer's credit, each starting with the channel byte.

    Stream.send splits a frame larger than the credit, and the second piece would reach the peer without its
    channel byte: binary output (a dump) would be corrupted.
    """
    view = memoryview(data)
    while view:
        await stream.writable()
        if stream.closed:
            raise ConnectionError("stream closed")
        room = stream.credit - 1
        piece, view = view[:max(room, 0)], view[max(room, 0):]
        await stream.send(bytes([channel]) + bytes(piece))  # an empty frame when room is 0: uses up the last byte


async def send_whole(stream: Stream, frame: bytes) -> None:
    """A frame that must arrive in one piece (the exit status): use up a too-small credit with empty frames first."""
    while not stream.closed and stream.credit < len(frame):
        await stream.writable()
        if 0 < stream.credit < len(frame):
            await stream.send(bytes([p.EXEC_STDOUT]))
    await stream.send(frame)


def service_pods(kube: Kube, namespace: str, labels: dict[str, str], service: str) -> list[dict[str, Any]]:
    """The pods of one service of the project, newest first, with what a terminal needs to choose one."""
    selector = {**pod_labels(labels), SERVICE_LABEL: service}
    pods = kube.list(POD, namespace, ",".join(f"{k}={v}" for k, v in sorted(selector.items())))
    pods.sort(key=lambda pod: pod["metadata"].get("creationTimestamp", ""), reverse=True)
    return [{
        "name": pod["metadata"]["name"],
        "phase": (pod.get("status") or {}).get("phase", "Pending"),
        "deleting": bool(pod["metadata"].get("deletionTimestamp")),
        "containers": [c["name"] for c in pod["spec"].get("containers") or []],
    } for pod in pods]


async def exec_stream(kube: Kube, stream: Stream, payload: dict[str, Any]) -> None:
    try:
        req = ExecRequest.parse(payload)
        container = await asyncio.to_thread(check_target, kube, req)
    except Refused as exc:
        await stream.close(str(exc))
        return
    except KubeError as exc:
        await stream.close(f"failed: {exc.message}")
        return
    await ExecSession(kube, stream, req, container).run()
