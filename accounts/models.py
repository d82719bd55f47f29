"""Users, organizations (the tenants), memberships, invitations, SSH keys and API tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class User(AbstractUser):
    """Our own user model, so fields can be added later without a painful migration."""

    def __str__(self) -> str:
        return self.email or self.username


class OrganizationQuerySet(models.QuerySet["Organization"]):
    def for_user(self, user: User) -> OrganizationQuerySet:
        if not user.is_authenticated:
            return self.none()
        return self.filter(memberships__user=user)


class Organization(models.Model):
    """A tenant. Everything a customer owns (projects, credits, ...) hangs off one."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=40, unique=True)
    personal = models.BooleanField(default=False, help_text="Created automatically for a new user.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrganizationQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def owners(self) -> models.QuerySet[Membership]:
        return self.memberships.filter(role=Role.OWNER)


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


# What each role may do. Views and services ask Membership.can(...) rather than
# comparing roles, so the matrix lives in one place.
PERMISSIONS: dict[str, set[str]] = {
    "view": {Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER},
    "deploy": {Role.OWNER, Role.ADMIN, Role.MEMBER},
    "manage_members": {Role.OWNER, Role.ADMIN},
    "manage_organization": {Role.OWNER, Role.ADMIN},
    "view_billing": {Role.OWNER, Role.ADMIN},
    "view_audit": {Role.OWNER, Role.ADMIN},
    "delete_organization": {Role.OWNER},
    # Bringing a deleted project back (within its grace period) revives its data and redeploys it.
    "restore_project": {Role.OWNER},
}


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="one_membership_per_org")]
        ordering = ["organization__name", "user__email"]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"

    def can(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]

    def can_assign(self, role: str) -> bool:
        """Admins manage members but cannot create or demote owners; owners can do anything."""
        if self.role == Role.OWNER:
            return True
        return self.role == Role.ADMIN and role != Role.OWNER


def hash_token(raw: str) -> str:
    # Tokens are 256-bit random values, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(raw.encode()).hexdigest()


def default_invitation_expiry():
    return timezone.now() + timedelta(hours=settings.INVITATION_TTL_HOURS)


class Invitation(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(default=default_invitation_expiry)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} to {self.organization}"

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > timezone.now()

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"


class SSHKey(models.Model):
    """A user's public key, used by the SSH gateway to let them into their projects' pods."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ssh_keys")
    name = models.CharField(max_length=100)
    key_type = models.CharField(max_length=40)
    public_key = models.TextField(help_text="Normalised to 'type base64', comment dropped.")
    fingerprint = models.CharField(max_length=100, unique=True, help_text="SHA256 fingerprint, as OpenSSH shows it.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "SSH key"

    def __str__(self) -> str:
        return f"{self.name} ({self.fingerprint})"


def ssh_fingerprint(key_blob: bytes) -> str:
    digest = hashlib.sha256(key_blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


TOKEN_PREFIX = "paas_"  # noqa: S105  (a public prefix, not a secret)


class APITokenQuerySet(models.QuerySet["APIToken"]):
    def active(self) -> APITokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class APIToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the value is shown once at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise a token in lists.")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = APITokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)

    @property
    def is_active(self) -> bool:
        if self.revoked_at:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()
