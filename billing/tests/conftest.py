"""Billing test helpers: organizations, usage reports aligned to windows, eager Celery."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from billing.models import EntryKind

# A fixed, window-aligned instant far enough in the past that every window has ended.
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
_keys = itertools.count()


def window(n: int, seconds: int = 60) -> datetime:
    return T0 + timedelta(seconds=n * seconds)


def recent_window(minutes_ago: int = 5) -> datetime:
    """A window that ended a few minutes ago (for pages that show the last days)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    return now - timedelta(minutes=minutes_ago)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def report(n: int = 0, **overrides) -> dict:
    """A usage report in the agent's shape for window n after T0."""
    data = {
        "cluster": "eu-1",
        "namespace": "acme-shop",
        "service": "web",
        "window_start": iso(window(n)),
        "window_seconds": 60,
        "replicas": 1,
        "cpu_millicores": 1000,
        "memory_mib": 1024,
        "storage_gib": 0,
    }
    data.update(overrides)
    return data


def top_up(org, amount: int, key: str | None = None, kind: str = EntryKind.GRANT):
    from billing.ledger import record_entry

    return record_entry(org, amount=amount, kind=kind, idempotency_key=key or f"test:{next(_keys)}")


def make_org(name: str = "Acme", email: str | None = None):
    """An organization through the real path (so it gets its signup grant), owned by a new user."""
    from accounts.services import create_organization
    from conftest import make_user

    owner = make_user(email or f"owner{next(_keys)}@example.com")
    return create_organization(owner, name)


@pytest.fixture(autouse=True)
def _billing_settings(settings):
    settings.BILLING_SIGNUP_GRANT = 5_000
    settings.BILLING_LOW_BALANCE_THRESHOLD = 1_000
    settings.BILLING_SUSPEND_GRACE_MINUTES = 60
    settings.BILLING_WINDOW_SECONDS = 60
    settings.BILLING_USAGE_SETTLE_SECONDS = 120


@pytest.fixture
def eager_tasks():
    """Run .delay() inline, for tests without a worker (the e-mail task queued after commit)."""
    from paas.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = False


@pytest.fixture
def cheap_plan(db):
    """The default plan at 1 microcredit per vCPU-second and nothing else, so 1 vCPU for a
    60-second window costs 60 microcredits = 0.06 millicredits."""
    from billing.models import Plan

    plan = Plan.objects.get_default()
    plan.price_vcpu_second = 1
    plan.price_memory_gib_second = 0
    plan.price_volume_gib_month = 0
    plan.price_database_gib_month = 0
    plan.price_bucket_gib_month = 0
    plan.save()
    return plan
