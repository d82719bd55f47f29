"""Controller plumbing: a work queue per controller fed by store events, a delay, and helpers."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from kubesim.cluster import Cluster, WriteOptions, random_suffix
from kubesim.errors import ApiError
from kubesim.resources import ResourceType
from kubesim.store import Event, clone
from kubesim.streams import LogHub

log = logging.getLogger("kubesim.controllers")
Key = tuple[str, str]

# Image (or chart) markers that drive the failure paths.
CRASH_MARKERS = (":crash", "crashloop")
PULL_FAIL_MARKERS = ("does-not-exist", ":pull-fail", "imagepullbackoff")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    uid = owner["metadata"]["uid"]
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])


def owner_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def controller_of(obj: dict[str, Any], kind: str) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == kind:
            return ref.get("name")
    return None


def short_hash(data: str, n: int = 10) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.sha256(data.encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:n])


def set_condition(conditions: list[dict[str, Any]], ctype: str, status: str, reason: str, message: str,
                  *, update_time: bool = False) -> list[dict[str, Any]]:
    """Set one condition; its transition time only moves when the status does (no churn on no-ops)."""
    out = [dict(c) for c in conditions]
    for c in out:
        if c.get("type") == ctype:
            if c.get("status") != status:
                c["lastTransitionTime"] = now()
            if (c.get("status"), c.get("reason"), c.get("message")) != (status, reason, message) and update_time:
                c["lastUpdateTime"] = now()
            c.update(status=status, reason=reason, message=message)
            return out
    cond = {"type": ctype, "status": status, "reason": reason, "message": message, "lastTransitionTime": now()}
    if update_time:
        cond["lastUpdateTime"] = now()
    out.append(cond)
    return out


class Controller(ABC):
    """Reconciles keys of one primary kind after `delay` seconds; events map to keys via `keys_for`."""

    name = "controller"
    manager = "kube-controller-manager"
    primary: tuple[str, str] | None = None  # (group, plural) of the kind reconciled, keyed by its name
    # Events of owned objects (group, plural) wake their controlling owner of this kind.
    children: tuple[tuple[str, str], str] | None = None

    def __init__(self, cluster: Cluster, logs: LogHub, delay: float) -> None:
        self.cluster = cluster
        self.logs = logs
        self.delay = delay
        self.enabled = True
        self.queue: asyncio.Queue[Key] = asyncio.Queue()
        self.queued: set[Key] = set()
        self.task: asyncio.Task[None] | None = None
        self.failures: dict[Key, int] = {}  # consecutive refused creates per owner, for the retry backoff
        self.last_failure: dict[Key, str] = {}  # the apiserver's message for the last refused create

    def rt(self, api_version: str, kind: str) -> ResourceType:
        return self.cluster.rt_for(api_version, kind)

    def keys_for(self, event: Event) -> Iterable[Key]:
        meta = event.obj["metadata"]
        if event.key == self.primary:
            return [(meta.get("namespace", ""), meta["name"])]
        if self.children is not None and event.key == self.children[0]:
            owner = controller_of(event.obj, self.children[1])
            return [(meta.get("namespace", ""), owner)] if owner else []
        return ()

    def resync(self) -> None:
        """Queue every object of the primary kind, as an informer's initial list does when a controller starts."""
        if self.primary is not None:
            for obj in self.cluster.store.list(self.primary):
                self.enqueue((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))

    def enqueue(self, key: Key) -> None:
        if key not in self.queued:
            self.queued.add(key)
            self.queue.put_nowait(key)

    def enqueue_later(self, key: Key, seconds: float) -> None:
        asyncio.get_running_loop().call_later(seconds, self.enqueue, key)

    async def run(self) -> None:
        while True:
            key = await self.queue.get()
            if self.delay:
                await asyncio.sleep(self.delay)
            self.queued.discard(key)
            if not self.enabled:
                continue
            try:
                self.reconcile(*key)
            except ApiError as err:
                # Conflicts and races with deletions are normal; try again shortly like a real controller.
                if err.code in (404, 409):
                    self.enqueue_later(key, 0.05)
                else:
                    log.warning("%s: %s/%s: %s", self.name, key[0], key[1], err.message)
            except Exception:
                log.exception("%s failed on %s/%s", self.name, *key)

    @abstractmethod
    def reconcile(self, namespace: str, name: str) -> None:
        """Move the object at (namespace, name) one step towards what a real controller would make it."""

    # --- helpers for subclasses ------------------------------------------------------------------

    def fetch(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.cluster.find(rt, namespace, name)
        return clone(obj) if obj is not None else None

    def create(self, rt: ResourceType, namespace: str, obj: dict[str, Any]) -> dict[str, Any]:
        return self.cluster.create(rt, namespace, obj, WriteOptions(field_manager=self.manager))

    def write_status(self, rt: ResourceType, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        new = clone(obj)
        new["status"] = status
        return self.cluster.write(rt, new, self.manager, subresource="status")

    def event(self, obj: dict[str, Any], reason: str, message: str, etype: str = "Normal",
              component: str = "kubesim") -> None:
        """A core/v1 Event about `obj`, as controllers and the kubelet record them."""
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        ts = now()
        event_rt = self.rt("v1", "Event")
        for seen in self.cluster.list(event_rt, ns):
            # The event recorder aggregates a repeat of the same event into a count, as a controller's does.
            if (seen["involvedObject"].get("uid"), seen.get("reason"), seen.get("message"), seen.get("type")) == \
                    (meta["uid"], reason, message, etype):
                again = clone(seen)
                again["count"] = seen.get("count", 1) + 1
                again["lastTimestamp"] = ts
                self.cluster.write(event_rt, again, self.manager)
                return
        self.cluster.create(event_rt, ns, {
            "metadata": {"name": f"{meta['name']}.{random_suffix(8)}", "namespace": ns},
            "involvedObject": {"kind": obj["kind"], "apiVersion": obj["apiVersion"], "name": meta["name"],
                               "namespace": ns, "uid": meta["uid"], "resourceVersion": meta.get("resourceVersion")},
            "reason": reason, "message": message, "type": etype, "count": 1,
            "source": {"component": component}, "firstTimestamp": ts, "lastTimestamp": ts,
            "reportingComponent": component, "reportingInstance": "kubesim"},
            WriteOptions(field_manager=self.manager))

    def create_or_report(self, owner: dict[str, Any], rt: ResourceType, obj: dict[str, Any],
                         message_prefix: str = "Error creating: ") -> dict[str, Any] | None:
        """Create a child; when the apiserver refuses it (e.g. Pod Security), record `FailedCreate` on the
        owner and retry later with backoff, as controllers do. Returns None after a refusal."""
        key = (owner["metadata"].get("namespace", ""), owner["metadata"]["name"])
        try:
            created = self.create(rt, owner["metadata"].get("namespace", ""), obj)
        except ApiError as err:
            if err.code not in (403, 422):
                raise
            self.event(owner, "FailedCreate", message_prefix + err.message, "Warning", f"{self.name}-controller")
            failures = self.failures.get(key, 0)
            self.failures[key] = failures + 1
            self.enqueue_later(key, min(0.2 * 2 ** min(failures, 5), 5.0))
            self.last_failure[key] = err.message
            return None
        self.failures.pop(key, None)
        self.last_failure.pop(key, None)
        return created
