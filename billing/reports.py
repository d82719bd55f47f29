"""What the billing page, the API and the notices read: burn rate, time left, usage per day, contacts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Min, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Organization, Role
from billing.models import UsageRecord
from billing.money import FINE_PER_MILLICREDIT


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


def daily_usage(organization: Organization, *, days: int = 30, now: datetime | None = None) -> dict[str, Any]:
    """Cost per project/service per day (millicredits) over the last `days` days, for the chart."""
    now = now or timezone.now()
    first_day = (now - timedelta(days=days - 1)).date()
    rows = (
        UsageRecord.objects.filter(organization=organization, window_start__date__gte=first_day)
        .annotate(day=TruncDate("window_start"))
        .values("day", "project_key", "service")
        .annotate(cost=Sum("cost_fine"))
        .order_by("day")
    )
    labels = [first_day + timedelta(days=i) for i in range(days)]
    series: dict[str, list[int]] = {}
    for row in rows:
        name = f"{row['project_key']}/{row['service']}"
        series.setdefault(name, [0] * days)[(row["day"] - first_day).days] += int(row["cost"])
    return {
        "labels": [d.isoformat() for d in labels],
        "datasets": [
            {"label": name, "data": [fine // FINE_PER_MILLICREDIT for fine in values]}
            for name, values in sorted(series.items())
        ],
    }
