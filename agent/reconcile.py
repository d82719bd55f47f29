"""Desired state: make one project's namespace hold exactly the objects the control plane sent.

The last applied revision lives on the namespace (an annotation), not in memory, so a restarted
agent still refuses stale revisions and replays stay harmless.

Ownership: a namespace the agent creates carries the project's uid (protocol.PROJECT_UID_LABEL).
The agent applies into, prunes and deletes only a namespace that carries *that* uid; any other
existing namespace (kube-system, the platform's own, another project's) is refused before anything
in it changes. A namespace from before ownership marks is adopted only when it is plainly the
project's: see `_adoption_refusal`.
"""

from __future__ import annotations

import copy
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agent.k8s import NAMESPACE, POD, PROJECT_KINDS, Kind, Kube, KubeError, kind_of
from agent.protocol import (
    DATA_SERVICE_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    ORGANIZATION_LABEL,
    PROJECT_LABEL,
    PROJECT_UID_LABEL,
)

log = logging.getLogger("agent.reconcile")

REVISION_ANNOTATION = "paas.dev/applied-revision"
# Requests in flight at once while applying a project (the client's connection pool holds 10).
APPLY_CONCURRENCY = 8


class StaleRevision(Exception):
    pass


class NotOwned(Exception):
    """The namespace exists and does not belong to the project; nothing in it was changed."""


# What Kubernetes' own controllers put into every namespace; not a sign of another owner.
KUBERNETES_DEFAULTS = {("ConfigMap", "kube-root-ca.crt"), ("ServiceAccount", "default")}


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _project_name(labels: dict[str, str]) -> str:
    return f"{labels.get(ORGANIZATION_LABEL, '?')}/{labels.get(PROJECT_LABEL, '?')}"


def _is_projects(found: dict[str, str], labels: dict[str, str]) -> bool:
    return all(found.get(key) == labels.get(key) for key in (ORGANIZATION_LABEL, PROJECT_LABEL))


def _is_data_secret(kind: str, found: dict[str, str]) -> bool:
    # The data services' credentials carry no project labels (so a release's prune leaves them alone).
    return kind == "Secret" and found.get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE and DATA_SERVICE_LABEL in found


def _adoption_refusal(kube: Kube, namespace: str, namespace_labels: dict[str, str], labels: dict[str, str]) -> str:
    """Why an existing namespace without an ownership mark may not be adopted ('' when it may).

    Namespaces made before ownership marks existed carry the managed-by label and the project's
    organization/project labels. Those labels alone are not enough: an older agent also put them on a
    platform namespace a tenant's names happened to match (an org "Paas" with a project "Data" got
    paas-data). So the namespace must also hold nothing but the project's objects; a platform
    namespace always holds its component's own (the database, the agent, Traefik, CoreDNS...).
    """
    if namespace == "default" or namespace.startswith("kube-"):
        return "it is a Kubernetes namespace"
    if namespace_labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE or not _is_projects(namespace_labels, labels):
        return "it was not created for this project"
    for k in (*PROJECT_KINDS, POD):
        for item in _list_kind(kube, k, namespace, None):
            meta = item.get("metadata") or {}
            found = meta.get("labels") or {}
            if (k.kind, meta.get("name")) in KUBERNETES_DEFAULTS or _is_projects(found, labels) \
                    or _is_data_secret(k.kind, found):
                continue
            return f"it holds {k.kind}/{meta.get('name')}, which is not the project's"
    return ""


def require_identity(labels: dict[str, Any]) -> None:
    """Pruning selects by the project's labels and ownership is its uid: all three must be there."""
    for key in (ORGANIZATION_LABEL, PROJECT_LABEL, PROJECT_UID_LABEL):
        if not isinstance(labels.get(key), str) or not labels[key]:
            raise ValueError(f"'labels' must carry {key} (the project's identity)")


