"""Keystroke echo through the SSH gateway against a direct exec to kubesim, in the same run.

One service is deployed (the deploy runs in this process; daphne, the agent and kubesim are processes). Then,
in a PTY shell of the same pod (kubesim's shell echoes what is typed, as a terminal does), one character is
typed at a time and the time until its echo arrives is measured:
  direct  - the official client's exec WebSocket straight to kubesim (kubernetes.stream)
  ssh     - the OpenSSH client (in a pseudo-terminal) -> the gateway process -> Redis -> daphne -> agent ->
            kubesim's exec; also with asyncssh as the client, and the tunnel's `echo` stream alone
Goal: ssh (OpenSSH) p50 at most 5 ms above direct p50.

    .venv/bin/python bench/ssh_bench.py [--samples 300]
    REDIS_URL=redis://127.0.0.1:6379/11 DATABASE_URL=postgres://... .venv/bin/python bench/ssh_bench.py

Uses REDIS_URL (default redis://127.0.0.1:6379/5) and DATABASE_URL (default: a fresh SQLite file).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

from tunnel_bench import percentile, setup_django, wait, ws_url  # noqa: E402

COMPOSE = "services:\n  web:\n    image: nginx:1.27\n"
KEYS = "abcdefghijklmnopqrstuvwxyz"


def direct_echo(kube_config, namespace: str, pod: str, samples: int) -> list[float]:
    import kubernetes
    from kubernetes.stream import stream

    core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(kube_config))
    ws = stream(core.connect_get_namespaced_pod_exec, pod, namespace, command=["sh"], stdin=True, stdout=True,
                stderr=True, tty=True, _preload_content=False)
    out = []
    try:
        read_until(ws, "# ")
        for i in range(samples):
            key = KEYS[i % len(KEYS)]
            started = time.perf_counter()
            ws.write_stdin(key)
            read_until(ws, key)
            out.append(time.perf_counter() - started)
    finally:
        ws.close()
    return out


def read_until(ws, text: str, timeout: float = 10) -> None:
    seen, deadline = "", time.monotonic() + timeout
    while text not in seen:
        if time.monotonic() > deadline:
            raise SystemExit(f"direct exec: {text!r} did not come back")
        ws.update(timeout=1)
        seen += ws.read_stdout() if ws.peek_stdout() else ""


def openssh_echo(port: int, key_path: Path, login: str, samples: int) -> list[float]:
    """The OpenSSH client in a pseudo-terminal (raw mode once connected: no local echo), as a user runs it."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(["ssh", "-F", "/dev/null", "-tt", "-p", str(port), "-i", str(key_path),
                             "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
                             "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"{login}@127.0.0.1"],
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = []
    try:
        pty_read_until(master, b"# ")
        for i in range(samples):
            key = KEYS[i % len(KEYS)].encode()
            started = time.perf_counter()
            os.write(master, key)
            pty_read_until(master, key)
            out.append(time.perf_counter() - started)
        os.write(master, b"\rexit\r")
        proc.wait(10)
    finally:
        proc.kill()
        os.close(master)
    return out


def pty_read_until(fd: int, text: bytes, timeout: float = 10) -> None:
    seen, deadline = b"", time.monotonic() + timeout
    while text not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise SystemExit(f"openssh: {text!r} did not come back: {seen[-200:]!r}")
        try:
            seen += os.read(fd, 4096)
        except OSError:  # the client exited
            raise SystemExit(f"openssh: the client exited: {seen[-300:]!r}") from None


async def ssh_echo(port: int, key_path: Path, login: str, samples: int) -> list[float]:
    import asyncssh

    async with asyncssh.connect("127.0.0.1", port, username=login, client_keys=[str(key_path)],
                                known_hosts=None, agent_path=None) as conn:
        chan, session = await conn.create_session(Echo, term_type="xterm", term_size=(80, 24), encoding=None)
        await session.wait_for(b"# ")
        out = []
        for i in range(samples):
            key = KEYS[i % len(KEYS)].encode()
            started = time.perf_counter()
            chan.write(key)
            await session.wait_for(key)
            out.append(time.perf_counter() - started)
        chan.close()
    return out


async def stream_echo(cluster_id: int, samples: int) -> list[float]:
    """One byte through the tunnel's `echo` stream op and back: what the tunnel costs without SSH or exec."""
    from clusters import rpc

    stream = await rpc.open_stream(cluster_id, "echo", {})
    out = []
    try:
        for _ in range(samples):
            started = time.perf_counter()
            await stream.send(b"k")
            await stream.recv()
            out.append(time.perf_counter() - started)
    finally:
        await stream.close()
    return out


