"""What the billing page, the API and the notices read: burn rate, time left, usage per day, contacts."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Min, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Organization, Role
from billing.models import UsageRecord, data_label
from billing.money import FINE_PER_MILLICREDIT

# The sums behind every usage summary, in fine units (compute is the rest of cost: see cost_parts()).
COST_SUMS = {"cost": Sum("cost_fine"), "volume": Sum("volume_fine"), "database": Sum("database_fine"),
             "bucket": Sum("bucket_fine")}


def burn_rate(organization: Organization, now: datetime | None = None) -> int:
    """Millicredits per hour, averaged over the usage of the last 24 hours (or since the first
    usage in them, at least one hour)."""
    now = now or timezone.now()
    recent = UsageRecord.objects.filter(organization=organization, window_start__gte=now - timedelta(hours=24))
    agg = recent.aggregate(total=Sum("cost_fine"), first=Min("window_start"))
    if not agg["total"]:
        return 0
    span = max(int((now - agg["first"]).total_seconds()), 3600)
    return int(agg["total"]) * 3600 // (span * FINE_PER_MILLICREDIT)


def time_left(balance: int, burn_per_hour: int) -> timedelta | None:
    """How long the balance lasts at this burn rate; None when nothing is burning."""
    if burn_per_hour <= 0:
        return None
    if balance <= 0:
        return timedelta(0)
    return timedelta(seconds=balance * 3600 // burn_per_hour)


def billing_contacts(organization: Organization) -> list[str]:
    """E-mail addresses of the owners and admins."""
    return sorted(
        set(
            organization.memberships.filter(role__in=[Role.OWNER, Role.ADMIN])
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
    )


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def records_between(organization: Organization, first_day: date, last_day: date) -> QuerySet[UsageRecord]:
    """The organization's usage records whose window starts on one of these days (inclusive, UTC)."""
    return UsageRecord.objects.filter(organization=organization, window_start__gte=_day_start(first_day),
                                      window_start__lt=_day_start(last_day + timedelta(days=1)))


def cost_summary(records: QuerySet[UsageRecord], *group: str) -> QuerySet:
    """Rows of `group` fields (e.g. "project_key", "service") with the summed cost parts (fine units), the
    number of records and the replica-seconds, in the group's order. One query, whatever the number of rows."""
    return (records.order_by().values(*group)
            .annotate(windows=Count("id"), replica_seconds=Sum("replica_seconds"), **COST_SUMS).order_by(*group))


def in_millicredits(row: dict[str, Any]) -> dict[str, int]:
    """A summary row's cost parts as whole millicredits of their exact sums (each rounded down)."""
    cost, volume, database, bucket = (int(row[k] or 0) for k in ("cost", "volume", "database", "bucket"))
    return {
        "compute_millicredits": (cost - volume - database - bucket) // FINE_PER_MILLICREDIT,
        "volume_millicredits": volume // FINE_PER_MILLICREDIT,
        "database_millicredits": database // FINE_PER_MILLICREDIT,
        "bucket_millicredits": bucket // FINE_PER_MILLICREDIT,
        "cost_millicredits": cost // FINE_PER_MILLICREDIT,
    }


def service_costs(organization: Organization, first_day: date, last_day: date) -> list[dict[str, Any]]:
    """Per project and service (the project's database and bucket as one row of its own): windows billed and
    cost by part (compute, volume, database, bucket, total) in whole millicredits, for the billing page."""
    rows = cost_summary(records_between(organization, first_day, last_day), "project_key", "service")
    return [{"project": r["project_key"], "service": r["service"], "label": data_label(r["project_key"], r["service"]),
             "windows": r["windows"], **in_millicredits(r)} for r in rows]


def project_costs(organization: Organization, first_day: date, last_day: date) -> list[dict[str, Any]]:
    """Per project: windows billed and cost by part, as service_costs() gives per service."""
    rows = cost_summary(records_between(organization, first_day, last_day), "project_key")
    return [{"project": r["project_key"], "windows": r["windows"], **in_millicredits(r)} for r in rows]


def daily_usage(organization: Organization, first_day: date, last_day: date) -> dict[str, Any]:
    """Cost per project per day (millicredits; compute, storage and data together) from `first_day` to
    `last_day` inclusive, as Chart.js datasets for stacked bars."""
    days = (last_day - first_day).days + 1
    rows = (
        records_between(organization, first_day, last_day)
        .annotate(day=TruncDate("window_start"))
        .values("day", "project_key")
        .annotate(cost=Sum("cost_fine"))
        .order_by("day", "project_key")
    )
    series: dict[str, list[int]] = {}
    for row in rows:
        series.setdefault(row["project_key"], [0] * days)[(row["day"] - first_day).days] += int(row["cost"])
    return {
        "labels": [(first_day + timedelta(days=i)).isoformat() for i in range(days)],
        "datasets": [
            {"label": name, "data": [fine // FINE_PER_MILLICREDIT for fine in values]}
            for name, values in sorted(series.items())
        ],
    }