def claim_namespace(kube: Kube, namespace: str, labels: dict[str, str]) -> None:
    """Before another writer (the data services) puts something into a project's namespace: create it,
    marked as the project's, when missing; raise NotOwned when it is anyone else's.

    An unmarked namespace that may be adopted is left unmarked: the project's next apply marks it
    together with everything else it sets on the namespace (one field manager, one applied set).
    """
    require_identity(labels)
    existing = kube.get(NAMESPACE, namespace)
    if existing is None:
        kube.apply(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": namespace, "labels": {**labels, MANAGED_BY_LABEL: MANAGED_BY_VALUE}}})
    else:
        check_owner(kube, namespace, existing, labels)


def check_owner(kube: Kube, namespace: str, existing: dict[str, Any], labels: dict[str, str]) -> bool:
    """Raise NotOwned unless `existing` is the project's namespace; True when it must be adopted (marked)."""
    namespace_labels = existing.get("metadata", {}).get("labels") or {}
    mark = namespace_labels.get(PROJECT_UID_LABEL)
    if mark == labels[PROJECT_UID_LABEL]:
        return False
    who = _project_name(labels)
    if mark:
        raise NotOwned(f"namespace {namespace} belongs to another project, not to {who}")
    reason = _adoption_refusal(kube, namespace, namespace_labels, labels)
    if reason:
        raise NotOwned(f"namespace {namespace} exists and is not owned by project {who} ({reason})")
    log.info("adopting namespace %s for project %s (created before ownership marks)", namespace, who)
    return True


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
        # Labels alone (a new revision) change no pod: nothing to roll out, and no new observed state follows.
        entry["spec_changed"] = before["metadata"].get("generation") != after["metadata"].get("generation")
    return entry, (k.kind, name)


def _list_kind(kube: Kube, k: Kind, namespace: str, selector: str | None) -> list[dict[str, Any]]:
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

    `labels` name the project and carry its uid (PROJECT_UID_LABEL); the uid goes onto the namespace
    only (as its ownership mark), so objects and pod templates stay as they were before marks existed.
    Returns {"namespace", "revision", "results": [{kind, name, action, message?}]} where action is
    created / configured / unchanged / pruned / failed. Raises StaleRevision for an older revision and
    NotOwned, before any change, when the namespace exists and is not the project's.
    """
    owner = {PROJECT_UID_LABEL: labels[PROJECT_UID_LABEL]}
    labels = {k: v for k, v in labels.items() if k != PROJECT_UID_LABEL} | {MANAGED_BY_LABEL: MANAGED_BY_VALUE}
    # The project's own Namespace object (the converter's, with Pod Security labels) is not applied
    # as an object: its labels go onto the namespace the agent manages. Other namespaces stay refused.
    own = [o for o in objects if o.get("kind") == "Namespace" and (o.get("metadata") or {}).get("name") == namespace]
    objects = [o for o in objects if o not in own]
    namespace_labels = {k: v for o in own for k, v in ((o.get("metadata") or {}).get("labels") or {}).items()}
    namespace_labels.update(labels | owner)
    existing_ns = kube.get(NAMESPACE, namespace)
    adopting = existing_ns is not None and check_owner(kube, namespace, existing_ns, labels | owner)
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

    if revision != current or existing_ns is None or own or adopting:
        _apply_namespace(kube, namespace, namespace_labels, revision)
    counts: dict[str, int] = {}
    for entry in results:
        counts[entry["action"]] = counts.get(entry["action"], 0) + 1
    log.info("applied revision %s to %s: %s", revision, namespace, counts)
    return {"namespace": namespace, "revision": revision, "results": results}


def delete_project(kube: Kube, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    """Delete the project's namespace, and with it everything inside. Raises NotOwned for anyone else's."""
    existing = kube.get(NAMESPACE, namespace)
    if existing is None:
        return {"namespace": namespace, "deleted": False}
    check_owner(kube, namespace, existing, labels)
    kube.delete(NAMESPACE, namespace)
    log.info("deleted project namespace %s", namespace)
    return {"namespace": namespace, "deleted": True}
