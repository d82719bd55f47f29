"""The agent's door to Kubernetes, over the official client: no other agent module imports the client.

Calls are blocking (urllib3 underneath); async callers run them with `asyncio.to_thread`.
Objects travel as plain dicts, exactly as the apiserver sends them, so nothing is lost in
model conversion and server-side apply sees the fields the control plane chose, no more.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream as websocket_stream
from websocket import ABNF, WebSocketException

from agent import protocol as p

log = logging.getLogger("agent.k8s")

FIELD_MANAGER = "paas-agent"


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def collection(self, namespace: str | None = None) -> str:
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{base}/{self.plural}"

    def item(self, name: str, namespace: str | None = None) -> str:
        return f"{self.collection(namespace)}/{quote(name, safe='')}"


# Every kind a project may contain (protocol.PROJECT_KINDS); pruning looks at exactly these.
PROJECT_KINDS: tuple[Kind, ...] = tuple(Kind(*kind) for kind in p.PROJECT_KINDS)
_BY_TYPE = {(k.api_version, k.kind): k for k in PROJECT_KINDS}

NAMESPACE = Kind("v1", "Namespace", "namespaces", namespaced=False)
NODE = Kind("v1", "Node", "nodes", namespaced=False)
DEPLOYMENT = _BY_TYPE[("apps/v1", "Deployment")]
POD = Kind("v1", "Pod", "pods")
EVENT = Kind("v1", "Event", "events")


# What a call raises when the connection to the apiserver fails or breaks (no Status to read): the client's
# transport error, named here so that callers need not import the client's transport.
ConnectionFailed = urllib3.exceptions.HTTPError


def kind_of(obj: dict[str, Any]) -> Kind | None:
    return _BY_TYPE.get((obj.get("apiVersion", ""), obj.get("kind", "")))


class KubeError(Exception):
    """An apiserver error, with the status code and the message from its Status body."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason

    @classmethod
    def from_api(cls, exc: ApiException) -> KubeError:
        message, reason = exc.reason or "", ""
        try:
            body = json.loads(exc.body or "{}")
            message, reason = body.get("message") or message, body.get("reason") or ""
        except (TypeError, ValueError):
            pass
        return cls(int(exc.status or 0), message, reason)


class ExecConnection:
    """One exec into a container over Kubernetes' channel protocol. Blocking: one reader thread, writers anywhere.

    Frames are read straight off the socket (not through WSClient.update(), which buffers every channel).
    """

    CLOSE_CHANNEL = 255  # v5: "this channel is closed", not data

    def __init__(self, ws: Any, api: client.ApiClient) -> None:
        self._ws, self._api = ws, api

    def read(self) -> tuple[int, bytes] | None:
        """The next (channel, bytes) frame from the container, or None once the connection is closed."""
        try:
            while True:
                opcode, frame = self._ws.sock.recv_data_frame(True)
                if opcode == ABNF.OPCODE_CLOSE:
                    return None
                data = frame.data.encode() if isinstance(frame.data, str) else frame.data
                if opcode in (ABNF.OPCODE_BINARY, ABNF.OPCODE_TEXT) and data and data[0] != self.CLOSE_CHANNEL:
                    return data[0], data[1:]
        except (WebSocketException, OSError, AttributeError):  # AttributeError: closed under us (sock is None)
            return None

    def write(self, channel: int, data: bytes) -> None:
        self._ws.write_channel(channel, data)

    def resize(self, cols: int, rows: int) -> None:
        self.write(4, json.dumps({"Width": cols, "Height": rows}).encode())

    def close_stdin(self) -> None:
        self._ws.close_channel(0)  # only the v5 protocol can say so; older ones keep stdin open

    def close(self) -> None:
        """Close at once: no waiting for the apiserver's closing handshake (a reader thread may be in recv)."""
        ws = self._ws.sock
        try:
            ws.send_close()
            if ws.sock is not None:
                ws.sock.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in recv(), which close() alone does not
            ws.shutdown()
        except (WebSocketException, OSError, AttributeError):
            pass
        self._api.close()


@dataclass(frozen=True)
class HttpAccess:
    """How to reach the apiserver with the agent's own credentials, for a raw HTTP client (agent.kubeapi)."""

    base_url: str
    ssl: ssl.SSLContext | bool  # False: plain HTTP or verification switched off in the kubeconfig
    headers: dict[str, str]


