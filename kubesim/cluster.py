"""The apiserver's semantics over the store: metadata, validation, admission checks, GC, namespaces.

HTTP handlers and simulated controllers both go through `Cluster`, so controllers obey the same rules
(resourceVersion conflicts, validation) as clients.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubesim import apply as ssa
from kubesim import patch as patches
from kubesim import podsecurity, schema
from kubesim.defaults import apply_defaults, kind_causes
from kubesim.errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    invalid,
    namespace_not_found,
    not_found,
)
from kubesim.rbac import UserInfo
from kubesim.resources import Registry, ResourceType
from kubesim.scale import scale_of, set_dotted
from kubesim.selectors import Matcher
from kubesim.store import Store, clone

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_SYSTEM_META = ("uid", "creationTimestamp", "resourceVersion", "generation", "managedFields",
                "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink")
ROOT_CA = "-----BEGIN CERTIFICATE-----\nMIIBa2t1YmVzaW0tZmFrZS1yb290LWNh\n-----END CERTIFICATE-----\n"
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's generateName alphabet


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(n))


@dataclass
class WriteOptions:
    field_manager: str = "unknown"
    dry_run: bool = False
    field_validation: str = "Warn"  # Ignore / Warn / Strict, as the apiserver's fieldValidation
    trusted: bool = False  # bootstrap objects (upstream CRDs) skip schema validation on every reset
    user: UserInfo | None = None  # who writes through the API (None: the emulator's own controllers)
    warnings: list[str] = field(default_factory=list)


def _terminates_gracefully(pod: dict[str, Any], grace_seconds: int | None) -> bool:
    """The apiserver removes a pod at once when it never ran on a node, has finished, or is deleted with a grace
    period of 0 (the kubelet's own final delete); any other pod terminates first."""
    if grace_seconds == 0 or not pod["spec"].get("nodeName"):
        return False
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


class Cluster:
    def __init__(self) -> None:
        self.registry = Registry()
        self.store = Store()
        self._cluster_ips = ipaddress.ip_network("10.43.0.0/16").hosts()
        self._node_ports = iter(range(30000, 32768))
        self.pending: set[asyncio.Task[Any]] = set()
        # Checks on the final object of every API write, e.g. RBAC escalation prevention: (rt, new, old, opts).
        self.write_checks: list[Callable[[ResourceType, dict[str, Any], dict[str, Any] | None, WriteOptions], None]]
        self.write_checks = []

    # --- helpers ---------------------------------------------------------------------------------

    def key(self, rt: ResourceType) -> tuple[str, str]:
        return (rt.group, rt.plural)

    def rt_for(self, api_version: str, kind: str) -> ResourceType:
        rt = self.registry.by_kind(api_version, kind)
        if rt is None:
            raise bad_request(f'no matches for kind "{kind}" in version "{api_version}"')
        return rt

    def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.store.get(self.key(rt), namespace if rt.namespaced else "", name)
        if obj is None:
            raise not_found(rt, name)
        return obj

    def find(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        return self.store.get(self.key(rt), namespace if rt.namespaced else "", name)

    def list(self, rt: ResourceType, namespace: str | None = None, label: Matcher | None = None,
             fields: Matcher | None = None) -> list[dict[str, Any]]:
        items = self.store.list(self.key(rt), namespace if rt.namespaced else None)
        return [o for o in items if (label is None or label(o["metadata"].get("labels") or {}))
                and (fields is None or fields(o))]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    def _check_namespace(self, rt: ResourceType, namespace: str, *, creating: bool) -> None:
        if not rt.namespaced:
            return
        ns = self.store.get(("", "namespaces"), "", namespace)
        if ns is None:
            raise namespace_not_found(namespace)
        if creating and ns["metadata"].get("deletionTimestamp"):
            raise ApiError("Forbidden", f'{rt.group_resource} is forbidden: unable to create new content in '
                           f'namespace {namespace} because it is being terminated',
                           details={"kind": rt.plural, "causes": [{
                               "reason": "NamespaceTerminating", "field": "metadata.namespace",
                               "message": f"namespace {namespace} is being terminated"}]})

    def _validate(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None,
                  opts: WriteOptions) -> None:
        if opts.trusted:
            return
        name = obj["metadata"].get("name") or obj["metadata"].get("generateName", "")
        causes, unknown = schema.check(obj, name_rule=rt.name_rule, crd_schema=rt.crd_schema,
                                       namespaced=rt.namespaced)
        if unknown:
            paths = [schema.field_path(p) for p in unknown]
            if opts.field_validation == "Strict":
                detail = ", ".join(f'unknown field "{p}"' for p in paths)
                raise bad_request(f"{rt.kind} in version \"{rt.version}\" cannot be handled as a {rt.kind}: "
                                  f"strict decoding error: {detail}")
            if opts.field_validation != "Ignore":
                opts.warnings += [f'unknown field "{p}"' for p in paths]
            schema.prune(obj, unknown)
        causes += kind_causes(obj, old)
        if rt.kind == "Namespace":
            causes += podsecurity.label_causes(obj, old)
        if rt.kind == "CustomResourceDefinition":
            causes += _crd_causes(obj)
        if causes:
            raise invalid(rt, name, causes)

    def _check_body(self, rt: ResourceType, body: Any, namespace: str, name: str | None) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request was not a JSON object")
        if body.get("kind") not in (None, rt.kind) or body.get("apiVersion") not in (None, rt.api_version):
            raise bad_request(f"the API version in the data ({body.get('apiVersion')}) does not match the "
                              f"expected API version ({rt.api_version})" if body.get("kind") in (None, rt.kind)
                              else f"{body.get('kind')} in version {rt.version} cannot be handled as a {rt.kind}")
        obj = clone(body)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request("the namespace of the provided object does not match the namespace sent on "
                                  "the request")
            meta["namespace"] = namespace
        if name is not None and meta.get("name") and meta["name"] != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        if name is not None:
            meta["name"] = name
        return obj

    # --- verbs -----------------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str, body: Any, opts: WriteOptions) -> dict[str, Any]:
        obj = self._check_body(rt, body, namespace, None)
        meta = obj["metadata"]
        for k in _SYSTEM_META:
            meta.pop(k, None)
        if "status" in rt.subresources and rt.kind != "Node":
            obj.pop("status", None)  # status is written through the status subresource, not on create
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + random_suffix()
        self._check_namespace(rt, namespace, creating=True)
        self._validate(rt, obj, None, opts)
        if self.find(rt, namespace, meta["name"]) is not None:
            raise already_exists(rt, meta["name"])
        self._admit(rt, obj, None, opts)
        return self._insert(rt, obj, opts)

    def _admit(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, opts: WriteOptions) -> None:
        """Validating admission after validation, as in the apiserver: Pod Security from the namespace's labels."""
        if rt.kind == "Namespace":
            if old is not None:
                pods = self.store.list(("", "pods"), obj["metadata"]["name"])
                opts.warnings += podsecurity.namespace_warnings(obj, old, pods)
            return
        if not rt.namespaced or not rt.builtin:
            return
        ns = self.store.get(("", "namespaces"), "", obj["metadata"]["namespace"]) or {"metadata": {}}
        decision = podsecurity.admit(ns["metadata"].get("labels") or {}, obj, old)
        if decision.denied:
            name = obj["metadata"].get("name", "")
            raise ApiError("Forbidden", f'{rt.group_resource} "{name}" is forbidden: {decision.denied}',
                           details={"name": name, "kind": rt.plural})
        opts.warnings += decision.warnings

    def _insert(self, rt: ResourceType, obj: dict[str, Any], opts: WriteOptions,
                managed: bool = True) -> dict[str, Any]:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = ssa.now()
        if rt.has_generation:
            meta["generation"] = 1
        if rt.kind == "Job":
            self._job_selector(obj)
        apply_defaults(obj)
        if rt.kind == "Service":
            self._allocate_service(obj)
        if managed:
            ssa.record_update(None, obj, rt, opts.field_manager)
        for check in self.write_checks:
            check(rt, obj, None, opts)
        if opts.dry_run:
            return obj
        stored = self.store.write(self.key(rt), obj, None, "ADDED")
        if rt.kind == "CustomResourceDefinition":
            self._install_crd(stored)
        return clone(stored)

    def _job_selector(self, obj: dict[str, Any]) -> None:
        spec = obj.get("spec") or {}
        if spec.get("manualSelector"):
            return
        uid, name = obj["metadata"]["uid"], obj["metadata"]["name"]
        labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                  "controller-uid": uid, "job-name": name}
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        tpl = spec.setdefault("template", {}).setdefault("metadata", {})
        tpl.setdefault("labels", {}).update(labels)

    def _allocate_service(self, obj: dict[str, Any]) -> None:
        spec = obj["spec"]
        if spec.get("type") == "ExternalName":
            return
        if spec.get("clusterIP") != "None":
            spec.setdefault("clusterIP", str(next(self._cluster_ips)))
        spec["clusterIPs"] = [spec["clusterIP"]]
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            for p in spec.get("ports") or []:
                p.setdefault("nodePort", next(self._node_ports))
            spec.setdefault("externalTrafficPolicy", "Cluster")
            if spec["type"] == "LoadBalancer":
                spec.setdefault("allocateLoadBalancerNodePorts", True)

    def replace(self, rt: ResourceType, namespace: str, name: str, body: Any, opts: WriteOptions,
                subresource: str = "") -> dict[str, Any]:
        new = self._check_body(rt, body, namespace, name)
        old = self.get(rt, namespace, name)
        rv = new["metadata"].get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        return self._update(rt, old, new, opts, subresource=subresource)

    def patch(self, rt: ResourceType, namespace: str, name: str, patch_type: str, body: Any,
              opts: WriteOptions, *, force: bool = False, subresource: str = "") -> dict[str, Any]:
        if patch_type == "apply":
            return self.server_side_apply(rt, namespace, name, body, opts, force=force, subresource=subresource)
        old = self.get(rt, namespace, name)
        if patch_type == "json":
            new = patches.json_patch(old, body)
        elif patch_type == "merge":
            new = patches.merge_patch(old, body)
        else:
            if not rt.builtin:
                raise ApiError("UnsupportedMediaType", "the body of the request was in an unknown format - "
                               "accepted media types include: application/json-patch+json, "
                               "application/merge-patch+json, application/apply-patch+yaml")
            new = patches.strategic_merge(old, body, ssa.root_schema(rt))
        if not isinstance(new, dict):
            raise bad_request("the patch did not produce an object")
        rv = (new.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        new = self._check_body(rt, new, namespace, name)
        return self._update(rt, old, new, opts, subresource=subresource)

    def server_side_apply(self, rt: ResourceType, namespace: str, name: str, body: Any, opts: WriteOptions,
                          *, force: bool, subresource: str = "") -> dict[str, Any]:
        if not opts.field_manager:
            raise bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is "
                              "required for apply patch")
        cfg = self._check_body(rt, body, namespace, name)
        if not body.get("apiVersion") or not body.get("kind"):
            raise bad_request("apiVersion and kind must be set in an apply configuration")
        old = self.find(rt, namespace, name)
        if old is None:
            if subresource:
                raise not_found(rt, name)
            self._check_namespace(rt, namespace, creating=True)
            self._validate(rt, cfg, None, opts)
            obj = ssa.apply(None, cfg, rt, opts.field_manager, force=force)
            obj["metadata"].update(name=name, **({"namespace": namespace} if rt.namespaced else {}))
            self._admit(rt, obj, None, opts)
            return self._insert(rt, obj, opts, managed=False)
        new = ssa.apply(old, cfg, rt, opts.field_manager, force=force, subresource=subresource)
        return self._update(rt, old, new, opts, subresource=subresource, managed=False)

    def _update(self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any], opts: WriteOptions,
                *, subresource: str = "", managed: bool = True) -> dict[str, Any]:
        """Common tail of PUT / PATCH / apply: keep what the client may not change, validate, store."""
        meta, old_meta = new["metadata"], old["metadata"]
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        if managed:
            meta["managedFields"] = clone(old_meta.get("managedFields") or [])
        if subresource == "status":
            # The status subresource changes status only; everything else comes from the stored object.
            status = new.get("status")
            new = clone(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            if not managed:
                new["metadata"]["managedFields"] = meta.get("managedFields", [])
            meta = new["metadata"]
        elif "status" in rt.subresources:
            if "status" in old:
                new["status"] = clone(old["status"])
            else:
                new.pop("status", None)
        self._validate(rt, new, old, opts)
        if not subresource:
            self._admit(rt, new, old, opts)
        apply_defaults(new)
        if rt.kind == "Service":
            new["spec"].setdefault("clusterIP", old.get("spec", {}).get("clusterIP"))
            self._allocate_service(new)
        if rt.has_generation and _spec_of(new) != _spec_of(old):
            meta["generation"] = old_meta.get("generation", 1) + 1
        if managed:
            ssa.record_update(old, new, rt, opts.field_manager, subresource)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if _same(new, old):
            return clone(old)  # a no-op write keeps the resourceVersion, as the apiserver does
        for check in self.write_checks:
            check(rt, new, old, opts)
        if opts.dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._remove(rt, new)
        stored = self.store.write(self.key(rt), new, old, "MODIFIED")
        if rt.kind == "CustomResourceDefinition":
            self._install_crd(stored)
        return clone(stored)

    def write(self, rt: ResourceType, new: dict[str, Any], manager: str, subresource: str = "") -> dict[str, Any]:
        """Controllers' update: `new` replaces the stored object (or just its status)."""
        meta = new["metadata"]
        old = self.get(rt, meta.get("namespace", ""), meta["name"])
        return self._update(rt, old, clone(new), WriteOptions(field_manager=manager), subresource=subresource)

    def write_scale(self, rt: ResourceType, namespace: str, name: str, scale: Any, opts: WriteOptions
                    ) -> dict[str, Any]:
        """PUT/PATCH on the scale subresource: only the replica count changes, owned by the writer."""
        obj = self.get(rt, namespace, name)
        meta = (scale.get("metadata") or {}) if isinstance(scale, dict) else {}
        if meta.get("resourceVersion") and meta["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        replicas = ((scale.get("spec") or {}) if isinstance(scale, dict) else {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise invalid(rt, name, [{"reason": "FieldValueInvalid", "field": "spec.replicas",
                                      "message": f"Invalid value: {replicas}: must be greater than or equal to 0"}])
        new = clone(obj)
        set_dotted(new, (rt.scale_paths or {}).get("specReplicasPath", ".spec.replicas"), replicas)
        return scale_of(rt, self._update(rt, obj, new, opts, subresource="scale"))

    # --- delete, GC, namespaces -----------------------------------------------------------------

    def delete(self, rt: ResourceType, namespace: str, name: str, *, propagation: str | None = None,
               opts: WriteOptions | None = None, precondition_uid: str | None = None,
               precondition_rv: str | None = None, grace_seconds: int | None = None) -> dict[str, Any]:
        opts = opts or WriteOptions()
        obj = self.get(rt, namespace, name)
        if precondition_uid and precondition_uid != obj["metadata"]["uid"]:
            raise ApiError("Conflict", f'Precondition failed: UID in precondition: {precondition_uid}, UID in '
                           f'object meta: {obj["metadata"]["uid"]}', details={"name": name, "kind": rt.plural})
        if precondition_rv and precondition_rv != obj["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        if opts.dry_run:
            return clone(obj)
        if rt.kind == "Namespace":
            return self._terminate_namespace(obj)
        if propagation == "Orphan":
            self._orphan(obj)
        meta = obj["metadata"]
        if rt.kind == "Pod" and not meta.get("finalizers") and _terminates_gracefully(obj, grace_seconds):
            return self._terminate_pod(rt, obj, grace_seconds)
        if meta.get("finalizers") or propagation == "Foreground":
            if meta.get("deletionTimestamp"):
                return clone(obj)
            new = clone(obj)
            new["metadata"]["deletionTimestamp"] = ssa.now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if propagation == "Foreground" and not meta.get("finalizers"):
                # Foreground: dependents go first, then the owner (its foregroundDeletion finalizer clears).
                self._spawn(self._foreground(rt, new))
                new["metadata"]["finalizers"] = ["foregroundDeletion"]
            return clone(self.store.write(self.key(rt), new, obj, "MODIFIED"))
        return self._remove(rt, obj)

    def _terminate_pod(self, rt: ResourceType, obj: dict[str, Any], grace_seconds: int | None) -> dict[str, Any]:
        """As the apiserver does for a pod bound to a node: mark it terminating and leave the rest to the kubelet,
        which stops its containers and then deletes it with a grace period of 0 (its log stays readable until
        then). Deleting a terminating pod again only shortens nothing here: it is already on its way."""
        if obj["metadata"].get("deletionTimestamp"):
            return clone(obj)
        grace = grace_seconds if grace_seconds is not None else obj["spec"].get("terminationGracePeriodSeconds", 30)
        new = clone(obj)
        new["metadata"]["deletionTimestamp"] = (datetime.now(UTC) + timedelta(seconds=grace)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        new["metadata"]["deletionGracePeriodSeconds"] = grace
        return clone(self.store.write(self.key(rt), new, obj, "MODIFIED"))

    def _remove(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        old = self.store.get(self.key(rt), obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        gone = self.store.write(self.key(rt), clone(obj), old, "DELETED")
        if rt.kind == "CustomResourceDefinition":
            self._uninstall_crd(gone)
        self._spawn(self._collect_garbage(gone["metadata"]["uid"]))
        ns = gone["metadata"].get("namespace")
        if ns:
            nsobj = self.store.get(("", "namespaces"), "", ns)
            if nsobj and nsobj["metadata"].get("deletionTimestamp"):
                self._spawn(self._finish_namespace(ns))
        return clone(gone)

    def dependents(self, uid: str) -> list[tuple[ResourceType, dict[str, Any]]]:
        out = []
        for rt in self.registry.all():
            for obj in self.store.list(self.key(rt)):
                if any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or []):
                    out.append((rt, obj))
        return out

    async def _collect_garbage(self, uid: str) -> None:
        await asyncio.sleep(0)  # the garbage collector is asynchronous in a real cluster, too
        for rt, obj in self.dependents(uid):
            try:
                self.delete(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"],
                            propagation="Background")
            except ApiError:
                pass

    async def _foreground(self, rt: ResourceType, owner: dict[str, Any]) -> None:
        uid = owner["metadata"]["uid"]
        await self._collect_garbage(uid)
        for _ in range(200):
            if not self.dependents(uid):
                break
            await asyncio.sleep(0.01)
        cur = self.find(rt, owner["metadata"].get("namespace", ""), owner["metadata"]["name"])
        if cur is not None and cur["metadata"]["uid"] == uid:
            new = clone(cur)
            new["metadata"]["finalizers"] = [f for f in cur["metadata"].get("finalizers", [])
                                             if f != "foregroundDeletion"]
            self._update(rt, cur, new, WriteOptions(field_manager="kube-controller-manager"), managed=False)

    def _orphan(self, obj: dict[str, Any]) -> None:
        uid = obj["metadata"]["uid"]
        for rt, dep in self.dependents(uid):
            new = clone(dep)
            new["metadata"]["ownerReferences"] = [r for r in dep["metadata"]["ownerReferences"]
                                                  if r.get("uid") != uid]
            self._update(rt, dep, new, WriteOptions(field_manager="kube-controller-manager"))

    def _terminate_namespace(self, ns: dict[str, Any]) -> dict[str, Any]:
        if ns["metadata"].get("deletionTimestamp"):
            return clone(ns)
        new = clone(ns)
        new["metadata"]["deletionTimestamp"] = ssa.now()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new["status"] = {"phase": "Terminating"}
        stored = self.store.write(("", "namespaces"), new, ns, "MODIFIED")
        self._spawn(self._drain_namespace(ns["metadata"]["name"]))
        return clone(stored)

    async def _drain_namespace(self, name: str) -> None:
        await asyncio.sleep(0)  # the namespace controller works after the DELETE has answered
        for rt in self.registry.all():
            if not rt.namespaced:
                continue
            for obj in self.store.list(self.key(rt), name):
                try:
                    self.delete(rt, name, obj["metadata"]["name"])
                except ApiError:
                    pass
        await self._finish_namespace(name)

    async def _finish_namespace(self, name: str) -> None:
        ns = self.store.get(("", "namespaces"), "", name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if any(self.store.list(self.key(rt), name) for rt in self.registry.all() if rt.namespaced):
            return  # objects with finalizers remain; finishing happens when the last one goes
        if ns["metadata"].get("finalizers"):
            return
        self.store.write(("", "namespaces"), clone(ns), ns, "DELETED")

    # --- CRDs ------------------------------------------------------------------------------------

    def _install_crd(self, crd: dict[str, Any]) -> None:
        self.registry.add_crd(crd)
        if not crd.get("status", {}).get("acceptedNames"):
            # The apiextensions controller marks a CRD Established as soon as its names are accepted.
            new = clone(crd)
            names = crd["spec"]["names"]
            new["status"] = {
                "acceptedNames": {k: v for k, v in names.items()},
                "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage")],
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": ssa.now()},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": ssa.now()}]}
            self.store.write(("apiextensions.k8s.io", "customresourcedefinitions"), new, crd, "MODIFIED")

    def _uninstall_crd(self, crd: dict[str, Any]) -> None:
        for rt in self.registry.remove_crd(crd["metadata"]["name"]):
            for obj in self.store.list(self.key(rt)):
                self.store.write(self.key(rt), clone(obj), obj, "DELETED")

    def ensure_namespace_defaults(self, namespace: str, manager: str) -> None:
        """What controllers add to every namespace: the `default` ServiceAccount and `kube-root-ca.crt`."""
        ns = self.find(self.rt_for("v1", "Namespace"), "", namespace)
        if ns is None or ns["metadata"].get("deletionTimestamp"):
            return
        opts = WriteOptions(field_manager=manager)
        sa_rt, cm_rt = self.rt_for("v1", "ServiceAccount"), self.rt_for("v1", "ConfigMap")
        if self.find(sa_rt, namespace, "default") is None:
            self.create(sa_rt, namespace, {"metadata": {"name": "default"}}, opts)
        if self.find(cm_rt, namespace, "kube-root-ca.crt") is None:
            self.create(cm_rt, namespace, {"metadata": {"name": "kube-root-ca.crt", "annotations": {
                "kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver "
                                             "when using internal endpoints such as the internal service IP or "
                                             "kubernetes.default.svc. No other usage is guaranteed across "
                                             "distributions of Kubernetes clusters."}},
                "data": {"ca.crt": ROOT_CA}}, opts)

    # --- bootstrap -------------------------------------------------------------------------------

    def bootstrap(self, crds: list[dict[str, Any]] | None = None, *, k3s_addons: bool = False) -> None:
        """A fresh K3s-like cluster: default namespaces (with their ServiceAccount and root CA), two nodes."""
        self.store.clear()
        self.registry.reset()
        self._cluster_ips = ipaddress.ip_network("10.43.0.0/16").hosts()
        next(self._cluster_ips)  # 10.43.0.1 is the kubernetes Service
        self._node_ports = iter(range(30000, 32768))
        opts = WriteOptions(field_manager="k3s")
        ns_rt = self.rt_for("v1", "Namespace")
        for name in DEFAULT_NAMESPACES:
            self.create(ns_rt, "", {"metadata": {"name": name}}, opts)
            self.ensure_namespace_defaults(name, "kube-controller-manager")
        node_rt = self.rt_for("v1", "Node")
        for i, extra in enumerate(({"ingress-ready": "true"}, {})):
            name = f"kubesim-node-{i}"
            labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                      "node.kubernetes.io/instance-type": "k3s", **extra}
            if i == 0:
                labels["node-role.kubernetes.io/control-plane"] = "true"
            self.create(node_rt, "", {"metadata": {"name": name, "labels": labels},
                                      "spec": {"podCIDR": f"10.42.{i}.0/24", "podCIDRs": [f"10.42.{i}.0/24"]},
                                      "status": _node_status(i)}, opts)
        opts.trusted = True
        for crd in crds or []:
            self.create(self.rt_for("apiextensions.k8s.io/v1", "CustomResourceDefinition"), "",
                        {k: v for k, v in crd.items() if k != "status"}, opts)
        if k3s_addons:
            self._k3s_addons(opts)

    def _k3s_addons(self, opts: WriteOptions) -> None:
        """What K3s deploys from its manifests dir: CoreDNS, the traefik IngressClass and HelmCharts."""
        labels = {"k8s-app": "kube-dns"}
        self.create(self.rt_for("apps/v1", "Deployment"), "kube-system", {"metadata": {"name": "coredns", "labels": {
            **labels, "kubernetes.io/name": "CoreDNS"}}, "spec": {"replicas": 1, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                {"name": "coredns", "image": "rancher/mirrored-coredns-coredns:1.12.1"}]}}}}, opts)
        self.create(self.rt_for("v1", "Service"), "kube-system", {"metadata": {"name": "kube-dns", "labels": labels},
                    "spec": {"clusterIP": "10.43.0.10", "selector": labels, "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP"},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}}, opts)
        self.create(self.rt_for("networking.k8s.io/v1", "IngressClass"), "", {"metadata": {
            "name": "traefik", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": "traefik.io/ingress-controller"}}, opts)
        chart_rt = self.registry.by_kind("helm.cattle.io/v1", "HelmChart")
        if chart_rt is None:
            return  # the HelmChart CRD was not preloaded
        for name in ("traefik-crd", "traefik"):
            self.create(chart_rt, "kube-system", {"metadata": {"name": name}, "spec": {
                "chart": f"https://%{{KUBERNETES_API}}%/static/charts/{name}-37.1.1+up37.1.0.tgz",
                "targetNamespace": "kube-system", "valuesContent": "deployment:\n  podAnnotations: {}\n"}}, opts)


def _node_status(i: int) -> dict[str, Any]:
    return {
        "addresses": [{"type": "InternalIP", "address": f"172.18.0.{i + 2}"},
                      {"type": "Hostname", "address": f"kubesim-node-{i}"}],
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "kubelet is posting ready status"}],
        "nodeInfo": {"kubeletVersion": f"v{schema.KUBERNETES_VERSION}+k3s1", "containerRuntimeVersion":
                     "containerd://2.0.0-k3s1", "operatingSystem": "linux", "architecture": "amd64",
                     "osImage": "kubesim", "kernelVersion": "6.1.0", "kubeProxyVersion": "",
                     "machineID": "", "systemUUID": "", "bootID": ""},
    }


def _spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def strip(o: dict[str, Any]) -> dict[str, Any]:
        o = dict(o)
        meta = dict(o.get("metadata") or {})
        meta.pop("resourceVersion", None)
        meta["managedFields"] = [{k: v for k, v in e.items() if k != "time"} for e in meta.get("managedFields", [])]
        o["metadata"] = meta
        return o
    return strip(a) == strip(b)


def _crd_causes(crd: dict[str, Any]) -> list[dict[str, str]]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    want = f"{names.get('plural')}.{spec.get('group')}"
    if crd["metadata"].get("name") != want:
        return [{"reason": "FieldValueInvalid", "field": "metadata.name",
                 "message": f'Invalid value: "{crd["metadata"].get("name")}": must be spec.names.plural+"."+'
                            f'spec.group'}]
    if sum(1 for v in spec.get("versions") or [] if v.get("storage")) != 1:
        return [{"reason": "FieldValueInvalid", "field": "spec.versions",
                 "message": "Invalid value: must have exactly one version marked as storage version"}]
    return []
