"""Scale-to-zero costs, measured through kubesim's edge and Sablier stand-in over real HTTP (kubesim runs in its
own process, as under bin/run).

1. Cold start: request -> first byte for a sleeping service (edge -> Sablier blocking strategy -> scale through the
   Kubernetes API -> pod ready -> forwarded), against the pod's own start measured in the same run (scale the same
   kind of Deployment directly and poll the edge until its pod answers). Goal: the platform adds <= 300 ms p50.
2. Awake path: requests to a running service whose route has the Sablier middleware, against a route with none.
   Goal: within 1.2x.

Usage: `.venv/bin/python bench/coldstart_bench.py [--rounds 8] [--requests 300] [--pod-start-delay 1.0]`.
On a real K3s the same comparison is a request to a sleeping service's URL with `curl -w '%{time_starttransfer}'`
against `kubectl scale` + `kubectl wait --for=condition=available` of an identical Deployment.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client, config  # noqa: E402

from kubesim.tests.edge_helpers import NS, deploy, ingress, sablier_middleware  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sim:
    api: client.ApiClient
    edge_port: int
    sablier_port: int
    pid: int


@contextmanager
def kubesim(pod_start_delay: float) -> Iterator[Sim]:
    """kubesim with its edge in a process of its own (as bin/run runs it), so this client shares no GIL with it."""
    edge_port, sablier_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        proc = subprocess.Popen([sys.executable, "-m", "kubesim", "--port", str(free_port()), "--kubeconfig-out",
                                 str(kubeconfig), "--preload-crds", "--controller-delay", "0", "--edge-port",
                                 str(edge_port), "--sablier-port", str(sablier_port), "--pod-start-delay",
                                 str(pod_start_delay), "--sablier-expiry-interval", "600"],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:  # the edge is the last part to start
                if line.startswith("edge (Traefik stand-in) serving on"):
                    break
            api = config.new_client_from_config(str(kubeconfig))
            yield Sim(api, edge_port, sablier_port, proc.pid)
            api.close()
        finally:
            proc.terminate()
            proc.wait(15)


def wait_for(predicate: Callable[[], Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.01)


class EdgeClient:
    """One keep-alive connection to the edge, as a browser or API client keeps one."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def first_byte(self, host: str, path: str = "/") -> tuple[int, float]:
        start = time.perf_counter()
        self.conn.request("GET", path, headers={"Host": host})
        resp = resp_ = self.conn.getresponse()
        elapsed = time.perf_counter() - start  # status line and headers read: the first byte has arrived
        resp_.read()
        return resp.status, elapsed


def sleep_now(api: client.ApiClient, name: str) -> None:
    client.AppsV1Api(api).patch_namespaced_deployment_scale(name, NS, {"spec": {"replicas": 0}})
    wait_for(lambda: not client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=f"app={name}").items)


