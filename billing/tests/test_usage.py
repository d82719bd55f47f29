"""Usage from agents' reports: validation, idempotent ingestion, charging closed windows, rounding."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from billing import checks, reports, usage
from billing.models import BillingAccount, CreditEntry, EntryKind, UsageRecord
from billing.money import FINE_PER_MICROCREDIT
from billing.tests.conftest import T0, make_org, report, window

LATER = T0 + timedelta(days=1)  # "now" in these tests: every window of T0's day has closed


def usage_entries(org) -> list[CreditEntry]:
    return list(CreditEntry.objects.filter(organization=org, kind=EntryKind.USAGE).order_by("id"))


def balance(org) -> int:
    return BillingAccount.objects.get(organization=org).balance


@pytest.mark.django_db
def test_it_records_a_report_priced_at_the_plan():
    org = make_org()
    result = usage.record_usage(org, report(replicas=2, cpu_millicores=500, memory_mib=512, storage_gib=10))
    record = result.record
    assert result.created
    assert (record.cluster_key, record.project_key, record.service) == ("eu-1", "acme-shop", "web")
    assert record.window_start == T0 and record.replica_seconds == 120
    # 2 x 0.5 vCPU x 60 s x 20 + 2 x 0.5 GiB x 60 s x 2 + 10 GiB x 60 s x 100000 / 2592000 microcredits
    storage_fine = 10 * 60 * 100_000 * (FINE_PER_MICROCREDIT // 2_592_000)
    assert record.cost_fine == (1_200 + 120) * FINE_PER_MICROCREDIT + storage_fine


@pytest.mark.django_db
def test_a_repeated_or_conflicting_report_does_not_add_a_record():
    org = make_org()
    first = usage.record_usage(org, report(replicas=1))
    again = usage.record_usage(org, report(replicas=1))
    different = usage.record_usage(org, report(replicas=5))  # a confused agent: the first report stands
    assert first.created and not again.created and not different.created
    assert UsageRecord.objects.count() == 1 and UsageRecord.objects.get().replica_seconds == 60


@pytest.mark.django_db
def test_a_service_scaled_to_zero_costs_nothing_but_its_storage():
    org = make_org()
    idle = usage.record_usage(org, report(replicas=0)).record
    assert idle.cost_fine == 0
    stored = usage.record_usage(org, report(1, replicas=0, storage_gib=1)).record
    assert stored.cost_fine == 60 * 100_000 * (FINE_PER_MICROCREDIT // 2_592_000)


@pytest.mark.django_db
def test_replica_seconds_bill_only_the_time_replicas_ran():
    org = make_org()
    record = usage.record_usage(org, report(replicas=1, replica_seconds=15)).record
    assert record.replica_seconds == 15
    with pytest.raises(ValueError, match="cannot exceed"):
        usage.record_usage(org, report(1, replicas=1, replica_seconds=61))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"window_start": "2026-01-05T10:00:30Z"}, "aligned"),
        ({"window_start": "2026-01-05T10:00:00"}, "time zone"),
        ({"window_start": "yesterday"}, "ISO 8601"),
        ({"window_seconds": 300}, "BILLING_WINDOW_SECONDS"),
        ({"replicas": -1}, "non-negative"),
        ({"cpu_millicores": 0.5}, "non-negative integer"),
        ({"memory_mib": True}, "non-negative integer"),
        ({"service": ""}, "carries only database and bucket sizes"),
        ({"database_bytes": -1}, "database_bytes must be a non-negative integer"),
        ({"bucket_bytes": 2**60}, "at most 2\\^53"),
        ({"surprise": 1}, "unknown field"),
        ({"cpu_millicores": None}, "non-negative integer"),
    ],
)
def test_it_refuses_malformed_reports_with_a_clear_message(overrides, message):
    org = make_org()
    with pytest.raises(ValueError, match=message):
        usage.record_usage(org, report(**overrides))
    assert not UsageRecord.objects.exists()


@pytest.mark.django_db
def test_it_refuses_an_incomplete_report():
    incomplete = report()
    del incomplete["memory_mib"]
    with pytest.raises(ValueError, match="incomplete usage report"):
        usage.record_usage(make_org(), incomplete)


@pytest.mark.django_db
def test_it_refuses_a_report_for_a_window_that_has_not_ended():
    org = make_org()
    with pytest.raises(ValueError, match="not ended"):
        usage.record_usage(org, report(), now=T0 + timedelta(seconds=30))
    assert usage.record_usage(org, report(), now=T0 + timedelta(seconds=60)).created


@pytest.mark.django_db
def test_one_namespace_cannot_be_billed_to_two_organizations():
    org, other = make_org(), make_org("Other")
    usage.record_usage(org, report())
    with pytest.raises(ValueError, match="another organization"):
        usage.record_usage(other, report())


@pytest.mark.django_db
def test_it_charges_each_closed_window_once_per_organization(cheap_plan):
    cheap_plan.price_vcpu_second = 1_000  # 1 vCPU-second = 1 millicredit
    cheap_plan.save()
    org = make_org()
    usage.record_usage(org, report(0, service="web"))
    usage.record_usage(org, report(0, service="worker", cpu_millicores=500))
    usage.record_usage(org, report(1, service="web"))
    charged = usage.charge_closed_windows(now=LATER)
    assert [(r.amount, r.records) for r in charged] == [(90, 2), (60, 1)]
    entries = usage_entries(org)
    assert [(e.amount, e.idempotency_key) for e in entries] == [
        (-90, f"usage:{org.pk}:{int(window(0).timestamp())}"),
        (-60, f"usage:{org.pk}:{int(window(1).timestamp())}"),
    ]
    assert "acme-shop/web, acme-shop/worker" in entries[0].reference
    assert balance(org) == 5_000 - 150
    assert usage.charge_closed_windows(now=LATER) == []  # a duplicated beat run does nothing
    assert len(usage_entries(org)) == 2
    assert set(UsageRecord.objects.values_list("charge_entry", flat=True)) == {entries[0].pk, entries[1].pk}


@pytest.mark.django_db
def test_it_waits_for_the_window_to_close_and_settle(cheap_plan):
    org = make_org()
    usage.record_usage(org, report(0, replicas=100))
    end = window(1)
    assert usage.charge_closed_windows(now=end + timedelta(seconds=119)) == []
    assert len(usage.charge_closed_windows(now=end + timedelta(seconds=120))) == 1


@pytest.mark.django_db
def test_a_late_report_is_charged_once_under_its_own_key(cheap_plan):
    cheap_plan.price_vcpu_second = 1_000
    cheap_plan.save()
    org = make_org()
    usage.record_usage(org, report(0, service="web"))
    usage.charge_closed_windows(now=LATER)
    late = usage.record_usage(org, report(0, service="worker")).record  # arrives after the charge
    usage.record_usage(org, report(0, service="web"))  # and a replay of the charged one
    usage.charge_closed_windows(now=LATER)
    usage.charge_closed_windows(now=LATER)
    keys = [e.idempotency_key for e in usage_entries(org)]
    base = f"usage:{org.pk}:{int(T0.timestamp())}"
    assert keys == [base, f"{base}:late:{late.pk}"]
    assert balance(org) == 5_000 - 120


@pytest.mark.django_db
def test_gaps_are_not_invented(cheap_plan):
    cheap_plan.price_vcpu_second = 1_000
    cheap_plan.save()
    org = make_org()
    usage.record_usage(org, report(0))
    usage.record_usage(org, report(10))  # nothing reported for windows 1..9
    usage.charge_closed_windows(now=LATER)
    assert [e.amount for e in usage_entries(org)] == [-60, -60]


@pytest.mark.django_db
def test_fractions_of_a_millicredit_are_carried_not_lost_or_rounded_up(cheap_plan):
    """0.06 millicredits a window: rounding up would charge 1 each time, dropping would charge 0."""
    org = make_org()
    for n in range(100):
        usage.record_usage(org, report(n))
    usage.charge_closed_windows(now=LATER)
    charged = -sum(e.amount for e in usage_entries(org))
    assert charged == 6  # 100 x 0.06
    account = BillingAccount.objects.get(organization=org)
    assert account.usage_remainder == 0
    assert checks.audit() == []
    # Windows whose charge stays below one millicredit are marked charged without an entry.
    assert UsageRecord.objects.filter(charged_at__isnull=False, charge_entry__isnull=True).count() > 0
    assert not UsageRecord.objects.filter(charged_at__isnull=True).exists()


@pytest.mark.django_db
def test_the_charge_uses_the_price_when_the_usage_was_recorded(cheap_plan):
    cheap_plan.price_vcpu_second = 1_000
    cheap_plan.save()
    org = make_org()
    usage.record_usage(org, report(0))
    cheap_plan.price_vcpu_second = 2_000
    cheap_plan.save()
    usage.record_usage(org, report(1))
    usage.charge_closed_windows(now=LATER)
    assert [e.amount for e in usage_entries(org)] == [-60, -120]


@pytest.mark.django_db
def test_recorded_agent_usage_bills_as_expected():
    """A recording of agent reports (two services, one scaling to zero and back, a repeat, a gap)."""
    data = json.loads((Path(__file__).parent / "data" / "recorded_usage.json").read_text())
    org = make_org()
    results = [usage.record_usage(org, r) for r in data["reports"]]
    assert sum(r.created for r in results) == data["expected"]["records"]
    usage.charge_closed_windows(now=LATER)
    assert -sum(e.amount for e in usage_entries(org)) == data["expected"]["charged_millicredits"]
    assert len(usage_entries(org)) == data["expected"]["usage_entries"]
    assert checks.audit() == []


@pytest.mark.django_db
def test_burn_rate_and_time_left():
    org = make_org()  # 5,000 millicredits
    for n in range(60):  # one hour of 1 vCPU + 1 GiB: 1.32 millicredits a minute
        usage.record_usage(org, report(n))
    now = window(60)
    assert reports.burn_rate(org, now) == 79  # 79.2 millicredits/hour, rounded down
    assert reports.time_left(5_000, 79) == timedelta(seconds=5_000 * 3600 // 79)
    assert reports.time_left(5_000, 0) is None
    assert reports.time_left(-3, 79) == timedelta(0)
    assert reports.burn_rate(org, now + timedelta(days=2)) == 0


@pytest.mark.django_db
def test_daily_usage_groups_cost_per_project_per_day(cheap_plan):
    cheap_plan.price_vcpu_second = 1_000
    cheap_plan.save()
    org = make_org()
    usage.record_usage(org, report(0, service="web"))
    usage.record_usage(org, report(1, service="web"))
    usage.record_usage(org, report(0, service="worker"))
    usage.record_usage(org, report(0, namespace="acme-blog"))
    usage.record_usage(org, report(24 * 60, service="web"))  # the next day
    usage.record_usage(org, report(2 * 24 * 60, service="web"))  # after the period
    chart = reports.daily_usage(org, T0.date() - timedelta(days=1), T0.date() + timedelta(days=1))
    assert chart["labels"] == ["2026-01-04", "2026-01-05", "2026-01-06"]
    assert chart["datasets"] == [
        {"label": "acme-blog", "data": [0, 60, 0]},
        {"label": "acme-shop", "data": [0, 180, 60]},
    ]
