"""Benchmark the browser terminal.

1. Keystroke echo: one byte typed into an interactive TTY shell until its echo comes back, p50/p99,
   through the browser socket (WebSocket -> daphne -> Redis -> agent process -> kubesim exec and back)
   against a direct exec to the same kubesim with the official client, in the same run.
   Goal: p50 at most 5 ms above the direct exec.
2. Many terminals at once (default 50) through one agent and one daphne: each types and waits for its
   echoes; prints their echo p50/p99, the slowest terminal, and daphne's, the agent's and Redis's memory.

    .venv/bin/python bench/terminal_bench.py
    .venv/bin/python bench/terminal_bench.py --samples 300 --terminals 50 --rounds 40
    REDIS_URL=redis://127.0.0.1:6379/5 DATABASE_URL=postgres://... .venv/bin/python bench/terminal_bench.py

Uses REDIS_URL (default redis://127.0.0.1:6379/5) and DATABASE_URL (default: a fresh SQLite file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench.tunnel_bench import percentile, rss_mb, setup_django, wait, ws_url  # noqa: E402

NS_LABELS = {"paas.dev/organization": "bench", "paas.dev/project": "term", "app.kubernetes.io/managed-by": "paas"}


def redis_rss_mb(redis_url: str) -> float:
    import redis

    return int(redis.Redis.from_url(redis_url).info("memory")["used_memory_rss"]) / 2**20


def make_project(kubeconfig: Path, cluster, pods: int) -> tuple[object, list[str]]:
    """An owner, an organization "bench", project "term" with service "web" and `pods` running pods in kubesim."""
    import kubernetes

    from accounts.models import User
    from accounts.services import create_organization
    from projects.models import Project, Service

    user = User.objects.create_user(username=f"bench{time.time_ns()}", email="bench@example.com")
    org = create_organization(user, "Bench")
    project = Project.objects.create(organization=org, name="Term", slug="term", cluster=cluster,
                                     namespace="bench-term")
    Service.objects.create(project=project, name="web", status="running", replicas=pods, ready_replicas=pods)
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(str(kubeconfig), client_configuration=config)
    core = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))
    # The agent marks a project's namespace with its uid; its pods carry the names only.
    core.create_namespace({"metadata": {"name": "bench-term", "labels": {**NS_LABELS, **project.labels}}})
    names = [f"web-{i}" for i in range(pods)]
    for name in names:
        core.create_namespaced_pod("bench-term", {
            "metadata": {"name": name, "labels": {**NS_LABELS, "paas.dev/service": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}})
    wait(lambda: all(core.read_namespaced_pod(n, "bench-term").status.phase == "Running" for n in names), 60,
         "the pods to run")
    return user, names


def session_cookie(user) -> str:
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


async def open_terminal(daphne_url: str, cookie: str, pod: str):
    from websockets.asyncio.client import connect

    url = ws_url(daphne_url).replace("/agent/ws", f"/ws/o/bench/projects/term/services/web/terminal/?pod={pod}")
    ws = await connect(url, additional_headers={"Cookie": cookie, "Origin": daphne_url}, open_timeout=60,
                       max_size=None)
    ready = json.loads(await ws.recv())
    if ready.get("type") != "ready":
        raise SystemExit(f"terminal refused: {ready}")
    seen = b""
    while b"# " not in seen:
        seen += await ws.recv()
    return ws


async def socket_echoes(ws, rounds: int, interval: float = 0.0) -> list[float]:
    out = []
    for _ in range(rounds):
        await asyncio.sleep(interval)
        t = time.perf_counter()
        await ws.send(b"x")
        echoed = b""
        while b"x" not in echoed:
            frame = await ws.recv()
            if isinstance(frame, bytes):
                echoed += frame
        out.append(time.perf_counter() - t)
    return out


def direct_echoes(kubeconfig: Path, pod: str, rounds: int) -> list[float]:
    """The same keystroke through the official client's websocket exec, straight to kubesim."""
    from agent.k8s import Kube

    kube = Kube(str(kubeconfig))
    conn = kube.exec(pod, "bench-term", ["sh"], container="web", tty=True, stdin=True)
    try:
        seen = b""
        while b"# " not in seen:
            seen += conn.read()[1]
        out = []
        for _ in range(rounds):
            t = time.perf_counter()
            conn.write(0, b"x")
            echoed = b""
            while b"x" not in echoed:
                echoed += conn.read()[1]
            out.append(time.perf_counter() - t)
        return out
    finally:
        conn.close()
        kube.close()


async def tunnel_echoes(cluster_id: int, rounds: int) -> list[float]:
    """The floor: one byte through the agent's "echo" stream op (Redis -> daphne -> agent and back), no exec."""
    from clusters import rpc

    stream = await rpc.open_stream(cluster_id, "echo", {})
    try:
        out = []
        for _ in range(rounds):
            t = time.perf_counter()
            await stream.send(b"x")
            await stream.recv(timeout=10)
            out.append(time.perf_counter() - t)
        return out
    finally:
        await stream.close()


def row(label: str, series: list[float]) -> str:
    return (f"  {label:<52.52} {percentile(series, 50) * 1e3:8.2f} {percentile(series, 99) * 1e3:8.2f} "
            f"{statistics.mean(series) * 1e3:8.2f}")


