"""A test double of Garage's admin API v2, written from its documentation (Garage v2.0.0).

Covers the operations the agent uses, with the documented request shapes, response fields and
errors: bearer-token auth (403 AccessDenied), `{"code", "message", "path", "region"}` error bodies,
404 NoSuchBucket / NoSuchAccessKey, 409 BucketAlreadyExists, 400 InvalidRequest for malformed
bodies, invalid bucket names and a layout version that is not current + 1. Where the OpenAPI text
and the implementation disagree, the implementation wins: DeleteBucket on a non-empty bucket answers
409 BucketNotEmpty (the document says 400). Bucket operations before a layout is applied answer 503,
as a real node without a layout cannot reach quorum.

Runs an aiohttp server on loopback in a thread of its own, so synchronous code can call it.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
Handler = Callable[[web.Request, dict[str, Any]], Awaitable[Any]]


class GarageError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def bad_request(message: str) -> GarageError:
    return GarageError(400, "InvalidRequest", f"Bad request: {message}")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _require(body: Any, fields: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """Mimics serde's strictness on the documented required fields and their types."""
    if not isinstance(body, dict):
        raise bad_request("invalid JSON body: expected an object")
    for name, kind in fields.items():
        if name not in body:
            raise bad_request(f"missing field `{name}`")
        value = body[name]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise bad_request(f"invalid type for field `{name}`")
    return body