def p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def p99_ms(samples: list[float]) -> float:
    return sorted(samples)[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc; NaN elsewhere): unlike latency, barely moved by other load."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8, help="cold starts of each kind (default 8)")
    parser.add_argument("--requests", type=int, default=300, help="requests per awake measurement (default 300)")
    parser.add_argument("--pod-start-delay", type=float, default=1.0, help="kubesim's pod start delay, s")
    args = parser.parse_args()
    rounds, n = max(2, min(args.rounds, 50)), max(20, min(args.requests, 5000))
    with kubesim(args.pod_start_delay) as sim:
        api, edge_port = sim.api, sim.edge_port
        apps = client.AppsV1Api(api)
        deploy(api, "direct", replicas=0)
        ingress(api, "direct", "direct.apps.localhost", [("/", "Prefix", "direct")])
        deploy(api, "cold", replicas=0, group="cold")
        mw = sablier_middleware(api, "sablier-cold", "cold", strategy="blocking", session="1h", timeout="60s")
        ingress(api, "cold", "cold.apps.localhost", [("/", "Prefix", "cold")], middlewares=mw)
        deploy(api, "awake", replicas=1, group="awake")
        mw = sablier_middleware(api, "sablier-awake", "awake", session="1h")
        ingress(api, "awake", "awake.apps.localhost", [("/", "Prefix", "awake")], middlewares=mw)
        deploy(api, "plain", replicas=1)
        ingress(api, "plain", "plain.apps.localhost", [("/", "Prefix", "plain")])
        edge = EdgeClient(edge_port)

        print(f"cold start ({rounds} rounds, kubesim pod start delay {args.pod_start_delay:.2f} s)")
        direct, cold = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            apps.patch_namespaced_deployment_scale("direct", NS, {"spec": {"replicas": 1}})
            while edge.first_byte("direct.apps.localhost")[0] != 200:
                time.sleep(0.005)
            direct.append(time.perf_counter() - start)
            sleep_now(api, "direct")
            status, elapsed = edge.first_byte("cold.apps.localhost")
            assert status == 200, f"cold request answered {status}"
            cold.append(elapsed)
            sleep_now(api, "cold")
        added = p50_ms(cold) - p50_ms(direct)
        print(f"  pod's own start (scale directly, poll)    p50 {p50_ms(direct):8.1f} ms")
        print(f"  sleeping service, request -> first byte   p50 {p50_ms(cold):8.1f} ms")
        print(f"  platform adds                             p50 {added:8.1f} ms   (goal <= 300 ms) "
              f"{'OK' if added <= 300 else 'MISSED'}")

        print(f"awake path ({n} requests each, one keep-alive connection)")
        hosts = {"plain": "plain.apps.localhost", "awake": "awake.apps.localhost"}
        for host in hosts.values():
            wait_for(lambda h=host: edge.first_byte(h)[0] == 200)
        timings: dict[str, list[float]] = {k: [] for k in hosts}
        for _ in range(n):  # interleaved, so both see the same machine load
            for key, host in hosts.items():
                status, elapsed = edge.first_byte(host)
                assert status == 200, f"{host} answered {status}"
                timings[key].append(elapsed)
        # The plugin's call alone: the same request the edge sends, from here to the Sablier stand-in.
        sablier, query = EdgeClient(sim.sablier_port), "/api/strategies/dynamic?group=awake&session_duration=1h"
        hop = [sablier.first_byte("sablier", query)[1] for _ in range(n)]
        cpu = {}  # kubesim's CPU per request on each path, in blocks (CPU time is counted in 10 ms ticks)
        for key, host in hosts.items():
            before = cpu_seconds(sim.pid)
            for _ in range(n):
                edge.first_byte(host)
            cpu[key] = (cpu_seconds(sim.pid) - before) / n * 1000
        plain, awake = timings["plain"], timings["awake"]
        print(f"  edge -> service, no middleware            p50 {p50_ms(plain):8.2f} ms  p99 {p99_ms(plain):8.2f} ms"
              f"  kubesim CPU {cpu['plain']:6.3f} ms/request")
        print(f"  edge -> service, Sablier middleware       p50 {p50_ms(awake):8.2f} ms  p99 {p99_ms(awake):8.2f} ms"
              f"  kubesim CPU {cpu['awake']:6.3f} ms/request")
        print(f"  the plugin's call alone (client -> Sablier stand-in)  p50 {p50_ms(hop):8.2f} ms")
        ratio = p50_ms(awake) / p50_ms(plain)
        print(f"  ratio p50 {ratio:5.2f}x  p99 {p99_ms(awake) / p99_ms(plain):5.2f}x  "
              f"CPU {cpu['awake'] / cpu['plain']:5.2f}x  (goal p50 <= 1.2x) {'OK' if ratio <= 1.2 else 'MISSED'}")
        print(f"  the middleware adds                       p50 {p50_ms(awake) - p50_ms(plain):8.2f} ms per request "
              f"(the plugin's HTTP call to Sablier, made on every request as the real plugin does)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
