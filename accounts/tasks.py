"""Periodic housekeeping for accounts."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from accounts.models import Invitation


@shared_task(name="accounts.tasks.purge_stale_invitations", ignore_result=True)
def purge_stale_invitations(days: int = 30) -> int:
    """Delete invitations that expired or were revoked more than `days` ago and were never used."""
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = Invitation.objects.filter(accepted_at__isnull=True, expires_at__lt=cutoff).delete()
    return deleted
