"""The only ways views, API views, consumers and tasks reach accounts' tenant-owned objects.

Each function scopes the lookup to the requesting user and raises Http404 for both a missing
and a foreign object, so nobody can probe for another tenant's objects. A member who may see
an object but lacks the role for an action gets PermissionDenied (403) from `require`.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from accounts.models import APIToken, Invitation, Membership, Organization, SSHKey, User


def get_membership(user: User, org_slug: str) -> Membership:
    """The user's membership in the organization with this slug (404 if none)."""
    if not user.is_authenticated:
        raise Http404("No such organization")
    membership = (
        Membership.objects.select_related("organization")
        .filter(user=user, organization__slug=org_slug)
        .first()
    )
    if membership is None:
        raise Http404("No such organization")
    return membership


def require(membership: Membership, permission: str) -> Membership:
    if not membership.can(permission):
        raise PermissionDenied(f"Your role ({membership.get_role_display()}) does not allow this.")
    return membership


def get_organization_for_user(user: User, org_slug: str, permission: str = "view") -> tuple[Organization, Membership]:
    membership = require(get_membership(user, org_slug), permission)
    return membership.organization, membership


def get_member_for_user(user: User, org_slug: str, membership_id: int) -> tuple[Membership, Membership]:
    """(the target membership, the requester's membership) within one organization."""
    mine = get_membership(user, org_slug)
    target = Membership.objects.select_related("user", "organization").filter(
        pk=membership_id, organization=mine.organization
    ).first()
    if target is None:
        raise Http404("No such member")
    return target, mine


def get_invitation_for_user(user: User, org_slug: str, invitation_id: int) -> tuple[Invitation, Membership]:
    mine = require(get_membership(user, org_slug), "manage_members")
    invitation = Invitation.objects.filter(pk=invitation_id, organization=mine.organization).first()
    if invitation is None:
        raise Http404("No such invitation")
    return invitation, mine


def get_ssh_key_for_user(user: User, key_id: int) -> SSHKey:
    key = SSHKey.objects.filter(pk=key_id, user=user).first() if user.is_authenticated else None
    if key is None:
        raise Http404("No such SSH key")
    return key


def get_api_token_for_user(user: User, token_id: int) -> APIToken:
    token = APIToken.objects.filter(pk=token_id, user=user).first() if user.is_authenticated else None
    if token is None:
        raise Http404("No such API token")
    return token
