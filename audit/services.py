"""Recording audit events. Other apps' services call `record(...)` (or `record_session(...)` for terminal and
SSH sessions) in the same transaction as the change they describe, so an event exists exactly when the change
does.

The client's IP is `ip` when given (consumers and the SSH gateway: `ip_from_scope(scope)` or the peer
address), else taken from `request`, else from the request being served (set by
audit.middleware.RequestContextMiddleware, so services need no request parameter just for the IP).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from allauth.account.adapter import get_adapter
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import models
from django.http import HttpRequest

from accounts.models import Organization, User
from audit.models import Action, AuditEvent

__all__ = ["Action", "client_ip", "ip_from_scope", "record", "record_session"]

log = logging.getLogger(__name__)

current_request: ContextVar[HttpRequest | None] = ContextVar("audit_current_request", default=None)

# Keys that would carry a secret value. A caller passing one is a bug, so it fails loudly instead of logging it.
SECRET_WORDS = ("value", "password", "secret", "token", "credential", "private")


def _valid_ip(value: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address((value or "").strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as allauth's rate limits see it: REMOTE_ADDR, or the address a trusted proxy
    passed on when TRUSTED_PROXY_COUNT says there is one."""
    try:
        return _valid_ip(get_adapter().get_client_ip(request))
    except (PermissionDenied, ImproperlyConfigured):
        return None


def ip_from_scope(scope: Mapping[str, Any]) -> str | None:
    """The client's address of an ASGI (WebSocket) connection."""
    client = scope.get("client")
    return _valid_ip(client[0]) if client else None


def _check_details(details: Mapping[str, Any]) -> None:
    for key, value in details.items():
        if any(word in str(key).lower() for word in SECRET_WORDS):
            raise ValueError(f"Audit details must never carry secrets; rename or drop {key!r}.")
        if isinstance(value, Mapping):
            _check_details(value)


def _actor_label(actor: User | None) -> str:
    return (actor.email or actor.username) if actor is not None else ""


def record(action: Action | str, *, actor: User | None, organization: Organization | None = None,
           request: HttpRequest | None = None, target: models.Model | None = None,
           details: Mapping[str, Any] | None = None, ip: str | None = None, actor_label: str = "") -> AuditEvent:
    """Append one event. `actor_label` names an actor who is not a user (e.g. the e-mail a failed login tried)."""
    action = Action(action)
    details = dict(details or {})
    _check_details(details)
    if actor is not None and not actor.is_authenticated:
        actor = None  # AnonymousUser
    if ip is None:
        request = request if request is not None else current_request.get()
        ip = client_ip(request) if request is not None else None
    return AuditEvent.objects.create(
        action=action, actor=actor, actor_label=(actor_label or _actor_label(actor))[:254],
        organization=organization, organization_label=organization.slug if organization else "",
        ip_address=_valid_ip(ip),
        target_type=target._meta.model_name if target is not None else "",
        target_id=str(target.pk or "") if target is not None else "",
        target_label=str(target)[:200] if target is not None else "",
        details=details,
    )


def record_session(action: Action, *, actor: User, organization: Organization, target: models.Model, pod: str,
                   container: str = "", duration_seconds: float, bytes_in: int, bytes_out: int,
                   exit_status: int | None = None, ip: str | None = None) -> AuditEvent:
    """A finished terminal or SSH session: who, which pod, how long and how much, never what was typed."""
    if action not in (Action.TERMINAL_SESSION, Action.SSH_SESSION):
        raise ValueError(f"{action} is not a session action.")
    return record(action, actor=actor, organization=organization, target=target, ip=ip, details={
        "pod": pod, "container": container, "duration_seconds": round(duration_seconds, 3),
        "bytes_in": bytes_in, "bytes_out": bytes_out, "exit_status": exit_status})
