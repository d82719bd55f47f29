"""Authentication (bearer tokens) and the request gate: who is asking, and may they?

An admin token (user `system:admin` in `system:masters`, like K3s's admin kubeconfig) and ServiceAccount
tokens: JWTs signed by this emulator, issued through the TokenRequest API or written into legacy
`kubernetes.io/service-account-token` Secrets by the token controller. A token stops working when its
ServiceAccount (or its Secret, or the object it is bound to) is gone. Every request then goes through
the RBAC authorizer; the review APIs (`SelfSubjectAccessReview`, `SubjectAccessReview`, ...) answer here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from kubesim import rbac
from kubesim.cluster import Cluster, WriteOptions
from kubesim.errors import ApiError, bad_request, invalid, method_not_allowed, not_found
from kubesim.rbac import AUTHENTICATED, Attributes, Authorizer, UserInfo
from kubesim.resources import ResourceType

ADMIN = UserInfo("system:admin", (rbac.MASTERS, AUTHENTICATED))
# The audiences kube-apiserver accepts (K3s: the cluster's service issuer and "k3s").
API_AUDIENCES = ("https://kubernetes.default.svc.cluster.local", "k3s")
ISSUER = "https://kubernetes.default.svc.cluster.local"
LEGACY_ISSUER = "kubernetes/serviceaccount"
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"  # noqa: S105 (a Secret type)
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
MIN_EXPIRATION = 600
REVIEW_GROUPS = ("authorization.k8s.io", "authentication.k8s.io")
_STREAM_SUBRESOURCES = ("exec", "attach", "portforward")
IMPERSONATE_USER, IMPERSONATE_GROUP, IMPERSONATE_UID = "Impersonate-User", "Impersonate-Group", "Impersonate-Uid"
IMPERSONATE_EXTRA = "Impersonate-Extra-"
USER = web.RequestKey("user", UserInfo)  # the authenticated user, kept on the request
# A subresource, not served on its own; named for its validation errors.
_TOKEN_REQUEST = ResourceType("authentication.k8s.io", "v1", "TokenRequest", "tokenrequests")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sa_user(namespace: str, name: str, uid: str = "") -> UserInfo:
    return UserInfo(f"{rbac.SA_PREFIX}{namespace}:{name}",
                    ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED), uid)


class Tokens:
    """Issues and checks ServiceAccount JWTs (HS256 with a per-emulator key; clients never verify them)."""

    def __init__(self, cluster: Cluster, admin_token: str | None = None) -> None:
        self.cluster = cluster
        self.admin_token = admin_token or secrets.token_urlsafe(32)
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, dict[str, Any]] = {}

    def _sign(self, claims: dict[str, Any]) -> str:
        head = _b64(json.dumps({"alg": "HS256", "kid": "kubesim"}, separators=(",", ":")).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        mac = hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(mac)}"

    def _claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this emulator signed (checked once per token: clients repeat theirs)."""
        if token in self._verified:
            return self._verified[token]
        claims = self._check_signature(token)
        if claims is not None:
            if len(self._verified) >= 1024:
                self._verified.clear()
            self._verified[token] = claims
        return claims

    def _check_signature(self, token: str) -> dict[str, Any] | None:
        parts = token.split(".")
        if len(parts) != 3:
            return None
        mac = hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(_unb64(parts[2]), mac):
                return None
            claims = json.loads(_unb64(parts[1]))
        except ValueError:
            return None
        return claims if isinstance(claims, dict) else None

    def request_token(self, sa: dict[str, Any], audiences: list[str], expiration: int,
                      bound: dict[str, Any] | None) -> tuple[str, int]:
        now = int(time.time())
        meta = sa["metadata"]
        scope: dict[str, Any] = {"namespace": meta["namespace"],
                                 "serviceaccount": {"name": meta["name"], "uid": meta["uid"]}}
        if bound:
            scope[bound["kind"].lower()] = {"name": bound["name"], "uid": bound["uid"]}
        claims = {"aud": audiences, "exp": now + expiration, "iat": now, "nbf": now, "iss": ISSUER,
                  "jti": secrets.token_hex(16), "kubernetes.io": scope,
                  "sub": f"{rbac.SA_PREFIX}{meta['namespace']}:{meta['name']}"}
        return self._sign(claims), now + expiration

    def legacy_token(self, secret: dict[str, Any], sa: dict[str, Any]) -> str:
        ns, name = sa["metadata"]["namespace"], sa["metadata"]["name"]
        return self._sign({"iss": LEGACY_ISSUER, "kubernetes.io/serviceaccount/namespace": ns,
                           "kubernetes.io/serviceaccount/secret.name": secret["metadata"]["name"],
                           "kubernetes.io/serviceaccount/service-account.name": name,
                           "kubernetes.io/serviceaccount/service-account.uid": sa["metadata"]["uid"],
                           "sub": f"{rbac.SA_PREFIX}{ns}:{name}"})

    def authenticate(self, token: str, audiences: list[str] | tuple[str, ...] = API_AUDIENCES
                     ) -> tuple[UserInfo, list[str]] | None:
        """The user a token stands for and which of `audiences` it is for, or None (unknown, expired, orphaned
        or meant for none of them)."""
        if hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return ADMIN, list(API_AUDIENCES)
        claims = self._claims(token)
        if claims is None:
            return None
        if claims.get("iss") == LEGACY_ISSUER:
            return self._legacy_user(token, claims)
        scope = claims.get("kubernetes.io") or {}
        matched = [a for a in audiences if a in (claims.get("aud") or [])]
        if claims.get("exp", 0) < time.time() or not matched:
            return None
        ns, sa_ref = scope.get("namespace", ""), scope.get("serviceaccount") or {}
        if not self._exists("ServiceAccount", ns, sa_ref):
            return None
        for kind in ("Pod", "Secret"):
            if kind.lower() in scope and not self._exists(kind, ns, scope[kind.lower()]):
                return None
        return sa_user(ns, sa_ref.get("name", ""), sa_ref.get("uid", "")), matched

    def _legacy_user(self, token: str, claims: dict[str, Any]) -> tuple[UserInfo, list[str]] | None:
        prefix = "kubernetes.io/serviceaccount/"
        ns, name = claims.get(prefix + "namespace", ""), claims.get(prefix + "service-account.name", "")
        uid = claims.get(prefix + "service-account.uid", "")
        secret = self.cluster.find(self.cluster.rt_for("v1", "Secret"), ns, claims.get(prefix + "secret.name", ""))
        stored = base64.b64decode(((secret or {}).get("data") or {}).get("token", "")).decode(errors="replace")
        if secret is None or stored != token or not self._exists("ServiceAccount", ns, {"name": name, "uid": uid}):
            return None
        return sa_user(ns, name, uid), list(API_AUDIENCES)

    def _exists(self, kind: str, namespace: str, ref: dict[str, Any]) -> bool:
        obj = self.cluster.find(self.cluster.rt_for("v1", kind), namespace, ref.get("name", ""))
        return obj is not None and obj["metadata"]["uid"] == ref.get("uid")


