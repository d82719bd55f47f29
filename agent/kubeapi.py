"""The `kube_api` stream op: one Kubernetes API request of a member's kubectl, relayed as a project ServiceAccount.

The control plane authenticates the member and picks the identity (protocol.KUBE_ACCOUNTS: viewer or deployer);
the agent sends the request to its apiserver with `Impersonate-User: system:serviceaccount:<ns>:<account>`, so
Kubernetes' RBAC on that ServiceAccount decides what the member may do. Defence in depth, as for `exec`: the
namespace must carry the project's labels and the path must be one a member may reach
(protocol.kube_api_path_allowed), whatever the control plane sent. Plain requests stream their response back
(watches stay open until either side closes); WebSocket requests (exec, attach, port-forward) relay message by
message. Frames are protocol.KUBE_*.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from agent import protocol as p
from agent.k8s import NAMESPACE, HttpAccess, Kube, KubeError
from agent.ops import Stream

log = logging.getLogger("agent.kubeapi")

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


class Refused(Exception):
    """A request this project's members may not make, or a malformed one; the message is the close reason."""


@dataclass(frozen=True)
class KubeRequest:
    namespace: str
    labels: dict[str, str]
    account: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    websocket: bool
    subprotocols: tuple[str, ...]

    @classmethod
    def parse(cls, payload: dict[str, Any]) -> KubeRequest:
        def text(key: str) -> str:
            value = payload.get(key, "")
            if not isinstance(value, str):
                raise Refused(f"bad request: {key!r} must be a string")
            return value

        labels, headers = payload.get("labels"), payload.get("headers") or {}
        if not isinstance(labels, dict) or not labels.get(p.PROJECT_UID_LABEL):
            raise Refused("bad request: 'labels' must carry the project's uid")
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise Refused("bad request: 'headers' must map names to strings")
        identity = text("identity")
        if identity not in p.KUBE_ACCOUNTS:
            raise Refused(f"bad request: 'identity' must be one of {', '.join(p.KUBE_ACCOUNTS)}")
        method = text("method").upper()
        if method not in _METHODS:
            raise Refused(f"bad request: method {method!r} is not relayed")
        try:
            body = base64.b64decode(text("body"), validate=True)
        except ValueError:
            raise Refused("bad request: 'body' must be base64") from None
        if len(body) > p.KUBE_MAX_REQUEST_BODY:
            raise Refused(f"bad request: the body is over {p.KUBE_MAX_REQUEST_BODY} bytes")
        subprotocols = payload.get("subprotocols") or []
        if not isinstance(subprotocols, list) or not all(isinstance(s, str) for s in subprotocols):
            raise Refused("bad request: 'subprotocols' must be a list of strings")
        return cls(namespace=text("namespace"), labels={str(k): str(v) for k, v in labels.items()},
                   account=p.KUBE_ACCOUNTS[identity], method=method, path=text("path"), query=text("query"),
                   headers={k.lower(): v for k, v in headers.items() if k.lower() in p.KUBE_REQUEST_HEADERS},
                   body=body, websocket=bool(payload.get("websocket")), subprotocols=tuple(subprotocols))

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.account}"


def _check_namespace(kube: Kube, req: KubeRequest) -> None:
    namespace = kube.get(NAMESPACE, req.namespace)
    own = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    wanted = {**req.labels, p.MANAGED_BY_LABEL: p.MANAGED_BY_VALUE}
    if namespace is None or any(own.get(k) != v for k, v in wanted.items()):
        raise Refused(f"forbidden: namespace {req.namespace} does not belong to this project")


def _head(status: int, headers: list[list[str]], subprotocol: str = "") -> bytes:
    data = json.dumps({"status": status, "headers": headers, "subprotocol": subprotocol}).encode()
    return p.pack_kube_frame(p.KUBE_HEAD, data)


def _status_body(code: int, message: str) -> bytes:
    reason = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}.get(code, "BadRequest")
    return json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message, "reason": reason, "code": code}).encode()


