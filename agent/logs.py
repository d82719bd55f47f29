"""The `logs` stream operation: the lines of a project's pods, merged as they arrive.

One reader thread per container (the official client blocks) and, when following a service or a whole
project, one pod watcher, so pods that start later join the stream. Readers put NDJSON frames into one
bounded buffer per stream; the sender drains it only as fast as the control plane grants credit. When the
buffer is full, lines are dropped and counted, and the count goes out as a {"skipped": N} frame: a pod
writing 50 MB/s costs the agent at most BUFFER_BYTES per stream, and the other streams on the tunnel keep
their share because each has its own credit.

Frames, one JSON object per line:
    {"pod", "container", "ts", "line"}   a log line; ts is the kubelet's RFC3339Nano time (when asked for)
    {"skipped": N}                       N lines were dropped here: the reader was slower than the pods
    {"notice": str, "pod": str}          e.g. a container that has no previous log, or one not started yet
    {"last_run": {"service", "pod", "stopped_at"}, "notice": str, "pod": str}
                                         a service with no pod: the lines that follow, each with "last_run": true,
                                         are its pod's last ones, kept when it stopped (agent/lastlines.py)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent import lastlines
from agent.k8s import NAMESPACE, POD, Kube, KubeError, PodLog
from agent.protocol import MANAGED_BY_LABEL, MANAGED_BY_VALUE, PROJECT_UID_LABEL, SERVICE_LABEL

BUFFER_BYTES = 512 * 1024  # per stream: the most a slow reader can make the agent hold
MAX_LINE = 16 * 1024  # longer lines are cut: one line never holds more than this
MAX_TAIL = 100_000
COALESCE_BYTES, COALESCE_SECONDS = 16 * 1024, 0.01  # a trickle of lines waits up to 10 ms to share a frame
WATCH_SECONDS = 5  # a pod watch is renewed this often, so a closed stream's watcher exits soon after


class Forbidden(Exception):
    """The namespace or pod does not belong to the project named in the request."""


def ts_key(ts: str) -> str:
    """An RFC3339Nano UTC time in a form that sorts as text (the kubelet trims trailing zeros)."""
    head, _, frac = ts.rstrip("Z").partition(".")
    return f"{head}.{frac.ljust(9, '0')[:9]}"


@dataclass
class LogRequest:
    namespace: str
    labels: dict[str, str]
    service: str | None = None
    pod: str | None = None
    container: str | None = None
    follow: bool = False
    tail: int | None = None
    since_seconds: int | None = None
    timestamps: bool = True
    previous: bool = False
    # "pod/container" -> [ts, n]: the reader already has every line up to ts, and n lines stamped exactly ts.
    resume: dict[str, tuple[str, int]] = field(default_factory=dict)

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> LogRequest:
        def get(key: str, kind: type, default: Any = None) -> Any:
            value = payload.get(key, default)
            if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
                raise ValueError(f"{key!r} must be a {kind.__name__}")
            return value

        namespace, labels = get("namespace", str), get("labels", dict)
        if not namespace or not labels or not all(isinstance(v, str) for v in labels.values()):
            raise ValueError("'namespace' and the project's 'labels' are required")
        if not labels.get(PROJECT_UID_LABEL):
            raise ValueError(f"'labels' must carry {PROJECT_UID_LABEL} (the project's identity)")
        tail, since = get("tail", int), get("since_seconds", int)
        if tail is not None and not 0 <= tail <= MAX_TAIL:
            raise ValueError(f"'tail' must be between 0 and {MAX_TAIL}")
        if since is not None and since <= 0:
            raise ValueError("'since_seconds' must be positive")
        resume: dict[str, tuple[str, int]] = {}
        for key, value in (get("resume", dict) or {}).items():
            if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
                    and isinstance(value[1], int)):
                raise ValueError("'resume' maps 'pod/container' to [timestamp, count]")
            resume[key] = (ts_key(value[0]), value[1])
        return cls(namespace=namespace, labels=labels, service=get("service", str), pod=get("pod", str),
                   container=get("container", str), follow=bool(get("follow", bool, False)), tail=tail,
                   since_seconds=since, timestamps=bool(get("timestamps", bool, True)),
                   previous=bool(get("previous", bool, False)), resume=resume)

    @property
    def pod_labels(self) -> dict[str, str]:
        """What the project's pods (of the service, if one is named) carry; the uid marks only the namespace."""
        labels = {k: v for k, v in self.labels.items() if k != PROJECT_UID_LABEL}
        labels[MANAGED_BY_LABEL] = MANAGED_BY_VALUE
        if self.service:
            labels[SERVICE_LABEL] = self.service
        return labels

    @property
    def selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.pod_labels.items()))

    def owns_namespace(self, namespace: dict[str, Any]) -> bool:
        labels = (namespace.get("metadata") or {}).get("labels") or {}
        return labels.get(PROJECT_UID_LABEL) == self.labels[PROJECT_UID_LABEL]

    def owns_pod(self, pod: dict[str, Any]) -> bool:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        return all(labels.get(k) == v for k, v in self.pod_labels.items())


