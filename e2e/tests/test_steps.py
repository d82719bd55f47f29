"""Single steps of bin/e2e-k3s against kubesim and small HTTP servers standing in for what they talk to."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from clusters import manifest
from clusters.models import Cluster
from e2e.run import Config, EndToEnd, StepFailed, apply_documents, fetch


@contextmanager
def http_server(answer: tuple[int, dict[str, str], bytes], seen: list[str]) -> Iterator[int]:
    """A loopback HTTP server answering every GET with `answer`; the Host headers it got go to `seen`."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            seen.append(self.headers["Host"])
            status, headers, body = answer
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_resolve_ip_sends_the_request_to_that_address_with_the_services_host_header():
    seen: list[str] = []
    with http_server((200, {}, b"hello from nginx"), seen) as port:
        answer = fetch(f"http://web-shop-acme.apps.invalid:{port}/", resolve_ip="127.0.0.1")

    assert answer == (200, "hello from nginx")
    assert seen == [f"web-shop-acme.apps.invalid:{port}"]


def test_a_bootstrap_timeout_says_why_the_agent_pod_does_not_connect(kubesim, tmp_path):
    """The install applied with an image the nodes cannot pull: the failure names the pull, not only 'pending'."""
    pending = {"status": "pending", "connected": False, "kubernetes_version": "", "agent_version": "",
               "infrastructure": [{"component": "traefik", "state": "unreported", "reason": ""}]}
    with http_server((200, {"Content-Type": "application/json"}, json.dumps(pending).encode()), []) as port:
        run = EndToEnd(Config(url=f"http://127.0.0.1:{port}", operator_token="t", user_token="u", org="acme",
                              kubeconfig=str(kubesim.write_kubeconfig(tmp_path / "kubeconfig")),
                              base_domain="apps.example.com", bootstrap_timeout=1, poll_interval=0.2), io.StringIO())
        run.cluster = {"slug": "edge"}
        docs = manifest.objects(Cluster(pk=1, name="Edge", slug="edge"), "1.token", "ws://cp/agent/ws",
                                image="registry.example.com/paas-agent:does-not-exist")
        apply_documents(run.kube, docs)
        kubesim.wait_for(lambda: kubesim.list("Pod", "paas-system"), 10)

        with pytest.raises(StepFailed) as failed:
            run.bootstrap()

    assert "status pending, connected False; agent pod paas-agent-" in str(failed.value)
    assert 'Pending (ImagePullBackOff: Back-off pulling image "registry.example.com/paas-agent:does-not-exist")' \
        in str(failed.value)
    assert "traefik=unreported" in str(failed.value)
