"""The receivers accounts needs: a personal organization for a new user (allauth), and closing the open sockets
of people who lost access."""

from __future__ import annotations

from allauth.account.signals import user_signed_up
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts.models import APIToken, Membership, User
from accounts.services import ensure_personal_organization
from lib.realtime import access_changed

# Fields of a user whose change can take away access an open socket was given.
ACCESS_FIELDS = {"is_active", "is_staff", "is_superuser"}


@receiver(user_signed_up)
def give_new_user_a_personal_organization(sender, request, user, **kwargs) -> None:
    ensure_personal_organization(user)


# Model signals rather than calls in services, so every path (services, Django admin, an organization
# deleted with its memberships) closes the sockets of people who lost access.
@receiver(post_delete, sender=Membership, dispatch_uid="accounts.membership_deleted_closes_sockets")
def membership_deleted(sender, instance: Membership, **kwargs) -> None:
    access_changed(instance.user_id)


@receiver(post_save, sender=Membership, dispatch_uid="accounts.membership_changed_closes_sockets")
def membership_changed(sender, instance: Membership, created: bool, **kwargs) -> None:
    if not created:  # a role change: sockets that needed the old role re-check it
        access_changed(instance.user_id)


@receiver(post_save, sender=User, dispatch_uid="accounts.user_changed_closes_sockets")
def user_changed(sender, instance: User, created: bool, update_fields=None, **kwargs) -> None:
    if not created and (update_fields is None or ACCESS_FIELDS & set(update_fields)):
        access_changed(instance.pk)


@receiver(post_save, sender=APIToken, dispatch_uid="accounts.api_token_revoked_closes_sockets")
def api_token_revoked(sender, instance: APIToken, created: bool, **kwargs) -> None:
    if not created and instance.revoked_at is not None:  # sockets opened with it (the CLI's) close
        access_changed(instance.user_id)


@receiver(post_delete, sender=APIToken, dispatch_uid="accounts.api_token_deleted_closes_sockets")
def api_token_deleted(sender, instance: APIToken, **kwargs) -> None:
    access_changed(instance.user_id)
