"""Billing's receivers of other apps' signals: the welcome credits (billing.ledger.grant_signup_credits)."""

from __future__ import annotations

from allauth.account.signals import email_confirmed
from django.dispatch import receiver

from accounts.signals import organization_created
from billing import ledger


@receiver(organization_created, dispatch_uid="billing.signup_grant")
def grant_signup_credits(sender, organization, user, **kwargs) -> None:
    ledger.grant_signup_credits(user, organization)


@receiver(email_confirmed, dispatch_uid="billing.signup_grant_on_verification")
def grant_signup_credits_on_verification(sender, request, email_address, **kwargs) -> None:
    ledger.grant_signup_credits_on_verification(email_address.user)
