"""The RBAC authorizer, escalation prevention and the default roles, as kube-apiserver has them.

Mirrors the rules of `plugin/pkg/auth/authorizer/rbac` and `pkg/registry/rbac/validation` upstream:
a request's attributes (verb, API group, resource[/subresource], namespace, name, or a non-resource path)
are allowed when any rule of a role bound to the user (or one of its groups, or its ServiceAccount)
matches them. Writing a Role or binding requires holding what it grants, unless `escalate`/`bind` is held.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kubesim.errors import ApiError
from kubesim.resources import ResourceType
from kubesim.store import Event, Store

RBAC_GROUP = "rbac.authorization.k8s.io"
MASTERS = "system:masters"  # the privileged group: allowed everything, before RBAC is asked
AUTHENTICATED = "system:authenticated"
SA_PREFIX = "system:serviceaccount:"
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_RULE_FIELDS = ("apiGroups", "resources", "resourceNames", "nonResourceURLs", "verbs")
# Object kinds whose writes the escalation check guards, and the role kind each binding refers to.
ROLE_KINDS = ("Role", "ClusterRole")
_CACHE_LIMIT = 4096
BINDING_KINDS = ("RoleBinding", "ClusterRoleBinding")


@dataclass(frozen=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""

    @property
    def privileged(self) -> bool:
        return MASTERS in self.groups


@dataclass
class Attributes:
    """What the authorizer sees of a request (upstream `authorizer.AttributesRecord`)."""

    verb: str
    resource_request: bool = True
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def combined_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch",
                 "DELETE": "delete"}


def request_attributes(method: str, path: str, query: Any) -> Attributes:
    """Upstream's RequestInfoFactory: verb, group, resource, subresource, namespace and name from the URL."""
    parts = [p for p in path.split("/") if p]
    nonresource = Attributes(verb=method.lower(), resource_request=False, path=path)
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return nonresource
    prefix, parts = parts[0], parts[1:]
    group = ""
    if prefix == "apis":
        if len(parts) < 3:
            return nonresource
        group, parts = parts[0], parts[1:]
    attrs = Attributes(verb="", api_group=group, api_version=parts[0], path=path)
    parts = parts[1:]
    if parts[0] in ("watch", "proxy"):
        attrs.verb, parts = parts[0], parts[1:]
    else:
        attrs.verb = _METHOD_VERBS.get(method, "")
    if parts and parts[0] == "namespaces" and len(parts) > 1:
        attrs.namespace = parts[1]
        if len(parts) > 2 and parts[2] not in _NAMESPACE_SUBRESOURCES:
            parts = parts[2:]
    if len(parts) >= 3 and attrs.verb != "proxy":
        attrs.subresource = parts[2]
    if len(parts) >= 2:
        attrs.name = parts[1]
    if parts:
        attrs.resource = parts[0]
    if not attrs.name and attrs.verb == "get":
        attrs.verb = "watch" if query.get("watch", "").lower() in ("true", "1") else "list"
        name = _exact_name(query.get("fieldSelector", ""))
        if name:
            attrs.name = name
    if not attrs.name and attrs.verb == "delete":
        attrs.verb = "deletecollection"
    return attrs


def _exact_name(selector: str) -> str:
    for term in selector.split(","):
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if sep and key.strip() == "metadata.name" and not key.endswith("!"):
            return value.strip()
    return ""


# --- rule matching (upstream rbac.RuleAllows) ------------------------------------------------------


def _has(values: list[str] | None, item: str, star: str = "*") -> bool:
    return bool(values) and (star in values or item in values)  # type: ignore[operator]


def _resource_matches(rule: dict[str, Any], attrs: Attributes) -> bool:
    combined, sub = attrs.combined_resource, attrs.subresource
    for res in rule.get("resources") or []:
        if res in ("*", combined):
            return True
        if sub and res == "*/" + sub:
            return True
    return False


