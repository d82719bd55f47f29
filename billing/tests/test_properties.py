"""Property-based tests: random sequences of grants, top-ups, refunds, adjustments, usage reports,
charges and retries keep balance == sum of entries and never lose (or duplicate) an entry."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from billing import checks, ledger, usage
from billing.models import BillingAccount, CreditEntry, EntryKind, UsageRecord
from billing.money import FINE_PER_MILLICREDIT
from billing.tests.conftest import T0, iso, make_org, window

LATER = T0 + timedelta(days=1)
_runs = itertools.count()

amounts = st.integers(min_value=1, max_value=10_000_000)
keys = st.sampled_from([f"k{i}" for i in range(8)])  # a small pool, so retries with the same key happen
windows = st.integers(min_value=0, max_value=20)
services_ = st.sampled_from(["web", "worker", "db"])


class Ledger(RuleBasedStateMachine):
    """The model: what the ledger must hold, entry by entry."""

    @initialize()
    def start(self) -> None:
        run = next(_runs)
        self.org = make_org(f"Prop {run}")
        self.namespace = f"ns-{run}"
        self.expected: dict[str, tuple[int, str]] = {
            ledger.signup_grant_key(self.org.owners().get().user): (5_000, EntryKind.SIGNUP_GRANT)
        }
        self.reported: dict[tuple[str, int], int] = {}  # (service, window) -> cost in fine units

    def _record(self, key: str, amount: int, kind: str) -> None:
        key = f"{self.namespace}:{key}"
        if key in self.expected and self.expected[key] != (amount, kind):
            with pytest.raises(ledger.IdempotencyConflict):
                ledger.record_entry(self.org, amount=amount, kind=kind, idempotency_key=key)
            return
        result = ledger.record_entry(self.org, amount=amount, kind=kind, idempotency_key=key)
        assert result.created == (key not in self.expected)
        self.expected[key] = (amount, kind)

    @rule(key=keys, amount=amounts, kind=st.sampled_from([EntryKind.GRANT, EntryKind.TOP_UP, EntryKind.REFUND]))
    def credit(self, key: str, amount: int, kind: str) -> None:
        self._record(key, amount, kind)

    @rule(key=keys, amount=st.integers(min_value=-10_000_000, max_value=10_000_000).filter(bool))
    def adjust(self, key: str, amount: int) -> None:
        self._record(key, amount, EntryKind.ADJUSTMENT)

    @rule(service=services_, n=windows, replicas=st.integers(0, 20), cpu=st.integers(1, 4000),
          mem=st.integers(1, 8192), storage=st.integers(0, 100))
    def report_usage(self, service: str, n: int, replicas: int, cpu: int, mem: int, storage: int) -> None:
        result = usage.record_usage(self.org, {
            "cluster": "c1", "namespace": self.namespace, "service": service, "window_start": iso(window(n)),
            "window_seconds": 60, "replicas": replicas, "cpu_millicores": cpu, "memory_mib": mem,
            "storage_gib": storage,
        })
        assert result.created == ((service, n) not in self.reported)
        self.reported.setdefault((service, n), result.record.cost_fine)

    @rule(n=windows)
    def charge_one_window(self, n: int) -> None:
        usage.charge_window(self.org.pk, window(n), now=LATER)

    @rule()
    def beat_run(self) -> None:
        usage.charge_closed_windows(now=LATER)

    @invariant()
    def balance_is_the_sum_of_the_entries(self) -> None:
        if not hasattr(self, "org"):
            return
        account = BillingAccount.objects.get(organization=self.org)
        entries = list(CreditEntry.objects.filter(organization=self.org).order_by("id"))
        assert account.balance == sum(e.amount for e in entries)
        running = 0
        for entry in entries:
            running += entry.amount
            assert entry.balance_after == running
        # No entry lost, none duplicated: every recorded key is there once, with its amount.
        non_usage = {e.idempotency_key: (e.amount, e.kind) for e in entries if e.kind != EntryKind.USAGE}
        assert non_usage == self.expected
        # Usage: what was charged plus the carried remainder is exactly the cost of charged records.
        charged = UsageRecord.objects.filter(organization=self.org, charged_at__isnull=False)
        charged_fine = sum(r.cost_fine for r in charged)
        charged_millicredits = -sum(e.amount for e in entries if e.kind == EntryKind.USAGE)
        assert charged_millicredits * FINE_PER_MILLICREDIT + account.usage_remainder == charged_fine
        assert 0 <= account.usage_remainder < FINE_PER_MILLICREDIT
        assert sum(self.reported.values()) >= charged_fine


@pytest.mark.django_db
def test_random_ledger_histories_stay_consistent():
    run_state_machine_as_test(
        Ledger, settings=settings(max_examples=40, stateful_step_count=25, deadline=None,
                                  suppress_health_check=[HealthCheck.too_slow])
    )
    assert checks.audit() == []


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(costs=st.lists(st.integers(min_value=0, max_value=3 * FINE_PER_MILLICREDIT), min_size=1, max_size=30))
def test_charging_window_by_window_adds_up_to_the_exact_total(cheap_plan, costs):
    """Whatever the cost of each window, the ledger never charges more than the exact total, and less
    by under one millicredit (the remainder carried to the next window)."""
    org = make_org(f"Carry {next(_runs)}")
    for n, fine in enumerate(costs):
        UsageRecord.objects.create(
            organization=org, cluster_key="c", project_key=f"ns-{org.pk}", service="s", window_start=window(n),
            window_seconds=60, replica_seconds=0, cpu_millicores=0, memory_mib=0, cost_fine=fine,
        )
    usage.charge_closed_windows(now=LATER)
    charged = -sum(CreditEntry.objects.filter(organization=org, kind=EntryKind.USAGE).values_list("amount", flat=True))
    assert charged == sum(costs) // FINE_PER_MILLICREDIT
    assert BillingAccount.objects.get(organization=org).usage_remainder == sum(costs) % FINE_PER_MILLICREDIT
