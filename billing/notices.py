"""Balance e-mails to owners and admins: one per threshold crossing (`BalanceNotification`), sent by a task
queued after the transaction that crossed it commits, and re-queued by a beat job if that task was lost."""

from __future__ import annotations

import logging
import smtplib
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from billing.models import BalanceNotification, BillingAccount
from billing.reports import billing_contacts

log = logging.getLogger(__name__)


# No organization name in a subject: tenants choose names, and a subject must only ever read as ours.
SUBJECTS = {
    BalanceNotification.Kind.LOW: "An organization you manage is running low on credits",
    BalanceNotification.Kind.ZERO: "An organization you manage is out of credits",
    BalanceNotification.Kind.SUSPENDED: "An organization you manage is suspended: out of credits",
}


@shared_task(
    name="billing.send_balance_notification", ignore_result=True,
    autoretry_for=(smtplib.SMTPException, OSError), max_retries=5, retry_backoff=60, retry_jitter=True,
)
def send_balance_notification(notification_id: int) -> bool:
    """E-mail owners and admins about one threshold crossing. Claimed with compare-and-set, so two
    deliveries of this task send one e-mail; released again if sending fails, for the retry."""
    now = timezone.now()
    if not BalanceNotification.objects.filter(pk=notification_id, sent_at__isnull=True).update(sent_at=now):
        return False  # gone, or another worker got there first
    notice = BalanceNotification.objects.select_related("organization").get(pk=notification_id)
    org = notice.organization
    recipients = billing_contacts(org)
    account = BillingAccount.objects.filter(organization=org).first()
    context = {
        "notice": notice,
        "org": org,
        "account": account,
        "threshold": settings.BILLING_LOW_BALANCE_THRESHOLD,
        "url": settings.SITE_URL + reverse("billing", args=[org.slug]),
    }
    try:
        if recipients:
            send_mail(
                subject=settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + SUBJECTS[notice.kind],
                message=render_to_string("billing/email/balance_notice.txt", context),
                from_email=None,
                recipient_list=recipients,
            )
    except Exception:
        BalanceNotification.objects.filter(pk=notification_id).update(sent_at=None)
        raise
    BalanceNotification.objects.filter(pk=notification_id).update(recipients=", ".join(recipients))
    log.info("balance notice sent: org=%s kind=%s to=%d", org.pk, notice.kind, len(recipients))
    return True


@shared_task(name="billing.send_pending_notifications", ignore_result=True)
def send_pending_notifications() -> int:
    """Beat job: queue notices whose task was lost (broker down at commit time, worker crash)."""
    stale = BalanceNotification.objects.filter(
        sent_at__isnull=True, created_at__lte=timezone.now() - timedelta(minutes=2)
    ).values_list("pk", flat=True)
    ids = list(stale[:500])
    for pk in ids:
        send_balance_notification.delay(pk)
    return len(ids)
