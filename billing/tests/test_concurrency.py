"""Concurrency on PostgreSQL: row locks and unique keys keep the ledger exact when many threads (or
processes) charge, top up and report at once. Every thread uses its own database connection."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connections
from django.dispatch import receiver

from accounts.models import Organization
from billing import checks, ledger, usage
from billing.models import BillingAccount, CreditEntry, EntryKind, SuspensionRecord, UsageRecord
from billing.signals import organization_suspended
from billing.tests.conftest import T0, make_org, report, window

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LATER = T0 + timedelta(days=1)


def run_concurrently(count: int, fn: Callable[[int], object], workers: int = 10) -> list[object]:
    """Call fn(0..count-1) from `workers` threads released at the same moment; re-raise any error."""
    gate = threading.Event()

    def call(i: int) -> object:
        gate.wait()
        try:
            return fn(i)
        finally:
            connections.close_all()  # this thread's connection

    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(call, i) for i in range(count)]
        gate.set()
        return [f.result() for f in futures]


def assert_consistent(org) -> None:
    account = BillingAccount.objects.get(organization=org)
    assert account.balance == ledger.ledger_sum(org)
    assert checks.audit() == []


def test_100_concurrent_charges_of_one_window_make_exactly_one_entry(postgres_db):
    org = make_org()
    for service in ("web", "worker", "db"):
        usage.record_usage(org, report(0, service=service, replicas=3))
    results = run_concurrently(100, lambda i: usage.charge_window(org.pk, T0, now=LATER))
    charged = [r for r in results if r is not None]
    assert len(charged) == 1 and charged[0].records == 3
    entries = CreditEntry.objects.filter(organization=org, kind=EntryKind.USAGE)
    assert entries.count() == 1 and entries.get().amount == -11  # 3 x 3 x 1.32 = 11.88
    assert not UsageRecord.objects.filter(charged_at__isnull=True).exists()
    assert_consistent(org)


def test_concurrent_beat_runs_in_several_processes_charge_each_window_once(postgres_db):
    from paas.testing.processes import child_env

    org = make_org()
    for n in range(20):
        usage.record_usage(org, report(n, replicas=2))
    script = (
        "from datetime import datetime, timezone; from billing import usage; "
        f"now = datetime.fromisoformat('{LATER.isoformat()}'); "
        "[usage.charge_closed_windows(now=now) for _ in range(10)]"
    )
    procs = [
        subprocess.Popen([sys.executable, "manage.py", "shell", "-c", script], env=child_env(), cwd=settings.BASE_DIR,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(4)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
    usage_entries = CreditEntry.objects.filter(organization=org, kind=EntryKind.USAGE)
    assert usage_entries.values("idempotency_key").distinct().count() == usage_entries.count() == 20
    assert -sum(e.amount for e in usage_entries) == 52  # 20 windows x 2.64, the remainder carried: floor(52.8)
    assert_consistent(org)


def test_concurrent_top_ups_and_charges_leave_balance_equal_to_the_sum_of_entries(postgres_db):
    org = make_org()
    for n in range(40):
        usage.record_usage(org, report(n, replicas=50))

    def work(i: int) -> object:
        if i % 3 == 0:
            return usage.charge_window(org.pk, window(i // 3), now=LATER)
        if i % 3 == 1:
            return ledger.record_entry(org, amount=100 + i, kind=EntryKind.TOP_UP, idempotency_key=f"pay-{i}")
        # The same top-up delivered twice by a retrying provider.
        return ledger.record_entry(org, amount=7, kind=EntryKind.TOP_UP, idempotency_key=f"dup-{i % 5}")

    run_concurrently(120, work, workers=12)
    assert CreditEntry.objects.filter(organization=org, kind=EntryKind.USAGE).count() == 40
    assert CreditEntry.objects.filter(organization=org, idempotency_key__startswith="pay-").count() == 40
    assert CreditEntry.objects.filter(organization=org, idempotency_key__startswith="dup-").count() == 5
    assert_consistent(org)
    running = 0
    for entry in CreditEntry.objects.filter(organization=org).order_by("id"):
        running += entry.amount
        assert entry.balance_after == running


def test_concurrent_first_writes_create_one_account(postgres_db):
    org = Organization.objects.create(name="Legacy", slug="legacy")  # predates billing: no account yet
    run_concurrently(30, lambda i: ledger.record_entry(org, amount=1, kind=EntryKind.GRANT, idempotency_key=f"g{i}"))
    assert BillingAccount.objects.filter(organization=org).count() == 1
    assert BillingAccount.objects.get(organization=org).balance == 30
    assert_consistent(org)


def test_the_same_report_from_many_threads_is_recorded_once(postgres_db):
    org = make_org()
    results = run_concurrently(50, lambda i: usage.record_usage(org, report(0)))
    assert sum(r.created for r in results) == 1
    assert UsageRecord.objects.count() == 1


def test_racing_to_zero_suspends_once_and_signals_once(postgres_db, settings):
    settings.BILLING_SUSPEND_GRACE_MINUTES = 0
    signals = []

    @receiver(organization_suspended, weak=False)
    def on_suspended(sender, organization, **kwargs):
        signals.append(organization.pk)

    try:
        org = make_org()
        run_concurrently(40, lambda i: ledger.record_entry(
            org, amount=-200, kind=EntryKind.ADJUSTMENT, idempotency_key=f"spend-{i}"
        ))
    finally:
        organization_suspended.disconnect(on_suspended)
    assert BillingAccount.objects.get(organization=org).balance == 5_000 - 8_000
    assert signals == [org.pk]
    assert SuspensionRecord.objects.filter(organization=org).count() == 1
    assert_consistent(org)
