"""`kubectl auth can-i` / `whoami` and kubectl's view of denials, as a ServiceAccount (skipped without kubectl)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from kubesim.testing import KubeSim
from kubesim.tests.helpers import pod
from kubesim.tests.test_rbac import SA, grant

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")


@pytest.fixture(scope="module")
def _kubesim_server() -> Iterator[KubeSim]:
    """Served over TLS: kubectl sends a bearer token only to an https server."""
    with KubeSim(tls=True, preload_crds=False) as sim:
        yield sim


Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kubectl(kubesim: KubeSim, kube_api: client.ApiClient, tmp_path: Path) -> Kubectl:
    """kubectl as the ServiceAccount default/robot."""
    client.CoreV1Api(kube_api).create_namespaced_service_account("default", {"metadata": {"name": "robot"}})
    kubeconfig = kubesim.write_kubeconfig(tmp_path / "kubeconfig", kubesim.service_account_token("default", "robot"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                              timeout=30)

    return run


def test_kubectl_auth_can_i_and_whoami(kube_api: client.ApiClient, kubectl: Kubectl) -> None:
    grant(kube_api, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])

    yes = kubectl("auth", "can-i", "list", "pods")
    assert yes.stdout.strip() == "yes", yes.stderr
    no = kubectl("auth", "can-i", "delete", "pods")
    assert (no.stdout.strip(), no.returncode) == ("no", 1)
    assert kubectl("auth", "can-i", "list", "pods", "-n", "kube-system").stdout.strip() == "no"
    assert SA in kubectl("auth", "whoami").stdout
    forbidden = kubectl("get", "pods", "-n", "kube-system")
    assert forbidden.returncode == 1 and (
        f'Error from server (Forbidden): pods is forbidden: User "{SA}" cannot list resource "pods" in API group "" '
        'in the namespace "kube-system"') in forbidden.stderr
    listing = kubectl("auth", "can-i", "--list", "-n", "default").stdout
    assert "pods" in listing and "[list]" in listing
    assert json.loads(kubectl("get", "pods", "-o", "json").stdout)["items"] == []


def test_kubectl_exec_and_logs_need_their_subresources(kubesim: KubeSim, kube_api: client.ApiClient,
                                                       kubectl: Kubectl) -> None:
    """kubectl exec (WebSocket) needs `create` on pods/exec, as since 1.35; logs need `get` on pods/log."""
    client.CoreV1Api(kube_api).create_namespaced_pod("default", pod("p"))
    kubesim.wait_for(lambda: (kubesim.get("Pod", "default", "p") or {}).get("status", {}).get("phase") == "Running")
    grant(kube_api, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                     {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]}])
    denied = kubectl("exec", "p", "--", "echo", "hi")
    assert denied.returncode != 0 and f'User "{SA}" cannot create resource "pods/exec"' in denied.stderr
    assert 'cannot get resource "pods/log"' in kubectl("logs", "p").stderr
    grant(kube_api, [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
                     {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}], name="more")
    allowed = kubectl("exec", "p", "--", "echo", "hi")
    assert (allowed.returncode, allowed.stdout) == (0, "hi\n"), allowed.stderr
    assert "started" in kubectl("logs", "p").stdout
