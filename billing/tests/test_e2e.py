"""End to end with a real Celery worker: usage is charged by the beat job's task on the worker, the
organization runs out and is suspended there, e-mails go out, and a top-up brings it back."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.dispatch import receiver
from django.utils import timezone

from billing import checks, ledger, suspension, usage
from billing.models import (
    BalanceNotification,
    BillingAccount,
    CreditEntry,
    EntryKind,
    SuspensionAction,
    SuspensionRecord,
)
from billing.providers import get_provider
from billing.signals import organization_resumed
from billing.tests.conftest import make_org, report
from conftest import make_user
from paas.celery import app

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def drain(worker) -> None:
    """Wait until the worker has run everything queued so far (it runs tasks one at a time, in order)."""
    assert app.send_task("paas.ping", args=["drain"]).get(timeout=30) == "pong:drain", worker.output()[-2000:]


def account(org) -> BillingAccount:
    return BillingAccount.objects.get(organization=org)


def test_running_out_suspends_through_the_beat_job_and_a_top_up_resumes(celery_worker):
    org = make_org("Acme", email="alice@example.com")  # 5,000 millicredits
    BillingAccount.objects.filter(organization=org).update(grace_minutes=0)
    # Ten windows of 100 replicas at 4 vCPU and 8 GiB: 576 millicredits a window, 5,760 in all.
    for n in range(10):
        usage.record_usage(org, report(n, replicas=100, cpu_millicores=4000, memory_mib=8192))

    app.send_task("billing.charge_closed_windows")
    wait_for(lambda: account(org).is_suspended, "the worker to charge the usage and suspend Acme")
    drain(celery_worker)

    usage_entries = CreditEntry.objects.filter(organization=org, kind=EntryKind.USAGE)
    assert usage_entries.count() == 10 and sum(e.amount for e in usage_entries) == -5_760
    assert account(org).balance == -760 == ledger.ledger_sum(org)
    assert [r.action for r in SuspensionRecord.objects.filter(organization=org)] == [SuspensionAction.SUSPENDED]
    with pytest.raises(suspension.DeployRefused):
        suspension.ensure_can_deploy(org)
    # Owners were told: low balance, then suspended (no grace: zero and suspension at once); by the worker.
    notices = BalanceNotification.objects.filter(organization=org).order_by("id")
    assert [n.kind for n in notices] == ["low", "suspended"]
    assert all(n.sent_at and n.recipients == "alice@example.com" for n in notices)

    # A duplicated or retried beat run charges nothing more.
    app.send_task("billing.charge_closed_windows")
    app.send_task("billing.charge_closed_windows")
    app.send_task("billing.enforce_suspensions")
    drain(celery_worker)
    assert usage_entries.count() == 10 and SuspensionRecord.objects.filter(organization=org).count() == 1

    resumed = []

    @receiver(organization_resumed, weak=False)
    def on_resumed(sender, organization, record, **kwargs):
        resumed.append((organization.pk, record.action))

    operator = make_user("ops@example.com")
    operator.is_staff = True
    operator.save()
    try:
        get_provider("manual").top_up(org, 10_000, payment_id="bank-1", actor=operator, reference="bank-1")
    finally:
        organization_resumed.disconnect(on_resumed)
    assert resumed == [(org.pk, SuspensionAction.RESUMED)]
    assert not account(org).is_suspended
    suspension.ensure_can_deploy(org)
    app.send_task("billing.enforce_suspensions")
    drain(celery_worker)
    records = SuspensionRecord.objects.filter(organization=org).order_by("id")
    assert [(r.action, r.balance, r.created_by_id) for r in records] == [
        ("suspended", -184, None), ("resumed", 9_240, operator.pk)  # suspended in window 9
    ]
    assert checks.audit() == []


def test_the_beat_job_suspends_when_the_grace_period_ends(celery_worker):
    org = make_org("Graceful")
    ledger.record_entry(org, amount=-5_000, kind=EntryKind.ADJUSTMENT, idempotency_key="spent", reason="test")
    assert account(org).grace_until is not None and not account(org).is_suspended

    app.send_task("billing.enforce_suspensions")
    drain(celery_worker)
    assert not account(org).is_suspended  # the grace period has not ended

    BillingAccount.objects.filter(organization=org).update(grace_until=timezone.now())
    app.send_task("billing.enforce_suspensions")
    wait_for(lambda: account(org).is_suspended, "the worker to suspend after the grace period")
