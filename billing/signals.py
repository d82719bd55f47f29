"""Signals billing sends, and billing's receivers of other apps' signals.

organization_suspended / organization_resumed are sent exactly once per transition, inside the
transaction that records it (a SuspensionRecord), with kwargs `organization` and `record`.
Receivers (the projects app: scale every service to zero and refuse wake-ups / restore the replicas
it saved) write their own state in that transaction and queue side effects with
transaction.on_commit. A receiver that raises is logged and its writes are rolled back, but the
transition stands: reconcile from billing.services.is_suspended().
"""

from __future__ import annotations

from allauth.account.signals import email_confirmed
from django.dispatch import Signal, receiver

from accounts.signals import organization_created

organization_suspended = Signal()
organization_resumed = Signal()


@receiver(organization_created, dispatch_uid="billing.signup_grant")
def grant_signup_credits(sender, organization, user, **kwargs) -> None:
    from billing.services import grant_signup_credits

    grant_signup_credits(user, organization)


@receiver(email_confirmed, dispatch_uid="billing.signup_grant_on_verification")
def grant_signup_credits_on_verification(sender, request, email_address, **kwargs) -> None:
    from billing.services import grant_signup_credits_on_verification

    grant_signup_credits_on_verification(email_address.user)
