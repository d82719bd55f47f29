"""Writes and reads of the credit ledger. Every change of a balance goes through `_append_entry`
under the billing account's row lock, in the transaction that writes the ledger entry, and is
followed by `_settle` (threshold notices, grace period, suspension and resumption).

Concurrency: all writers of one organization's money take `SELECT ... FOR UPDATE` on its
BillingAccount row first, so they run one after another; the idempotency key's unique index stops
the same entry twice even across organizations. Retrying any function here with the same key (or
the same usage window) is harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Min, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Organization, Role, User
from billing.models import (
    NOTICE_SEVERITY,
    BalanceNotification,
    BillingAccount,
    CreditEntry,
    EntryKind,
    NoticeLevel,
    Plan,
    SuspensionAction,
    SuspensionRecord,
    UsageRecord,
)
from billing.money import (
    FINE_PER_MILLICREDIT,
    MAX_BALANCE_MILLICREDITS,
    MAX_ENTRY_MILLICREDITS,
    format_credits,
    require_int,
    split_fine,
)
from billing.signals import organization_resumed, organization_suspended

if TYPE_CHECKING:
    from projects.compose import PlanLimits

log = logging.getLogger(__name__)

# How far ahead of this server's clock an agent's window may end (clock skew).
CLOCK_SKEW = timedelta(seconds=5)
MAX_BIGINT = 2**63 - 1

# Kinds and the sign their amount must have. Usage is written only by charge_window.
POSITIVE_KINDS = {EntryKind.SIGNUP_GRANT, EntryKind.GRANT, EntryKind.TOP_UP, EntryKind.REFUND}
OPERATOR_KINDS = [EntryKind.GRANT, EntryKind.TOP_UP, EntryKind.REFUND, EntryKind.ADJUSTMENT]


class IdempotencyConflict(ValueError):
    """The idempotency key was already used for a different entry."""


class DeployRefused(ValidationError):
    """Raised by ensure_can_deploy; its message tells the user what to do."""


@dataclass(frozen=True)
class EntryResult:
    entry: CreditEntry
    created: bool  # False: this key was recorded before and the existing entry is returned


# --- Accounts ---------------------------------------------------------------------------------


def get_account(organization: Organization) -> BillingAccount:
    """The organization's billing account, created on the default plan for organizations that
    predate billing (a harmless race: the one-to-one unique index keeps a single row)."""
    account = BillingAccount.objects.select_related("plan").filter(organization=organization).first()
    if account is None:
        account, _ = BillingAccount.objects.get_or_create(
            organization=organization, defaults={"plan": Plan.objects.get_default()}
        )
    return account


def _lock_account(organization_id: int) -> BillingAccount:
    """The account row, locked until the surrounding transaction ends."""
    account = BillingAccount.objects.select_for_update().filter(organization_id=organization_id).first()
    if account is None:
        get_account(Organization.objects.get(pk=organization_id))
        account = BillingAccount.objects.select_for_update().get(organization_id=organization_id)
    return account


def plan_for_update(organization: Organization) -> Plan:
    """The organization's plan, its billing account locked until the transaction ends, so limit
    checks (e.g. the number of projects) cannot be raced past."""
    return _lock_account(organization.pk).plan


def plan_limits(organization: Organization) -> PlanLimits:
    """The organization's plan as the compose converter's PlanLimits (ResourceQuota, LimitRange)."""
    return get_account(organization).plan.limits()


def is_suspended(organization: Organization) -> bool:
    return BillingAccount.objects.filter(organization=organization, suspended_at__isnull=False).exists()


def ensure_can_deploy(organization: Organization) -> None:
    """The deploy pipeline calls this before it does anything. Suspended organizations are refused, and so
    are organizations that were never given credits (a user's second organization starts at 0)."""
    if is_suspended(organization):
        raise DeployRefused(
            f"{organization.name} is out of credits and its services are suspended, so deploys are paused. "
            "Top up credits (ask an operator) and deploys and services resume automatically.",
            code="organization_suspended",
        )
    if not CreditEntry.objects.filter(organization=organization, amount__gt=0).exists():
        raise DeployRefused(
            f"{organization.name} has no credits yet, so it cannot deploy. Welcome credits come once per person, "
            "with their first organization; top up this one (ask an operator) to deploy.",
            code="organization_unfunded",
        )


# --- The ledger -------------------------------------------------------------------------------


def _append_entry(
    account: BillingAccount,
    *,
    amount: int,
    kind: str,
    idempotency_key: str,
    reference: str = "",
    reason: str = "",
    created_by: User | None = None,
) -> CreditEntry:
    """Add an entry and move the cached balance with it. The caller holds the account's lock and
    saves the account (via _settle) in the same transaction."""
    account.balance += amount
    return CreditEntry.objects.create(
        organization_id=account.organization_id,
        amount=amount,
        kind=kind,
        idempotency_key=idempotency_key,
        reference=reference[:200],
        reason=reason,
        created_by=created_by,
        created_by_email=(created_by.email if created_by else "")[:254],
        balance_after=account.balance,
    )


def _check_amount(amount: object, kind: str) -> int:
    amount = require_int(amount)
    if kind not in EntryKind.values:
        raise ValueError(f"Unknown entry kind {kind!r}.")
    if kind == EntryKind.USAGE:
        raise ValueError("Usage is charged from usage records by charge_window, not recorded directly.")
    if amount == 0:
        raise ValueError("An entry moves credits; zero is not an amount.")
    if kind in POSITIVE_KINDS and amount < 0:
        raise ValueError(f"A {EntryKind(kind).label.lower()} adds credits; the amount must be positive.")
    if abs(amount) > MAX_ENTRY_MILLICREDITS:
        raise ValueError(f"At most {format_credits(MAX_ENTRY_MILLICREDITS)} credits, up or down, in one entry.")
    return amount


def check_balance_after(balance: int, amount: int) -> None:
    """ValueError if adding `amount` would take a balance out of the range the ledger keeps."""
    if abs(balance + amount) > MAX_BALANCE_MILLICREDITS:
        raise ValueError(f"That would take the balance beyond {format_credits(MAX_BALANCE_MILLICREDITS)} credits "
                         "either way; no entry may.")


def record_entry(
    organization: Organization,
    *,
    amount: int,
    kind: str,
    idempotency_key: str,
    reference: str = "",
    reason: str = "",
    created_by: User | None = None,
    now: datetime | None = None,
) -> EntryResult:
    """Append a grant, top-up, refund or adjustment (amount in millicredits).

    The same idempotency key returns the existing entry instead of adding another; reusing a key for
    a different entry raises IdempotencyConflict.
    """
    amount = _check_amount(amount, kind)
    if not idempotency_key:
        raise ValueError("Every entry needs an idempotency key.")
    now = now or timezone.now()
    with transaction.atomic():
        account = _lock_account(organization.pk)
        existing = CreditEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return EntryResult(_same_entry(existing, organization.pk, amount, kind), created=False)
        check_balance_after(account.balance, amount)
        try:
            with transaction.atomic():
                entry = _append_entry(
                    account, amount=amount, kind=kind, idempotency_key=idempotency_key,
                    reference=reference, reason=reason, created_by=created_by,
                )
        except IntegrityError:
            # Writers of one organization are serialized by the lock, so this is the key in use by
            # another organization's entry, committed while we waited.
            raise IdempotencyConflict(f"Idempotency key {idempotency_key!r} is used by another entry.") from None
        _settle(account, now=now, actor=created_by)
    log.info("credit entry: org=%s kind=%s amount=%s key=%s", organization.pk, kind, amount, idempotency_key)
    return EntryResult(entry, created=True)


def _same_entry(existing: CreditEntry, organization_id: int, amount: int, kind: str) -> CreditEntry:
    if (existing.organization_id, existing.amount, existing.kind) != (organization_id, amount, kind):
        raise IdempotencyConflict(f"Idempotency key {existing.idempotency_key!r} was used for a different entry.")
    return existing


def signup_grant_key(user: User) -> str:
    return f"signup:user:{user.pk}"


def grant_signup_credits(user: User, organization: Organization) -> EntryResult | None:
    """The configurable signup grant: once per person, and only once their e-mail address is verified.

    It goes to the first organization a verified user creates, or to their personal organization when
    they verify their address after sign-up. Every later organization starts at 0 credits (and cannot
    deploy until it is funded, see ensure_can_deploy), so new organizations are no way around paying or
    around a suspension. The key `signup:user:<id>` makes a second grant impossible even when two
    organizations are created at once.
    """
    get_account(organization)
    amount = settings.BILLING_SIGNUP_GRANT
    if amount <= 0 or not EmailAddress.objects.filter(user=user, verified=True).exists():
        return None
    key = signup_grant_key(user)
    existing = CreditEntry.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return EntryResult(existing, created=False) if existing.organization_id == organization.pk else None
    # Grants from before this rule were keyed by organization (signup:<org id>): one to an organization
    # this user owns counts as theirs. (Another person's grant, to an organization they co-own, does not.)
    legacy = CreditEntry.objects.filter(
        kind=EntryKind.SIGNUP_GRANT, organization__memberships__user=user, organization__memberships__role=Role.OWNER
    ).exclude(idempotency_key__startswith="signup:user:")
    if legacy.exists():
        return None
    try:
        return record_entry(organization, amount=amount, kind=EntryKind.SIGNUP_GRANT, idempotency_key=key,
                            reference="Welcome credits")
    except IdempotencyConflict:
        return None  # granted to another of the user's organizations at the same moment


def grant_signup_credits_on_verification(user: User) -> EntryResult | None:
    """A user verified their e-mail address: their personal (else first owned) organization gets the grant."""
    owned = Organization.objects.filter(memberships__user=user, memberships__role=Role.OWNER)
    organization = owned.order_by("-personal", "created_at", "pk").first()
    return grant_signup_credits(user, organization) if organization is not None else None


def ledger_sum(organization: Organization) -> int:
    total = CreditEntry.objects.filter(organization=organization).aggregate(total=Sum("amount"))["total"]
    return int(total or 0)


# --- Thresholds, grace, suspension -------------------------------------------------------------


def _level_for(balance: int) -> NoticeLevel:
    if balance <= 0:
        return NoticeLevel.ZERO
    if balance <= settings.BILLING_LOW_BALANCE_THRESHOLD:
        return NoticeLevel.LOW
    return NoticeLevel.OK


def _grace(account: BillingAccount) -> timedelta:
    minutes = account.grace_minutes if account.grace_minutes is not None else settings.BILLING_SUSPEND_GRACE_MINUTES
    return timedelta(minutes=minutes)


def _settle(account: BillingAccount, *, now: datetime, actor: User | None = None) -> None:
    """After the balance moved (or time passed): notices, grace period, suspension, resumption.
    Runs under the account's lock; saves the account; sends at most one signal."""
    level = _level_for(account.balance)
    # Crossed downwards into a worse level: one notice per crossing. Moving back up re-arms it.
    crossed = NOTICE_SEVERITY[level] > NOTICE_SEVERITY[account.notice_level]
    account.notice_level = level

    transition: str | None = None
    if account.balance > 0:
        account.grace_until = None
        if account.suspended_at is not None:
            account.suspended_at = None
            transition = SuspensionAction.RESUMED
    elif account.suspended_at is None:
        if account.grace_until is None:
            account.grace_until = now + _grace(account)
        if account.grace_until <= now:
            account.suspended_at = now
            transition = SuspensionAction.SUSPENDED
    account.save(update_fields=[
        "balance", "usage_remainder", "notice_level", "grace_until", "suspended_at", "updated_at"
    ])
    if crossed and not (level == NoticeLevel.ZERO and transition == SuspensionAction.SUSPENDED):
        _queue_notice(account, level)  # (reaching zero and suspension at once: the suspension notice says it)
    if transition is not None:
        _record_transition(account, transition, actor)


def _record_transition(account: BillingAccount, action: str, actor: User | None) -> None:
    if action == SuspensionAction.SUSPENDED:
        reason = f"Balance {format_credits(account.balance)} credits; the grace period ended."
    else:
        reason = f"Balance back to {format_credits(account.balance)} credits."
    record = SuspensionRecord.objects.create(
        organization_id=account.organization_id, action=action, reason=reason,
        balance=account.balance, created_by=actor,
    )
    log.warning("organization %s: org=%s balance=%s", action, account.organization_id, account.balance)
    if action == SuspensionAction.SUSPENDED:
        _queue_notice(account, BalanceNotification.Kind.SUSPENDED)
    signal = organization_suspended if action == SuspensionAction.SUSPENDED else organization_resumed
    try:
        # A savepoint, so a failing receiver (another app) neither breaks the ledger nor leaves
        # half its own writes; that app reconciles from is_suspended().
        with transaction.atomic():
            signal.send(sender=BillingAccount, organization=account.organization, record=record)
    except Exception:
        log.exception("a receiver of organization_%s failed for org=%s", action, account.organization_id)


def _queue_notice(account: BillingAccount, kind: str) -> None:
    notice = BalanceNotification.objects.create(
        organization_id=account.organization_id, kind=kind, balance=account.balance
    )

    def deliver() -> None:
        from billing.tasks import send_balance_notification

        send_balance_notification.delay(notice.pk)

    transaction.on_commit(deliver, robust=True)


def enforce_suspensions(now: datetime | None = None) -> list[int]:
    """Suspend organizations whose grace period has ended (and resume any suspended one whose
    balance is positive again). Returns the organization ids whose state changed."""
    now = now or timezone.now()
    due = BillingAccount.objects.filter(
        Q(balance__lte=0, suspended_at__isnull=True, grace_until__lte=now)
        | Q(balance__gt=0, suspended_at__isnull=False)
    ).values_list("organization_id", flat=True)
    changed = []
    for organization_id in list(due):
        with transaction.atomic():
            account = _lock_account(organization_id)
            was_suspended = account.is_suspended
            _settle(account, now=now)
            if account.is_suspended != was_suspended:
                changed.append(organization_id)
    return changed


# --- Usage ------------------------------------------------------------------------------------


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
          "database_gib": 0,                        # optional, when the data service reports it
          "bucket_gib": 0                           # optional, when the data service reports it
        }

    A service scaled to zero reports replicas 0 and costs only its storage. A window with no
    report is not billed: gaps are never filled in.
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
        for name in ("cluster", "namespace", "service"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or len(value) > 100:
                raise ValueError(f"{name} must be a non-empty string of at most 100 characters")
        for name in ("window_seconds", "replicas", "cpu_millicores", "memory_mib", "storage_gib",
                     "database_gib", "bucket_gib", "replica_seconds"):
            value = getattr(self, name)
            if value is None and name == "replica_seconds":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 2**31 - 1:
                raise ValueError(f"{name} must be a non-negative integer")
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
    cost = plan.cost_fine(
        cpu_millicore_seconds=report.run_seconds * report.cpu_millicores,
        memory_mib_seconds=report.run_seconds * report.memory_mib,
        volume_gib_seconds=report.storage_gib * seconds,
        database_gib_seconds=report.database_gib * seconds,
        bucket_gib_seconds=report.bucket_gib * seconds,
    )
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
            "cost_fine": cost,
        },
    )
    if not created:
        if record.organization_id != organization.pk:
            raise ValueError(f"{report.cluster}/{report.namespace}/{report.service} is billed to another organization")
        if (record.replica_seconds, record.cpu_millicores, record.memory_mib) != (
            report.run_seconds, report.cpu_millicores, report.memory_mib
        ):
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
        account = _lock_account(organization_id)
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
            services = sorted({f"{r.project_key}/{r.service}" for r in records})
            entry = _append_entry(
                account, amount=-millicredits, kind=EntryKind.USAGE, idempotency_key=key,
                reference=f"Usage {window_start:%Y-%m-%d %H:%M} UTC: " + ", ".join(services),
            )
        UsageRecord.objects.filter(pk__in=[r.pk for r in records]).update(
            charged_at=now, charge_key=key, charge_entry=entry
        )
        _settle(account, now=now)
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


