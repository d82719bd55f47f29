"""Benchmark live logs.

1. Throughput: a pod logs N lines at once while one reader follows it; the reader is either the official
   client reading pods/log from kubesim directly, or a browser socket (daphne's log consumer -> Redis ->
   the agent process -> kubesim). Lines per second of each, measured in the same run, and their ratio.
   Goal: browser >= 0.5 x direct. Lines the browser path dropped (flow control) are counted, not delivered.
2. Many follows: F browser sockets follow the project's logs through one agent and one daphne while the pods
   log R rounds of lines; every socket must see every round (none stalls). Prints daphne's, the agent's and
   Redis's memory before and after.

    .venv/bin/python bench/logs_bench.py                          # 200k lines, 200 follows
    .venv/bin/python bench/logs_bench.py --lines 50000 --follows 50
    REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/logs_bench.py

kubesim runs in this process (a thread); the readers run in child processes so they do not share its GIL.
Uses REDIS_URL (default redis://127.0.0.1:6379/5) and a fresh SQLite database.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

DIRECT_READER = """
import json, sys, time, kubernetes
kubeconfig, namespace, pod, container, total = sys.argv[1:6]
config = kubernetes.client.Configuration()
kubernetes.config.load_kube_config(kubeconfig, client_configuration=config)
api = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(config))
resp = api.read_namespaced_pod_log(pod, namespace, container=container, follow=True, tail_lines=0, timestamps=True,
                                   _preload_content=False)
print("ready", flush=True)
lines = size = 0
started = None
for chunk in resp.stream(64 * 1024):
    started = started or time.perf_counter()
    lines += chunk.count(b"\\n")
    size += len(chunk)
    if lines >= int(total):
        break
print(json.dumps({"lines": lines, "skipped": 0, "bytes": size, "seconds": time.perf_counter() - started}), flush=True)
"""

BROWSER_READERS = """
import asyncio, json, re, sys, time
from websockets.asyncio.client import connect
url, cookie, origin, total, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
last = sys.argv[6] if len(sys.argv) > 6 else None  # with many sockets: stop at this line, not at a count

errors = []

async def follow(results, ready, attached):
    async with connect(url, additional_headers={"Cookie": cookie, "Origin": origin}, max_size=None,
                       open_timeout=60) as ws:
        await ws.send(json.dumps({"type": "start", "follow": True, "tail": 0}))
        ready.append(1)
        lines = skipped = size = 0
        started = None
        seen_probe = False
        rounds = set()
        while (lines + skipped < total) if last is None else True:
            header, _, ndjson = (await ws.recv()).partition("\\n")
            message = json.loads(header)
            if message["type"] == "error" and message.get("retry"):  # as the page does: ask again
                errors.append(message["message"])
                await asyncio.sleep(2)
                await ws.send(json.dumps({"type": "start", "follow": True, "tail": 0}))
            if message["type"] != "lines":
                continue
            started = started or time.perf_counter()
            done = False
            if last is None:  # throughput: count as cheaply as a browser's JSON.parse would cost, not Python's
                lines += ndjson.count('"line":')
                skipped += sum(map(int, re.findall(r'"skipped":([0-9]+)', ndjson)))
                size += len(ndjson)
                await ws.send(json.dumps({"type": "ack", "seq": message["seq"]}))
                continue
            for frame in map(json.loads, ndjson.splitlines()):
                text = frame.get("line", "")
                if text.startswith("probe"):
                    if not seen_probe:
                        seen_probe = True
                        attached.append(1)
                    continue
                if "line" in frame:
                    lines += 1
                    size += len(text) + 1
                    if text.startswith("round "):
                        rounds.add(text.split()[1])
                    done = done or text == last
                skipped += frame.get("skipped", 0)
            await ws.send(json.dumps({"type": "ack", "seq": message["seq"]}))
            if done:
                break
        results.append({"lines": lines, "skipped": skipped, "bytes": size, "rounds": len(rounds),
                        "seconds": time.perf_counter() - started})

