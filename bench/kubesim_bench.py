"""Requests per second of the kubesim emulator for get / list / server-side apply, over loopback.

Later benchmarks that drive the agent against kubesim subtract these figures to isolate their own cost.
Bounded loops; finishes in a few seconds. Usage: `.venv/bin/python bench/kubesim_bench.py [--n 400]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client  # noqa: E402

from kubesim.testing import KubeSim  # noqa: E402

APPLY = "application/apply-patch+yaml"


def rate(label: str, n: int, fn: Callable[[int], object]) -> float:
    fn(0)  # warm up connection pools and caches
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    elapsed = time.perf_counter() - start
    per_s = n / elapsed
    print(f"{label:<34} {n:>5} requests  {per_s:>8.0f} req/s  {elapsed * 1000 / n:>6.2f} ms/req")
    return per_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=400, help="requests per measurement (default 400)")
    args = parser.parse_args()
    n = max(10, min(args.n, 5000))
    with KubeSim(controllers=False, preload_crds=False) as sim:
        api = sim.api_client()
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        for i in range(50):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"cm-{i}", "labels": {
                "app": "bench", "i": str(i)}}, "data": {"k": "v" * 100}})

        def deployment(i: int) -> dict:
            return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"web-{i % 20}"},
                    "spec": {"replicas": 1 + i % 3, "selector": {"matchLabels": {"app": f"web-{i % 20}"}},
                             "template": {"metadata": {"labels": {"app": f"web-{i % 20}"}},
                                          "spec": {"containers": [{"name": "web", "image": f"nginx:1.{i % 5}",
                                                                   "ports": [{"containerPort": 80}]}]}}}}

        print(f"kubesim benchmark (official client, loopback, {sim.url})")
        rate("get configmap", n, lambda i: core.read_namespaced_config_map(f"cm-{i % 50}", "default"))
        rate("list 50 configmaps", n // 4, lambda i: core.list_namespaced_config_map("default"))
        rate("list with labelSelector", n // 4,
             lambda i: core.list_namespaced_config_map("default", label_selector="app=bench,i in (1,2,3)"))
        rate("server-side apply deployment", n // 2,
             lambda i: apps.patch_namespaced_deployment(f"web-{i % 20}", "default", deployment(i),
                                                        field_manager="bench", _content_type=APPLY))
        api.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
