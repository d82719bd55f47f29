"""Who may deploy, and what an organization's balance means for it: threshold notices, the grace period at
zero, suspension and resumption. `settle` runs after every move of a balance (billing.ledger, billing.usage)
and, for time passing, from the beat job `enforce_suspensions`, always under the account's row lock.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Organization, User
from billing.models import (
    NOTICE_SEVERITY,
    BalanceNotification,
    BillingAccount,
    CreditEntry,
    NoticeLevel,
    SuspensionAction,
    SuspensionRecord,
)
from billing.money import format_credits
from billing.notices import send_balance_notification
from billing.signals import organization_resumed, organization_suspended

log = logging.getLogger(__name__)


class DeployRefused(ValidationError):
    """Raised by ensure_can_deploy; its message tells the user what to do."""


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


def _level_for(balance: int) -> NoticeLevel:
    if balance <= 0:
        return NoticeLevel.ZERO
    if balance <= settings.BILLING_LOW_BALANCE_THRESHOLD:
        return NoticeLevel.LOW
    return NoticeLevel.OK


def _grace(account: BillingAccount) -> timedelta:
    minutes = account.grace_minutes if account.grace_minutes is not None else settings.BILLING_SUSPEND_GRACE_MINUTES
    return timedelta(minutes=minutes)


def settle(account: BillingAccount, *, now: datetime, actor: User | None = None) -> None:
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
    transaction.on_commit(lambda: send_balance_notification.delay(notice.pk), robust=True)


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
            # The row exists (it matched above); lock it so this runs after any writer of its money.
            account = BillingAccount.objects.select_for_update().get(organization_id=organization_id)
            was_suspended = account.is_suspended
            settle(account, now=now)
            if account.is_suspended != was_suspended:
                changed.append(organization_id)
    return changed