class LineBuffer:
    """Bounded and thread-safe: readers put frames, the sender takes them all; a full buffer drops and counts."""

    def __init__(self, limit: int, wake: Callable[[], None]) -> None:
        self.limit = limit
        self._wake = wake
        self._lock = threading.Lock()
        self._items: list[bytes] = []
        self._size = 0
        self._skipped = 0

    def full(self) -> bool:
        return self._skipped > 0 or self._size >= self.limit

    def put(self, frame: bytes) -> bool:
        with self._lock:
            # Once a line is dropped, every later one is too until the sender takes the buffer: the marker then
            # sits exactly where lines went missing (a short line must not slip in after a long one was dropped).
            if self._skipped or self._size + len(frame) > self.limit:
                self._skipped += 1
                return False
            was_empty = not self._items
            self._items.append(frame)
            self._size += len(frame)
        if was_empty:
            self._wake()
        return True

    def skip(self) -> None:
        with self._lock:
            self._skipped += 1

    def pending(self) -> bool:
        return bool(self._items or self._skipped)

    @property
    def size(self) -> int:
        return self._size

    def take(self) -> bytes:
        """Everything buffered, then the marker for what was dropped after it (drops happen only when full)."""
        with self._lock:
            items, skipped = self._items, self._skipped
            self._items, self._size, self._skipped = [], 0, 0
        if skipped:
            items.append(frame({"skipped": skipped}))
        return b"".join(items)


