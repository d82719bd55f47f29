"""Deploy latency of the platform against applying the same manifests directly, in the same run.

For 1, 10 and 50 services: a POST to the REST API (daphne) creates a release; the Celery worker renders
it, sends it through the tunnel to the agent process, which applies it to kubesim (controllers at zero
delay), and follows the rollout until the release is live. Measured from the request:
  applied  - the agent reported every object applied (DesiredProject.applied_revision)
  live     - the release is live (every Deployment ready)
The baseline applies the same rendered objects with the agent's reconcile code and the official client
straight to kubesim, then polls until every Deployment is ready. Goal: platform overhead (live minus
direct live) under 1 s p50 for 10 services.

    .venv/bin/python bench/deploy_bench.py [--samples 5] [--sizes 1,10,50]
    REDIS_URL=redis://127.0.0.1:6379/9 DATABASE_URL=postgres://postgres@127.0.0.1:5432/paas_projects_bench \\
        .venv/bin/python bench/deploy_bench.py

Uses REDIS_URL (default redis://127.0.0.1:6379/9) and DATABASE_URL (default: a fresh SQLite file).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

from tunnel_bench import percentile, setup_django, ws_url  # noqa: E402

# Room for 50 services in one project (the default plan allows 20).
PLAN = {"max_services": 60, "quota_pods": 200, "quota_cpu": "200", "quota_memory": "400Gi"}


def compose(n: int) -> str:
    lines = ["services:"]
    for i in range(n):
        lines += [f"  svc{i}:", f"    image: ghcr.io/bench/svc{i}:1.0"]
        if i % 2 == 0:
            lines += ["    ports:", f'      - "{8000 + i}:80"']
    return "\n".join(lines) + "\n"


def wait(predicate, timeout: float, what: str, interval: float = 0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"{what} within {timeout}s")


def post_json(url: str, token: str, body: dict) -> dict:
    # Always our own daphne's http:// URL.
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={  # noqa: S310
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        return json.loads(response.read())


def platform_deploy(url: str, token: str, text: str, project) -> tuple[float, float]:
    """(seconds until applied, seconds until live) of one deploy through the REST API."""
    from clusters.models import DesiredProject
    from projects.models import Release

    t0 = time.perf_counter()
    revision = post_json(url, token, {"compose": text})["revision"]
    wait(lambda: DesiredProject.objects.filter(cluster_id=project.cluster_id, namespace=project.namespace,
                                               applied_revision=revision).exists(), 60, "applied")
    t_applied = time.perf_counter() - t0
    release = wait(lambda: Release.objects.filter(project=project, revision=revision,
                                                  status__in=("live", "failed")).first(), 90, "live")
    t_live = time.perf_counter() - t0
    if release.status != "live":
        raise RuntimeError(f"release failed: {release.error}")
    return t_applied, t_live


def direct_deploy(kube, text: str, n: int, slug: str) -> tuple[float, float]:
    """The same objects applied with the agent's reconcile code and the client directly, then polled ready."""
    from agent import protocol as p
    from agent import reconcile
    from agent.k8s import DEPLOYMENT
    from projects.compose import PlanLimits, RenderContext, render_project

    ns = f"direct-{slug}"
    ctx = RenderContext(org_slug="direct", project_slug=slug, namespace=ns, plan=PlanLimits(**PLAN),
                        base_domain="apps.bench.test")
    objects = render_project(text, ctx).objects
    t0 = time.perf_counter()
    labels = {p.ORGANIZATION_LABEL: "direct", p.PROJECT_LABEL: slug, p.PROJECT_UID_LABEL: f"direct-{slug}"}
    reconcile.apply_project(kube, ns, labels, 1, objects)
    d_applied = time.perf_counter() - t0

    def all_ready() -> bool:
        items = kube.list(DEPLOYMENT, ns)
        return len(items) == n and all(
            (d.get("status") or {}).get("readyReplicas", 0) >= d["spec"].get("replicas", 1) for d in items)

    wait(all_ready, 60, "direct ready")
    return d_applied, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=5, help="deploys per size and path (default 5)")
    parser.add_argument("--sizes", default="1,10,50", help="numbers of services (default 1,10,50)")
    args = parser.parse_args()
    samples = max(1, min(args.samples, 50))
    sizes = [max(1, min(int(s), 60)) for s in args.sizes.split(",")]

    os.environ.setdefault("PROJECTS_ROLLOUT_TIMEOUT", "60")
    setup_django(os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"))

    from accounts.services import create_api_token, create_organization
    from agent.k8s import Kube
    from billing.ledger import get_account
    from billing.models import Plan
    from clusters import manifest
    from clusters import services as cluster_services
    from clusters.models import ClusterStatus
    from conftest import make_user
    from kubesim.testing import KubeSim
    from paas.testing.processes import ManagedProcess, child_env, start_celery_worker, start_daphne
    from projects import services

    started: list[ManagedProcess] = []
    with KubeSim(controllers=True, controller_delay=0.0) as sim:
        workdir = Path(tempfile.mkdtemp(prefix="deploy-bench-"))
        kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig")  # the direct path: the admin
        # The agent runs as its ServiceAccount from the install manifest, as on a cluster.
        agent_kubeconfig = manifest.install_for_local_agent(kubeconfig, workdir / "agent.kubeconfig")
        try:
            daphne, base = start_daphne()
            started.append(daphne)
            started.append(start_celery_worker())
            cluster = cluster_services.create_cluster("Bench", "apps.bench.test", simulated=True)
            (workdir / "token").write_text(cluster_services.issue_token(cluster))
            started.append(ManagedProcess("agent", [sys.executable, "-m", "agent", "--server", ws_url(base),
                                                    "--token-file", str(workdir / "token"),
                                                    "--kubeconfig", str(agent_kubeconfig)], child_env()).start())
            wait(lambda: type(cluster).objects.filter(pk=cluster.pk, status=ClusterStatus.ONLINE).exists(), 30,
                 "agent online", 0.05)
            user = make_user(f"bench-{os.getpid()}@example.com")
            org = create_organization(user, f"Bench {os.getpid()}")
            # The same room as PLAN for the platform path: the organization's billing plan sets its limits.
            account = get_account(org)
            account.plan = Plan.objects.create(
                name="Bench", slug=f"bench-{os.getpid()}", max_projects=100, max_services=60, quota_pods=200,
                quota_cpu_millicores=200_000, quota_memory_mib=400 * 1024)
            account.save(update_fields=["plan"])
            _, token = create_api_token(user, "bench")
            kube = Kube(str(kubeconfig))

            print(f"deploy benchmark: {samples} deploys per size and path; kubesim controllers at zero delay")
            print(f"{'services':>8} | {'platform applied':>16} {'platform live':>14} | {'direct applied':>14} "
                  f"{'direct live':>12} | {'overhead p50':>12} {'overhead p99':>12}")
            for n in sizes:
                text = compose(n)
                rows: dict[str, list[float]] = {k: [] for k in ("p_applied", "p_live", "d_applied", "d_live")}
                for i in range(samples + 1):  # the first round warms caches and connections: not counted
                    project = services.create_project(org, user, f"p{n}-{i}", cluster)
                    url = f"{base}/api/v1/organizations/{org.slug}/projects/{project.slug}/releases/"
                    t_applied, t_live = platform_deploy(url, token, text, project)
                    d_applied, d_live = direct_deploy(kube, text, n, f"d{n}-{i}-{os.getpid()}")
                    if i:
                        for key, value in zip(rows, (t_applied, t_live, d_applied, d_live), strict=True):
                            rows[key].append(value)
                overhead = [p - d for p, d in zip(rows["p_live"], rows["d_live"], strict=True)]
                med = {k: statistics.median(v) for k, v in rows.items()}
                print(f"{n:>8} | {med['p_applied']:>15.3f}s {med['p_live']:>13.3f}s | {med['d_applied']:>13.3f}s "
                      f"{med['d_live']:>11.3f}s | {statistics.median(overhead):>11.3f}s "
                      f"{percentile(overhead, 99):>11.3f}s")
            kube.close()
        finally:
            for proc in reversed(started):
                proc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