async def _until_closed(stream: Stream) -> None:
    """Returns once the control plane closed the stream (kubectl went away, or the member lost access)."""
    while await stream.recv() is not None:
        pass


async def _race(*coros: Any) -> None:
    """Run until the first finishes, then cancel the rest (one side of a relay ending ends it)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                exc = task.exception()
                if not isinstance(exc, ConnectionError | aiohttp.ClientError | TimeoutError):
                    raise exc  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class KubeApiRelay:
    """One HTTP client session to the apiserver for every relayed request (connections are reused)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def serve(self, stream: Stream, payload: dict[str, Any]) -> None:
        try:
            req = KubeRequest.parse(payload)
            if not p.kube_api_path_allowed(req.method, req.path, req.namespace):
                raise Refused(f"forbidden: {req.path} is outside namespace {req.namespace}")
            await asyncio.to_thread(_check_namespace, self.kube, req)
            access = await asyncio.to_thread(self.kube.http_access)
        except Refused as exc:
            await stream.close(str(exc))
            return
        except KubeError as exc:
            await stream.close(f"failed: {exc.message}")
            return
        url = f"{access.base_url}{req.path}" + (f"?{req.query}" if req.query else "")
        headers = {**req.headers, **access.headers, "Impersonate-User": req.user}
        try:
            if req.websocket:
                await self._websocket(stream, req, access, url, headers)
            else:
                await self._http_request(stream, req, access, url, headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("kube_api relay failed namespace=%s path=%s error=%s", req.namespace, req.path, exc)
            with contextlib.suppress(ConnectionError):
                await stream.send(_head(502, [["Content-Type", "application/json"]]) + p.pack_kube_frame(
                    p.KUBE_BODY, _status_body(502, f"the cluster's API did not answer: {exc}")))
        except ConnectionError:
            pass  # the control plane closed the stream under us
        finally:
            await stream.close()

    async def _http_request(self, stream: Stream, req: KubeRequest, access: HttpAccess, url: str,
                            headers: dict[str, str]) -> None:
        async with self._http().request(req.method, url, headers=headers, data=req.body or None,
                                        ssl=access.ssl) as response:
            kept = [[k, v] for k, v in response.headers.items() if k.lower() in p.KUBE_RESPONSE_HEADERS]
            await stream.send(_head(response.status, kept))

            async def pump() -> None:
                async for chunk in response.content.iter_any():
                    await stream.send(p.pack_kube_frame(p.KUBE_BODY, chunk))

            await _race(pump(), _until_closed(stream))

    async def _websocket(self, stream: Stream, req: KubeRequest, access: HttpAccess, url: str,
                         headers: dict[str, str]) -> None:
        try:
            ws = await self._http().ws_connect(url, protocols=req.subprotocols, headers=headers, ssl=access.ssl,
                                               max_msg_size=0, autoping=True)
        except aiohttp.WSServerHandshakeError as exc:
            # aiohttp keeps no body of a refused upgrade: say what we know.
            message = f"the cluster's API refused the upgrade of {req.path} as {req.user} (HTTP {exc.status})"
            await stream.send(_head(exc.status, [["Content-Type", "application/json"]])
                              + p.pack_kube_frame(p.KUBE_BODY, _status_body(exc.status, message)))
            return
        async with ws:
            await stream.send(_head(101, [], ws.protocol or ""))

            async def upstream() -> None:
                async for message in ws:
                    if message.type == aiohttp.WSMsgType.BINARY:
                        await stream.send(p.pack_kube_frame(p.KUBE_BINARY, message.data))
                    elif message.type == aiohttp.WSMsgType.TEXT:
                        await stream.send(p.pack_kube_frame(p.KUBE_TEXT, message.data.encode()))
                    else:
                        break

            async def downstream() -> None:
                reader = p.KubeFrameReader()
                while (data := await stream.recv()) is not None:
                    for kind, frame in reader.feed(data):
                        if kind == p.KUBE_BINARY:
                            await ws.send_bytes(frame)
                        elif kind == p.KUBE_TEXT:
                            await ws.send_str(frame.decode(errors="replace"))

            await _race(upstream(), downstream())
