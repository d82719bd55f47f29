"""Signals accounts sends. Its own receivers (allauth, open sockets) are in accounts.receivers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import models
from django.dispatch import Signal

from accounts.models import Organization, User

# Sent inside the transaction that creates an organization; kwargs: organization, user (its creator).
organization_created = Signal()

# Sent (by `announce`) inside the transaction of each security-relevant change accounts makes. The audit app, which
# sits above accounts, records it (audit.receivers), so accounts need not know the audit log exists; a receiver
# that raises rolls the change back with it. kwargs: action (an audit.models.Action value, e.g. "member.removed"),
# actor, organization, target, details (names, never secret values).
security_event = Signal()


def announce(action: str, *, actor: User | None, organization: Organization | None = None,
             target: models.Model | None = None, details: Mapping[str, Any] | None = None) -> None:
    security_event.send(sender=None, action=action, actor=actor, organization=organization, target=target,
                        details=details or {})