def _url_matches(rule: dict[str, Any], path: str) -> bool:
    for url in rule.get("nonResourceURLs") or []:
        if url in ("*", path) or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(attrs: Attributes, rule: dict[str, Any]) -> bool:
    if not _has(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.resource_request:
        return _url_matches(rule, attrs.path)
    names = rule.get("resourceNames") or []
    return (_has(rule.get("apiGroups"), attrs.api_group) and _resource_matches(rule, attrs)
            and (not names or attrs.name in names))


# --- escalation checks (upstream validation.Covers) ------------------------------------------------


def breakdown(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """One rule per (group, resource, verb, name) and per (URL, verb): the unit escalation checks count."""
    out: list[dict[str, Any]] = []
    verbs = rule.get("verbs") or []
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in verbs:
                base = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                names = rule.get("resourceNames") or []
                out += [{**base, "resourceNames": [n]} for n in names] if names else [base]
    for url in rule.get("nonResourceURLs") or []:
        out += [{"nonResourceURLs": [url], "verbs": [verb]} for verb in verbs]
    return out


def _resources_cover(owned: list[str], wanted: list[str]) -> bool:
    if "*" in owned:
        return True
    for path in wanted:
        if path in owned:
            continue
        if "/" not in path or "*/" + path.split("/", 1)[1] not in owned:
            return False
    return True


def _url_covers(owner: str, sub: str) -> bool:
    return owner == sub or (owner.endswith("*") and sub.startswith(owner.rstrip("*")))


def rule_covers(owner: dict[str, Any], sub: dict[str, Any]) -> bool:
    def all_in(key: str) -> bool:
        have = owner.get(key) or []
        return "*" in have or all(v in have for v in sub.get(key) or [])

    owner_names, sub_names = owner.get("resourceNames") or [], sub.get("resourceNames") or []
    names_ok = not owner_names or (bool(sub_names) and all(n in owner_names for n in sub_names))
    urls_ok = all(any(_url_covers(o, s) for o in owner.get("nonResourceURLs") or [])
                  for s in sub.get("nonResourceURLs") or [])
    return (all_in("verbs") and all_in("apiGroups") and names_ok and urls_ok
            and _resources_cover(owner.get("resources") or [], sub.get("resources") or []))


def uncovered(owner_rules: list[dict[str, Any]], wanted: list[dict[str, Any]]) -> list[dict[str, Any]]:
    subs = [s for rule in wanted for s in breakdown(rule)]
    return [s for s in subs if not any(rule_covers(o, s) for o in owner_rules)]


def compact(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge the verbs of rules about one (group, resource, name), as upstream's CompactRules does."""
    simple: dict[tuple[str, str, str], dict[str, Any]] = {}
    out = []
    for r in rules:
        names = r.get("resourceNames") or []
        if r.get("nonResourceURLs") or len(names) > 1 or len(r.get("apiGroups") or []) != 1 \
                or len(r.get("resources") or []) != 1:
            out.append(r)
            continue
        key = (r["apiGroups"][0], r["resources"][0], names[0] if names else "")
        if key in simple:
            simple[key]["verbs"] = simple[key]["verbs"] + r["verbs"]
        else:
            simple[key] = {**r, "verbs": list(r["verbs"])}
    return out + list(simple.values())


def _go_strings(values: list[str] | tuple[str, ...]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


def compact_string(rule: dict[str, Any]) -> str:
    labels = (("apiGroups", "APIGroups"), ("resources", "Resources"), ("nonResourceURLs", "NonResourceURLs"),
              ("resourceNames", "ResourceNames"), ("verbs", "Verbs"))
    return "{" + ", ".join(f"{label}:{_go_strings(rule[key])}" for key, label in labels if rule.get(key)) + "}"


# --- default roles a real cluster bootstraps ------------------------------------------------------

_DISCOVERY_URLS = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
                   "/readyz", "/version", "/version/"]
DEFAULT_CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    "cluster-admin": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                      {"nonResourceURLs": ["*"], "verbs": ["*"]}],
    "system:discovery": [{"nonResourceURLs": _DISCOVERY_URLS, "verbs": ["get"]}],
    "system:public-info-viewer": [{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                                   "verbs": ["get"]}],
    "system:basic-user": [
        {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
         "verbs": ["create"]},
        {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]}],
}
DEFAULT_BINDINGS: dict[str, list[str]] = {  # ClusterRoleBinding (named after its ClusterRole) -> groups
    "cluster-admin": [MASTERS],
    "system:discovery": [AUTHENTICATED],
    "system:public-info-viewer": [AUTHENTICATED, "system:unauthenticated"],
    "system:basic-user": [AUTHENTICATED],
}