def bench_echo(daphne_url: str, kubeconfig: Path, cookie: str, pod: str, samples: int, cluster_id: int) -> None:
    direct, browser, tunnel = [], [], []
    rounds = 5

    async def browser_round(n: int) -> list[float]:
        ws = await open_terminal(daphne_url, cookie, pod)
        try:
            await socket_echoes(ws, 20)  # warm-up
            return await socket_echoes(ws, n)
        finally:
            await ws.close()

    direct_echoes(kubeconfig, pod, 20)
    for _ in range(rounds):  # interleaved, so other load on the machine hits both alike
        direct += direct_echoes(kubeconfig, pod, samples // rounds)
        browser += asyncio.run(browser_round(samples // rounds))
        tunnel += asyncio.run(tunnel_echoes(cluster_id, samples // rounds))
    print(f"\nKeystroke echo, {len(direct)} samples each (one byte into a TTY shell until its echo returns)")
    print(f"  {'path':<52} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    print(row("direct: official client exec -> kubesim", direct))
    print(row("browser socket: daphne -> Redis -> agent -> kubesim", browser))
    print(row("for scale: the tunnel alone (echo stream op)", tunnel))
    added = (percentile(browser, 50) - percentile(direct, 50)) * 1e3
    print(f"  browser socket adds {added:.2f} ms at p50   goal <= 5 ms: {'OK' if added <= 5 else 'OVER GOAL'}")


def bench_many(daphne_url: str, cookie: str, pods: list[str], terminals: int, rounds: int, interval: float,
               pids: dict[str, int], redis_url: str) -> None:
    def memory() -> str:
        parts = [f"{name} {rss_mb(pid):.1f} MB" for name, pid in pids.items()]
        return ", ".join([*parts, f"Redis {redis_rss_mb(redis_url):.1f} MB"])

    print(f"\n{terminals} terminals through one agent and one daphne, {rounds} keystrokes each, "
          f"one every {interval * 1e3:.0f} ms after the previous echo")
    print(f"  memory before: {memory()}")

    async def run() -> tuple[list[list[float]], str, float]:
        started = time.perf_counter()
        sockets = await asyncio.gather(*(open_terminal(daphne_url, cookie, pods[i % len(pods)])
                                         for i in range(terminals)))
        opened = time.perf_counter() - started
        try:
            results = await asyncio.gather(*(socket_echoes(ws, rounds, interval) for ws in sockets))
            during = memory()
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))
        return results, during, opened

    results, during, opened = asyncio.run(run())
    every = [s for series in results for s in series]
    slowest = max(sum(series) for series in results)
    print(f"  opened all {terminals} in {opened:.2f} s; every terminal echoed all {rounds} keystrokes")
    print(f"  {'':<52} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    print(row("echo, all terminals at once", every))
    print(f"  slowest terminal: {slowest:.2f} s of echo waiting for its {rounds} keystrokes; max single echo "
          f"{max(every) * 1e3:.1f} ms")
    print(f"  memory with {terminals} open: {during}")
    time.sleep(2)
    print(f"  memory after closing: {memory()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=500, help="echo samples per path (default 500)")
    parser.add_argument("--terminals", type=int, default=50, help="concurrent terminals (default 50; 0 skips)")
    parser.add_argument("--rounds", type=int, default=40, help="keystrokes per concurrent terminal (default 40)")
    parser.add_argument("--interval", type=float, default=0.1,
                        help="seconds each concurrent terminal waits between keystrokes (default 0.1: a fast typist; "
                             "0: as fast as the echoes come back)")
    parser.add_argument("--pods", type=int, default=5, help="pods the terminals spread over (default 5)")
    args = parser.parse_args()

    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/5")
    from cryptography.fernet import Fernet

    # As in production (DEBUG off keeps no query log); daphne inherits these, so it accepts our session cookie.
    os.environ.update(LOG_LEVEL="WARNING", DEBUG="false", SECRET_KEY=Fernet.generate_key().decode() * 2,
                      PAAS_ENCRYPTION_KEY=Fernet.generate_key().decode(), ALLOWED_HOSTS="127.0.0.1")
    setup_django(os.environ.get("DATABASE_URL"), redis_url)

    from clusters import services
    from clusters.models import Cluster, ClusterStatus
    from paas.testing.processes import ManagedProcess, child_env, free_port, port_open, start_daphne

    workdir = Path(tempfile.mkdtemp(prefix="terminal-bench-"))
    port, kubeconfig = free_port(), workdir / "kubesim.kubeconfig"
    sim = ManagedProcess("kubesim", [sys.executable, "-m", "kubesim", "--port", str(port), "--controller-delay", "0",
                                     "--kubeconfig-out", str(kubeconfig)], child_env()).start()
    daphne, url = start_daphne()
    agent = None
    try:
        sim.wait_for(lambda: port_open(port) and kubeconfig.exists(), 30, "listen")
        cluster = services.create_cluster(f"bench-terminal-{port}", "bench.example.com")
        token_file = workdir / "token"
        token_file.write_text(services.issue_token(cluster))
        agent = ManagedProcess("agent", [sys.executable, "-m", "agent", "--server", ws_url(url), "--token-file",
                                         str(token_file), "--kubeconfig", str(kubeconfig), "--health-port", "0",
                                         "--log-level", "WARNING"], child_env()).start()
        agent.wait_for(lambda: Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.ONLINE, 30, "connect")
        user, pods = make_project(kubeconfig, cluster, max(1, args.pods))
        cookie = session_cookie(user)
        print(f"daphne {url} (pid {daphne.proc.pid}), agent pid {agent.proc.pid}, kubesim pid {sim.proc.pid}, "
              f"Redis {redis_url}, database {os.environ['DATABASE_URL'].split('@')[-1]}")
        if args.samples:
            bench_echo(url, kubeconfig, cookie, pods[0], args.samples, cluster.pk)
        if args.terminals:
            bench_many(url, cookie, pods, args.terminals, args.rounds, args.interval,
                       {"daphne": daphne.proc.pid, "agent": agent.proc.pid}, redis_url)
    finally:
        if agent is not None:
            agent.stop()
        daphne.stop(timeout=30)
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
