"""kubectl against the emulator (skipped when kubectl is not installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kubesim.testing import KubeSim
from kubesim.tests.helpers import deployment

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed on this machine")


Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def _kubesim_server() -> Iterator[KubeSim]:
    """Served over TLS: kubectl sends the kubeconfig's bearer token only to an https server."""
    with KubeSim(tls=True) as sim:
        yield sim


@pytest.fixture
def kubectl(kubesim: KubeSim, tmp_path: Path) -> Kubectl:
    kubeconfig = kubesim.write_kubeconfig(tmp_path / "kubeconfig")

    def run(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args], input=stdin, text=True,
                              capture_output=True, timeout=30)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    return run


def test_it_works_with_kubectl_discovery_and_get(kubectl: Kubectl) -> None:
    """kubectl discovers resources (api-resources) and reads objects (get -o json, table output)."""
    assert "helmcharts" in kubectl("api-resources").stdout
    names = [i["metadata"]["name"] for i in json.loads(kubectl("get", "ns", "-o", "json").stdout)["items"]]
    assert "kube-system" in names
    assert "default" in kubectl("get", "ns").stdout


def test_it_works_with_kubectl_apply_rollout_and_logs(kubectl: Kubectl) -> None:
    """kubectl apply (client- and server-side), rollout status, logs and exec behave as on a cluster."""
    manifest = json.dumps(deployment())
    assert "serverside-applied" in kubectl("apply", "--server-side", "-n", "default", "-f", "-", stdin=manifest).stdout
    kubectl("rollout", "status", "deploy/web", "-n", "default", "--timeout=10s")
    kubectl("apply", "-n", "default", "-f", "-", stdin=manifest)
    pod = json.loads(kubectl("get", "pods", "-n", "default", "-o", "json").stdout)["items"][0]["metadata"]["name"]
    assert "started" in kubectl("logs", "-n", "default", pod).stdout
    result = kubectl("exec", "-n", "default", pod, "--", "sh", "-c", "echo hi; exit 3", check=False)
    assert result.stdout == "hi\n" and result.returncode == 3


def test_it_reports_invalid_objects_to_kubectl(kubectl: Kubectl) -> None:
    """kubectl shows the apiserver's 422 message and strict field validation errors."""
    bad = deployment()
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "x"
    result = kubectl("apply", "-n", "default", "-f", "-", stdin=json.dumps(bad), check=False)
    assert result.returncode != 0 and 'unknown field "spec.template.spec.containers[0].imagePullPolicyy"' in \
        result.stderr
