"""`kubectl auth can-i` / `whoami` and kubectl's view of denials, as a ServiceAccount (skipped without kubectl)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from kubesim.testing import KubeSim
from kubesim.tests.test_rbac import SA, grant

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")


@pytest.fixture(scope="module")
def _kubesim_server() -> Iterator[KubeSim]:
    """Served over TLS: kubectl sends a bearer token only to an https server."""
    with KubeSim(tls=True, preload_crds=False) as sim:
        yield sim


def test_kubectl_auth_can_i_and_whoami(kubesim: KubeSim, kube_api: client.ApiClient, tmp_path: Path) -> None:
    client.CoreV1Api(kube_api).create_namespaced_service_account("default", {"metadata": {"name": "robot"}})
    grant(kube_api, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])
    kubeconfig = kubesim.write_kubeconfig(tmp_path / "kubeconfig", kubesim.service_account_token("default", "robot"))

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                              timeout=30)

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