class GarageDouble:
    def __init__(self, token: str = "", region: str = "garage", nodes: int = 1) -> None:
        self.token = token or secrets.token_hex(32)
        self.region = region
        self.nodes = [{"id": secrets.token_hex(32), "hostname": f"garage-{i}", "role": None} for i in range(nodes)]
        self.layout_version = 0
        self.staged: dict[str, dict[str, Any] | None] = {}  # node id -> role, or None to remove
        self.buckets: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, operation) in arrival order
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ops: dict[tuple[str, str], Handler] = {
            ("GET", "GetClusterHealth"): self._health, ("GET", "GetClusterStatus"): self._status,
            ("GET", "GetClusterLayout"): self._layout, ("POST", "UpdateClusterLayout"): self._update_layout,
            ("POST", "ApplyClusterLayout"): self._apply_layout, ("GET", "ListBuckets"): self._list_buckets,
            ("GET", "GetBucketInfo"): self._bucket_info, ("POST", "CreateBucket"): self._create_bucket,
            ("POST", "DeleteBucket"): self._delete_bucket, ("POST", "CleanupIncompleteUploads"): self._cleanup,
            ("GET", "ListKeys"): self._list_keys, ("GET", "GetKeyInfo"): self._key_info,
            ("POST", "CreateKey"): self._create_key, ("POST", "DeleteKey"): self._delete_key,
            ("POST", "AllowBucketKey"): self._allow, ("POST", "DenyBucketKey"): self._deny,
        }

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> GarageDouble:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._dispatch)
            self._runner = web.AppRunner(app, access_log=None)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True, name="garage-double")
        self._thread.start()
        ready.wait(5)
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(5)

    # --- what tests look at -----------------------------------------------------------------------

    @property
    def layout_applied(self) -> bool:
        return self.layout_version > 0 and all(n["role"] for n in self.nodes)

    def put_object(self, alias: str, size: int = 1) -> None:
        """Pretend an S3 client stored an object (the double has no S3 API)."""
        bucket = self._by_alias(alias)
        bucket["objects"] += 1
        bucket["bytes"] += size

    def permissions(self, alias: str, key_name: str) -> dict[str, bool]:
        bucket = self._by_alias(alias)
        key = next(k for k in self.keys.values() if k["name"] == key_name)
        return dict(bucket["perms"].get(key["id"], {"read": False, "write": False, "owner": False}))

    # --- HTTP -----------------------------------------------------------------------------------

    def _error(self, err: GarageError, path: str) -> web.Response:
        return web.json_response({"code": err.code, "message": err.message, "path": path, "region": self.region},
                                 status=err.status)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/health":  # unauthenticated, as in Garage
            ok = self.layout_applied
            return web.Response(status=200 if ok else 503, text="Garage is fully operational" if ok else
                                "Quorum is not available for some/all partitions.")
        try:
            self._authorize(request.headers.get("Authorization"))
            match = re.fullmatch(r"/v2/(\w+)", path)
            handler = self._ops.get((request.method, match[1])) if match else None
            if handler is None:
                raise bad_request(f"Unknown API endpoint: {request.method} {path}")
            self.requests.append((request.method, match[1]))  # type: ignore[index]
            body: Any = None
            if request.method == "POST" and request.can_read_body:
                try:
                    body = await request.json()
                except ValueError:
                    raise bad_request("invalid JSON body") from None
            result = await handler(request, body)
        except GarageError as err:
            return self._error(err, path)
        return web.json_response(result)

    def _authorize(self, header: str | None) -> None:
        if header is None:
            raise GarageError(403, "AccessDenied", "Forbidden: Bearer token must be provided in Authorization header")
        if not header.startswith("Bearer "):
            raise GarageError(403, "AccessDenied", "Forbidden: Invalid Authorization header")
        if not secrets.compare_digest(header.removeprefix("Bearer ").strip(), self.token):
            raise GarageError(403, "AccessDenied", "Forbidden: Invalid bearer token")

    def _needs_quorum(self) -> None:
        if not self.layout_applied:
            raise GarageError(503, "ServiceUnavailable", "Could not reach quorum of 1 (sets=[[]]). 0 of 0 request "
                              "succeeded, others returned errors: []")

    # --- cluster and layout -----------------------------------------------------------------------

    def _layout_body(self) -> dict[str, Any]:
        roles = [{"id": n["id"], **n["role"], "storedPartitions": 256, "usableCapacity": n["role"]["capacity"]}
                 for n in self.nodes if n["role"]]
        staged = [{"id": node, **(role if role is not None else {"remove": True})}
                  for node, role in self.staged.items()]
        return {"version": self.layout_version, "roles": roles, "stagedRoleChanges": staged,
                "parameters": {"zoneRedundancy": "maximum"}, "partitionSize": 0, "stagedParameters": None}

    async def _health(self, request: web.Request, body: Any) -> dict[str, Any]:
        ok = self.layout_applied
        count = len(self.nodes)
        return {"status": "healthy" if ok else "unavailable", "knownNodes": count, "connectedNodes": count,
                "storageNodes": count if ok else 0, "storageNodesOk": count if ok else 0, "partitions": 256,
                "partitionsQuorum": 256 if ok else 0, "partitionsAllOk": 256 if ok else 0}

    async def _status(self, request: web.Request, body: Any) -> dict[str, Any]:
        return {"layoutVersion": self.layout_version, "nodes": [
            {"id": n["id"], "isUp": True, "draining": False, "addr": "10.42.0.10:3901", "hostname": n["hostname"],
             "garageVersion": "v2.0.0", "role": n["role"], "lastSeenSecsAgo": None} for n in self.nodes]}

    async def _layout(self, request: web.Request, body: Any) -> dict[str, Any]:
        return self._layout_body()

    async def _update_layout(self, request: web.Request, body: Any) -> dict[str, Any]:
        body = body if body is not None else {}
        if not isinstance(body, dict) or not isinstance(body.get("roles", []), list):
            raise bad_request("invalid type for field `roles`")
        known = {n["id"] for n in self.nodes}
        for change in body.get("roles", []):
            _require(change, {"id": str})
            if change["id"] not in known:
                raise bad_request("Invalid node identifier")
            if change.get("remove") is True:
                self.staged[change["id"]] = None
                continue
            _require(change, {"zone": str, "tags": list})
            capacity = change.get("capacity")
            if capacity is not None and (not isinstance(capacity, int) or capacity < 1024):
                raise bad_request("Capacity should be at least 1K (1024)")
            self.staged[change["id"]] = {"zone": change["zone"], "capacity": capacity, "tags": change["tags"]}
        return self._layout_body()

    async def _apply_layout(self, request: web.Request, body: Any) -> dict[str, Any]:
        _require(body, {"version": int})
        if body["version"] != self.layout_version + 1:
            # garage_rpc layout history: "Invalid new layout version" (an internal error in v2.0.0)
            raise GarageError(500, "InternalError", "Internal error: Invalid new layout version")
        for node in self.nodes:
            if node["id"] in self.staged:
                node["role"] = self.staged[node["id"]]
        self.staged.clear()
        self.layout_version += 1
        return {"message": [f"Layout version {self.layout_version} computed"], "layout": self._layout_body()}

    # --- buckets ----------------------------------------------------------------------------------

    def _by_alias(self, alias: str) -> dict[str, Any]:
        for bucket in self.buckets.values():
            if alias in bucket["globalAliases"]:
                return bucket
        raise GarageError(404, "NoSuchBucket", f"Bucket not found: {alias}")

    def _by_id(self, bucket_id: str | None) -> dict[str, Any]:
        if bucket_id is None:
            raise bad_request("missing field `id`")
        if not re.fullmatch(r"[0-9a-f]{64}", bucket_id):
            raise bad_request("Invalid bucket ID")
        if bucket_id not in self.buckets:
            raise GarageError(404, "NoSuchBucket", f"Bucket not found: {bucket_id}")
        return self.buckets[bucket_id]

    def _bucket_body(self, bucket: dict[str, Any]) -> dict[str, Any]:
        keys = [{"accessKeyId": kid, "name": self.keys[kid]["name"], "permissions": dict(perm),
                 "bucketLocalAliases": []} for kid, perm in bucket["perms"].items() if any(perm.values())]
        return {"id": bucket["id"], "created": bucket["created"], "globalAliases": list(bucket["globalAliases"]),
                "websiteAccess": False, "websiteConfig": None, "keys": keys, "objects": bucket["objects"],
                "bytes": bucket["bytes"], "unfinishedUploads": bucket["uploads"], "unfinishedMultipartUploads":
                bucket["uploads"], "unfinishedMultipartUploadParts": 0, "unfinishedMultipartUploadBytes": 0,
                "quotas": {"maxSize": None, "maxObjects": None}}

    async def _list_buckets(self, request: web.Request, body: Any) -> list[dict[str, Any]]:
        return [{"id": b["id"], "created": b["created"], "globalAliases": list(b["globalAliases"]),
                 "localAliases": []} for b in self.buckets.values()]

    async def _bucket_info(self, request: web.Request, body: Any) -> dict[str, Any]:
        given = [k for k in ("id", "globalAlias", "search") if k in request.query]
        if len(given) != 1:
            raise bad_request("Either id, globalAlias or search must be provided (but not several of them)")
        if "id" in request.query:
            return self._bucket_body(self._by_id(request.query["id"]))
        return self._bucket_body(self._by_alias(request.query.get("globalAlias") or request.query["search"]))

    async def _create_bucket(self, request: web.Request, body: Any) -> dict[str, Any]:
        body = body if body is not None else {}
        alias = body.get("globalAlias") if isinstance(body, dict) else None
        if alias is not None:
            if not isinstance(alias, str) or not BUCKET_NAME.fullmatch(alias) or ".." in alias:
                raise bad_request(f"{alias}: Invalid bucket name. See AWS documentation for constraints on S3 "
                                  "bucket names:\nhttps://docs.aws.amazon.com/AmazonS3/latest/userguide/"
                                  "bucketnamingrules.html")
            if any(alias in b["globalAliases"] for b in self.buckets.values()):
                raise GarageError(409, "BucketAlreadyExists", "Bucket already exists")
        self._needs_quorum()
        bucket_id = secrets.token_hex(32)
        self.buckets[bucket_id] = {"id": bucket_id, "created": _now(), "globalAliases": [alias] if alias else [],
                                   "perms": {}, "objects": 0, "bytes": 0, "uploads": 0}
        return self._bucket_body(self.buckets[bucket_id])

    async def _cleanup(self, request: web.Request, body: Any) -> dict[str, Any]:
        _require(body, {"bucketId": str, "olderThanSecs": int})
        bucket = self._by_id(body["bucketId"])
        deleted, bucket["uploads"] = bucket["uploads"], 0
        return {"uploadsDeleted": deleted}

    async def _delete_bucket(self, request: web.Request, body: Any) -> dict[str, Any]:
        bucket = self._by_id(request.query.get("id"))
        if bucket["objects"] or bucket["uploads"]:
            raise GarageError(409, "BucketNotEmpty", "Tried to delete a non-empty bucket")
        for key in self.keys.values():
            key["buckets"].discard(bucket["id"])
        del self.buckets[bucket["id"]]
        return {}

    # --- keys -----------------------------------------------------------------------------------

    def _key(self, key_id: str | None) -> dict[str, Any]:
        if key_id is None:
            raise bad_request("Either id or search must be provided (but not both)")
        if key_id not in self.keys:
            raise GarageError(404, "NoSuchAccessKey", f"Access key not found: {key_id}")
        return self.keys[key_id]

    def _key_body(self, key: dict[str, Any], show_secret: bool) -> dict[str, Any]:
        buckets = [{"id": bid, "globalAliases": list(self.buckets[bid]["globalAliases"]), "localAliases": [],
                    "permissions": dict(self.buckets[bid]["perms"][key["id"]])}
                   for bid in sorted(key["buckets"]) if bid in self.buckets]
        return {"accessKeyId": key["id"], "name": key["name"], "created": key["created"], "expiration": None,
                "expired": False, "secretAccessKey": key["secret"] if show_secret else None,
                "permissions": {"createBucket": key["createBucket"]}, "buckets": buckets}

    async def _list_keys(self, request: web.Request, body: Any) -> list[dict[str, Any]]:
        return [{"id": k["id"], "name": k["name"], "created": k["created"], "expiration": None, "expired": False}
                for k in self.keys.values()]

    async def _key_info(self, request: web.Request, body: Any) -> dict[str, Any]:
        show = request.query.get("showSecretKey") == "true"
        if "search" in request.query:
            search = request.query["search"]
            found = [k for k in self.keys.values() if k["id"].startswith(search) or k["name"] == search]
            if len(found) != 1:
                raise bad_request(f"{len(found)} matching keys")
            return self._key_body(found[0], show)
        return self._key_body(self._key(request.query.get("id")), show)

    async def _create_key(self, request: web.Request, body: Any) -> dict[str, Any]:
        body = body if body is not None else {}
        if not isinstance(body, dict) or not isinstance(body.get("name", ""), str | None):
            raise bad_request("invalid type for field `name`")
        key_id = "GK" + secrets.token_hex(12)
        allow = body.get("allow") or {}
        self.keys[key_id] = {"id": key_id, "name": body.get("name") or "Unnamed key", "secret": secrets.token_hex(32),
                             "created": _now(), "createBucket": bool(allow.get("createBucket")), "buckets": set()}
        return self._key_body(self.keys[key_id], True)

    async def _delete_key(self, request: web.Request, body: Any) -> dict[str, Any]:
        key = self._key(request.query.get("id"))
        for bucket in self.buckets.values():
            bucket["perms"].pop(key["id"], None)
        del self.keys[key["id"]]
        return {}

    async def _set_perms(self, body: Any, value: bool) -> dict[str, Any]:
        _require(body, {"bucketId": str, "accessKeyId": str, "permissions": dict})
        bucket, key = self._by_id(body["bucketId"]), self._key(body["accessKeyId"])
        perm = bucket["perms"].setdefault(key["id"], {"read": False, "write": False, "owner": False})
        for name in ("read", "write", "owner"):
            if body["permissions"].get(name):
                perm[name] = value
        key["buckets"].add(bucket["id"])
        return self._bucket_body(bucket)

    async def _allow(self, request: web.Request, body: Any) -> dict[str, Any]:
        return await self._set_perms(body, True)

    async def _deny(self, request: web.Request, body: Any) -> dict[str, Any]:
        return await self._set_perms(body, False)
