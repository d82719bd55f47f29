"""List pages and API lists with a few vs. many projects: database queries and p50/p99 per request.

    .venv/bin/python bench/lists_bench.py [--small 10 --large 1000 --rounds 20]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/paas_lists_bench .venv/bin/python bench/lists_bench.py

Each organization's projects have 2 services and 2 releases. Requests go through Django's test client (no
network). Goals: the same number of queries for both sizes, and the large organization's p50 within 2x of
the small one's (pages are 50 rows however many there are); issue 18 measured 1,009 queries and 1.6-2.5 s for
the project list page with 1,000 projects before the lists were paginated.
Uses DATABASE_URL (default: a fresh SQLite file) and REDIS_URL (default redis://127.0.0.1:6379/9; settings only).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

from tunnel_bench import percentile, setup_django  # noqa: E402


def organization(size: int, cluster, owner):
    from accounts.services import create_organization
    from projects.models import Project, Release, Service

    org = create_organization(owner, f"Bench {size} {uuid.uuid4().hex[:6]}")
    projects = Project.objects.bulk_create(
        Project(organization=org, name=f"Project {i}", slug=f"project-{i}", cluster=cluster,
                namespace=f"tenant-{org.slug}-{i}"[:63], created_by=owner) for i in range(size))
    Service.objects.bulk_create(Service(project=p, cluster=cluster, name=name, status="running")
                                for p in projects for name in ("web", "worker"))
    Release.objects.bulk_create(Release(project=p, revision=r, compose_text="services: {}\n", created_by=owner)
                                for p in projects for r in (1, 2))
    return org


def measure(client, url: str, rounds: int) -> tuple[int, float, float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    queries = len(captured)  # now: the next request resets the connection's query log
    assert response.status_code == 200, (url, response.status_code)
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        client.get(url)
        samples.append((time.perf_counter() - t0) * 1000)
    return queries, percentile(samples, 50), percentile(samples, 99), len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--large", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    setup_django(os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"))

    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from accounts.models import User
    from clusters.services import create_cluster

    setup_test_environment()  # the test client's ALLOWED_HOSTS
    run = uuid.uuid4().hex[:6]
    owner = User.objects.create_user(username=f"bench-{run}", email=f"bench-{run}@example.com")
    cluster = create_cluster(f"Bench {run}", "apps.example.com", simulated=True, slug=f"bench-{run}")
    orgs = {size: organization(size, cluster, owner) for size in (args.small, args.large)}
    client = Client()
    client.force_login(owner)

    print(f"database: {connection.vendor}; {args.rounds} rounds per request")
    print(f"{'request':<20} {'projects':>8} {'queries':>7} {'p50 ms':>8} {'p99 ms':>8} {'bytes':>8}")
    worst = 0.0
    for label, name in (("project list page", "project_list"), ("project rows", "project_rows"),
                        ("projects API", "api_projects")):
        figures = {}
        for size, org in orgs.items():
            figures[size] = measure(client, reverse(name, args=[org.slug]), args.rounds)
            queries, p50, p99, size_bytes = figures[size]
            print(f"{label:<20} {size:>8} {queries:>7} {p50:>8.1f} {p99:>8.1f} {size_bytes:>8}")
        (q_small, p50_small, *_), (q_large, p50_large, *_) = figures[args.small], figures[args.large]
        ratio = p50_large / p50_small
        worst = max(worst, ratio)
        verdict = "ok" if q_small == q_large and ratio < 2 else "MISSED"
        print(f"{'':<20} {'':>8} queries {q_small} vs {q_large}, p50 x{ratio:.2f} (goal: same queries, < x2) "
              f"{verdict}")
    print(f"worst p50 ratio {args.large} vs {args.small} projects: x{worst:.2f}")


if __name__ == "__main__":
    main()
