"""Payment providers: how credits are bought. Each one turns a confirmed payment into a top-up entry
through billing.ledger.record_entry, keyed `topup:<provider>:<its payment id>`, so a provider
retrying a notification (a webhook delivered twice) can never credit twice.

Adding a card provider later means one more subclass (e.g. `CardProvider.top_up` called from the
card processor's webhook with the payment intent id as `payment_id`) and one line in PROVIDERS; the
ledger, balance and suspension logic do not change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from django.core.exceptions import PermissionDenied

from accounts.models import Organization, User
from billing.ledger import EntryResult, record_entry
from billing.models import EntryKind


class PaymentProvider(ABC):
    name: str

    @abstractmethod
    def top_up(
        self, organization: Organization, amount: int, *, payment_id: str, actor: User | None, reference: str = "",
        reason: str = "",
    ) -> EntryResult:
        """Credit `amount` millicredits for the payment `payment_id` (unique within this provider)."""

    def idempotency_key(self, payment_id: str) -> str:
        if not payment_id:
            raise ValueError("A top-up needs the payment's id, so that retrying it cannot credit twice.")
        return f"topup:{self.name}:{payment_id}"


class ManualTopUpProvider(PaymentProvider):
    """An operator records a payment received outside the system (bank transfer, invoice, cash)."""

    name = "manual"

    def top_up(
        self, organization: Organization, amount: int, *, payment_id: str, actor: User | None, reference: str = "",
        reason: str = "",
    ) -> EntryResult:
        if actor is None or not actor.is_staff:
            raise PermissionDenied("Only operators record manual top-ups.")
        return record_entry(
            organization, amount=amount, kind=EntryKind.TOP_UP, idempotency_key=self.idempotency_key(payment_id),
            reference=reference or f"Manual top-up by {actor.email}", reason=reason, created_by=actor,
        )


PROVIDERS: dict[str, PaymentProvider] = {p.name: p for p in (ManualTopUpProvider(),)}


def get_provider(name: str) -> PaymentProvider:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ValueError(f"No payment provider {name!r}; known: {', '.join(sorted(PROVIDERS))}.") from None
