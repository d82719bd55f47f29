"""Signals accounts sends, and the receivers it needs for allauth."""

from __future__ import annotations

from allauth.account.signals import user_signed_up
from django.dispatch import Signal, receiver

# Sent inside the transaction that creates an organization; kwargs: organization.
organization_created = Signal()


@receiver(user_signed_up)
def give_new_user_a_personal_organization(sender, request, user, **kwargs) -> None:
    from accounts.services import ensure_personal_organization

    ensure_personal_organization(user)
