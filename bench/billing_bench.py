"""Billing throughput: usage ingestion, the charge job, and money writes racing on one organization.

  ingest  - record_usage for orgs x services x windows reports (one at a time, as an agent's batch)
  charge  - one beat run (charge_closed_windows) over every window just ingested
  hot row - `threads` threads each appending `per-thread` top-ups to ONE organization (they queue on
            its row lock: the worst case for the ledger's design)
  audit   - billing_audit's full recomputation

    .venv/bin/python bench/billing_bench.py [--orgs 20 --services 3 --windows 60 --threads 8 --per-thread 50]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/paas_billing_bench .venv/bin/python bench/billing_bench.py

Uses DATABASE_URL (default: a fresh SQLite file; the row-lock numbers mean something on PostgreSQL only)
and REDIS_URL (default redis://127.0.0.1:6379/9; only for settings). Goal: a one-minute beat run charges
1,000 organizations' windows in well under a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

from tunnel_bench import setup_django  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=20)
    parser.add_argument("--services", type=int, default=3)
    parser.add_argument("--windows", type=int, default=60)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--per-thread", type=int, default=50)
    args = parser.parse_args()
    setup_django(os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/9"))

    from django.db import connection, connections

    from accounts.models import Organization
    from billing import checks, ledger, usage
    from billing.models import CreditEntry, EntryKind

    run = uuid.uuid4().hex[:8]
    start = datetime(2026, 1, 5, tzinfo=UTC)
    orgs = [Organization.objects.create(name=f"Bench {run} {i}", slug=f"b{run}-{i}") for i in range(args.orgs)]
    results: dict[str, object] = {"database": connection.vendor}

    t0 = time.perf_counter()
    for org in orgs:
        for s in range(args.services):
            for w in range(args.windows):
                usage.record_usage(org, {
                    "cluster": "bench", "namespace": f"{org.slug}-p", "service": f"svc{s}",
                    "window_start": (start + timedelta(minutes=w)).isoformat(), "window_seconds": 60,
                    "replicas": 1 + s, "cpu_millicores": 250, "memory_mib": 256, "storage_gib": s,
                })
    ingest = time.perf_counter() - t0
    reports = args.orgs * args.services * args.windows
    results["ingest"] = {"reports": reports, "seconds": round(ingest, 2), "per_second": round(reports / ingest)}

    t0 = time.perf_counter()
    charged = usage.charge_closed_windows(now=start + timedelta(days=1))
    charge = time.perf_counter() - t0
    windows = args.orgs * args.windows
    assert len(charged) <= windows
    results["charge"] = {"org_windows": windows, "entries": len(charged), "seconds": round(charge, 2),
                         "per_second": round(windows / charge)}

    hot = orgs[0]
    gate = threading.Event()

    def writer(t: int) -> None:
        gate.wait()
        try:
            for i in range(args.per_thread):
                ledger.record_entry(hot, amount=1, kind=EntryKind.TOP_UP, idempotency_key=f"{run}-{t}-{i}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(args.threads)]
    for thread in threads:
        thread.start()
    t0 = time.perf_counter()
    gate.set()
    for thread in threads:
        thread.join()
    hot_seconds = time.perf_counter() - t0
    writes = args.threads * args.per_thread
    assert CreditEntry.objects.filter(organization=hot, kind=EntryKind.TOP_UP).count() == writes
    results["hot_row"] = {"threads": args.threads, "entries": writes, "seconds": round(hot_seconds, 2),
                          "per_second": round(writes / hot_seconds)}

    t0 = time.perf_counter()
    problems = checks.audit()
    results["audit"] = {"entries": CreditEntry.objects.count(), "seconds": round(time.perf_counter() - t0, 2),
                        "mismatches": len(problems)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
