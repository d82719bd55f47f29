"""`python -m kubesim`: serves until SIGTERM/SIGINT, prints the URL, writes a kubeconfig, adds latency."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client, config

from kubesim.tests.edge_helpers import fetch

REPO = Path(__file__).resolve().parents[2]


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "kubesim", "--port", "0", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    scheme = "http" if "--insecure-open" in args else "https"
    assert line.startswith(f"kubesim serving on {scheme}://127.0.0.1:"), line
    return proc, line.rsplit(" ", 1)[1].strip()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_it_serves_until_signalled_and_writes_a_kubeconfig(tmp_path: Path, sig: signal.Signals) -> None:
    """The CLI prints its URL, writes a kubeconfig the official loader accepts, and stops cleanly on a signal."""
    kubeconfig = tmp_path / "kubeconfig"
    proc, url = _start("--kubeconfig-out", str(kubeconfig), "--no-controllers")
    try:
        api = config.new_client_from_config(str(kubeconfig))
        assert api.configuration.host == url
        names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
        assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
    finally:
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "kubesim stopped" in out


def test_it_adds_latency_to_every_request(tmp_path: Path) -> None:
    """--latency-ms delays each request (for benchmarks that subtract the emulator's cost)."""
    kubeconfig = tmp_path / "kubeconfig"
    proc, _ = _start("--kubeconfig-out", str(kubeconfig), "--latency-ms", "150", "--no-controllers")
    try:
        core = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
        core.list_namespace()
        start = time.monotonic()
        core.list_namespace()
        assert time.monotonic() - start >= 0.15
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_it_preloads_crds_from_a_directory(tmp_path: Path) -> None:
    """--preload-crds DIR installs the CRDs found there; without the flag none are installed."""
    kubeconfig = tmp_path / "kubeconfig"
    crds = REPO / "kubesim" / "crds" / "helm.cattle.io"
    proc, _ = _start("--kubeconfig-out", str(kubeconfig), "--preload-crds", str(crds), "--no-controllers")
    try:
        ext = client.ApiextensionsV1Api(config.new_client_from_config(str(kubeconfig)))
        assert sorted(c.metadata.name for c in ext.list_custom_resource_definition().items) == [
            "helmchartconfigs.helm.cattle.io", "helmcharts.helm.cattle.io"]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_it_authenticates_unless_told_to_stay_open(tmp_path: Path) -> None:
    """By default HTTPS with an admin token (in the kubeconfig, or printed); --insecure-open: plain HTTP, no token."""
    proc, url = _start("--no-controllers")
    try:
        assert proc.stdout is not None
        token = proc.stdout.readline().strip().removeprefix("kubesim: admin token ")
        cfg = client.Configuration(host=url)
        cfg.verify_ssl = False  # the CA is only in a written kubeconfig
        with client.ApiClient(cfg) as anonymous:
            with pytest.raises(client.ApiException) as exc:
                client.CoreV1Api(anonymous).list_namespace()
            assert exc.value.status == 401
        cfg.api_key, cfg.api_key_prefix = {"authorization": token}, {"authorization": "Bearer"}
        with client.ApiClient(cfg) as admin:
            assert client.CoreV1Api(admin).read_namespace("default").metadata.name == "default"
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    proc, url = _start("--no-controllers", "--insecure-open")
    try:
        with client.ApiClient(client.Configuration(host=url)) as anonymous:
            assert client.CoreV1Api(anonymous).read_namespace("default").metadata.name == "default"
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_it_serves_the_edge_and_the_sablier_stand_in(tmp_path: Path) -> None:
    """--edge-port serves Traefik-like routing (a host nobody routes: 404) and starts the Sablier stand-in."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        edge_port = s.getsockname()[1]
    proc, _ = _start("--kubeconfig-out", str(tmp_path / "kubeconfig"), "--edge-port", str(edge_port))
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        sablier = next(line for line in lines if line.startswith("Sablier stand-in serving on "))
        assert f"edge (Traefik stand-in) serving on http://127.0.0.1:{edge_port}\n" in lines
        assert fetch(sablier.rsplit(" ", 1)[1].strip() + "/health").text == "OK"
        missing = fetch(f"http://127.0.0.1:{edge_port}/", host="nobody.apps.localhost")
        assert (missing.status, missing.text) == (404, "404 page not found\n")
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
