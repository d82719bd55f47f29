"""Desired state: make one project's namespace hold exactly the objects the control plane sent.

The last applied revision lives on the namespace (an annotation), not in memory, so a restarted
agent still refuses stale revisions and replays stay harmless.
"""

from __future__ import annotations

import copy
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agent.k8s import MANAGED_BY_LABEL, MANAGED_BY_VALUE, NAMESPACE, PROJECT_KINDS, Kind, Kube, KubeError, kind_of

log = logging.getLogger("agent.reconcile")

REVISION_ANNOTATION = "paas.dev/applied-revision"
# Requests in flight at once while applying a project (the client's connection pool holds 10).
APPLY_CONCURRENCY = 8


class StaleRevision(Exception):
    pass


class NotManaged(Exception):
    pass


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def applied_revision(namespace_obj: dict[str, Any] | None) -> int:
    if not namespace_obj:
        return 0
    annotations = namespace_obj.get("metadata", {}).get("annotations") or {}
    try:
        return int(annotations.get(REVISION_ANNOTATION, 0))
    except ValueError:
        return 0


def _apply_namespace(kube: Kube, namespace: str, labels: dict[str, str], revision: int) -> dict[str, Any]:
    return kube.apply(NAMESPACE, {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": namespace, "labels": labels, "annotations": {REVISION_ANNOTATION: str(revision)}},
    })


def _label_pod_template(obj: dict[str, Any], labels: dict[str, str]) -> None:
    """Pods carry the project labels too, so observing, logs and billing can select them."""
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    template = spec.get("template")
    if isinstance(template, dict):
        meta = template.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), **labels}


def _apply_object(kube: Kube, original: dict[str, Any], namespace: str,
                  labels: dict[str, str]) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """Apply one object; (result entry, its (kind, name) if it is one projects may hold)."""
    obj = copy.deepcopy(original)
    kind, name = obj.get("kind", "?"), (obj.get("metadata") or {}).get("name", "?")
    entry: dict[str, Any] = {"kind": kind, "name": name}
    k = kind_of(obj)
    if k is None:
        entry.update(action="failed", message=f"{obj.get('apiVersion')}/{kind} is not a kind projects may use")
        return entry, None
    metadata = obj.setdefault("metadata", {})
    metadata["namespace"] = namespace
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    _label_pod_template(obj, labels)
    try:
        before = kube.get(k, name, namespace)
        after = kube.apply(k, obj, namespace)
    except KubeError as exc:
        entry.update(action="failed", message=exc.message)
        return entry, (k.kind, name)
    if before is None:
        entry["action"] = "created"
    elif before["metadata"].get("resourceVersion") == after["metadata"].get("resourceVersion"):
        entry["action"] = "unchanged"
    else:
        entry["action"] = "configured"
    return entry, (k.kind, name)


def _list_kind(kube: Kube, k: Kind, namespace: str, selector: str) -> list[dict[str, Any]]:
    try:
        return kube.list(k, namespace, selector)
    except KubeError as exc:
        if exc.status == 404:  # the kind is not served by this cluster (e.g. no Traefik CRDs)
            return []
        raise


def _prune(kube: Kube, k: Kind, name: str, namespace: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": k.kind, "name": name}
    try:
        kube.delete(k, name, namespace)
        entry["action"] = "pruned"
    except KubeError as exc:
        entry.update(action="failed", message=exc.message)
    return entry


def apply_project(kube: Kube, namespace: str, labels: dict[str, str], revision: int,
                  objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply `objects` into `namespace` and prune what carries `labels` but is not among them.

    Returns {"namespace", "revision", "results": [{kind, name, action, message?}]} where action is
    created / configured / unchanged / pruned / failed. Raises StaleRevision for an older revision.
    """
    labels = {**labels, MANAGED_BY_LABEL: MANAGED_BY_VALUE}
    # The project's own Namespace object (the converter's, with Pod Security labels) is not applied
    # as an object: its labels go onto the namespace the agent manages. Other namespaces stay refused.
    own = [o for o in objects if o.get("kind") == "Namespace" and (o.get("metadata") or {}).get("name") == namespace]
    objects = [o for o in objects if o not in own]
    namespace_labels = {k: v for o in own for k, v in ((o.get("metadata") or {}).get("labels") or {}).items()}
    namespace_labels.update(labels)
    existing_ns = kube.get(NAMESPACE, namespace)
    current = applied_revision(existing_ns)
    if revision < current:
        raise StaleRevision(f"revision {revision} is older than the applied revision {current} of {namespace}")
    if existing_ns is None:
        _apply_namespace(kube, namespace, namespace_labels, current)

    # Objects are independent under server-side apply, so they go out concurrently: a project's
    # apply costs a few round trips instead of two per object. Except RoleBindings: the apiserver lets the
    # agent (which may not `bind`) write one only after comparing it with its Role, which must exist by then.
    bindings = [o for o in objects if o.get("kind") == "RoleBinding"]
    with ThreadPoolExecutor(APPLY_CONCURRENCY) as pool:
        applied = [*pool.map(lambda o: _apply_object(kube, o, namespace, labels), [o for o in objects
                                                                                     if o not in bindings]),
                   *pool.map(lambda o: _apply_object(kube, o, namespace, labels), bindings)]
        results = [entry for entry, _ in applied]
        wanted = {key for _, key in applied if key}
        selector = _selector(labels)
        listed = list(pool.map(lambda k: (k, _list_kind(kube, k, namespace, selector)), PROJECT_KINDS))
        stale = [(k, item["metadata"]["name"]) for k, items in listed for item in items
                 if (k.kind, item["metadata"]["name"]) not in wanted]
        results += pool.map(lambda ks: _prune(kube, ks[0], ks[1], namespace), stale)

    if revision != current or existing_ns is None or own:
        _apply_namespace(kube, namespace, namespace_labels, revision)
    counts: dict[str, int] = {}
    for entry in results:
        counts[entry["action"]] = counts.get(entry["action"], 0) + 1
    log.info("applied revision %s to %s: %s", revision, namespace, counts)
    return {"namespace": namespace, "revision": revision, "results": results}


def delete_project(kube: Kube, namespace: str) -> dict[str, Any]:
    """Delete the project's namespace, and with it everything inside. Refuses unmanaged namespaces."""
    existing = kube.get(NAMESPACE, namespace)
    if existing is None:
        return {"namespace": namespace, "deleted": False}
    if (existing["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE:
        raise NotManaged(f"namespace {namespace} is not managed by the platform")
    kube.delete(NAMESPACE, namespace)
    log.info("deleted project namespace %s", namespace)
    return {"namespace": namespace, "deleted": True}
