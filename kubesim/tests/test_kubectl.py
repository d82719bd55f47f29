"""kubectl against the emulator (skipped when kubectl is not installed)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes.client import ApiClient, CoreV1Api

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


def test_kubectl_get_prints_the_apiservers_columns(kubesim: KubeSim, kubectl: Kubectl) -> None:
    """`kubectl get` shows the server-side Table columns, -o wide the extra ones."""
    kubectl("apply", "-n", "default", "-f", "-", stdin=json.dumps(deployment()))
    kubectl("rollout", "status", "deploy/web", "-n", "default", "--timeout=10s")
    assert kubectl("get", "deploy", "-n", "default").stdout.split("\n")[0].split() == \
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    pods = kubectl("get", "pods", "-n", "default", "-o", "wide").stdout.split("\n")
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE",
                               "READINESS", "GATES"]
    assert pods[1].split()[1:4] == ["1/1", "Running", "0"]
    assert kubectl("get", "svc,cm", "-n", "kube-system").returncode == 0
    assert kubectl("get", "nodes").stdout.split("\n")[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]


def test_kubectl_explain_finds_the_schemas(kubectl: Kubectl) -> None:
    out = kubectl("explain", "deployment.spec.replicas").stdout
    assert "KIND:       Deployment" in out and "FIELD: replicas <integer>" in out
    assert "Number of desired pods" in out
    assert "FIELDS:" in kubectl("explain", "helmchart.spec").stdout


def test_kubectl_shows_pod_security_refusals_and_warnings(kubesim: KubeSim, kubectl: Kubectl) -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "locked", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    kubectl("apply", "-f", "-", stdin=json.dumps(namespace))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"},
           "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    refused = kubectl("apply", "-n", "locked", "-f", "-", stdin=json.dumps(pod), check=False)
    assert refused.returncode != 0
    assert 'pods "x" is forbidden: violates PodSecurity "restricted:latest"' in refused.stderr
    warned = kubectl("apply", "-n", "locked", "-f", "-", stdin=json.dumps(deployment()))
    assert 'Warning: would violate PodSecurity "restricted:latest"' in warned.stderr
    # describe finds the ReplicaSet's events by involvedObject kind, namespace, name and uid.
    kubesim.wait_for(lambda: any((rs.get("status") or {}).get("conditions") for rs in kubesim.list("ReplicaSet",
                                                                                                    "locked")))
    described = kubectl("describe", "rs", "-n", "locked").stdout
    assert "ReplicaFailure   True    FailedCreate" in described
    assert "Warning  FailedCreate" in described and "violates PodSecurity" in described


def test_kubectl_get_watch_prints_server_side_rows(kube_api: ApiClient, kubectl: Kubectl) -> None:
    """`kubectl get -w` asks for Tables in watch events too: new rows keep the kind's columns (STATUS here)."""
    timer = threading.Timer(1.0, lambda: CoreV1Api(kube_api).create_namespace({"metadata": {"name": "late"}}))
    timer.start()
    out = kubectl("get", "ns", "-w", "--request-timeout=3s", check=False).stdout.splitlines()
    timer.join()
    assert out[0].split() == ["NAME", "STATUS", "AGE"]
    assert next(line for line in out if line.startswith("late")).split()[:2] == ["late", "Active"]