class Kube:
    """A thin JSON-in, JSON-out wrapper over the official client's ApiClient."""

    def __init__(self, kubeconfig: str | None = None, request_timeout: float = 30.0) -> None:
        configuration = client.Configuration()
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
        self.api = client.ApiClient(configuration)
        self.timeout = request_timeout

    def close(self) -> None:
        self.api.close()

    def http_access(self) -> HttpAccess:
        """The apiserver's URL, TLS settings and the agent's Authorization header, read from the client's
        configuration on every call (an in-cluster token is refreshed by the client's hook)."""
        cfg = self.api.configuration
        headers = {}
        token = cfg.get_api_key_with_prefix("authorization") or cfg.get_api_key_with_prefix("BearerToken")
        if token:
            headers["Authorization"] = token
        context: ssl.SSLContext | bool = False
        if cfg.host.startswith("https:") and cfg.verify_ssl:
            context = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
        elif cfg.host.startswith("https:"):
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        if isinstance(context, ssl.SSLContext) and cfg.cert_file:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
        return HttpAccess(cfg.host.rstrip("/"), context, headers)

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
                content_type: str = "application/json", timeout: float | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        method, url, headers, _, _ = self.api.param_serialize(method, path, header_params=headers,
                                                              auth_settings=["BearerToken"])
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        try:
            # The client serialises dict bodies itself, for JSON and for apply-patch+yaml alike.
            response = self.api.call_api(method, url, headers, body=body, _request_timeout=timeout or self.timeout)
            data = response.read()
        except ApiException as exc:
            raise KubeError.from_api(exc) from None
        if not 200 <= response.status < 300:
            raise KubeError.from_api(ApiException(status=response.status, reason=response.reason, body=data))
        return json.loads(data) if data else {}

    # --- objects ----------------------------------------------------------------------------

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return self.request("GET", kind.item(name, namespace))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: Kind, namespace: str | None = None, label_selector: str | None = None) -> list[dict]:
        return self.request("GET", kind.collection(namespace), query={"labelSelector": label_selector}).get(
            "items"
        ) or []

    def apply(self, kind: Kind, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Server-side apply as FIELD_MANAGER, taking over conflicting fields (we are the authority)."""
        return self.request(
            "PATCH", kind.item(obj["metadata"]["name"], namespace),
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=obj, content_type="application/apply-patch+yaml",
        )

    def delete(self, kind: Kind, name: str, namespace: str | None = None) -> bool:
        try:
            self.request("DELETE", kind.item(name, namespace), body={"propagationPolicy": "Background"})
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def watch(self, kind: Kind, *, label_selector: str | None = None, resource_version: str | None = None,
              timeout_seconds: int = 60, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """Yield watch events ({type, object}) in `namespace` (all by default) until the server ends the watch."""
        query = {"watch": "true", "labelSelector": label_selector, "resourceVersion": resource_version,
                 "timeoutSeconds": timeout_seconds, "allowWatchBookmarks": "true"}
        method, url, headers, _, _ = self.api.param_serialize("GET", kind.collection(namespace),
                                                              auth_settings=["BearerToken"],
                                                              header_params={"Accept": "application/json"})
        url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        try:
            response = self.api.call_api(method, url, headers, _request_timeout=(10, timeout_seconds + 10))
        except ApiException as exc:
            raise KubeError.from_api(exc) from None
        if response.status != 200:
            raise KubeError.from_api(ApiException(status=response.status, reason=response.reason,
                                                  body=response.read()))
        buffer = b""
        try:
            for chunk in response.response.stream(amt=None, decode_content=False):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            response.response.release_conn()

    def pod_log(self, name: str, namespace: str, *, tail_lines: int = 20, container: str | None = None,
                previous: bool = False) -> str:
        """The last lines of a container's log (of its previous run with `previous`), as text."""
        method, url, headers, _, _ = self.api.param_serialize("GET", POD.item(name, namespace) + "/log",
                                                              auth_settings=["BearerToken"],
                                                              header_params={"Accept": "text/plain"})
        query = {"tailLines": tail_lines, "container": container, "previous": "true" if previous else None}
        url += "?" + urlencode({k: v for k, v in query.items() if v})
        try:
            response = self.api.call_api(method, url, headers, _request_timeout=self.timeout)
            data = response.read()
        except ApiException as exc:
            raise KubeError.from_api(exc) from None
        if not 200 <= response.status < 300:
            raise KubeError.from_api(ApiException(status=response.status, reason=response.reason, body=data))
        return data.decode(errors="replace")

    def exec(self, name: str, namespace: str, command: list[str], *, container: str, tty: bool,
             stdin: bool) -> ExecConnection:
        """Start `command` in a container (the official client's websocket exec, protocol v5 or v4)."""
        # stream() swaps the ApiClient's transport while it connects: give it its own, since watches share ours.
        api = client.ApiClient(self.api.configuration)
        try:
            ws = websocket_stream(client.CoreV1Api(api).connect_get_namespaced_pod_exec, name, namespace,
                                  command=command, container=container, stdin=stdin, stdout=True, stderr=True,
                                  tty=tty, _preload_content=False, binary=True)
        except ApiException as exc:
            api.close()
            # A refused upgrade comes back as the handshake's text with the apiserver's Status inside.
            found = re.search(r'"message":\s*"((?:[^"\\]|\\.)*)"', str(exc.reason or ""))
            raise KubeError(int(exc.status or 0), found.group(1) if found else str(exc.reason)) from None
        return ExecConnection(ws, api)

    def open_pod_log(self, name: str, namespace: str, *, container: str, follow: bool = False,
                     tail_lines: int | None = None, since_seconds: int | None = None, since_time: str | None = None,
                     previous: bool = False) -> PodLog:
        """A container's log as a byte stream, always with RFC3339Nano timestamps (resume and merge need them)."""
        query = {"container": container, "follow": "true" if follow else None, "tailLines": tail_lines,
                 "sinceSeconds": since_seconds, "sinceTime": since_time,
                 "previous": "true" if previous else None, "timestamps": "true"}
        method, url, headers, _, _ = self.api.param_serialize("GET", POD.item(name, namespace) + "/log",
                                                              auth_settings=["BearerToken"],
                                                              header_params={"Accept": "text/plain"})
        url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        try:
            # No read timeout: a quiet container sends nothing for as long as it likes; PodLog.close() ends it.
            response = self.api.call_api(method, url, headers, _request_timeout=(10, None))
        except ApiException as exc:
            raise KubeError.from_api(exc) from None
        if response.status != 200:
            raise KubeError.from_api(ApiException(status=response.status, reason=response.reason,
                                                  body=response.read()))
        return PodLog(response.response)

    # --- cluster facts for the handshake ----------------------------------------------------

    def version(self) -> str:
        return self.request("GET", "/version").get("gitVersion", "unknown")

    def nodes(self) -> list[dict[str, Any]]:
        summary = []
        for node in self.list(NODE):
            labels = node.get("metadata", {}).get("labels", {}) or {}
            roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
            capacity = node.get("status", {}).get("capacity", {}) or {}
            conditions = {c.get("type"): c.get("status") for c in node.get("status", {}).get("conditions", []) or []}
            # The control plane keeps tenants' internet egress away from these (projects.compose.namespace).
            addresses = sorted({a["address"] for a in node.get("status", {}).get("addresses", []) or []
                                if a.get("type") in ("InternalIP", "ExternalIP") and a.get("address")})
            summary.append({
                "name": node["metadata"]["name"],
                "roles": roles,
                "ingress_ready": labels.get("ingress-ready") == "true",
                "ready": conditions.get("Ready") == "True",
                "capacity": {k: capacity[k] for k in ("cpu", "memory", "pods") if k in capacity},
                "addresses": addresses,
            })
        return summary

    def components(self) -> dict[str, dict[str, Any]]:
        """Platform components found running, by well-known Deployment names (all namespaces)."""
        known = {"traefik": "traefik", "sablier": "sablier", "cloudnative-pg": "cnpg", "garage": "garage",
                 "coredns": "coredns", "metrics-server": "metrics-server"}
        found: dict[str, dict[str, Any]] = {}
        for deployment in self.list(DEPLOYMENT):
            name = deployment["metadata"]["name"]
            for component, needle in known.items():
                if needle in name and component not in found:
                    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
                    image = containers[0].get("image", "") if containers else ""
                    status = deployment.get("status", {}) or {}
                    found[component] = {
                        "namespace": deployment["metadata"].get("namespace"),
                        "deployment": name,
                        "version": image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else "",
                        "ready": f"{status.get('readyReplicas', 0)}/{deployment.get('spec', {}).get('replicas', 1)}",
                    }
        return found


class PodLog:
    """An open pods/log response: iterate its lines (bytes, newline stripped); close() from any thread."""

    def __init__(self, response: Any) -> None:
        self._response = response  # urllib3.HTTPResponse, not preloaded

    def lines(self, max_line: int) -> Iterator[bytes]:
        """Complete lines as they arrive; a line longer than `max_line` is cut there (memory stays bounded)."""
        pending = b""
        try:
            for chunk in self._response.stream(amt=64 * 1024, decode_content=False):
                pending += chunk
                *complete, pending = pending.split(b"\n")
                yield from complete
                if len(pending) > max_line:
                    yield pending[:max_line]
                    pending = b""
        except Exception:  # closed under our feet (close()) or the server went away: the log ends here
            pending = b""
        if pending:
            yield pending

    def close(self) -> None:
        """Unblock a reader waiting for the next byte and give the connection up."""
        shutdown = getattr(self._response, "shutdown", None)  # urllib3 >= 2.3
        try:
            if shutdown is not None:
                shutdown()
            self._response.close()
        except Exception:  # noqa: S110 (already closed)
            pass