class AccessControl:
    """The gate every request passes: authenticate the bearer token, then ask the RBAC authorizer."""

    def __init__(self, cluster: Cluster, *, enabled: bool = True, admin_token: str | None = None) -> None:
        self.cluster = cluster
        self.enabled = enabled
        self.tokens = Tokens(cluster, admin_token)
        self.authorizer = Authorizer(cluster.store)
        cluster.write_checks.append(lambda rt, new, old, opts: self.authorizer.check_write(rt, new, old, opts.user))

    def bootstrap(self) -> None:
        """The default ClusterRoles and bindings a fresh cluster has (discovery, basic user, cluster-admin)."""
        opts = WriteOptions(field_manager="kube-apiserver", trusted=True)
        for obj in rbac.default_objects():
            rt = self.cluster.rt_for(obj["apiVersion"], obj["kind"])
            if self.cluster.find(rt, "", obj["metadata"]["name"]) is None:
                self.cluster.create(rt, "", obj, opts)
        self.authorizer.clear()

    def authenticate(self, request: web.Request) -> UserInfo:
        if not self.enabled:
            return ADMIN
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        found = self.tokens.authenticate(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if found is None:
            raise ApiError("Unauthorized", "Unauthorized")
        return found[0]

    def admit(self, request: web.Request) -> UserInfo:
        """Authenticate and authorize a request (401/403 as ApiError); the user is kept on the request."""
        user = self.authenticate(request)
        if self.enabled:
            user = self.impersonate(request, user)
        request[USER] = user
        if not self.enabled or user.privileged:
            return user
        attrs = rbac.request_attributes(request.method, request.path, request.query)
        self.authorizer.require(user, attrs)
        if attrs.subresource in _STREAM_SUBRESOURCES and attrs.verb == "get":
            # Since 1.35 a WebSocket (GET) upgrade to exec/attach/portforward also needs `create`, as SPDY's POST.
            attrs.verb = "create"
            self.authorizer.require(user, attrs)
        return user

    def impersonate(self, request: web.Request, user: UserInfo) -> UserInfo:
        """The identity the request acts as (upstream `filters.WithImpersonation`): with `Impersonate-User`, the
        caller must hold `impersonate` on that user (on `serviceaccounts`, in its namespace, for a ServiceAccount
        username), on each `Impersonate-Group` and on `Impersonate-Uid`; then the request is authorized as the
        impersonated user alone. A ServiceAccount impersonated without groups gets its usual groups."""
        headers = request.headers
        name = headers.get(IMPERSONATE_USER, "")
        groups = tuple(headers.getall(IMPERSONATE_GROUP, []))
        uid = headers.get(IMPERSONATE_UID, "")
        extras = [key for key in headers if key.lower().startswith(IMPERSONATE_EXTRA.lower())]
        if not name:
            if groups or uid or extras:
                raise bad_request(f"requested {_impersonation_summary(groups, uid, extras)} without impersonating "
                                  "a user")
            return user
        # Only the groups asked for are checked; a ServiceAccount's own groups come with it unasked.
        checks: list[Attributes] = []
        if name.startswith(rbac.SA_PREFIX):
            namespace, _, sa_name = name[len(rbac.SA_PREFIX):].partition(":")
            checks.append(Attributes(verb="impersonate", api_version="v1", resource="serviceaccounts",
                                     namespace=namespace, name=sa_name))
            if not groups:
                groups = sa_user(namespace, sa_name).groups
        else:
            checks.append(Attributes(verb="impersonate", api_version="v1", resource="users", name=name))
        checks += [Attributes(verb="impersonate", api_version="v1", resource="groups", name=g)
                   for g in headers.getall(IMPERSONATE_GROUP, [])]
        if uid:
            checks.append(Attributes(verb="impersonate", api_group="authentication.k8s.io", api_version="v1",
                                     resource="uids", name=uid))
        for key in extras:
            extra = key[len(IMPERSONATE_EXTRA):].lower()
            for value in headers.getall(key):
                checks.append(Attributes(verb="impersonate", api_group="authentication.k8s.io", api_version="v1",
                                         resource="userextras", subresource=extra, name=value))
        if not user.privileged:
            for attrs in checks:
                allowed, reason = self.authorizer.decide(user, attrs)
                if not allowed:
                    raise rbac.forbidden(user, attrs, reason)
        if name != "system:anonymous" and AUTHENTICATED not in groups:
            groups = (*groups, AUTHENTICATED)
        return UserInfo(name, tuple(groups), uid)

    def require(self, request: web.Request, verb: str) -> None:
        """A further check for the same object under another verb (server-side apply creating it: `create`)."""
        user: UserInfo = request.get(USER) or ADMIN
        if not self.enabled or user.privileged:
            return
        attrs = rbac.request_attributes(request.method, request.path, request.query)
        attrs.verb = verb
        self.authorizer.require(user, attrs)

    # --- APIs answered here rather than stored ---------------------------------------------------

    def serves(self, rt: ResourceType, sub: str | None) -> bool:
        return rt.group in REVIEW_GROUPS or (rt.kind == "ServiceAccount" and sub == "token")

    async def serve(self, request: web.Request, rt: ResourceType, namespace: str, name: str | None
                    ) -> dict[str, Any]:
        if request.method != "POST" or (name is not None and rt.kind != "ServiceAccount"):
            raise method_not_allowed()
        raw = await request.read()
        try:
            body = (_self_review_from_protobuf(rt.kind, raw) if request.content_type == PROTOBUF
                    else json.loads(raw or b"null"))
        except ValueError as exc:
            raise bad_request(f"the body of the request could not be decoded: {exc}") from None
        if not isinstance(body, dict):
            raise bad_request("the body of the request was not a JSON object")
        user: UserInfo = request.get(USER) or ADMIN
        if rt.kind == "ServiceAccount":
            return self._token_request(namespace, name or "", body)
        spec = body.get("spec") or {}
        out = {"kind": rt.kind, "apiVersion": rt.api_version,
               "metadata": {**(body.get("metadata") or {}), "creationTimestamp": None}, "spec": spec}
        if rt.kind == "SelfSubjectReview":
            return {**out, "status": {"userInfo": _user_info(user)}}
        if rt.kind == "TokenReview":
            found = self.tokens.authenticate(str(spec.get("token") or ""), spec.get("audiences") or API_AUDIENCES)
            if found is None:
                return {**out, "status": {"authenticated": False, "user": {}, "error": "invalid bearer token"}}
            return {**out, "status": {"authenticated": True, "user": _user_info(found[0]), "audiences": found[1]}}
        if rt.kind == "SelfSubjectRulesReview":
            return {**out, "status": self._rules_review(user, spec.get("namespace") or "")}
        if rt.kind == "SelfSubjectAccessReview":
            subject = user
        else:  # SubjectAccessReview, LocalSubjectAccessReview
            if not spec.get("user") and not spec.get("groups"):
                raise invalid(rt, "", [{"reason": "FieldValueRequired", "field": "spec.user",
                                        "message": 'Invalid value: "": at least one of user or group must be '
                                                   "specified"}])
            subject = UserInfo(spec.get("user") or "", tuple(spec.get("groups") or ()), spec.get("uid") or "")
        res, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        if (res is None) == (nonres is None):
            raise invalid(rt, "", [{"reason": "FieldValueInvalid", "field": "spec.resourceAttributes",
                                    "message": "exactly one of nonResourceAttributes or resourceAttributes must "
                                               "be specified"}])
        if rt.kind == "LocalSubjectAccessReview" and (res or {}).get("namespace") != namespace:
            raise invalid(rt, "", [{"reason": "FieldValueInvalid", "field": "spec.resourceAttributes.namespace",
                                    "message": "must match metadata.namespace"}])
        if res is not None:
            attrs = Attributes(verb=res.get("verb") or "", api_group=res.get("group") or "",
                               api_version=res.get("version") or "", resource=res.get("resource") or "",
                               subresource=res.get("subresource") or "", namespace=res.get("namespace") or "",
                               name=res.get("name") or "")
        else:
            attrs = Attributes(verb=nonres.get("verb") or "", resource_request=False, path=nonres.get("path") or "")
        allowed, reason = self.authorizer.decide(subject, attrs)
        status: dict[str, Any] = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        return {**out, "status": status}

    def _token_request(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        sa_rt = self.cluster.rt_for("v1", "ServiceAccount")
        sa = self.cluster.find(sa_rt, namespace, name)
        if sa is None:
            raise not_found(sa_rt, name)
        spec = dict(body.get("spec") or {})
        expiration = spec.get("expirationSeconds") or 3600
        tr_rt = _TOKEN_REQUEST
        if not isinstance(expiration, int) or expiration < MIN_EXPIRATION:
            raise invalid(tr_rt, name, [{"reason": "FieldValueInvalid", "field": "spec.expirationSeconds",
                                         "message": f"Invalid value: {expiration}: may not specify a duration "
                                                    f"less than 10 minutes"}])
        audiences = spec.get("audiences") or list(API_AUDIENCES)
        bound = spec.get("boundObjectRef")
        if bound:
            kind = bound.get("kind")
            if kind not in ("Pod", "Secret"):
                raise invalid(tr_rt, name, [{"reason": "FieldValueNotSupported", "field": "spec.boundObjectRef.kind",
                                             "message": f'Unsupported value: "{kind}": supported values: "Pod", '
                                                        f'"Secret"'}])
            obj_rt = self.cluster.rt_for("v1", kind)
            obj = self.cluster.find(obj_rt, namespace, bound.get("name", ""))
            if obj is None or (bound.get("uid") and bound["uid"] != obj["metadata"]["uid"]):
                raise not_found(obj_rt, bound.get("name", ""))
            bound = {"kind": kind, "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"]}
        token, expires = self.tokens.request_token(sa, audiences, expiration, bound)
        spec.update(audiences=audiences, expirationSeconds=expiration, boundObjectRef=spec.get("boundObjectRef"))
        return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None}, "spec": spec,
                "status": {"token": token, "expirationTimestamp": datetime.fromtimestamp(expires, UTC)
                           .strftime("%Y-%m-%dT%H:%M:%SZ")}}

    def _rules_review(self, user: UserInfo, namespace: str) -> dict[str, Any]:
        ruleset = self.authorizer.rules_for(user, namespace)
        resource_rules, url_rules = [], []
        for rule in ruleset.plain():
            if rule.get("nonResourceURLs"):
                url_rules.append({"verbs": rule.get("verbs") or [], "nonResourceURLs": rule["nonResourceURLs"]})
            else:
                resource_rules.append({k: rule[k] for k in ("verbs", "apiGroups", "resources", "resourceNames")
                                       if rule.get(k) or k == "verbs"})
        status: dict[str, Any] = {"resourceRules": resource_rules, "nonResourceRules": url_rules,
                                  "incomplete": bool(ruleset.errors)}
        if ruleset.errors:
            status["evaluationError"] = ", ".join(ruleset.errors)
        return status