def frame(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


class LogJob:
    """The reader threads (and pod watcher) of one `logs` stream."""

    def __init__(self, kube: Kube, request: LogRequest, buffer: LineBuffer, wake: Callable[[], None]) -> None:
        self.kube, self.request, self.buffer, self._wake = kube, request, buffer, wake
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._logs: set[PodLog] = set()
        self._following: set[tuple[str, str, int]] = set()  # (pod uid, container, restart count)
        self._initial: set[tuple[str, str, int]] = set()  # containers running when the stream opened: tail is for them
        self._running = 0
        self._watching = False

    # --- access ------------------------------------------------------------------------------

    def check_access(self) -> list[dict[str, Any]]:
        """The pods to read, after checking that the namespace and the pod belong to the project."""
        r = self.request
        namespace = self.kube.get(NAMESPACE, r.namespace)
        if namespace is None or not r.owns_namespace(namespace):
            raise Forbidden(f"namespace {r.namespace} does not belong to this project")
        if r.pod:
            pod = self.kube.get(POD, r.pod, r.namespace)
            if pod is None or not r.owns_pod(pod):
                raise Forbidden(f"pod {r.pod} does not belong to this project" + (
                    f"'s service {r.service}" if r.service else ""))
            return [pod]
        return self.kube.list(POD, r.namespace, label_selector=r.selector)

    # --- lifecycle ---------------------------------------------------------------------------

    def load_last_runs(self, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The kept runs (agent.lastlines) of the services named by the request that have no pod now."""
        r = self.request
        if r.pod or r.previous:
            return []
        if r.service:
            found = self.kube.get(lastlines.CONFIG_MAP, lastlines.config_map_name(r.service), r.namespace)
            config_maps = [found] if found and not pods else []
        else:
            selector = {k: v for k, v in r.pod_labels.items() if k != MANAGED_BY_LABEL} | {
                lastlines.COMPONENT_LABEL: lastlines.COMPONENT}
            config_maps = self.kube.list(lastlines.CONFIG_MAP, r.namespace,
                                         label_selector=",".join(f"{k}={v}" for k, v in sorted(selector.items())))
        running = {((p_["metadata"].get("labels") or {}).get(SERVICE_LABEL)) for p_ in pods}
        runs = []
        for config_map in config_maps:
            labels = (config_map.get("metadata") or {}).get("labels") or {}
            # Only the agent's own record of this project's service: never a ConfigMap a release could forge.
            wanted = {k: v for k, v in r.pod_labels.items() if k != MANAGED_BY_LABEL} | {
                MANAGED_BY_LABEL: lastlines.OWNER}
            if not all(labels.get(k) == v for k, v in wanted.items()) or labels.get(SERVICE_LABEL) in running:
                continue
            runs += [{**run, "service": labels[SERVICE_LABEL]}
                     for run in lastlines.last_runs(lastlines.load_runs(config_map))]
        return runs

    def start(self, pods: list[dict[str, Any]], last_runs: list[dict[str, Any]] | None = None) -> None:
        r = self.request
        self._initial = {(pod["metadata"].get("uid", ""), s.get("name", ""), int(s.get("restartCount", 0)))
                         for pod in pods for s in (pod.get("status") or {}).get("containerStatuses") or []}
        for run in last_runs or []:
            self._replay(run)
        if r.follow and not r.pod and not r.previous:
            self._watching = True  # the watcher lists the pods itself (its first events) and then follows
            self._spawn(self._watch_pods)
            return
        for pod in pods:
            self._follow_pod(pod)
        if not pods and not last_runs:
            self.notice("", "no pod is running" + (f" for service {r.service}" if r.service else ""))

    def _replay(self, run: dict[str, Any]) -> None:
        """A stopped pod's kept lines, after a marker saying whose and since when, within tail/since/resume."""
        r = self.request
        pod, stopped = str(run.get("pod", "")), str(run.get("stopped_at", ""))
        self.buffer.put(frame({"last_run": {"service": run["service"], "pod": pod, "stopped_at": stopped},
                               "notice": f"no pod is running for service {run['service']}: last lines from pod "
                                         f"{pod}, stopped at {stopped}", "pod": pod}))
        since = ts_key(datetime.fromtimestamp(time.time() - r.since_seconds, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ")) if r.since_seconds else ""
        for container, lines in sorted(run["containers"].items()):
            after = r.resume.get(f"{pod}/{container}")
            kept = [(ts, text) for ts, text in lines if ts_key(ts) >= since]
            if r.tail is not None:
                kept = kept[-r.tail:] if r.tail else []
            seen_at_mark = 0
            for ts, text in kept:
                if after is not None and ts_key(ts) <= after[0]:
                    if ts_key(ts) < after[0] or seen_at_mark < after[1]:
                        seen_at_mark += ts_key(ts) == after[0]
                        continue
                line = {"pod": pod, "container": container, "line": text, "last_run": True}
                self.buffer.put(frame(line | ({"ts": ts} if r.timestamps else {})))

    def finished(self) -> bool:
        return not self._watching and self._running == 0

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            logs = list(self._logs)
        for log in logs:
            log.close()

    def notice(self, pod: str, text: str) -> None:
        self.buffer.put(frame({"notice": text, "pod": pod}))

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        threading.Thread(target=target, args=args, daemon=True, name="agent-logs").start()

    # --- pods ----------------------------------------------------------------------------------

    def _watch_pods(self) -> None:
        version: str | None = None
        try:
            while not self._stop.is_set():
                try:
                    for event in self.kube.watch(POD, namespace=self.request.namespace, resource_version=version,
                                                 label_selector=self.request.selector, timeout_seconds=WATCH_SECONDS):
                        if self._stop.is_set():
                            return
                        obj = event.get("object") or {}
                        if event.get("type") == "ERROR":  # history compacted: list again
                            version = None
                            break
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            self._follow_pod(obj)
                except (KubeError, OSError, ValueError):
                    self._stop.wait(1)
        finally:
            self._watching = False
            self._wake()

    def _follow_pod(self, pod: dict[str, Any]) -> None:
        r = self.request
        name, uid = pod["metadata"]["name"], pod["metadata"].get("uid", "")
        statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("containerStatuses") or []}
        containers = [r.container] if r.container else [c["name"] for c in pod["spec"].get("containers", [])]
        for container in containers:
            status = statuses.get(container) or {}
            started = "running" in (status.get("state") or {}) or "terminated" in (status.get("state") or {})
            if not started and not r.previous:
                if not r.follow:
                    self.notice(name, f"container {container} has not started")
                continue  # a follower picks it up when the watch says it runs
            key = (uid, container, int(status.get("restartCount", 0)))
            with self._lock:
                if key in self._following:
                    continue
                self._following.add(key)
                self._running += 1
            # A pod (or container instance) that started after the stream opened is shown from its first line.
            self._spawn(self._read, name, container, key in self._initial or r.previous)

    def _read(self, pod: str, container: str, initial: bool) -> None:
        r = self.request
        after = r.resume.get(f"{pod}/{container}")
        tail, since = (r.tail, r.since_seconds) if initial and not after else (None, None)
        try:
            try:
                log = self.kube.open_pod_log(
                    pod, r.namespace, container=container, follow=r.follow and not r.previous,
                    previous=r.previous, tail_lines=tail, since_seconds=since,
                    # sinceTime has whole seconds: lines of that second we already have are skipped below
                    since_time=after[0].split(".")[0] + "Z" if after else None)
            except KubeError as exc:
                self.notice(pod, exc.message)
                return
            with self._lock:
                self._logs.add(log)
            if self._stop.is_set():
                log.close()
            try:
                self._pump(log, pod, container, after)
            finally:
                with self._lock:
                    self._logs.discard(log)
                log.close()
        finally:
            with self._lock:
                self._running -= 1
            self._wake()

    def _pump(self, log: PodLog, pod: str, container: str, after: tuple[str, int] | None) -> None:
        seen_at_mark = 0
        prefix = f'{{"pod":{json.dumps(pod)},"container":{json.dumps(container)}'
        for raw in log.lines(MAX_LINE):
            if self._stop.is_set():
                return
            stamp, _, text = raw.partition(b" ")
            ts = stamp.decode(errors="replace")
            if after is not None:
                key = ts_key(ts)
                if key < after[0]:
                    continue
                if key == after[0] and seen_at_mark < after[1]:
                    seen_at_mark += 1
                    continue
                after = None  # past the mark: everything from here on is new
            if self.buffer.full():
                self.buffer.skip()  # no encoding work for a line that cannot be sent
                continue
            # Encoded by hand around json.dumps of the text alone: this loop runs for every line of every pod.
            line = json.dumps(text.decode(errors="replace"))
            stamp_field = f',"ts":{json.dumps(ts)}' if self.request.timestamps else ""
            self.buffer.put(f'{prefix}{stamp_field},"line":{line}}}\n'.encode())


async def serve(kube: Kube, stream: Any, payload: dict[str, Any]) -> None:
    """Run one `logs` stream until its lines end (no follow) or the control plane closes it."""
    try:
        request = LogRequest.parse(payload)
    except ValueError as exc:
        await stream.close(f"bad request: {exc}")
        return
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()

    def wake_threadsafe() -> None:
        with contextlib.suppress(RuntimeError):  # a reader finishing after the agent's loop closed
            loop.call_soon_threadsafe(wake.set)

    buffer = LineBuffer(BUFFER_BYTES, wake_threadsafe)
    job = LogJob(kube, request, buffer, wake_threadsafe)
    try:
        pods = await asyncio.to_thread(job.check_access)
    except Forbidden as exc:
        await stream.close(f"forbidden: {exc}")
        return
    except KubeError as exc:
        await stream.close(f"failed: {exc.message}")
        return

    async def until_closed() -> None:
        while await stream.recv() is not None:
            pass  # the control plane sends nothing on a logs stream; this only notices its close
        wake.set()

    try:
        last_runs = await asyncio.to_thread(job.load_last_runs, pods)
    except KubeError as exc:  # the lines of live pods still come
        last_runs = []
        job.notice("", f"the last lines of stopped pods could not be read: {exc.message}")
    closing = asyncio.create_task(until_closed())
    job.start(pods, last_runs)
    try:
        while not stream.closed:
            await stream.writable()
            if stream.closed:
                break
            if buffer.pending():
                if buffer.size < COALESCE_BYTES:
                    await asyncio.sleep(COALESCE_SECONDS)  # let a few lines gather: one frame, not one per line
                await stream.send(buffer.take())
                continue
            if job.finished():
                if buffer.pending():  # the last reader's lines landed after the check above
                    continue
                break
            wake.clear()
            if not buffer.pending() and not job.finished():  # a put between take() and clear() set nothing
                await wake.wait()
    finally:
        closing.cancel()
        job.stop()
