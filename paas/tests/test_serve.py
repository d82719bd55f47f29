"""The README's run command (bin/run = paas.serve): the whole system, and the local cluster options."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import kubernetes
import psutil
import pytest

from clusters.models import Cluster, ClusterStatus
from paas.testing.processes import ManagedProcess, child_env, free_port, port_open

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def own_redis_db(redis_url: str) -> str:
    # Its worker and beat must not share a queue with the test session's worker.
    base, _, db = redis_url.rpartition("/")
    return f"{base}/{(int(db or 0) + 1) % 16}"


def serve(tmp_path: Path, redis_url: str, *args: str, **env: str) -> tuple[ManagedProcess, int]:
    port = free_port()
    if "--ssh-port" not in args:
        args = (*args, "--ssh-port", str(free_port()))
    proc = ManagedProcess("serve", [sys.executable, "-m", "paas.serve", "--port", str(port), *args],
                          child_env(PAAS_VAR_DIR=str(tmp_path), REDIS_URL=own_redis_db(redis_url),
                                    SSH_HOST_KEY_PATH=str(tmp_path / "ssh_host_key"), **env)).start()
    return proc, port


def online(name: str) -> bool:
    return Cluster.objects.filter(name=name, status=ClusterStatus.ONLINE).exists()


def test_emulated_cluster_comes_online_with_the_ssh_gateway_and_ctrl_c_stops_everything(tmp_path, redis_url):
    kubesim_port, edge_port, ssh_port = free_port(), free_port(), free_port()
    proc, port = serve(tmp_path, redis_url, "--emulated-cluster", "--kubesim-port", str(kubesim_port),
                       "--edge-port", str(edge_port), "--sablier-port", str(free_port()), "--ssh-port", str(ssh_port))
    try:
        proc.wait_for(lambda: online("local (simulated)"), 90, "bring the simulated cluster online")
        proc.wait_for(lambda: port_open(ssh_port), 30, "start the SSH gateway")
        # Service URLs live under apps.localhost on the edge's port; a host no Ingress routes is Traefik's 404.
        assert Cluster.objects.get(name="local (simulated)").base_domain == "apps.localhost"
        request = urllib.request.Request(f"http://127.0.0.1:{edge_port}/", headers={"Host": "nothing.apps.localhost"})
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(request, timeout=30)  # noqa: S310 - the local edge
        assert missing.value.code == 404 and missing.value.read() == b"404 page not found\n"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=10) as response:
            assert response.status == 200
        assert Cluster.objects.get(name="local (simulated)").simulated
        assert (tmp_path / "agent-token").stat().st_mode & 0o077 == 0  # the token file is the owner's alone
        # The agent runs as the ServiceAccount the install manifest creates, not as kubesim's admin.
        with kubernetes.config.new_client_from_config(str(tmp_path / "agent.kubeconfig")) as api:
            me = kubernetes.client.AuthenticationV1Api(api).create_self_subject_review({"metadata": {}})
        assert me.status.user_info.username == "system:serviceaccount:paas-system:paas-agent"
        assert (tmp_path / "agent.kubeconfig").stat().st_mode & 0o077 == 0
        proc.proc.send_signal(signal.SIGINT)  # Ctrl-C, to the supervisor only
        assert proc.proc.wait(30) == 0
        assert not any(port_open(p) for p in (port, kubesim_port, edge_port, ssh_port))
    finally:
        proc.stop()


def test_k3s_option_registers_the_cluster_from_kubeconfig(tmp_path, redis_url):
    # A kubesim stands in for the local K3s: the option only needs a kubeconfig and an API server.
    kubeconfig, api_port = tmp_path / "k3s.yaml", free_port()
    api = ManagedProcess("kubesim", [sys.executable, "-m", "kubesim", "--port", str(api_port),
                                     "--kubeconfig-out", str(kubeconfig)], child_env()).start()
    proc = None
    try:
        api.wait_for(lambda: kubeconfig.exists() and port_open(api_port), 30, "listen")
        proc, _ = serve(tmp_path, redis_url, "--k3s", KUBECONFIG=str(kubeconfig))
        proc.wait_for(lambda: online("local K3s"), 90, "bring the K3s cluster online")
        assert not Cluster.objects.get(name="local K3s").simulated
    finally:
        if proc:
            proc.stop()
        api.stop()


def test_k3s_option_without_a_kubeconfig_says_what_to_do(tmp_path, redis_url):
    proc, _ = serve(tmp_path, redis_url, "--k3s", KUBECONFIG=str(tmp_path / "missing.yaml"))
    assert proc.proc.wait(60) == 2
    assert "no kubeconfig at" in proc.output() and "set KUBECONFIG" in proc.output()


def embedded(tmp_path: Path, redis_port: int, *args: str) -> tuple[ManagedProcess, int]:
    """paas.serve with its own embedded Redis (REDIS_URL unset), on fixed ports so a restart reuses them."""
    env = child_env(PAAS_VAR_DIR=str(tmp_path), EMBEDDED_REDIS_PORT=str(redis_port),
                    SSH_HOST_KEY_PATH=str(tmp_path / "ssh_host_key"))
    env.pop("REDIS_URL")
    return ManagedProcess("serve", [sys.executable, "-m", "paas.serve", *args], env).start(), int(args[1])


def still_running(pids: list[int], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                process = psutil.Process(pid)
                if process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {' '.join(process.cmdline()[:4])}")
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_children_end_with_the_supervisor_and_the_next_run_starts_cleanly(tmp_path, sig):
    ports = {name: free_port() for name in ("port", "kubesim", "edge", "sablier", "ssh", "redis")}
    args = ("--port", str(ports["port"]), "--emulated-cluster", "--kubesim-port", str(ports["kubesim"]),
            "--edge-port", str(ports["edge"]), "--sablier-port", str(ports["sablier"]), "--ssh-port", str(ports["ssh"]))
    first, port = embedded(tmp_path, ports["redis"], *args)
    second = third = None
    try:
        first.wait_for(lambda: online("local (simulated)") and port_open(ports["ssh"]), 120, "start everything")
        children = psutil.Process(first.proc.pid).children(recursive=True)
        started = {" ".join(c.cmdline()) for c in children}
        for part in ("redis-server", "daphne", "worker", "beat", "ssh_gateway", "-m kubesim", "-m agent"):
            assert any(part in cmdline for cmdline in started), f"no {part} among {started}"

        first.proc.send_signal(sig)  # to the supervisor only, as the terminal or `kill -9 <pid>` would
        first.proc.wait(30)
        assert still_running([c.pid for c in children], 20) == []
        assert not any(port_open(p) for p in ports.values())

        second, _ = embedded(tmp_path, ports["redis"], *args)
        second.wait_for(lambda: port_open(port) and port_open(ports["ssh"]), 120, "start again")
        assert "already in use" not in second.output()

        # A second supervisor on the same var/ directory says who runs instead of half-starting.
        third, _ = embedded(tmp_path, ports["redis"], *args)
        assert third.proc.wait(30) == 1
        assert f"already running, pid {second.proc.pid}" in third.output()
        assert f"kill {second.proc.pid}" in third.output()
        assert port_open(port) and second.proc.poll() is None
    finally:
        for proc in (third, second, first):
            if proc:
                proc.stop()
