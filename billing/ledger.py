"""The credit ledger: accounts, entries, grants. Every change of a balance goes through `append_entry`
under the billing account's row lock, in the transaction that writes the ledger entry, and is followed by
`billing.suspension.settle` (threshold notices, grace period, suspension and resumption).

Concurrency: all writers of one organization's money take `SELECT ... FOR UPDATE` on its BillingAccount row
first (`lock_account`), so they run one after another; the idempotency key's unique index stops the same entry
twice even across organizations. Retrying any function here with the same key is harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Organization, Role, User
from billing.models import BillingAccount, CreditEntry, EntryKind, Plan
from billing.money import MAX_BALANCE_MILLICREDITS, MAX_ENTRY_MILLICREDITS, format_credits, require_int
from billing.suspension import settle

log = logging.getLogger(__name__)

# Kinds and the sign their amount must have. Usage is written only by billing.usage.charge_window.
POSITIVE_KINDS = {EntryKind.SIGNUP_GRANT, EntryKind.GRANT, EntryKind.TOP_UP, EntryKind.REFUND}
OPERATOR_KINDS = [EntryKind.GRANT, EntryKind.TOP_UP, EntryKind.REFUND, EntryKind.ADJUSTMENT]


class IdempotencyConflict(ValueError):
    """The idempotency key was already used for a different entry."""


@dataclass(frozen=True)
class EntryResult:
    entry: CreditEntry
    created: bool  # False: this key was recorded before and the existing entry is returned


def get_account(organization: Organization) -> BillingAccount:
    """The organization's billing account, created on the default plan for organizations that
    predate billing (a harmless race: the one-to-one unique index keeps a single row)."""
    account = BillingAccount.objects.select_related("plan").filter(organization=organization).first()
    if account is None:
        account, _ = BillingAccount.objects.get_or_create(
            organization=organization, defaults={"plan": Plan.objects.get_default()}
        )
    return account


def lock_account(organization_id: int) -> BillingAccount:
    """The account row, locked until the surrounding transaction ends (created first if the organization
    predates billing)."""
    account = BillingAccount.objects.select_for_update().filter(organization_id=organization_id).first()
    if account is None:
        get_account(Organization.objects.get(pk=organization_id))
        account = BillingAccount.objects.select_for_update().get(organization_id=organization_id)
    return account


def plan_for_update(organization: Organization) -> Plan:
    """The organization's plan, its billing account locked until the transaction ends, so limit
    checks (e.g. the number of projects) cannot be raced past."""
    return lock_account(organization.pk).plan


def append_entry(
    account: BillingAccount,
    *,
    amount: int,
    kind: str,
    idempotency_key: str,
    reference: str = "",
    reason: str = "",
    created_by: User | None = None,
) -> CreditEntry:
    """Add an entry and move the cached balance with it. The caller holds the account's lock
    (lock_account) and saves the account (via billing.suspension.settle) in the same transaction."""
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
        account = lock_account(organization.pk)
        existing = CreditEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return EntryResult(_same_entry(existing, organization.pk, amount, kind), created=False)
        check_balance_after(account.balance, amount)
        try:
            with transaction.atomic():
                entry = append_entry(
                    account, amount=amount, kind=kind, idempotency_key=idempotency_key,
                    reference=reference, reason=reason, created_by=created_by,
                )
        except IntegrityError:
            # Writers of one organization are serialized by the lock, so this is the key in use by
            # another organization's entry, committed while we waited.
            raise IdempotencyConflict(f"Idempotency key {idempotency_key!r} is used by another entry.") from None
        settle(account, now=now, actor=created_by)
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
