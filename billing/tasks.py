"""Periodic billing work: charging closed usage windows and suspensions. The balance e-mails' tasks live in
billing.notices (imported here so the worker registers them)."""

from __future__ import annotations

from celery import shared_task

from billing import suspension, usage
from billing.notices import send_balance_notification, send_pending_notifications

__all__ = ["charge_closed_windows", "enforce_suspensions", "send_balance_notification", "send_pending_notifications"]


@shared_task(name="billing.charge_closed_windows", ignore_result=True)
def charge_closed_windows() -> int:
    """Beat job: one ledger entry per organization and closed window, then grace-period checks.
    A duplicated or retried run finds the windows already charged and does nothing."""
    results = usage.charge_closed_windows()
    suspension.enforce_suspensions()
    return len(results)


@shared_task(name="billing.enforce_suspensions", ignore_result=True)
def enforce_suspensions() -> int:
    """Beat job: suspend organizations whose grace period at zero has ended."""
    return len(suspension.enforce_suspensions())


