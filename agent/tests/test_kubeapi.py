"""The `kube_api` stream op: a real tunnel (to a stand-in control plane), the agent relaying to kubesim with
impersonation, and the path rules both sides apply (agent.protocol.kube_api_path_allowed)."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from agent import protocol as p
from agent.k8s import Kind, Kube
from agent.tests.test_shell import LABELS, NS, plane, project  # noqa: F401 (fixtures)

RBAC = "rbac.authorization.k8s.io"


class Relay:
    """The control plane's end of one kube_api stream."""

    def __init__(self, cp, sid: int) -> None:
        self.cp, self.sid, self.ws = cp, sid, cp.connections[0]
        self.reader = p.KubeFrameReader()
        self.head: dict | None = None
        self.body = b""
        self.close_reason: str | None = None

    async def open(self, path: str, **payload) -> Relay:
        payload = {"namespace": NS, "labels": LABELS, "identity": "viewer", "method": "GET", "path": path,
                   "query": "", "headers": {"Accept": "application/json"}, "body": "", **payload}
        await self.ws.send(p.encode({"type": "stream.open", "id": self.sid, "op": p.STREAM_KUBE_API,
                                     "payload": payload, "window": 1 << 20}))
        return self

    async def finish(self, timeout: float = 10.0) -> Relay:
        async with asyncio.timeout(timeout):
            while self.close_reason is None:
                _, message = await self.cp.inbox.get()
                if isinstance(message, bytes):
                    sid, data = p.unpack_data(message)
                    for kind, frame in self.reader.feed(data) if sid == self.sid else ():
                        if kind == p.KUBE_HEAD:
                            self.head = json.loads(frame)
                        elif kind == p.KUBE_BODY:
                            self.body += frame
                elif message.get("type") == "stream.close" and message.get("id") == self.sid:
                    self.close_reason = message.get("reason", "")
        return self


def grant_viewer(kubesim, tmp_path) -> None:
    admin = Kube(str(kubesim.write_kubeconfig(tmp_path / "admin-kubeconfig")))
    try:
        role, binding = Kind(f"{RBAC}/v1", "Role", "roles"), Kind(f"{RBAC}/v1", "RoleBinding", "rolebindings")
        admin.apply(role, {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": "project-viewer"},
                           "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}, NS)
        admin.apply(binding, {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding",
                              "metadata": {"name": "project-viewer"},
                              "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "project-viewer"},
                              "subjects": [{"kind": "ServiceAccount", "name": "project-viewer", "namespace": NS}]},
                    NS)
    finally:
        admin.close()


async def test_requests_are_made_as_the_projects_service_account_not_as_the_agent(plane, kubesim, tmp_path):  # noqa: F811
    """The agent itself may list pods; relayed, the request is the viewer's, which may not until its Role says so."""
    relay = await (await Relay(plane, 3).open(f"/api/v1/namespaces/{NS}/pods")).finish()
    assert relay.head["status"] == 403
    assert (f'User "system:serviceaccount:{NS}:project-viewer" cannot list resource "pods"'
            in json.loads(relay.body)["message"])
    await asyncio.to_thread(grant_viewer, kubesim, tmp_path)
    relay = await (await Relay(plane, 5).open(f"/api/v1/namespaces/{NS}/pods")).finish()
    assert relay.head["status"] == 200
    assert ["Content-Type", "application/json"] in relay.head["headers"]
    assert sorted(pod["metadata"]["name"] for pod in json.loads(relay.body)["items"]) == [
        "web-1", "web-bare", "web-foreign-labels", "web-none"]


@pytest.mark.parametrize(("payload", "reason"), [
    ({"namespace": "other-app", "path": "/api/v1/namespaces/other-app/pods"},
     "forbidden: namespace other-app does not belong to this project"),
    ({"namespace": "acme-web-2", "path": "/api/v1/namespaces/acme-web-2/pods"},
     "forbidden: namespace acme-web-2 does not belong"),
    ({"path": "/api/v1/namespaces/kube-system/pods"}, "forbidden: /api/v1/namespaces/kube-system/pods is outside"),
    ({"path": "/api/v1/nodes"}, "forbidden: /api/v1/nodes is outside"),
    ({"path": f"/api/v1/namespaces/{NS}/../kube-system/pods"}, "forbidden:"),
    ({"identity": "admin"}, "bad request: 'identity' must be one of viewer, deployer"),
    ({"labels": {"paas.dev/project": "web"}}, "bad request: 'labels' must carry the project's uid"),
    ({"method": "CONNECT"}, "bad request: method 'CONNECT' is not relayed"),
    ({"body": base64.b64encode(b"x" * (p.KUBE_MAX_REQUEST_BODY + 1)).decode()}, "bad request: the body is over"),
])
async def test_requests_outside_the_project_and_bad_requests_are_refused(plane, payload, reason):  # noqa: F811
    relay = await (await Relay(plane, 9).open(payload.pop("path", f"/api/v1/namespaces/{NS}/pods"),
                                               **payload)).finish()
    assert relay.close_reason.startswith(reason) and relay.head is None


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("GET", "/api", True), ("GET", "/apis", True), ("GET", "/version", True), ("GET", "/apis/apps/v1", True),
    ("GET", "/openapi/v3/apis/apps/v1", True), ("DELETE", "/apis", False),
    ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", True),
    ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", False),
    ("GET", "/api/v1/namespaces/tenant-a/pods", True),
    ("DELETE", "/apis/apps/v1/namespaces/tenant-a/deployments/w", True),
    ("GET", "/api/v1/namespaces/tenant-a", False), ("GET", "/api/v1/namespaces/tenant-b/pods", False),
    ("GET", "/api/v1/pods", False), ("GET", "/api/v1/watch/namespaces/tenant-a/pods", False),
    ("GET", "/api/v1/namespaces/tenant-a/pods/../../tenant-b/pods", False),
    ("GET", "/api/v1/namespaces/tenant-a/pods%2F..%2F..", False), ("GET", "/api/v1/namespaces/tenant-a//pods", False),
    ("GET", "/api/v1/namespaces/tenant-a/pods?x#/../../../nodes", False),
])
def test_the_path_rule_keeps_to_the_namespace_and_discovery(method, path, allowed):
    assert p.kube_api_path_allowed(method, path, "tenant-a") is allowed


def test_frames_survive_any_cut():
    data = p.pack_kube_frame(p.KUBE_HEAD, b'{"status": 200}') + p.pack_kube_frame(p.KUBE_BODY, b"x" * 1000)
    reader = p.KubeFrameReader()
    frames = [frame for i in range(0, len(data), 7) for frame in reader.feed(data[i:i + 7])]
    assert frames == [(p.KUBE_HEAD, b'{"status": 200}'), (p.KUBE_BODY, b"x" * 1000)]
    with pytest.raises(ValueError, match="over the limit"):
        p.KubeFrameReader().feed(bytes([p.KUBE_BODY]) + (p.KUBE_MAX_FRAME + 1).to_bytes(4, "big"))
