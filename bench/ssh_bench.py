"""Keystroke echo through the SSH gateway against a direct exec to kubesim, in the same run.

One service is deployed to kubesim (daphne, a Celery worker and the agent process, as in production). Then,
in a PTY shell of the same pod (kubesim's shell echoes what is typed, as a terminal does), one character is
typed at a time and the time until its echo arrives is measured:
  direct  - the official client's exec WebSocket straight to kubesim (kubernetes.stream)
  ssh     - an SSH client (asyncssh) -> the gateway process -> Redis -> daphne -> agent -> kubesim's exec
Goal: ssh p50 at most 5 ms above direct p50.

    .venv/bin/python bench/ssh_bench.py [--samples 300]
    REDIS_URL=redis://127.0.0.1:6379/11 DATABASE_URL=postgres://... .venv/bin/python bench/ssh_bench.py

Uses REDIS_URL (default redis://127.0.0.1:6379/5) and DATABASE_URL (default: a fresh SQLite file).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
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

    from accounts.services import add_ssh_key, create_organization
    from clusters import services as cluster_services
    from clusters.models import ClusterStatus
    from conftest import make_user
    from kubesim.testing import KubeSim
    from paas.testing.processes import ManagedProcess, child_env, free_port, port_open, start_daphne
    from projects import services
    from projects.models import ReleaseStatus

    workdir = Path(tempfile.mkdtemp(prefix="ssh-bench-"))
    started: list[ManagedProcess] = []
    with KubeSim(controllers=True, controller_delay=0.0) as sim:
        kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig")
        try:
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
            release = services.deploy(project, user)
            wait(lambda: type(release).objects.get(pk=release.pk).status == ReleaseStatus.LIVE, 60, "deploy live")
            pod = next(p["metadata"]["name"] for p in sim.list("pods", project.namespace)
                       if p["status"].get("phase") == "Running")
            key = asyncssh.generate_private_key("ssh-ed25519")
            key.write_private_key(workdir / "id")
            add_ssh_key(user, "bench", key.export_public_key().decode())
            login = f"{org.slug}.{project.slug}.web"

            direct, ssh, tunnel = [], [], []
            rounds = 5  # interleaved, so drift (other load on the machine) hits both alike
            for _ in range(rounds):
                direct += direct_echo(sim.configuration(), project.namespace, pod, args.samples // rounds)
                ssh += asyncio.run(ssh_echo(port, workdir / "id", login, args.samples // rounds))
                tunnel += asyncio.run(stream_echo(cluster.pk, args.samples // rounds))
        finally:
            for proc in reversed(started):
                proc.stop()

    print(f"\nKeystroke echo in a PTY shell, {len(direct)} keystrokes each (one character, wait for its echo)")
    print(f"  {'path':<62} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    rows = [("direct: official client exec WebSocket -> kubesim", direct),
            ("ssh: client -> gateway -> Redis -> daphne -> agent -> kubesim", ssh),
            ("tunnel alone: 'echo' stream op, Redis -> daphne -> agent and back", tunnel)]
    for label, series in rows:
        print(f"  {label:<62.62} {percentile(series, 50) * 1e3:8.2f} {percentile(series, 99) * 1e3:8.2f} "
              f"{statistics.mean(series) * 1e3:8.2f}")
    added = (percentile(ssh, 50) - percentile(direct, 50)) * 1e3
    print(f"  ssh adds {added:.2f} ms at p50   goal <= 5 ms: {'OK' if added <= 5 else 'OVER GOAL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
