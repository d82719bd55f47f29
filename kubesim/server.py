"""HTTP layer: URL routing, query parameters, content types, watch streaming, discovery."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import yaml
from aiohttp import web

from kubesim import openapi, schema, streams, tables
from kubesim import patch as patches
from kubesim.auth import USER, AccessControl
from kubesim.cluster import Cluster, WriteOptions
from kubesim.errors import ApiError, bad_request, method_not_allowed, resource_not_found
from kubesim.resources import ResourceType
from kubesim.scale import scale_of
from kubesim.selectors import parse_field_selector, parse_label_selector
from kubesim.store import Event

log = logging.getLogger("kubesim.server")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+json": "apply",
}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status,
                        content_type="application/json", headers=headers)


def error_response(err: ApiError) -> web.Response:
    return _json(err.status(), status=err.code)


def _bool(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1", "yes")


class Route:
    """A parsed resource URL."""

    def __init__(self, rt: ResourceType, namespace: str | None, name: str | None, sub: str | None,
                 watch: bool) -> None:
        self.rt, self.namespace, self.name, self.sub, self.watch = rt, namespace, name, sub, watch


class ApiServer:
    def __init__(self, cluster: Cluster, *, latency_ms: float = 0.0, bookmark_interval: float = 1.0,
                 auth: bool = True, admin_token: str | None = None) -> None:
        self.cluster = cluster
        self.access = AccessControl(cluster, enabled=auth, admin_token=admin_token)
        self.latency_ms = latency_ms
        self.bookmark_interval = bookmark_interval
        self.logs = streams.LogHub()
        self.exec_handler: streams.ExecHandler = streams.builtin_shell
        # In-cluster DNS names -> addresses on this machine, for the programs exec runs for real (kubesim.pgclient).
        self.cluster_dns: dict[str, str] = {}
        self.app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)

    # --- plumbing --------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        try:
            return await handler(request)
        except ApiError as err:
            return error_response(err)
        except web.HTTPException:
            raise
        except Exception as exc:  # an emulator bug still answers like the apiserver does: a Status
            log.exception("internal error on %s %s", request.method, request.path)
            return error_response(ApiError("InternalError", f"Internal error occurred: {exc}"))

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.access.admit(request)  # 401 / 403 before anything else, as the apiserver's filters do
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            return _json({"paths": ["/api", "/api/v1", "/apis", "/version", "/healthz", "/readyz", "/livez"]})
        head = parts[0]
        if head in ("healthz", "readyz", "livez"):
            return web.Response(text="ok")
        if head == "version":
            return _json(version_info())
        if head == "openapi" and parts[1:2] == ["v3"]:
            return _json(self._openapi_v3(parts[2:]))
        if head == "openapi":
            raise resource_not_found()
        if head == "api":
            if len(parts) == 1:
                return _json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}]})
            group, version, rest = "", parts[1], parts[2:]
        elif head == "apis":
            if len(parts) == 1:
                return _json(self.cluster.registry.api_group_list())
            if len(parts) == 2:
                doc = self.cluster.registry.api_group(parts[1])
                if doc is None:
                    raise resource_not_found()
                return _json(doc)
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise resource_not_found()
        if not rest:
            doc = self.cluster.registry.resource_list(group, version)
            if doc is None:
                raise resource_not_found()
            return _json(doc)
        route = self._route(group, version, rest)
        return await self._handle(request, route)

    def _route(self, group: str, version: str, rest: list[str]) -> Route:
        reg = self.cluster.registry
        watch = False
        if rest[0] == "watch":  # the deprecated /watch/ path prefix
            watch, rest = True, rest[1:]
        if len(rest) >= 3 and rest[0] == "namespaces":
            rt = reg.by_path(group, version, rest[2])
            if rt is not None and rt.namespaced:
                return Route(rt, rest[1], _at(rest, 3), _at(rest, 4), watch)
        rt = reg.by_path(group, version, rest[0])
        if rt is None or len(rest) > 3:
            raise resource_not_found()
        return Route(rt, None, _at(rest, 1), _at(rest, 2), watch)

    def _openapi_v3(self, gv_parts: list[str]) -> dict[str, Any]:
        """OpenAPI v3: kubectl learns that PATCH takes fieldValidation, and `kubectl explain` finds the schemas."""
        if not gv_parts:
            return openapi.index(self.cluster.registry, self.cluster.store.rv)
        if len(gv_parts) == 2 and gv_parts[0] == "api":
            group, version = "", gv_parts[1]
        elif len(gv_parts) == 3 and gv_parts[0] == "apis":
            group, version = gv_parts[1], gv_parts[2]
        else:
            raise resource_not_found()
        doc = openapi.group_version(self.cluster.registry, group, version)
        if doc is None:
            raise resource_not_found()
        return doc

    # --- verbs -----------------------------------------------------------------------------------

    async def _handle(self, request: web.Request, r: Route) -> web.StreamResponse:
        q = request.query
        method = request.method
        rt = r.rt
        ns = r.namespace or ""
        if rt.namespaced and r.name is not None and r.namespace is None:
            raise resource_not_found()  # a namespaced object addressed without its namespace
        if r.sub is not None and r.sub not in rt.subresources:
            raise resource_not_found()
        if r.sub in ("log", "exec", "attach", "portforward"):
            return await streams.handle(self, request, rt, ns, r.name or "", r.sub)
        if self.access.serves(rt, r.sub):
            return _json(await self.access.serve(request, rt, ns, r.name), 201)
        opts = WriteOptions(field_manager=q.get("fieldManager") or _default_manager(request),
                            dry_run=q.get("dryRun") == "All",
                            field_validation=q.get("fieldValidation") or "Warn", user=request.get(USER))
        if r.name is None:
            if method == "GET":
                if r.watch or _bool(q.get("watch")):
                    return await self._watch(request, rt, r.namespace)
                return self._list(request, rt, r.namespace)
            if method == "POST":
                if rt.namespaced and r.namespace is None:
                    raise method_not_allowed()
                obj = self.cluster.create(rt, ns, await _body(request), opts)
                return _json(obj, 201, _warn(opts))
            if method == "DELETE":
                return await self._delete_collection(request, rt, r.namespace)
            raise method_not_allowed()
        if r.sub == "scale":
            return await self._scale(request, rt, ns, r.name, opts)
        sub = r.sub or ""
        if method == "GET":
            obj = self.cluster.get(rt, ns, r.name)
            if _wants_table(request):
                meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
                return _json(tables.table(rt, [obj], meta, q.get("includeObject", "Metadata")))
            return _json(obj)
        if method == "PUT":
            obj = self.cluster.replace(rt, ns, r.name, await _body(request), opts, subresource=sub)
            return _json(obj, 200, _warn(opts))
        if method == "PATCH":
            ptype = _PATCH_TYPES.get(request.content_type)
            if ptype is None:
                raise ApiError("UnsupportedMediaType", f"the body of the request was in an unknown format - "
                               f"accepted media types include: {', '.join(_PATCH_TYPES)}")
            body = await _body(request, yaml_ok=ptype == "apply")
            if ptype == "apply":
                opts.field_manager = q.get("fieldManager", "")  # no User-Agent fallback for apply
            existed = ptype == "apply" and self.cluster.find(rt, ns, r.name) is not None
            if ptype == "apply" and not existed and not sub:
                self.access.require(request, "create")  # an apply that creates needs `create` too
            obj = self.cluster.patch(rt, ns, r.name, ptype, body, opts, force=_bool(q.get("force")),
                                     subresource=sub)
            created = ptype == "apply" and not existed and not sub
            return _json(obj, 201 if created else 200, _warn(opts))
        if method == "DELETE" and not sub:
            body = await _body(request, optional=True) or {}
            pre = body.get("preconditions") or {}
            policy = q.get("propagationPolicy") or body.get("propagationPolicy")
            if _bool(q.get("orphanDependents")) or body.get("orphanDependents"):
                policy = "Orphan"
            opts.dry_run = opts.dry_run or "All" in (body.get("dryRun") or [])
            grace = q.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
            obj = self.cluster.delete(rt, ns, r.name, propagation=policy, opts=opts,
                                      precondition_uid=pre.get("uid"), precondition_rv=pre.get("resourceVersion"),
                                      grace_seconds=int(grace) if grace is not None and str(grace).isdigit() else None)
            return _json(_deleted_body(rt, obj))
        raise method_not_allowed()

    def _list(self, request: web.Request, rt: ResourceType, namespace: str | None) -> web.Response:
        q = request.query
        items = self.cluster.list(rt, namespace, parse_label_selector(q.get("labelSelector")),
                                  parse_field_selector(q.get("fieldSelector"), rt.kind))
        rv = str(self.cluster.store.rv)
        if q.get("resourceVersionMatch") == "Exact" and q.get("resourceVersion", "").isdigit() \
                and int(q["resourceVersion"]) < self.cluster.store.compacted_rv:
            raise ApiError("Expired", "The resourceVersion for the provided list is too old.", code=410)
        meta: dict[str, Any] = {"resourceVersion": rv}
        start = 0
        if q.get("continue"):
            try:
                start = int(json.loads(base64.b64decode(q["continue"]))["start"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid") from None
        limit = int(q.get("limit") or 0)
        if start or limit:
            end = start + limit if limit else len(items)
            if end < len(items):
                meta["continue"] = base64.b64encode(json.dumps({"start": end, "rv": rv}).encode()).decode()
                meta["remainingItemCount"] = len(items) - end
            items = items[start:end]
        if _wants_table(request):
            return _json(tables.table(rt, items, meta, request.query.get("includeObject", "Metadata")))
        if rt.builtin:
            # The apiserver omits kind/apiVersion on the items of built-in lists.
            items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
        return _json({"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta, "items": items})

    async def _delete_collection(self, request: web.Request, rt: ResourceType, namespace: str | None) -> web.Response:
        q = request.query
        items = self.cluster.list(rt, namespace, parse_label_selector(q.get("labelSelector")),
                                  parse_field_selector(q.get("fieldSelector"), rt.kind))
        body = await _body(request, optional=True) or {}
        policy = q.get("propagationPolicy") or body.get("propagationPolicy")
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            try:
                deleted.append(self.cluster.delete(rt, meta.get("namespace", ""), meta["name"], propagation=policy))
            except ApiError as err:
                if err.code != 404:
                    raise
        return _json({"kind": rt.list_kind, "apiVersion": rt.api_version,
                      "metadata": {"resourceVersion": str(self.cluster.store.rv)}, "items": deleted})

    async def _scale(self, request: web.Request, rt: ResourceType, ns: str, name: str,
                     opts: WriteOptions) -> web.Response:
        current = scale_of(rt, self.cluster.get(rt, ns, name))
        if request.method == "GET":
            return _json(current)
        if request.method == "PUT":
            return _json(self.cluster.write_scale(rt, ns, name, await _body(request), opts))
        if request.method == "PATCH":
            ptype = _PATCH_TYPES.get(request.content_type, "merge")
            body = await _body(request, yaml_ok=ptype == "apply")
            # A Scale has no list fields: strategic merge and apply reduce to a merge patch.
            new_scale = patches.json_patch(current, body) if ptype == "json" else patches.merge_patch(current, body)
            new_scale.setdefault("metadata", {}).pop("resourceVersion", None)
            return _json(self.cluster.write_scale(rt, ns, name, new_scale, opts))
        raise method_not_allowed()

    # --- watch -----------------------------------------------------------------------------------

    async def _watch(self, request: web.Request, rt: ResourceType, namespace: str | None) -> web.StreamResponse:
        q = request.query
        label = parse_label_selector(q.get("labelSelector"))
        fields = parse_field_selector(q.get("fieldSelector"), rt.kind)
        timeout = float(q.get("timeoutSeconds") or 1800)
        bookmarks = _bool(q.get("allowWatchBookmarks"))
        store = self.cluster.store
        key = self.cluster.key(rt)
        watcher = store.subscribe(key, namespace if rt.namespaced else None)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        def matches(obj: dict[str, Any] | None) -> bool:
            return obj is not None and label(obj["metadata"].get("labels") or {}) and fields(obj)

        as_table, headers_sent = _wants_table(request), False

        async def send(etype: str, obj: dict[str, Any]) -> None:
            nonlocal headers_sent
            if as_table and etype in ("ADDED", "MODIFIED", "DELETED"):
                # Each event carries a one-row Table; like the apiserver, only the first has the columns.
                obj = tables.table(rt, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                                   q.get("includeObject", "Metadata"))
                if headers_sent:
                    obj["columnDefinitions"] = []
                headers_sent = True
            await resp.write(json.dumps({"type": etype, "object": obj}, separators=(",", ":")).encode() + b"\n")

        async def send_event(e: Event) -> None:
            new_ok = matches(e.obj)
            old_ok = matches(e.old)
            if e.type == "MODIFIED" and new_ok != old_ok:
                await send("ADDED" if new_ok else "DELETED", e.obj)
            elif new_ok:
                await send(e.type, e.obj)

        try:
            rv_param = q.get("resourceVersion")
            last = store.rv  # the snapshot below is taken at this revision, with no await in between
            if rv_param in (None, "", "0"):
                for obj in self.cluster.list(rt, namespace):
                    if matches(obj):
                        await send("ADDED", obj)
            else:
                try:
                    since = int(rv_param)
                except ValueError:
                    raise bad_request(f"invalid resource version: {rv_param}") from None
                events = store.events_since(key, namespace if rt.namespaced else None, since)
                if events is None:
                    await send("ERROR", ApiError("Expired", f"too old resource version: {since} "
                                                 f"({store.compacted_rv + 1})", code=410).status())
                    return resp
                for e in events:
                    await send_event(e)
            deadline = time.monotonic() + timeout
            next_bookmark = time.monotonic() + self.bookmark_interval
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                wait = min(deadline, next_bookmark) - now if bookmarks else deadline - now
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), timeout=max(wait, 0.001))
                except TimeoutError:
                    if bookmarks and time.monotonic() >= next_bookmark:
                        await send("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version,
                                                "metadata": {"resourceVersion": str(store.rv)}})
                        next_bookmark = time.monotonic() + self.bookmark_interval
                    continue
                if event is None:
                    break
                if event.rv <= last:
                    continue  # already part of the initial state or the replayed history
                await send_event(event)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            store.unsubscribe(watcher)
        return resp


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _at(parts: list[str], i: int) -> str | None:
    return parts[i] if len(parts) > i else None


def _default_manager(request: web.Request) -> str:
    # The apiserver names an unnamed writer after its User-Agent's product token.
    return request.headers.get("User-Agent", "unknown").split("/")[0] or "unknown"


def _warn(opts: WriteOptions) -> dict[str, str] | None:
    if not opts.warnings:
        return None
    return {"Warning": ", ".join('299 - ' + json.dumps(w) for w in opts.warnings)}


async def _body(request: web.Request, *, yaml_ok: bool = False, optional: bool = False) -> Any:
    if request.content_type in ("application/vnd.kubernetes.protobuf", "application/cbor"):
        # Only JSON (and YAML for apply) is spoken here; client-go retries in JSON on 415.
        raise ApiError("UnsupportedMediaType", f"the body of the request was in an unknown format - accepted "
                       f"media types include: application/json, application/yaml ({request.content_type})")
    raw = await request.read()
    if not raw.strip():
        if optional:
            return None
        raise bad_request("the request body is empty")
    try:
        if yaml_ok:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise bad_request(f"the body of the request could not be decoded: {exc}") from None


def _deleted_body(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    # Pods, namespaces and objects still held by finalizers come back whole; others as a Status.
    if rt.kind in ("Pod", "Namespace") or obj["metadata"].get("deletionTimestamp") or not rt.builtin:
        return obj
    details: dict[str, Any] = {"name": obj["metadata"]["name"], "kind": rt.plural, "uid": obj["metadata"]["uid"]}
    if rt.group:
        details["group"] = rt.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def version_info() -> dict[str, str]:
    major, minor, _ = schema.KUBERNETES_VERSION.split(".")
    return {"major": major, "minor": minor, "gitVersion": f"v{schema.KUBERNETES_VERSION}+k3s1",
            "gitCommit": "kubesim", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}
