"""Usage: the report shape billing accepts (`UsageReport`), recording reports priced at the plan of the moment,
and charging closed windows to the ledger.

Which way it runs: billing declares what it needs (`UsageReport`, `record_usage`) and knows nothing of
projects or clusters; the projects app measures its services (projects/usage.py) and reports into it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Organization
from billing.ledger import append_entry, get_account, lock_account
from billing.models import CreditEntry, EntryKind, UsageRecord, data_label
from billing.money import split_fine
from billing.suspension import settle

log = logging.getLogger(__name__)

# How far ahead of this server's clock an agent's window may end (clock skew).
CLOCK_SKEW = timedelta(seconds=5)
MAX_BIGINT = 2**63 - 1
# The service key of a project-level report: the project's managed database and bucket belong to the
# project, not to one of its services. No compose service can be named "" (names are DNS-1035 labels).
PROJECT_DATA = ""


@dataclass(frozen=True)
class UsageReport:
    """One service's usage in one window, as a cluster agent reports it.

    The JSON shape (`UsageReport.from_dict`), all quantities non-negative integers:

        {
          "cluster": "eu-1",                        # cluster key (the cluster's slug)
          "namespace": "acme-shop-1a2b3c4d",        # project key (namespace, or project id)
          "service": "web",                         # compose service name
          "window_start": "2026-01-05T10:31:00Z",   # ISO 8601, aligned to window_seconds
          "window_seconds": 60,                     # must equal BILLING_WINDOW_SECONDS
          "replicas": 2,                            # replicas running during the window
          "replica_seconds": 90,                    # optional: seconds run, summed over replicas
                                                    #   (default replicas * window_seconds)
          "cpu_millicores": 250,                    # CPU request per replica
          "memory_mib": 256,                        # memory request per replica
          "storage_gib": 1,                         # volume storage (costs even at zero replicas)
          "database_gib": 0,                        # optional, whole GiB (kept for older reporters)
          "bucket_gib": 0,                          # optional, whole GiB (kept for older reporters)
          "database_bytes": 0,                      # optional, the managed database's size in bytes
          "bucket_bytes": 0                         # optional, the bucket's size in bytes
        }

    A service scaled to zero reports replicas 0 and costs only its storage. A window with no
    report is not billed: gaps are never filled in.

    The project's database and bucket are reported once per project and window, under the reserved
    service key "" (PROJECT_DATA), with only the *_bytes (or *_gib) sizes: zero replicas, CPU, memory and
    volume storage. Their GiB-month prices apply pro rata to the byte.
    """

    cluster: str
    namespace: str
    service: str
    window_start: datetime
    window_seconds: int
    replicas: int
    cpu_millicores: int
    memory_mib: int
    storage_gib: int = 0
    database_gib: int = 0
    bucket_gib: int = 0
    database_bytes: int = 0
    bucket_bytes: int = 0
    replica_seconds: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UsageReport:
        start = data.get("window_start")
        if isinstance(start, str):
            start = parse_datetime(start)
        if not isinstance(start, datetime):
            raise ValueError("window_start must be an ISO 8601 date and time")
        known = {f for f in cls.__dataclass_fields__ if f != "window_start"}
        unknown = set(data) - known - {"window_start"}
        if unknown:
            raise ValueError(f"unknown field(s) in a usage report: {', '.join(sorted(unknown))}")
        try:
            return cls(window_start=start, **{k: data[k] for k in known if k in data}).validated()
        except TypeError as exc:
            raise ValueError(f"incomplete usage report: {exc}") from None

    def validated(self) -> UsageReport:
        for name in ("cluster", "namespace"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or len(value) > 100:
                raise ValueError(f"{name} must be a non-empty string of at most 100 characters")
        if not isinstance(self.service, str) or len(self.service) > 100:
            raise ValueError("service must be a string of at most 100 characters (\"\" for the project's data)")
        for name in ("window_seconds", "replicas", "cpu_millicores", "memory_mib", "storage_gib",
                     "database_gib", "bucket_gib", "replica_seconds"):
            value = getattr(self, name)
            if value is None and name == "replica_seconds":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 2**31 - 1:
                raise ValueError(f"{name} must be a non-negative integer")
        for name in ("database_bytes", "bucket_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 2**53:
                raise ValueError(f"{name} must be a non-negative integer of at most 2^53 (8 PiB)")
        if self.service == PROJECT_DATA and (self.replicas or self.replica_seconds or self.cpu_millicores
                                             or self.memory_mib or self.storage_gib):
            raise ValueError("a project-level report (service \"\") carries only database and bucket sizes: "
                             "replicas, CPU, memory and storage must be 0")
        if self.window_seconds != settings.BILLING_WINDOW_SECONDS:
            raise ValueError(f"window_seconds must be {settings.BILLING_WINDOW_SECONDS} (BILLING_WINDOW_SECONDS)")
        if timezone.is_naive(self.window_start):
            raise ValueError("window_start needs a time zone (e.g. a trailing Z)")
        epoch = self.window_start.timestamp()
        if self.window_start.microsecond or int(epoch) % self.window_seconds:
            raise ValueError(f"window_start must be aligned to {self.window_seconds}-second windows")
        if self.replica_seconds is not None and self.replica_seconds > self.replicas * self.window_seconds:
            raise ValueError("replica_seconds cannot exceed replicas * window_seconds")
        return self

    @property
    def window_end(self) -> datetime:
        return self.window_start + timedelta(seconds=self.window_seconds)

    @property
    def run_seconds(self) -> int:
        return self.replicas * self.window_seconds if self.replica_seconds is None else self.replica_seconds


@dataclass(frozen=True)
class UsageResult:
    record: UsageRecord
    created: bool  # False: this (cluster, namespace, service, window) was already recorded


def record_usage(
    organization: Organization, report: UsageReport | dict[str, Any], *, now: datetime | None = None
) -> UsageResult:
    """Store one usage report, priced at the organization's plan. Idempotent on (cluster,
    namespace, service, window): a repeated report returns the first record and changes nothing."""
    if not isinstance(report, UsageReport):
        report = UsageReport.from_dict(report)
    else:
        report.validated()
    now = now or timezone.now()
    if report.window_end > now + CLOCK_SKEW:
        raise ValueError("this window has not ended yet; report it once it is over")
    plan = get_account(organization).plan
    seconds = report.window_seconds
    parts = plan.cost_parts(
        cpu_millicore_seconds=report.run_seconds * report.cpu_millicores,
        memory_mib_seconds=report.run_seconds * report.memory_mib,
        volume_gib_seconds=report.storage_gib * seconds,
        database_gib_seconds=report.database_gib * seconds,
        bucket_gib_seconds=report.bucket_gib * seconds,
        database_byte_seconds=report.database_bytes * seconds,
        bucket_byte_seconds=report.bucket_bytes * seconds,
    )
    cost = parts.total
    if cost > MAX_BIGINT:
        raise ValueError("usage of this size cannot be billed in one window")
    record, created = UsageRecord.objects.get_or_create(
        cluster_key=report.cluster,
        project_key=report.namespace,
        service=report.service,
        window_start=report.window_start.astimezone(UTC),
        defaults={
            "organization": organization,
            "window_seconds": seconds,
            "replica_seconds": report.run_seconds,
            "cpu_millicores": report.cpu_millicores,
            "memory_mib": report.memory_mib,
            "volume_gib": report.storage_gib,
            "database_gib": report.database_gib,
            "bucket_gib": report.bucket_gib,
            "database_bytes": report.database_bytes,
            "bucket_bytes": report.bucket_bytes,
            "cost_fine": cost,
            "volume_fine": parts.volume,
            "database_fine": parts.database,
            "bucket_fine": parts.bucket,
        },
    )
    if not created:
        if record.organization_id != organization.pk:
            raise ValueError(f"{report.cluster}/{report.namespace}/{report.service} is billed to another organization")
        if (record.replica_seconds, record.cpu_millicores, record.memory_mib, record.database_bytes,
                record.bucket_bytes) != (report.run_seconds, report.cpu_millicores, report.memory_mib,
                                         report.database_bytes, report.bucket_bytes):
            log.warning("repeated usage report differs; the first is kept: record=%s", record.pk)
    return UsageResult(record, created)


@dataclass(frozen=True)
class ChargeResult:
    entry: CreditEntry | None  # None when the window's cost stayed below one millicredit
    idempotency_key: str
    records: int
    amount: int  # millicredits charged (positive number)


def window_key(organization_id: int, window_start: datetime) -> str:
    return f"usage:{organization_id}:{int(window_start.timestamp())}"


def charge_window(organization_id: int, window_start: datetime, *, now: datetime | None = None) -> ChargeResult | None:
    """Charge an organization's uncharged usage records of one window as one ledger entry.

    Safe under any number of concurrent or repeated calls: they queue on the account's lock, and
    the records they would charge are marked charged in the same transaction, so only the first
    finds anything to do. The entry's key is `usage:<org id>:<window epoch>`; records that arrive
    after their window was charged (late reports) are charged under `...:late:<first record id>`.
    Returns None when there was nothing to charge.
    """
    now = now or timezone.now()
    with transaction.atomic():
        account = lock_account(organization_id)
        records = list(
            UsageRecord.objects.filter(
                organization_id=organization_id, window_start=window_start, charged_at__isnull=True
            ).order_by("pk")
        )
        if not records:
            return None
        key = window_key(organization_id, window_start)
        if UsageRecord.objects.filter(
            organization_id=organization_id, window_start=window_start, charged_at__isnull=False
        ).exists():
            key = f"{key}:late:{records[0].pk}"  # this window was charged before: these came late
        millicredits, account.usage_remainder = split_fine(account.usage_remainder + sum(r.cost_fine for r in records))
        entry = None
        if millicredits:
            services = sorted({data_label(r.project_key, r.service) for r in records})
            entry = append_entry(
                account, amount=-millicredits, kind=EntryKind.USAGE, idempotency_key=key,
                reference=f"Usage {window_start:%Y-%m-%d %H:%M} UTC: " + ", ".join(services),
            )
        UsageRecord.objects.filter(pk__in=[r.pk for r in records]).update(
            charged_at=now, charge_key=key, charge_entry=entry
        )
        settle(account, now=now)
    return ChargeResult(entry=entry, idempotency_key=key, records=len(records), amount=millicredits)


def closed_windows(now: datetime | None = None, limit: int = 5000) -> list[tuple[int, datetime]]:
    """(organization id, window start) of uncharged usage whose window ended and settled."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.BILLING_USAGE_SETTLE_SECONDS + settings.BILLING_WINDOW_SECONDS)
    pending = (
        UsageRecord.objects.filter(charged_at__isnull=True, window_start__lte=cutoff)
        .values_list("organization_id", "window_start")
        .distinct()
        .order_by("window_start", "organization_id")
    )
    return list(pending[:limit])


def charge_closed_windows(now: datetime | None = None) -> list[ChargeResult]:
    """The beat job's work: charge every closed window, oldest first, one transaction each."""
    now = now or timezone.now()
    results = []
    for organization_id, window_start in closed_windows(now):
        result = charge_window(organization_id, window_start, now=now)
        if result is not None:
            results.append(result)
    return results
