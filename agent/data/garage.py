"""A client of Garage's admin API v2 (Garage >= 2.0): cluster layout, buckets, keys.

The v2 API is RPC style: `GET|POST /v2/<Operation>`, ids in the query string, JSON bodies, a bearer
token, and errors as `{"code", "message", "path", "region"}` with the HTTP status saying the class
(404 NoSuchBucket / NoSuchAccessKey, 409 BucketAlreadyExists / BucketNotEmpty, 400 InvalidRequest,
403 AccessDenied). Source: Garage v2.0.0 `doc/api/garage-admin-v2.json`, `src/api/admin/*.rs`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from agent.protocol import BUCKET_SECRET_KEYS

log = logging.getLogger("agent.data.garage")

BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class GarageError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class BucketCredentials:
    bucket: str
    bucket_id: str
    access_key_id: str
    secret_access_key: str
    created: bool

    def secret_data(self, endpoint: str, region: str) -> dict[str, str]:
        """The project's Secret: protocol.BUCKET_SECRET_KEYS (endpoint, region, bucket, key id, secret key)."""
        values = (endpoint, region, self.bucket, self.access_key_id, self.secret_access_key)
        return dict(zip(BUCKET_SECRET_KEYS, values, strict=True))


def bucket_name_for(key: str) -> str:
    """A valid S3 bucket name (3-63 chars of [a-z0-9.-]) for a project key; a hash keeps altered keys apart."""
    raw = (key or "").strip()
    if not raw:
        raise ValueError("a project key is required")
    body = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    if body != raw or len(body) > 63 or len(body) < 3:
        body = f"{body[:54].strip('-') or 'bucket'}-{hashlib.sha256(raw.encode()).hexdigest()[:8]}"
    assert BUCKET_NAME.fullmatch(body), body
    return body


class GarageAdmin:
    def __init__(self, url: str, token: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(self, method: str, operation: str, body: Any = None, **query: Any) -> Any:
        params = {k: ("true" if v is True else v) for k, v in query.items() if v is not None}
        url = f"{self.url}/v2/{operation}" + (f"?{urlencode(params)}" if params else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={  # noqa: S310 (http(s) only)
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                err = json.loads(raw)
            except ValueError:
                err = {}
            message = err.get("message", raw.decode(errors="replace"))
            raise GarageError(exc.code, err.get("code", "Unknown"), message) from None
        return json.loads(raw) if raw.strip() else None

    # --- cluster ------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self.call("GET", "GetClusterHealth")

    def status(self) -> dict[str, Any]:
        return self.call("GET", "GetClusterStatus")

    def layout(self) -> dict[str, Any]:
        return self.call("GET", "GetClusterLayout")

    def ensure_layout(self, capacity: int, zone: str = "dc1") -> dict[str, Any]:
        """Give every node without a role one (`capacity` bytes in `zone`) and apply the layout.

        Returns {"changed": bool, "version": int}. A layout staged by an interrupted earlier run is
        applied as it is. Applying takes the current version + 1, as the API requires.
        """
        status = self.status()
        layout = self.layout()
        staged = {c["id"] for c in layout.get("stagedRoleChanges") or []}
        missing = [n["id"] for n in status.get("nodes") or [] if n.get("role") is None and n["id"] not in staged]
        if missing:
            self.call("POST", "UpdateClusterLayout", {"roles": [
                {"id": node, "zone": zone, "capacity": capacity, "tags": []} for node in missing]})
            layout = self.layout()
        if not layout.get("stagedRoleChanges"):
            return {"changed": False, "version": layout["version"]}
        applied = self.call("POST", "ApplyClusterLayout", {"version": layout["version"] + 1})
        version = applied["layout"]["version"]
        log.info("garage layout version %s applied (%d node(s) assigned)", version, len(missing))
        return {"changed": True, "version": version}

    # --- buckets and keys -------------------------------------------------------------------------

    def bucket_by_alias(self, alias: str) -> dict[str, Any] | None:
        try:
            return self.call("GET", "GetBucketInfo", globalAlias=alias)
        except GarageError as exc:
            if exc.status == 404:
                return None
            raise

    def bucket_bytes(self, alias: str) -> int | None:
        """Bytes stored in the bucket (GetBucketInfo's `bytes`); None when there is no such bucket."""
        bucket = self.bucket_by_alias(alias)
        return None if bucket is None else int(bucket.get("bytes") or 0)

    def key_by_name(self, name: str) -> dict[str, Any] | None:
        """The key called `name` with its secret; the oldest if a race ever made two."""
        matches = [k for k in self.call("GET", "ListKeys") or [] if k.get("name") == name]
        if not matches:
            return None
        oldest = sorted(matches, key=lambda k: (k.get("created") or "", k["id"]))[0]
        return self.call("GET", "GetKeyInfo", id=oldest["id"], showSecretKey=True)

    def ensure_bucket(self, alias: str) -> BucketCredentials:
        """Bucket `alias` + a key named `alias` allowed read and write on it (only). Safe to repeat."""
        created = False
        bucket = self.bucket_by_alias(alias)
        if bucket is None:
            try:
                bucket = self.call("POST", "CreateBucket", {"globalAlias": alias})
                created = True
            except GarageError as exc:
                if exc.code != "BucketAlreadyExists":  # lost a race with a concurrent call: use theirs
                    raise
                bucket = self.bucket_by_alias(alias)
                assert bucket is not None
        key = self.key_by_name(alias)
        if key is None:
            # No allow.createBucket: the key can only use what it is granted below.
            key = self.call("POST", "CreateKey", {"name": alias})
        granted = next((k["permissions"] for k in bucket.get("keys") or []
                        if k["accessKeyId"] == key["accessKeyId"]), {})
        if not (granted.get("read") and granted.get("write")):
            self.call("POST", "AllowBucketKey", {"bucketId": bucket["id"], "accessKeyId": key["accessKeyId"],
                                                 "permissions": {"read": True, "write": True, "owner": False}})
        return BucketCredentials(bucket=alias, bucket_id=bucket["id"], access_key_id=key["accessKeyId"],
                                 secret_access_key=key["secretAccessKey"], created=created)

    def delete_bucket(self, alias: str) -> dict[str, bool]:
        """Remove the (already emptied) bucket and the key named after it. Safe to repeat.

        Garage refuses to delete a bucket that still holds objects (409 BucketNotEmpty): the caller
        empties it through S3 first (see services.delete_bucket).
        """
        bucket = self.bucket_by_alias(alias)
        if bucket is not None:
            # Unfinished multipart uploads also count as content.
            self.call("POST", "CleanupIncompleteUploads", {"bucketId": bucket["id"], "olderThanSecs": 0})
            self.call("POST", "DeleteBucket", id=bucket["id"])
        deleted_keys = 0
        for key in self.call("GET", "ListKeys") or []:
            if key.get("name") == alias:
                self.call("POST", "DeleteKey", id=key["id"])
                deleted_keys += 1
        return {"bucket_deleted": bucket is not None, "key_deleted": deleted_keys > 0}