async def main():
    results, ready, attached = [], [], []
    tasks = [asyncio.create_task(follow(results, ready, attached)) for _ in range(count)]
    while len(ready) < count:
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    if last is not None:
        deadline = time.monotonic() + 120
        while len(attached) < count and time.monotonic() < deadline:  # every agent reader saw a probe line
            await asyncio.sleep(0.05)
        print(f"attached {len(attached)} {len(errors)}", flush=True)
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 300)
    except TimeoutError:
        pass  # the stalled ones are missing from the results
    print(json.dumps(results), flush=True)

asyncio.run(main())
"""


def setup_django(redis_url: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas.settings")
    os.environ["REDIS_URL"] = redis_url
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp(prefix='bench-')}/bench.sqlite3"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def redis_mb() -> float:
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.REDIS_URL).info("memory")["used_memory"] / 2**20


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)
    return result


def start_reader(script: str, *args: str) -> subprocess.Popen:
    from paas.testing.processes import child_env

    proc = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True,
                            env=child_env(), cwd=BASE_DIR)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit("a reader failed to start")
    return proc


def finish(proc: subprocess.Popen, timeout: float) -> object:
    out, _ = proc.communicate(timeout=timeout)
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=200_000, help="lines logged at once (throughput part)")
    parser.add_argument("--line-bytes", type=int, default=100)
    parser.add_argument("--follows", type=int, default=200, help="concurrent browser follows (second part)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of lines during the concurrent part")
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/5"))
    args = parser.parse_args()
    setup_django(args.redis)

    from django.conf import settings
    from django.test import Client

    from accounts.services import create_organization
    from clusters import rpc, services
    from clusters.models import Cluster, ClusterStatus
    from conftest import make_user
    from kubesim.testing import KubeSim
    from paas.testing.processes import ManagedProcess, child_env, free_port, start_daphne
    from projects import services as project_services

    workdir = Path(tempfile.mkdtemp(prefix="logs-bench-"))
    sim = KubeSim(controllers=True, controller_delay=0.0).start()
    kubeconfig = str(sim.write_kubeconfig(workdir / "kubeconfig"))
    daphne, base = start_daphne(free_port())
    agent = None
    try:
        cluster = services.create_cluster("bench", "bench.example.com")
        token_file = workdir / "token"
        token_file.write_text(services.issue_token(cluster))
        agent = ManagedProcess("agent", [sys.executable, "-m", "agent", "--server",
                                         base.replace("http", "ws") + "/agent/ws", "--token-file", str(token_file),
                                         "--kubeconfig", kubeconfig, "--health-port", "0", "--log-level", "WARNING"],
                               child_env()).start()
        wait(lambda: Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.ONLINE, 30, "the agent")
        user = make_user("bench@example.com")
        org = create_organization(user, "Bench")
        project = project_services.create_project(org, user, "Logs", cluster)
        labels = {**project.labels, "paas.dev/service": "web"}
        deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": labels},
                      "spec": {"replicas": 1, "selector": {"matchLabels": {"paas.dev/service": "web"}},
                               "template": {"metadata": {"labels": labels},
                                            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}
        rpc.call(cluster, "apply_project", {"namespace": project.namespace, "labels": project.labels,
                                            "revision": 1, "objects": [deployment]}, timeout=60)
        pod = wait(lambda: next((p["metadata"]["name"] for p in sim.list("Pod", project.namespace)
                                 if (p.get("status") or {}).get("phase") == "Running"), None), 30, "the pod")
        client = Client()
        client.force_login(user)
        cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        socket_url = base.replace("http", "ws") + f"/ws/o/{org.slug}/projects/{project.slug}/logs/"
        filler = "x" * max(0, args.line_bytes - 14)

        def flood(n: int, tag: str) -> None:
            sim.push_logs(project.namespace, pod, [f"{tag} {i:09d} {filler}" for i in range(n)])

        # --- 1. throughput --------------------------------------------------------------------
        print(f"\nThroughput: {args.lines} lines of {args.line_bytes} bytes logged at once, one follower")
        results = {}
        for name, script, argv in (
                ("direct: official client -> kubesim", DIRECT_READER,
                 (kubeconfig, project.namespace, pod, "web", str(args.lines))),
                ("browser socket: daphne <- Redis <- agent <- kubesim", BROWSER_READERS,
                 (socket_url, cookie, base, str(args.lines), "1"))):
            reader = start_reader(script, *argv)
            time.sleep(2)  # the follower is attached (the agent's reader too) before the lines come
            flood(args.lines, "flood")
            result = finish(reader, 600)
            results[name] = result[0] if isinstance(result, list) else result
        print(f"  {'path':<52} {'lines/s':>10} {'MB/s':>7} {'delivered':>10} {'skipped':>8}")
        for name, r in results.items():
            print(f"  {name:<52} {r['lines'] / r['seconds']:10.0f} {r['bytes'] / r['seconds'] / 2**20:7.1f} "
                  f"{r['lines']:10d} {r['skipped']:8d}")
        direct, browser = results.values()
        ratio = (browser["lines"] / browser["seconds"]) / (direct["lines"] / direct["seconds"])
        print(f"  ratio browser/direct (delivered lines per second): {ratio:.2f}   goal >= 0.5: "
              f"{'OK' if ratio >= 0.5 else 'UNDER GOAL'}")
        print(f"  memory after the flood: daphne {rss_mb(daphne.proc.pid):.0f} MB, "
              f"agent {rss_mb(agent.proc.pid):.0f} MB, Redis used_memory {redis_mb():.1f} MB")

        # --- 2. many follows -------------------------------------------------------------------
        print(f"\n{args.follows} browser sockets follow the project through one agent and one daphne, "
              f"{args.rounds} rounds of 100 lines")
        before = (rss_mb(daphne.proc.pid), rss_mb(agent.proc.pid), redis_mb())
        total = args.rounds * 100
        last_line = f"round {args.rounds - 1} line 99"
        readers = start_reader(BROWSER_READERS, socket_url, cookie, base, str(total), str(args.follows), last_line)
        assert readers.stdout is not None
        os.set_blocking(readers.stdout.fileno(), False)
        attach_started = time.perf_counter()
        while "attached" not in (status := readers.stdout.readline() or ""):  # probe until all are attached
            sim.push_logs(project.namespace, pod, ["probe"])
            time.sleep(0.5)
        os.set_blocking(readers.stdout.fileno(), True)
        print(f"  {status.split()[1]}/{args.follows} follows attached in {time.perf_counter() - attach_started:.1f} s "
              f"({status.split()[2]} retried after an error)")
        started = time.perf_counter()
        peak = list(before)
        for round_ in range(args.rounds):
            sim.push_logs(project.namespace, pod, [f"round {round_} line {i}" for i in range(100)])
            time.sleep(0.25)
            peak = [max(peak[0], rss_mb(daphne.proc.pid)), max(peak[1], rss_mb(agent.proc.pid)),
                    max(peak[2], redis_mb())]
        per_socket = finish(readers, 600)
        elapsed = time.perf_counter() - started
        assert isinstance(per_socket, list)
        complete = sum(1 for r in per_socket if r["rounds"] == args.rounds and r["lines"] == total)
        print(f"  sockets that saw every line of every round: {complete}/{args.follows}, finished: "
              f"{len(per_socket)}/{args.follows} (lines skipped in all: {sum(r['skipped'] for r in per_socket)}); "
              f"last round seen by all {elapsed:.1f} s after the first was logged")
        print(f"  memory  {'':8} {'before':>8} {'peak':>8}")
        for name, b, p in zip(("daphne", "agent", "Redis"), before, peak, strict=True):
            print(f"  {name:<16} {b:7.0f}M {p:7.0f}M")
    finally:
        if agent is not None:
            agent.stop()
        daphne.stop()
        sim.stop()


if __name__ == "__main__":
    main()
