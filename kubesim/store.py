"""In-memory object storage: one resourceVersion counter, an event history for watches, and fan-out."""

from __future__ import annotations

import asyncio
import collections
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, str]  # (group, plural)
ObjKey = tuple[str, str]  # (namespace or "", name)


@dataclass
class Event:
    type: str  # ADDED / MODIFIED / DELETED
    key: Key
    obj: dict[str, Any]
    old: dict[str, Any] | None
    rv: int


@dataclass(eq=False)
class Watcher:
    key: Key
    namespace: str | None
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)


class Store:
    """Objects by kind; every write bumps one counter, like etcd's revision behind resourceVersion."""

    def __init__(self, history_size: int = 10000) -> None:
        self.rv = 0
        self.objects: dict[Key, dict[ObjKey, dict[str, Any]]] = collections.defaultdict(dict)
        self.history: collections.deque[Event] = collections.deque()
        self.history_size = history_size
        # Highest revision whose events are gone: a watch from an older revision answers 410 Gone.
        self.compacted_rv = 0
        self.watchers: set[Watcher] = set()
        self.listeners: list[Callable[[Event], None]] = []

    def clear(self) -> None:
        for w in list(self.watchers):
            w.queue.put_nowait(None)  # end every open watch, as a restarted apiserver would
        self.watchers.clear()
        self.objects.clear()
        self.history.clear()
        self.compacted_rv = self.rv

    def compact(self) -> None:
        self.history.clear()
        self.compacted_rv = self.rv

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def get(self, key: Key, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects[key].get((namespace, name))

    def list(self, key: Key, namespace: str | None = None) -> list[dict[str, Any]]:
        items = self.objects[key]
        if namespace is None:
            return [items[k] for k in sorted(items)]
        return [items[k] for k in sorted(items) if k[0] == namespace]

    def all_keys(self) -> list[Key]:
        return list(self.objects)

    def write(self, key: Key, obj: dict[str, Any], old: dict[str, Any] | None, etype: str) -> dict[str, Any]:
        """Store (or, for DELETED, drop) an object under a fresh resourceVersion and tell watchers."""
        rv = self.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        okey = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if etype == "DELETED":
            self.objects[key].pop(okey, None)
        else:
            self.objects[key][okey] = obj
        event = Event(etype, key, obj, old, rv)
        self.history.append(event)
        while len(self.history) > self.history_size:
            self.compacted_rv = self.history.popleft().rv
        for w in list(self.watchers):
            if w.key == key and (w.namespace is None or w.namespace == okey[0]):
                w.queue.put_nowait(event)
        for listener in list(self.listeners):
            listener(event)
        return obj

    def events_since(self, key: Key, namespace: str | None, rv: int) -> list[Event] | None:
        """Events after `rv`, or None when they were compacted away (the caller answers 410 Gone)."""
        if rv < self.compacted_rv:
            return None
        return [e for e in self.history if e.rv > rv and e.key == key
                and (namespace is None or e.obj["metadata"].get("namespace", "") == namespace)]

    def subscribe(self, key: Key, namespace: str | None) -> Watcher:
        w = Watcher(key, namespace)
        self.watchers.add(w)
        return w

    def unsubscribe(self, w: Watcher) -> None:
        self.watchers.discard(w)


def clone(obj: Any) -> Any:
    # Objects are plain JSON; a JSON-shaped deepcopy is all we need and keeps stored state private.
    return copy.deepcopy(obj)
