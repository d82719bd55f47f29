"""pods/portforward over WebSockets (v4.channel.k8s.io), with the official client's port-forward."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward

from kubesim.testing import KubeSim


def running_web(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    core.create_namespaced_pod("default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 8080}]}]}})
    kubesim.wait_for(lambda: kubesim.get("Pod", "default", "web")["status"].get("phase") == "Running")


def http_get(sock, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: web\r\n\r\n".encode())
    seen = b""
    sock.settimeout(10)
    while not seen.partition(b"\r\n\r\n")[2].endswith(b"\n"):  # the head, then the one-line body
        chunk = sock.recv(4096)
        assert chunk, seen
        seen += chunk
    return seen


def test_a_forwarded_container_port_answers_http(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    running_web(kubesim, core)
    forward = portforward(core.connect_get_namespaced_pod_portforward, "web", "default", ports="8080")
    answer = http_get(forward.socket(8080), "/hello")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"Hello from default/web on port 8080: GET /hello HTTP/1.1\n")
    assert forward.error(8080) is None
    forward.close()


def test_a_port_nothing_listens_on_reports_a_refused_connection(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    running_web(kubesim, core)
    forward = portforward(core.connect_get_namespaced_pod_portforward, "web", "default", ports="9999")
    sock = forward.socket(9999)
    sock.settimeout(10)
    assert sock.recv(10) == b""  # the client closes the port's socket when its error channel speaks
    assert "connect: connection refused" in forward.error(9999)


def test_port_forward_needs_a_port(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    running_web(kubesim, core)
    with pytest.raises(ApiException) as exc:
        core.connect_get_namespaced_pod_portforward("web", "default")
    assert exc.value.status == 400 and 'query parameter \\"port\\" is required' in exc.value.body
