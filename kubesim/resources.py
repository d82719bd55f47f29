"""Registry of the kinds the emulator serves: built-in ones and CRD-defined ones, plus discovery data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
CLUSTER_VERBS = ALL_VERBS


@dataclass
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: list[str] = field(default_factory=list)
    subresources: tuple[str, ...] = ()
    # Whether metadata.generation is maintained (kinds with a spec that controllers observe).
    has_generation: bool = False
    # Name rule: "subdomain" (most kinds), "label" (DNS-1123 label), "dns1035" (Services), "path" (RBAC).
    name_rule: str = "subdomain"
    categories: list[str] = field(default_factory=list)
    # For custom resources: the CRD's openAPIV3Schema and its scale subresource paths.
    crd_schema: dict[str, Any] | None = None
    scale_paths: dict[str, str] | None = None
    # For custom resources: the CRD version's additionalPrinterColumns (the Table columns of `kubectl get`).
    printer_columns: list[dict[str, Any]] = field(default_factory=list)
    builtin: bool = True
    # Verbs served, when not all of them (the review APIs only take `create`).
    verbs: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_resource(self) -> str:
        """How the apiserver names the resource in messages: `deployments.apps`, `pods`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def discovery_entries(self) -> list[dict[str, Any]]:
        main: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs or ALL_VERBS),
            "storageVersionHash": "",
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        if self.categories:
            main["categories"] = list(self.categories)
        out = [main]
        for sub in self.subresources:
            entry: dict[str, Any] = {
                "name": f"{self.plural}/{sub}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }
            if sub == "scale":
                entry.update(group="autoscaling", version="v1", kind="Scale")
            elif sub in ("log",):
                entry.update(kind="Pod", verbs=["get"])
            elif sub == "token":
                entry.update(group="authentication.k8s.io", version="v1", kind="TokenRequest", verbs=["create"])
            elif sub in ("exec", "attach"):
                entry.update(kind="PodExecOptions" if sub == "exec" else "PodAttachOptions", verbs=["create", "get"])
            elif sub == "portforward":
                entry.update(kind="PodPortForwardOptions", verbs=["create", "get"])
            out.append(entry)
        return out


def _b(group: str, version: str, kind: str, plural: str, **kw: Any) -> ResourceType:
    return ResourceType(group=group, version=version, kind=kind, plural=plural, **kw)


def builtin_types() -> list[ResourceType]:
    gen = {"has_generation": True}
    return [
        _b("", "v1", "Namespace", "namespaces", namespaced=False, short_names=["ns"],
           subresources=("status", "finalize"), name_rule="label"),
        _b("", "v1", "Pod", "pods", short_names=["po"], subresources=("status", "log", "exec", "attach", "portforward"),
           categories=["all"], **gen),
        _b("", "v1", "Service", "services", short_names=["svc"], subresources=("status",), name_rule="dns1035",
           categories=["all"]),
        _b("", "v1", "ConfigMap", "configmaps", short_names=["cm"]),
        _b("", "v1", "Secret", "secrets"),
        _b("", "v1", "ServiceAccount", "serviceaccounts", short_names=["sa"], subresources=("token",)),
        _b("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", short_names=["pvc"],
           subresources=("status",)),
        _b("", "v1", "Event", "events", short_names=["ev"]),
        _b("", "v1", "ResourceQuota", "resourcequotas", short_names=["quota"], subresources=("status",)),
        _b("", "v1", "LimitRange", "limitranges", short_names=["limits"]),
        _b("", "v1", "Node", "nodes", namespaced=False, short_names=["no"], subresources=("status",)),
        _b("apps", "v1", "Deployment", "deployments", short_names=["deploy"], subresources=("status", "scale"),
           categories=["all"], **gen),
        _b("apps", "v1", "StatefulSet", "statefulsets", short_names=["sts"], subresources=("status", "scale"),
           categories=["all"], **gen),
        _b("apps", "v1", "ReplicaSet", "replicasets", short_names=["rs"], subresources=("status", "scale"),
           categories=["all"], **gen),
        _b("apps", "v1", "DaemonSet", "daemonsets", short_names=["ds"], subresources=("status",),
           categories=["all"], **gen),
        _b("batch", "v1", "Job", "jobs", subresources=("status",), categories=["all"], **gen),
        _b("batch", "v1", "CronJob", "cronjobs", short_names=["cj"], subresources=("status",),
           categories=["all"], **gen),
        _b("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", short_names=["netpol"], **gen),
        _b("networking.k8s.io", "v1", "Ingress", "ingresses", short_names=["ing"], subresources=("status",),
           **gen),
        _b("networking.k8s.io", "v1", "IngressClass", "ingressclasses", namespaced=False, **gen),
        _b("rbac.authorization.k8s.io", "v1", "Role", "roles", name_rule="path"),
        _b("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", name_rule="path"),
        _b("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", namespaced=False, name_rule="path"),
        _b("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False,
           name_rule="path"),
        *_reviews(),
        _b("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", short_names=["pdb"],
           subresources=("status",), **gen),
        _b("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions",
           namespaced=False, short_names=["crd", "crds"], subresources=("status",), **gen),
    ]


def _reviews() -> list[ResourceType]:
    """Create-only kinds that are answered, not stored: access reviews, token reviews, who-am-I."""
    create = {"verbs": ("create",)}
    return [
        _b("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", namespaced=False,
           **create),
        _b("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", namespaced=False,
           **create),
        _b("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", namespaced=False, **create),
        _b("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", **create),
        _b("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", namespaced=False, **create),
        _b("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", namespaced=False, **create),
    ]


_FREE_FORM = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a CRD."""
    spec = crd.get("spec", {})
    names = spec.get("names", {})
    out = []
    for ver in spec.get("versions", []):
        if not ver.get("served", True):
            continue
        subs = ver.get("subresources") or {}
        scale = subs.get("scale")
        out.append(ResourceType(
            group=spec["group"], version=ver["name"], kind=names["kind"], plural=names["plural"],
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=list(names.get("shortNames", [])),
            categories=list(names.get("categories", [])),
            subresources=tuple(s for s in ("status", "scale") if s in subs),
            has_generation=True,
            crd_schema=(ver.get("schema") or {}).get("openAPIV3Schema") or _FREE_FORM,
            scale_paths=scale,
            printer_columns=list(ver.get("additionalPrinterColumns") or []),
            builtin=False,
        ))
    return out


class Registry:
    """Kinds by URL coordinates and by apiVersion/kind; mutable as CRDs come and go."""

    def __init__(self) -> None:
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        self._by_kind: dict[tuple[str, str], ResourceType] = {}
        self._crd_owned: dict[str, list[ResourceType]] = {}
        for rt in builtin_types():
            self._add(rt)

    def _add(self, rt: ResourceType) -> None:
        self._by_path[(rt.group, rt.version, rt.plural)] = rt
        self._by_kind[(rt.api_version, rt.kind)] = rt

    def add_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        name = crd["metadata"]["name"]
        self.remove_crd(name)
        types = types_from_crd(crd)
        for rt in types:
            self._add(rt)
        self._crd_owned[name] = types
        return types

    def remove_crd(self, name: str) -> list[ResourceType]:
        types = self._crd_owned.pop(name, [])
        for rt in types:
            self._by_path.pop((rt.group, rt.version, rt.plural), None)
            self._by_kind.pop((rt.api_version, rt.kind), None)
        return types

    def reset(self) -> None:
        for name in list(self._crd_owned):
            self.remove_crd(name)

    def by_path(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        return self._by_kind.get((api_version, kind))

    def all(self) -> list[ResourceType]:
        return list(self._by_path.values())

    def group_versions(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for rt in self._by_path.values():
            versions = groups.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return groups

    # --- discovery documents -------------------------------------------------------------------

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        types = [rt for rt in self._by_path.values() if rt.group == group and rt.version == version]
        if not types:
            return None
        resources: list[dict[str, Any]] = []
        for rt in sorted(types, key=lambda t: t.plural):
            resources.extend(rt.discovery_entries())
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    def api_group_list(self) -> dict[str, Any]:
        groups = []
        for group, versions in sorted(self.group_versions().items()):
            if not group:
                continue
            gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def api_group(self, group: str) -> dict[str, Any] | None:
        versions = self.group_versions().get(group)
        if not versions or not group:
            return None
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs, "preferredVersion": gvs[0]}