def default_objects() -> list[dict[str, Any]]:
    meta = {"labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}
    out: list[dict[str, Any]] = []
    for name, rules in DEFAULT_CLUSTER_ROLES.items():
        out.append({"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole", "metadata": {"name": name, **meta},
                    "rules": rules})
    for name, groups in DEFAULT_BINDINGS.items():
        out.append({"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": name, **meta},
                    "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
                    "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": g} for g in groups]})
    return out


# --- the authorizer --------------------------------------------------------------------------------


@dataclass
class RuleSet:
    """The rules that apply to one user in one namespace, each with where it came from."""

    rules: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def plain(self) -> list[dict[str, Any]]:
        return [r for r, _ in self.rules]


def _subject_applies(subject: dict[str, Any], user: UserInfo, namespace: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user.name
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or namespace
        return bool(ns) and user.name == f"{SA_PREFIX}{ns}:{subject.get('name')}"
    return False


def _describe_subject(subject: dict[str, Any], namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        return f'ServiceAccount "{subject.get("name")}/{subject.get("namespace") or namespace}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


class Authorizer:
    """RBAC over the store's roles and bindings; rules per (user, namespace) cached until RBAC changes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[tuple[UserInfo, str], RuleSet] = {}
        store.listeners.append(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.key[0] == RBAC_GROUP:
            self._cache.clear()

    def clear(self) -> None:
        self._cache.clear()

    def _role_rules(self, ref: dict[str, Any], namespace: str, *, plural: bool = False
                    ) -> tuple[list[dict[str, Any]], str | None]:
        """A roleRef's rules, or the error a missing role gives (the authorizer's cache names kinds singular,
        the registry plural)."""
        kind, name = ref.get("kind"), ref.get("name", "")
        if kind == "ClusterRole":
            role = self.store.get((RBAC_GROUP, "clusterroles"), "", name)
        elif kind == "Role":
            role = self.store.get((RBAC_GROUP, "roles"), namespace, name)
        else:
            return [], f"unsupported role reference kind: {json.dumps(kind)}"
        if role is None:
            return [], f'{kind.lower()}{"s" if plural else ""}.{RBAC_GROUP} {json.dumps(name)} not found'
        return list(role.get("rules") or []), None

    def rules_for(self, user: UserInfo, namespace: str) -> RuleSet:
        key = (user, namespace)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        out = RuleSet()
        for crb in self.store.list((RBAC_GROUP, "clusterrolebindings")):
            for subject in crb.get("subjects") or []:
                if _subject_applies(subject, user, ""):
                    rules, err = self._role_rules(crb.get("roleRef") or {}, "")
                    source = (f'ClusterRoleBinding "{crb["metadata"]["name"]}" of {crb["roleRef"].get("kind")} '
                              f'"{crb["roleRef"].get("name")}" to {_describe_subject(subject, "")}')
                    out.rules += [(r, source) for r in rules]
                    if err:
                        out.errors.append(err)
                    break
        if namespace:
            for rb in self.store.list((RBAC_GROUP, "rolebindings"), namespace):
                for subject in rb.get("subjects") or []:
                    if _subject_applies(subject, user, namespace):
                        rules, err = self._role_rules(rb.get("roleRef") or {}, namespace)
                        source = (f'RoleBinding "{rb["metadata"]["name"]}/{namespace}" of '
                                  f'{rb["roleRef"].get("kind")} "{rb["roleRef"].get("name")}" to '
                                  f'{_describe_subject(subject, namespace)}')
                        out.rules += [(r, source) for r in rules]
                        if err:
                            out.errors.append(err)
                        break
        if len(self._cache) >= _CACHE_LIMIT:  # SubjectAccessReviews may ask about any number of users
            self._cache.clear()
        self._cache[key] = out
        return out

    def decide(self, user: UserInfo, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason) as a SubjectAccessReview reports them."""
        if user.privileged:
            return True, ""
        ruleset = self.rules_for(user, attrs.namespace)
        for rule, source in ruleset.rules:
            if rule_allows(attrs, rule):
                return True, f"RBAC: allowed by {source}"
        if ruleset.errors:
            return False, "RBAC: [" + ", ".join(ruleset.errors) + "]" if len(ruleset.errors) > 1 \
                else f"RBAC: {ruleset.errors[0]}"
        return False, ""

    def require(self, user: UserInfo, attrs: Attributes) -> None:
        allowed, reason = self.decide(user, attrs)
        if not allowed:
            raise forbidden(user, attrs, reason)

    # --- escalation prevention -----------------------------------------------------------------

    def check_write(self, rt: ResourceType, new: dict[str, Any], old: dict[str, Any] | None,
                    user: UserInfo | None) -> None:
        """Refuse a Role/binding write that would grant the writer more than it holds (unless escalate/bind)."""
        if user is None or user.privileged or rt.group != RBAC_GROUP:
            return
        if old is not None and _only_gc_fields(new, old):
            return
        namespace = new["metadata"].get("namespace", "") if rt.namespaced else ""
        name = new["metadata"].get("name", "")
        if rt.kind in ROLE_KINDS:
            verb_attrs = Attributes(verb="escalate", api_group=RBAC_GROUP, resource=rt.plural, namespace=namespace,
                                    name=name)
            if self.decide(user, verb_attrs)[0]:
                return
            self._confirm_no_escalation(rt, name, user, namespace, list(new.get("rules") or []))
        elif rt.kind in BINDING_KINDS:
            ref = new.get("roleRef") or {}
            resource = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
            bind = Attributes(verb="bind", api_group=RBAC_GROUP, resource=resource, namespace=namespace,
                              name=ref.get("name", ""))
            if self.decide(user, bind)[0]:
                return
            rules, err = self._role_rules(ref, namespace, plural=True)
            if err:
                raise _forbidden_object(rt, name, err)
            self._confirm_no_escalation(rt, name, user, namespace, rules)

    def _confirm_no_escalation(self, rt: ResourceType, name: str, user: UserInfo, namespace: str,
                               rules: list[dict[str, Any]]) -> None:
        held = self.rules_for(user, namespace)
        missing = uncovered(held.plain(), rules)
        if not missing:
            return
        lines = sorted({compact_string(r) for r in compact(missing)})
        msg = (f"user {json.dumps(user.name)} (groups={_go_strings(user.groups)}) is attempting to grant RBAC "
               f"permissions not currently held:\n" + "\n".join(lines))
        if held.errors:
            msg += f"; resolution errors: [{', '.join(held.errors)}]"
        raise _forbidden_object(rt, name, msg)


def _only_gc_fields(new: dict[str, Any], old: dict[str, Any]) -> bool:
    def strip(o: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in o.get("metadata", {}).items()
                if k not in ("ownerReferences", "finalizers", "managedFields", "resourceVersion", "selfLink")}
        return {**o, "metadata": meta}
    return strip(new) == strip(old)


def _forbidden_object(rt: ResourceType, name: str, why: str) -> ApiError:
    details: dict[str, Any] = {"name": name, "group": rt.group, "kind": rt.plural}
    return ApiError("Forbidden", f'{rt.group_resource} "{name}" is forbidden: {why}', details=details)


def forbidden(user: UserInfo, attrs: Attributes, reason: str = "") -> ApiError:
    """The apiserver's 403 for a denied request (responsewriters.Forbidden)."""
    if not attrs.resource_request:
        msg = f"User {json.dumps(user.name)} cannot {attrs.verb} path {json.dumps(attrs.path)}"
    elif attrs.namespace:
        msg = (f"User {json.dumps(user.name)} cannot {attrs.verb} resource {json.dumps(attrs.combined_resource)} "
               f"in API group {json.dumps(attrs.api_group)} in the namespace {json.dumps(attrs.namespace)}")
    else:
        msg = (f"User {json.dumps(user.name)} cannot {attrs.verb} resource {json.dumps(attrs.combined_resource)} "
               f"in API group {json.dumps(attrs.api_group)} at the cluster scope")
    if reason:
        msg = f"{msg}: {reason}"
    if not attrs.resource_request:
        return ApiError("Forbidden", f"forbidden: {msg}", details={})
    resource = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    details: dict[str, Any] = {"kind": attrs.resource}
    if attrs.api_group:
        details["group"] = attrs.api_group
    if attrs.name:
        details["name"] = attrs.name
        return ApiError("Forbidden", f'{resource} "{attrs.name}" is forbidden: {msg}', details=details)
    return ApiError("Forbidden", f"{resource} is forbidden: {msg}", details=details)
