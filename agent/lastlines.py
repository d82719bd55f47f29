"""A service's last log lines, kept after its pods are gone.

When Sablier scales a service to zero (or a rollout replaces a pod), Kubernetes removes the pod and its log
with it. While a deleted pod terminates (its grace period: the kubelet still serves its log), the agent reads
the tail of each of its containers and keeps it in one ConfigMap per service in the project's namespace, so the
`logs` operation can show a sleeping service's last lines (agent/logs.py).

The ConfigMap is bounded (MAX_BYTES, the newest MAX_RUNS pods), carries the project's and service's labels and
`app.kubernetes.io/managed-by: paas-agent`: not `paas`, so a release's prune, which selects `paas`, leaves it
alone; deleting the project's namespace removes it. Best effort: a pod deleted with a grace period of 0, or
while the agent is away, leaves no lines.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from agent.k8s import Kind, Kube, KubeError
from agent.protocol import MANAGED_BY_LABEL, MANAGED_BY_VALUE

log = logging.getLogger("agent.lastlines")

CONFIG_MAP = Kind("v1", "ConfigMap", "configmaps")
SERVICE_LABEL = "paas.dev/service"  # projects.compose.labels.SERVICE (the agent imports no Django code)
PROJECT_LABEL_PREFIX = "paas.dev/"  # organization, project and service labels of a project's pod
COMPONENT_LABEL, COMPONENT = "app.kubernetes.io/component", "last-log-lines"
OWNER = "paas-agent"  # managed-by value: the agent's own record, outside any release
NAME_PREFIX = "paas-last-lines-"
DATA_KEY = "runs.json"
TAIL_LINES = 200  # per container
MAX_LINE = 2048  # bytes per kept line; longer ones are cut
MAX_BYTES = 256 * 1024  # per ConfigMap (Kubernetes allows 1 MiB)
MAX_RUNS = 3  # pods kept per service: one scale-down of a few replicas
SEEN = 4096  # pod uids remembered, so one termination is captured once


def config_map_name(service: str) -> str:
    return NAME_PREFIX + service


def owner_labels(labels: dict[str, str]) -> dict[str, str]:
    """The labels of a service's ConfigMap: the project's and service's, the component, and the agent as owner."""
    own = {k: v for k, v in labels.items() if k.startswith(PROJECT_LABEL_PREFIX)}
    return own | {MANAGED_BY_LABEL: OWNER, COMPONENT_LABEL: COMPONENT}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_run(kube: Kube, pod: dict[str, Any]) -> dict[str, Any]:
    """{"pod", "stopped_at", "containers": {name: [[ts, line], ...]}}: each container's last TAIL_LINES."""
    meta = pod["metadata"]
    containers: dict[str, list[list[str]]] = {}
    for container in (c["name"] for c in pod["spec"].get("containers") or []):
        try:
            pod_log = kube.open_pod_log(meta["name"], meta["namespace"], container=container, tail_lines=TAIL_LINES)
        except KubeError as exc:  # gone already, or the container never started
            log.info("no last lines of %s/%s: %s", meta["name"], container, exc.message)
            continue
        try:
            lines = []
            for raw in pod_log.lines(MAX_LINE):
                stamp, _, text = raw.partition(b" ")
                lines.append([stamp.decode(errors="replace"), text.decode(errors="replace")])
        finally:
            pod_log.close()
        containers[container] = lines[-TAIL_LINES:]
    return {"pod": meta["name"], "stopped_at": now(), "containers": containers}


def bounded(runs: list[dict[str, Any]]) -> str:
    """The newest MAX_RUNS runs as JSON within MAX_BYTES: older runs go first, then each container's oldest lines."""
    runs = runs[-MAX_RUNS:]
    while True:
        text = json.dumps(runs, separators=(",", ":"))
        if len(text.encode()) <= MAX_BYTES:
            return text
        if len(runs) > 1:
            runs = runs[1:]
            continue
        lines = runs[0]["containers"]
        longest = max(lines, key=lambda c: len(lines[c]))
        lines[longest] = lines[longest][max(1, len(lines[longest]) // 10):]


def store_run(kube: Kube, namespace: str, labels: dict[str, str], run: dict[str, Any]) -> None:
    """Add one pod's run to its service's ConfigMap (read, merge, apply: captures are serialised by LastLines)."""
    service = labels[SERVICE_LABEL]
    name = config_map_name(service)
    current = kube.get(CONFIG_MAP, name, namespace)
    runs = load_runs(current) if current else []
    runs = [r for r in runs if r.get("pod") != run["pod"]] + [run]
    kube.apply(CONFIG_MAP, {"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": name, "namespace": namespace, "labels": owner_labels(labels)},
                            "data": {DATA_KEY: bounded(runs)}}, namespace)


def load_runs(config_map: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        runs = json.loads((config_map.get("data") or {}).get(DATA_KEY) or "[]")
    except ValueError:
        return []
    return [r for r in runs if isinstance(r, dict) and isinstance(r.get("containers"), dict)] \
        if isinstance(runs, list) else []


def last_runs(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs of the service's last stop: the newest, and pods that stopped within a minute of it."""
    if not runs:
        return []
    newest = max(r.get("stopped_at", "") for r in runs)
    cutoff = _seconds(newest) - 60
    return [r for r in runs if _seconds(r.get("stopped_at", "")) >= cutoff]


def _seconds(stamp: str) -> float:
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


class LastLines:
    """Captures terminating pods one at a time in a worker thread (the observer's loop must not block)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._thread: threading.Thread | None = None

    def pod_changed(self, pod: dict[str, Any]) -> None:
        """From the observer's pod watch: a managed pod of a service that started terminating is captured."""
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        if not meta.get("deletionTimestamp") or labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE \
                or not labels.get(SERVICE_LABEL) or meta.get("uid") in self._seen:
            return
        self._seen[meta.get("uid", "")] = None
        while len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        self._queue.put(pod)
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, daemon=True, name="agent-lastlines")
            self._thread.start()

    def _work(self) -> None:
        while True:
            pod = self._queue.get()
            meta = pod["metadata"]
            try:
                run = read_run(self.kube, pod)
                if run["containers"]:  # nothing readable (never started): keep the previous run instead
                    store_run(self.kube, meta["namespace"], meta.get("labels") or {}, run)
            except (KubeError, OSError, ValueError) as exc:
                log.warning("could not keep the last lines of %s/%s: %s", meta["namespace"], meta["name"], exc)
            except Exception:
                log.exception("keeping the last lines of %s/%s failed", meta["namespace"], meta["name"])