PROTOBUF = "application/vnd.kubernetes.protobuf"
# Field numbers of the protobuf messages kubectl sends for `auth can-i` and `auth whoami` (generated.proto).
_RESOURCE_ATTRIBUTES = ("namespace", "verb", "group", "version", "resource", "subresource", "name")


def _fields(data: bytes) -> dict[int, list[Any]]:
    """Protobuf wire format, one level: field number -> values (ints or raw bytes)."""
    out: dict[int, list[Any]] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        value = shift = 0
        while True:
            if i >= len(data):
                raise ValueError("truncated protobuf")
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while i < len(data):
        tag = varint()
        wire = tag & 7
        if wire == 0:
            value: Any = varint()
        elif wire == 2:
            size = varint()
            value, i = data[i:i + size], i + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = data[i:i + size], i + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.setdefault(tag >> 3, []).append(value)
    return out


def _strings(data: bytes, names: tuple[str, ...]) -> dict[str, str]:
    fields = _fields(data)
    return {name: fields[n][0].decode() for n, name in enumerate(names, 1) if n in fields}


def _self_review_from_protobuf(kind: str, raw: bytes) -> dict[str, Any]:
    """The spec of a self review sent as protobuf (the `k8s\\0` envelope around the object)."""
    if not raw.startswith(b"k8s\x00"):
        raise ValueError("not a Kubernetes protobuf envelope")
    obj = _fields(_fields(raw[4:]).get(2, [b""])[0])
    spec = _fields(obj.get(2, [b""])[0])
    if kind == "SelfSubjectAccessReview":
        if 1 in spec:
            return {"spec": {"resourceAttributes": _strings(spec[1][0], _RESOURCE_ATTRIBUTES)}}
        return {"spec": {"nonResourceAttributes": _strings(spec.get(2, [b""])[0], ("path", "verb"))}}
    if kind == "SelfSubjectRulesReview":
        return {"spec": _strings(obj.get(2, [b""])[0], ("namespace",))}
    if kind == "SelfSubjectReview":
        return {}
    raise ValueError(f"{kind} is only accepted as JSON here")


def _impersonation_summary(groups: tuple[str, ...], uid: str, extras: list[str]) -> str:
    parts = [f"{IMPERSONATE_GROUP}={g}" for g in groups] + ([f"{IMPERSONATE_UID}={uid}"] if uid else []) + extras
    return ", ".join(parts)


def _user_info(user: UserInfo) -> dict[str, Any]:
    info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    return info
