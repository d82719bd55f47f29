"""The audit log: one append-only row per security-relevant action (who, where from, when, on what)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove an audit event through the ORM."""


class Action(models.TextChoices):
    LOGIN = "auth.login", "Logged in"
    LOGIN_FAILED = "auth.login_failed", "Login failed"
    MFA_CHANGED = "auth.mfa_changed", "Two-factor authentication changed"
    PASSWORD_CHANGED = "auth.password_changed", "Password changed"
    ORGANIZATION_CREATED = "organization.created", "Organization created"
    MEMBER_ADDED = "member.added", "Member added"
    MEMBER_REMOVED = "member.removed", "Member removed"
    MEMBER_ROLE_CHANGED = "member.role_changed", "Member's role changed"
    INVITATION_SENT = "invitation.sent", "Invitation sent"
    INVITATION_ACCEPTED = "invitation.accepted", "Invitation accepted"
    INVITATION_REVOKED = "invitation.revoked", "Invitation revoked"
    API_TOKEN_CREATED = "api_token.created", "API token created"
    API_TOKEN_REVOKED = "api_token.revoked", "API token revoked"
    SSH_KEY_ADDED = "ssh_key.added", "SSH key added"
    SSH_KEY_REMOVED = "ssh_key.removed", "SSH key removed"
    VARIABLE_SET = "variable.set", "Variable set"
    VARIABLE_UNSET = "variable.unset", "Variable removed"
    SECRET_SET = "secret.set", "Secret set"
    SECRET_UNSET = "secret.unset", "Secret removed"
    PROJECT_CREATED = "project.created", "Project created"
    PROJECT_DEPLOYED = "project.deployed", "Project deployed"
    PROJECT_ROLLED_BACK = "project.rolled_back", "Project rolled back"
    PROJECT_DELETED = "project.deleted", "Project deleted"
    PROJECT_RESTORED = "project.restored", "Project restored"
    CREDENTIAL_REVEALED = "credential.revealed", "Credentials revealed"
    DOMAIN_ADDED = "domain.added", "Custom domain added"
    DOMAIN_VERIFIED = "domain.verified", "Custom domain verified"
    DOMAIN_REMOVED = "domain.removed", "Custom domain removed"
    CLUSTER_TOKEN_ISSUED = "cluster.token_issued", "Cluster agent token issued"
    CLUSTER_TOKEN_ROTATED = "cluster.token_rotated", "Cluster agent token rotated"
    CLUSTER_TOKEN_REVOKED = "cluster.token_revoked", "Cluster agent token revoked"
    TERMINAL_SESSION = "terminal.session", "Terminal session"
    SSH_SESSION = "ssh.session", "SSH session"
    DATABASE_DUMPED = "database.dumped", "Database dumped"
    DATABASE_RESTORED = "database.restored", "Database restored"
    KUBE_ACCESS_CREATED = "kube_access.created", "kubectl access created"
    KUBE_ACCESS_REVOKED = "kube_access.revoked", "kubectl access revoked"


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    # Bulk writes would bypass the model's own refusal; refuse them here too. (Deleting a user or an
    # organization still clears the link through Django's collector; the labels keep who and where.)
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("The audit log is append-only: events cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("The audit log is append-only: events cannot be deleted.")


class AuditEvent(models.Model):
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+", help_text="Empty for the system, anonymous visitors or deleted users.")
    actor_label = models.CharField(max_length=254, blank=True, help_text="The actor's e-mail, kept after deletion.")
    organization = models.ForeignKey("accounts.Organization", on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="audit_events", help_text="Empty for user-level events.")
    organization_label = models.CharField(max_length=40, blank=True, help_text="The organization's slug, kept.")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=40, choices=Action.choices)
    target_type = models.CharField(max_length=40, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_label = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder,
                               help_text="Names and numbers only, never secret values.")

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="audit_org_time")]
        # Only "view": Django's add/change/delete permissions would suggest an edit path that must not exist.
        default_permissions = ["view"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor_label or 'system'}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("The audit log is append-only: events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("The audit log is append-only: events cannot be deleted.")
