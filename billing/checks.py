"""The ledger audit (`manage.py billing_audit`): every balance recomputed from the ledger and compared with
what is cached and recorded."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Sum

from billing.models import BillingAccount, CreditEntry, EntryKind, UsageRecord
from billing.money import FINE_PER_MILLICREDIT


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
