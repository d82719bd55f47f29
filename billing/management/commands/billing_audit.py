"""Recompute every balance from the ledger and report mismatches; exits 1 when there are any."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from billing.checks import audit
from billing.models import BillingAccount, CreditEntry


class Command(BaseCommand):
    help = (
        "Recompute every organization's balance from the credit ledger and compare it with the cached balance, "
        "each entry's balance_after and the charged usage. Prints each mismatch; exits non-zero if any."
    )

    def handle(self, *args, **options) -> None:
        problems = audit()
        for problem in problems:
            self.stderr.write(f"MISMATCH organization={problem.organization_id}: {problem.problem}")
        if problems:
            raise CommandError(f"{len(problems)} mismatch(es) between balances and the ledger.")
        self.stdout.write(self.style.SUCCESS(
            f"OK: {BillingAccount.objects.count()} accounts and {CreditEntry.objects.count()} ledger entries agree."
        ))
