"""Writes that span accounts' models: organizations, members, invitations, keys and tokens.

Views, API views and tests all go through these functions, so the rules (last owner,
who may assign which role, one-time token display) hold everywhere.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import asyncssh
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import (
    APIToken,
    Invitation,
    Membership,
    Organization,
    Role,
    SSHKey,
    User,
    hash_token,
    ssh_fingerprint,
)
from accounts.signals import announce, organization_created

log = logging.getLogger(__name__)

RESERVED_SLUGS = {"new", "admin", "api", "static", "accounts", "account", "invitations", "ws", "agent"}


def unique_slug(name: str) -> str:
    base = slugify(name)[:32].strip("-") or "org"
    if base in RESERVED_SLUGS:
        base = f"{base}-org"
    slug = base
    while Organization.objects.filter(slug=slug).exists():
        slug = f"{base}-{secrets.token_hex(2)}"
    return slug


@transaction.atomic
def create_organization(user: User, name: str, *, personal: bool = False) -> Organization:
    name = name.strip()
    if not name:
        raise ValidationError("An organization needs a name.")
    org = Organization.objects.create(name=name, slug=unique_slug(name), personal=personal)
    Membership.objects.create(user=user, organization=org, role=Role.OWNER)
    # Other apps (billing's signup grant) react in the same transaction, without accounts
    # knowing about them: the organization and its grant exist together or not at all.
    organization_created.send(sender=Organization, organization=org, user=user)
    announce("organization.created", actor=user, organization=org, target=org)
    log.info("organization created: slug=%s by user=%s", org.slug, user.pk)
    return org


def ensure_personal_organization(user: User) -> Organization:
    existing = Organization.objects.filter(personal=True, memberships__user=user, memberships__role=Role.OWNER)
    org = existing.first()
    if org:
        return org
    label = (user.email or user.username).split("@")[0]
    return create_organization(user, f"{label}'s organization", personal=True)


def rename_organization(membership: Membership, name: str) -> Organization:
    if not membership.can("manage_organization"):
        raise PermissionDenied("Only owners and admins can rename the organization.")
    name = name.strip()
    if not name:
        raise ValidationError("An organization needs a name.")
    org = membership.organization
    org.name = name
    org.save(update_fields=["name"])
    return org


# --- Members -------------------------------------------------------------------------------


def _is_last_owner(membership: Membership) -> bool:
    return membership.role == Role.OWNER and membership.organization.owners().count() == 1


@transaction.atomic
def change_role(actor: Membership, target: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.")
    if not actor.can("manage_members"):
        raise PermissionDenied("Only owners and admins can change roles.")
    # Lock the organization's owners so two concurrent demotions cannot both pass the check.
    list(Membership.objects.select_for_update().filter(organization=target.organization, role=Role.OWNER))
    if not actor.can_assign(role) or (target.role == Role.OWNER and actor.role != Role.OWNER):
        raise PermissionDenied("Only owners can grant or take away the owner role.")
    if role != Role.OWNER and _is_last_owner(target):
        raise ValidationError("The last owner cannot be demoted; make someone else an owner first.")
    if target.role != role:
        announce("member.role_changed", actor=actor.user, organization=target.organization,
                 target=target.user, details={"from": target.role, "to": role})
    target.role = role
    target.save(update_fields=["role"])
    return target


@transaction.atomic
def remove_member(actor: Membership, target: Membership) -> None:
    if actor.pk != target.pk:
        if not actor.can("manage_members"):
            raise PermissionDenied("Only owners and admins can remove members.")
        if target.role == Role.OWNER and actor.role != Role.OWNER:
            raise PermissionDenied("Only owners can remove an owner.")
    list(Membership.objects.select_for_update().filter(organization=target.organization, role=Role.OWNER))
    if _is_last_owner(target):
        raise ValidationError(
            "The last owner cannot leave or be removed; make someone else an owner first."
        )
    announce("member.removed", actor=actor.user, organization=target.organization, target=target.user,
             details={"role": target.role, "left": actor.pk == target.pk})
    target.delete()


def leave_organization(membership: Membership) -> None:
    remove_member(membership, membership)


# --- Invitations ---------------------------------------------------------------------------


@dataclass
class IssuedInvitation:
    invitation: Invitation
    url: str


def invite(actor: Membership, email: str, role: str = Role.MEMBER, base_url: str | None = None) -> IssuedInvitation:
    """Invite by e-mail. `base_url` is where the invitee should land (the host the inviter used);
    SITE_URL otherwise."""
    if not actor.can("manage_members"):
        raise PermissionDenied("Only owners and admins can invite people.")
    if role not in Role.values:
        raise ValidationError(f"Unknown role {role!r}.")
    if not actor.can_assign(role):
        raise PermissionDenied("Only owners can invite another owner.")
    email = email.strip().lower()
    org = actor.organization
    if Membership.objects.filter(organization=org, user__email__iexact=email).exists():
        raise ValidationError(f"{email} is already a member of {org.name}.")
    raw = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        organization=org, email=email, role=role, token_hash=hash_token(raw), invited_by=actor.user
    )
    announce("invitation.sent", actor=actor.user, organization=org, target=invitation,
             details={"email": email, "role": role})
    url = (base_url or settings.SITE_URL).rstrip("/") + reverse("invitation", args=[raw])
    context = {"invitation": invitation, "url": url, "inviter": actor.user}
    send_mail(
        # Never a tenant's name in a subject: "Your account is locked - verify at ..." would read as ours.
        subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}You are invited to join an organization",
        message=render_to_string("accounts/email/invitation.txt", context),
        from_email=None,
        recipient_list=[email],
    )
    log.info("invitation sent: org=%s invitation=%s", org.slug, invitation.pk)
    return IssuedInvitation(invitation, url)


def find_invitation(raw_token: str) -> Invitation | None:
    return Invitation.objects.select_related("organization").filter(token_hash=hash_token(raw_token)).first()


@transaction.atomic
def accept_invitation(user: User, raw_token: str) -> Membership:
    invitation = (
        Invitation.objects.select_for_update().select_related("organization")
        .filter(token_hash=hash_token(raw_token)).first()
    )
    if invitation is None:
        raise ValidationError("This invitation link is not valid.")
    if invitation.status != "pending":
        raise ValidationError(f"This invitation is {invitation.status}; ask for a new one.")
    if not user.emailaddress_set.filter(email__iexact=invitation.email, verified=True).exists():
        raise ValidationError(
            f"This invitation was sent to {invitation.email}. Log in with that address "
            "(verified) to accept it."
        )
    try:
        membership = Membership.objects.create(
            user=user, organization=invitation.organization, role=invitation.role
        )
    except IntegrityError:
        raise ValidationError("You are already a member of this organization.") from None
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    announce("invitation.accepted", actor=user, organization=invitation.organization,
             target=invitation)
    announce("member.added", actor=user, organization=invitation.organization, target=user,
             details={"role": membership.role, "invited_by": invitation.invited_by.email
                      if invitation.invited_by else ""})
    return membership


def revoke_invitation(actor: Membership, invitation: Invitation) -> None:
    if not actor.can("manage_members"):
        raise PermissionDenied("Only owners and admins can revoke invitations.")
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])
        announce("invitation.revoked", actor=actor.user, organization=invitation.organization,
                 target=invitation)


# --- SSH keys -------------------------------------------------------------------------------

ALLOWED_KEY_TYPES = {
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
}
MIN_RSA_BITS = 2048


def parse_public_key(text: str) -> tuple[str, str, str]:
    """(key type, normalised 'type base64', SHA256 fingerprint) or ValidationError saying why."""
    text = text.strip()
    if not text:
        raise ValidationError("Paste a public key, e.g. the contents of ~/.ssh/id_ed25519.pub.")
    if "PRIVATE KEY" in text:
        raise ValidationError("That is a private key. Never share it; paste the .pub file instead.")
    if "\n" in text:
        raise ValidationError("Paste exactly one key, on one line.")
    try:
        key = asyncssh.import_public_key(text)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ValidationError(f"This is not a valid OpenSSH public key ({exc}).") from None
    key_type = key.get_algorithm()
    if key_type not in ALLOWED_KEY_TYPES:
        raise ValidationError(f"Key type {key_type} is not accepted; use ed25519, ECDSA or RSA.")
    if key_type == "ssh-rsa":
        bits = key.pyca_key.key_size
        if bits < MIN_RSA_BITS:
            raise ValidationError(f"RSA keys need at least {MIN_RSA_BITS} bits; this one has {bits}.")
    normalised = " ".join(key.export_public_key("openssh").decode().split()[:2])
    blob = key.public_data
    return key_type, normalised, ssh_fingerprint(blob)


def add_ssh_key(user: User, name: str, text: str) -> SSHKey:
    key_type, normalised, fingerprint = parse_public_key(text)
    name = name.strip() or (text.split()[2] if len(text.split()) > 2 else key_type)
    if SSHKey.objects.filter(fingerprint=fingerprint).exists():
        raise ValidationError(f"This key ({fingerprint}) is already registered.")
    try:
        with transaction.atomic():
            key = SSHKey.objects.create(
                user=user, name=name[:100], key_type=key_type, public_key=normalised, fingerprint=fingerprint
            )
            announce("ssh_key.added", actor=user, target=key,
                     details={"fingerprint": fingerprint, "key_type": key_type})
    except IntegrityError:
        raise ValidationError(f"This key ({fingerprint}) is already registered.") from None
    return key


@transaction.atomic
def remove_ssh_key(user: User, key: SSHKey) -> None:
    announce("ssh_key.removed", actor=user, target=key, details={"fingerprint": key.fingerprint})
    key.delete()


# --- API tokens -----------------------------------------------------------------------------


@transaction.atomic
def create_api_token(user: User, name: str, expires_at=None) -> tuple[APIToken, str]:
    """Returns the token and its raw value; the raw value is never stored and shown only once."""
    name = name.strip()
    if not name:
        raise ValidationError("Give the token a name so you can recognise it later.")
    raw = APIToken.generate()
    token = APIToken.objects.create(
        user=user, name=name[:100], prefix=raw[:12], token_hash=hash_token(raw), expires_at=expires_at
    )
    announce("api_token.created", actor=user, target=token, details={"expires_at": expires_at})
    return token, raw


def revoke_api_token(token: APIToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        announce("api_token.revoked", actor=token.user, target=token)


def authenticate_api_token(raw: str) -> APIToken | None:
    token = APIToken.objects.active().select_related("user").filter(token_hash=hash_token(raw)).first()
    if token is None or not token.user.is_active:
        return None
    # Update at most once a minute: a busy integration should not write on every request.
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        APIToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