# --- Reading ----------------------------------------------------------------------------------


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


# --- Audit ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    organization_id: int
    problem: str


def audit() -> list[Mismatch]:
    """Recompute every balance from the ledger and compare with what is cached and recorded."""
    problems: list[Mismatch] = []
    sums = dict(
        CreditEntry.objects.order_by().values("organization_id").annotate(total=Sum("amount"))
        .values_list("organization_id", "total")
    )
    usage = dict(
        CreditEntry.objects.filter(kind=EntryKind.USAGE).order_by().values("organization_id")
        .annotate(total=Sum("amount")).values_list("organization_id", "total")
    )
    charged = dict(
        UsageRecord.objects.filter(charged_at__isnull=False).order_by().values("organization_id")
        .annotate(total=Sum("cost_fine")).values_list("organization_id", "total")
    )
    accounts = {a.organization_id: a for a in BillingAccount.objects.all()}
    for org_id in sorted(set(sums) - set(accounts)):
        problems.append(Mismatch(org_id, f"ledger sums to {sums[org_id]} but there is no billing account"))
    for org_id, account in sorted(accounts.items()):
        expected = int(sums.get(org_id) or 0)
        if account.balance != expected:
            problems.append(Mismatch(org_id, f"cached balance {account.balance} != ledger sum {expected}"))
        billed = -int(usage.get(org_id) or 0) * FINE_PER_MILLICREDIT + account.usage_remainder
        if not 0 <= account.usage_remainder < FINE_PER_MILLICREDIT or billed != int(charged.get(org_id) or 0):
            problems.append(Mismatch(
                org_id, f"usage entries + remainder ({billed} fine units) != charged usage "
                f"({int(charged.get(org_id) or 0)} fine units)",
            ))
    # Each entry's balance_after must be the running sum of its organization's ledger.
    running: dict[int, int] = {}
    entries = CreditEntry.objects.order_by("organization_id", "id").values_list(
        "id", "organization_id", "amount", "balance_after"
    )
    for entry_id, org_id, amount, balance_after in entries.iterator(chunk_size=5000):
        running[org_id] = running.get(org_id, 0) + amount
        if balance_after != running[org_id]:
            problems.append(Mismatch(
                org_id, f"entry {entry_id}: balance_after {balance_after} != running sum {running[org_id]}"
            ))
    return problems