class Echo:
    """An asyncssh client session that lets a caller wait for bytes to arrive."""

    def __init__(self) -> None:
        self.seen = b""
        self.arrived = asyncio.Event()

    def connection_made(self, chan) -> None:
        pass

    def data_received(self, data: bytes, datatype) -> None:
        self.seen += data
        self.arrived.set()

    async def wait_for(self, text: bytes) -> None:
        async with asyncio.timeout(10):
            while text not in self.seen:
                self.arrived.clear()
                await self.arrived.wait()
        self.seen = self.seen.split(text, 1)[1]

    def __getattr__(self, name: str):  # the other SSHClientSession callbacks: nothing to do
        return lambda *args, **kwargs: None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=300, help="keystrokes per path (default 300)")
    args = parser.parse_args()
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"  # the deploy runs in this process; no worker needed
    setup_django(os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/5"))

    import asyncssh
    import kubernetes

    from accounts.services import add_ssh_key, create_organization
    from clusters import services as cluster_services
    from clusters.models import ClusterStatus
    from conftest import make_user
    from paas.testing.processes import ManagedProcess, child_env, free_port, port_open, start_daphne
    from projects import releases, services
    from projects.models import ReleaseStatus

    workdir = Path(tempfile.mkdtemp(prefix="ssh-bench-"))
    started: list[ManagedProcess] = []
    kubeconfig, sim_port = workdir / "kubeconfig", free_port()
    # kubesim in its own process, as the agent and the control plane are: no thread of this one serves the exec.
    sim = ManagedProcess("kubesim", [sys.executable, "-m", "kubesim", "--port", str(sim_port), "--controller-delay",
                                     "0", "--kubeconfig-out", str(kubeconfig)], child_env()).start()
    started.append(sim)
    try:
        sim.wait_for(lambda: port_open(sim_port) and kubeconfig.exists(), 30, "listen")
        kube_config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(str(kubeconfig), client_configuration=kube_config)
        daphne, base = start_daphne(LOG_LEVEL="WARNING")
        started.append(daphne)
        cluster = cluster_services.create_cluster("Bench", "apps.bench.test", simulated=True)
        (workdir / "token").write_text(cluster_services.issue_token(cluster))
        started.append(ManagedProcess("agent", [sys.executable, "-m", "agent", "--server", ws_url(base),
                                                "--token-file", str(workdir / "token"), "--kubeconfig",
                                                str(kubeconfig), "--log-level", "WARNING"], child_env()).start())
        wait(lambda: type(cluster).objects.filter(pk=cluster.pk, status=ClusterStatus.ONLINE).exists(), 30,
             "agent online")
        port = free_port()
        gateway = ManagedProcess("ssh-gateway", [sys.executable, "manage.py", "ssh_gateway", "--port", str(port)],
                                 child_env(SSH_HOST_KEY_PATH=str(workdir / "host_key"), LOG_LEVEL="WARNING"))
        started.append(gateway.start())
        gateway.wait_for(lambda: port_open(port), 30, "listen")

        user = make_user(f"bench-{os.getpid()}@example.com")
        org = create_organization(user, f"Bench {os.getpid()}")
        project = services.create_project(org, user, "Echo", cluster, compose_text=COMPOSE)
        release = releases.deploy(project, user)
        wait(lambda: type(release).objects.get(pk=release.pk).status == ReleaseStatus.LIVE, 60, "deploy live")
        pods = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(kube_config)).list_namespaced_pod(
            project.namespace).items
        pod = next(p.metadata.name for p in pods if p.status.phase == "Running")
        key = asyncssh.generate_private_key("ssh-ed25519")
        key.write_private_key(workdir / "id")
        (workdir / "id").chmod(0o600)  # OpenSSH ignores a private key others may read
        add_ssh_key(user, "bench", key.export_public_key().decode())
        login = f"{org.slug}.{project.slug}.web"

        direct, openssh, ssh, tunnel = [], [], [], []
        rounds = 5  # interleaved, so drift (other load on the machine) hits both alike
        for _ in range(rounds):
            direct += direct_echo(kube_config, project.namespace, pod, args.samples // rounds)
            openssh += openssh_echo(port, workdir / "id", login, args.samples // rounds)
            ssh += asyncio.run(ssh_echo(port, workdir / "id", login, args.samples // rounds))
            tunnel += asyncio.run(stream_echo(cluster.pk, args.samples // rounds))
    finally:
        for proc in reversed(started):
            proc.stop()

    print(f"\nKeystroke echo in a PTY shell, {len(direct)} keystrokes each (one character, wait for its echo)")
    print(f"  {'path':<70} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    rows = [("direct: official client exec WebSocket -> kubesim", direct),
            ("ssh: OpenSSH client -> gateway -> Redis -> daphne -> agent -> kubesim", openssh),
            ("ssh with asyncssh as the client (Python on both ends of SSH)", ssh),
            ("tunnel alone: 'echo' stream op, Redis -> daphne -> agent and back", tunnel)]
    for label, series in rows:
        print(f"  {label:<70.70} {percentile(series, 50) * 1e3:8.2f} {percentile(series, 99) * 1e3:8.2f} "
              f"{statistics.mean(series) * 1e3:8.2f}")
    added = (percentile(openssh, 50) - percentile(direct, 50)) * 1e3
    print(f"  ssh adds {added:.2f} ms at p50   goal <= 5 ms: {'OK' if added <= 5 else 'OVER GOAL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
