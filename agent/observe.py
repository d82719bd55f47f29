"""Observed state: watch managed namespaces and push a compact summary per namespace on change.

Watches run in daemon threads (the official client blocks) and feed one asyncio queue; the
summaries are debounced, compared with what was last sent, and re-sent in full after a
reconnect, so the control plane always ends up with the latest state.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from agent.k8s import DEPLOYMENT, EVENT, NAMESPACE, POD, ConnectionFailed, Kind, Kube, KubeError
from agent.protocol import CERTIFICATE_API, MANAGED_BY_LABEL, MANAGED_BY_VALUE, REVISION_LABEL, SLEEP_ENABLE_LABEL

log = logging.getLogger("agent.observe")

MANAGED = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
MAX_EVENTS = 20
CERTIFICATE = Kind(CERTIFICATE_API, "Certificate", "certificates")
WATCHED: tuple[tuple[Kind, str | None], ...] = ((NAMESPACE, MANAGED), (DEPLOYMENT, MANAGED), (POD, MANAGED),
                                                (EVENT, None), (CERTIFICATE, MANAGED))
# A kind the cluster does not serve (no cert-manager yet): look again this rarely instead of every 2 s.
UNSERVED_RETRY = 60.0

Publish = Callable[[str, dict[str, Any]], Awaitable[bool]]


def deployment_summary(d: dict[str, Any]) -> dict[str, Any]:
    spec, status = d.get("spec") or {}, d.get("status") or {}
    desired = spec.get("replicas", 1)
    ready, updated = status.get("readyReplicas", 0), status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    progressing = conditions.get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        rollout = "failed"
    elif desired == 0:
        rollout = "scaled-to-zero"
    elif (status.get("observedGeneration", 0) >= d["metadata"].get("generation", 0)
          and updated >= desired and status.get("replicas", 0) <= updated
          and ready >= desired and available >= desired):
        # As `kubectl rollout status`: while old pods remain (status.replicas > updated), the old ReplicaSet is
        # what is ready and available, and the new pods may still fail (an image that cannot be pulled).
        rollout = "complete"
    else:
        rollout = "progressing"
    labels = d["metadata"].get("labels") or {}
    # Sablier owns the replicas of a sleeping-enabled Deployment: at zero it is asleep, not stopped.
    sleeps = labels.get(SLEEP_ENABLE_LABEL) == "true"
    return {"replicas": desired, "ready": ready, "updated": updated, "available": available, "rollout": rollout,
            "sleeps": sleeps, "revision": labels.get(REVISION_LABEL)}


def certificate_summary(cert: dict[str, Any]) -> dict[str, Any]:
    """cert-manager's view of one Certificate: Ready ("True" / "False" / "Unknown"), and whether issuing failed
    (its Issuing condition False with reason Failed: cert-manager retries later, with backoff)."""
    conditions = {c.get("type"): c for c in (cert.get("status") or {}).get("conditions") or []}
    ready, issuing = conditions.get("Ready") or {}, conditions.get("Issuing") or {}
    failed = issuing.get("status") == "False" and issuing.get("reason") == "Failed"
    shown = issuing if failed else ready
    return {"ready": ready.get("status", "Unknown"), "failed": failed, "reason": shown.get("reason", ""),
            "message": shown.get("message", ""), "dns_names": list((cert.get("spec") or {}).get("dnsNames") or []),
            "not_after": (cert.get("status") or {}).get("notAfter")}


def pod_summary(pod: dict[str, Any]) -> dict[str, Any]:
    status = pod.get("status") or {}
    statuses = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    waiting = next((s["state"]["waiting"].get("reason") for s in statuses
                    if (s.get("state") or {}).get("waiting")), None)
    return {
        "phase": status.get("phase", "Pending"),
        "ready": bool(status.get("containerStatuses")) and all(s.get("ready") for s in status["containerStatuses"]),
        "restarts": sum(int(s.get("restartCount", 0)) for s in statuses),
        "waiting": waiting,
        "labels": pod["metadata"].get("labels") or {},
    }


def event_summary(event: dict[str, Any]) -> dict[str, Any]:
    involved = event.get("involvedObject") or {}
    return {
        "type": event.get("type", "Normal"),
        "reason": event.get("reason", ""),
        "message": event.get("message", ""),
        "object": f"{involved.get('kind', '')}/{involved.get('name', '')}",
        "count": event.get("count", 1),
        "time": event.get("lastTimestamp") or event.get("eventTime") or event["metadata"].get("creationTimestamp"),
    }


class Observer:
    def __init__(self, kube: Kube, publish: Publish, *, debounce: float = 0.2, watch_timeout: int = 30,
                 on_pod: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.kube = kube
        self.publish = publish
        self.on_pod = on_pod  # sees every managed pod's change (agent.lastlines keeps a terminating pod's tail)
        self.debounce = debounce
        self.watch_timeout = watch_timeout
        self.managed: set[str] = set()
        # namespace -> kind -> name -> object
        self.cache: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        self.sent: dict[str, dict[str, Any]] = {}
        self._queue: asyncio.Queue[tuple[str, str, dict[str, Any]]] = asyncio.Queue()
        self._stop = threading.Event()

    def summary(self, namespace: str) -> dict[str, Any]:
        cache = self.cache.get(namespace, {})
        events = sorted((event_summary(e) for e in cache.get("Event", {}).values()),
                        key=lambda e: e["time"] or "", reverse=True)[:MAX_EVENTS]
        summary = {
            "deployments": {n: deployment_summary(d) for n, d in sorted(cache.get("Deployment", {}).items())},
            "pods": {n: pod_summary(p) for n, p in sorted(cache.get("Pod", {}).items())},
            "events": events,
        }
        if cache.get("Certificate"):
            summary["certificates"] = {n: certificate_summary(c) for n, c in sorted(cache["Certificate"].items())}
        return summary

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for kind, selector in WATCHED:
            threading.Thread(target=self._watch_forever, args=(loop, kind, selector), daemon=True,
                             name=f"watch-{kind.plural}").start()
        try:
            while True:
                dirty = self._absorb(*await self._queue.get())
                await asyncio.sleep(self.debounce)  # let a burst (a rollout) settle into one message
                while not self._queue.empty():
                    dirty |= self._absorb(*self._queue.get_nowait())
                for namespace in sorted(n for n in dirty if n):
                    await self._push(namespace)
        finally:
            self._stop.set()

    async def resend_all(self) -> None:
        """After a reconnect the control plane may have missed changes: send every summary again."""
        for namespace in sorted(self.sent):
            await self.publish("observed", {"namespace": namespace, "state": self.sent[namespace]})

    async def _push(self, namespace: str) -> None:
        if namespace not in self.managed:
            if self.sent.pop(namespace, None) is not None:
                await self.publish("observed", {"namespace": namespace, "state": None})
            return
        state = self.summary(namespace)
        if self.sent.get(namespace) != state:
            self.sent[namespace] = state
            await self.publish("observed", {"namespace": namespace, "state": state})

    def _absorb(self, kind: str, event_type: str, obj: dict[str, Any]) -> set[str]:
        """Fold one watch event into the cache; return the namespaces whose summary may have changed."""
        meta = obj.get("metadata") or {}
        if event_type == "RESET":  # a relist follows: forget this kind, the listing brings back what exists
            touched = set(self.cache) | set(self.managed)
            if kind == "Namespace":
                self.managed.clear()
            for kinds in self.cache.values():
                kinds.pop(kind, None)
            return touched
        if kind == "Namespace":
            name = meta["name"]
            if event_type == "DELETED":
                self.managed.discard(name)
                self.cache.pop(name, None)
            else:
                self.managed.add(name)
            return {name}
        namespace = meta.get("namespace", "")
        if kind == "Event" and namespace not in self.managed:
            return set()
        bucket = self.cache.setdefault(namespace, {}).setdefault(kind, {})
        if kind == "Pod" and event_type != "DELETED" and self.on_pod is not None:
            self.on_pod(obj)
        if event_type == "DELETED":
            bucket.pop(meta.get("name"), None)
        else:
            bucket[meta.get("name")] = obj
            if kind == "Event" and len(bucket) > MAX_EVENTS * 5:
                by_age = sorted(bucket.values(), key=lambda e: event_summary(e)["time"] or "")
                for event in by_age[: len(bucket) - MAX_EVENTS]:
                    bucket.pop(event["metadata"]["name"], None)
        return {namespace}

    def _watch_forever(self, loop: asyncio.AbstractEventLoop, kind: Kind, selector: str | None) -> None:
        def emit(event_type: str, obj: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(self._queue.put_nowait, (kind.kind, event_type, obj))

        resource_version: str | None = None
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    listing = self.kube.request("GET", kind.collection(), query={"labelSelector": selector})
                    emit("RESET", {})
                    for item in listing.get("items") or []:
                        emit("ADDED", item)
                    resource_version = (listing.get("metadata") or {}).get("resourceVersion")
                for event in self.kube.watch(kind, label_selector=selector, resource_version=resource_version,
                                             timeout_seconds=self.watch_timeout):
                    if self._stop.is_set():
                        return
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        resource_version = None  # 410 Gone: relist
                        break
                    resource_version = (obj.get("metadata") or {}).get("resourceVersion") or resource_version
                    if event.get("type") != "BOOKMARK":
                        emit(event["type"], obj)
            except KubeError as exc:
                resource_version = None
                if exc.status == 404:
                    log.info("%s are not served by this cluster; looking again in %.0fs", kind.plural, UNSERVED_RETRY)
                    self._stop.wait(UNSERVED_RETRY)
                else:
                    log.warning("watch of %s failed (%s); retrying", kind.plural, exc)
                    self._stop.wait(2.0)
            except (ConnectionFailed, OSError, ValueError) as exc:
                log.warning("watch of %s failed (%s); retrying", kind.plural, exc)
                resource_version = None
                self._stop.wait(2.0)
            except Exception:
                log.exception("watch of %s crashed; retrying", kind.plural)
                resource_version = None
                self._stop.wait(2.0)
