"""Running out and coming back: threshold e-mails once per crossing, grace, suspension, resumption,
the signals other apps listen to, and refused deploys."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.core import mail
from django.dispatch import receiver
from django.utils import timezone

from accounts.models import Membership, Role
from accounts.services import create_organization
from billing import ledger, suspension
from billing.models import BalanceNotification, BillingAccount, EntryKind, SuspensionAction, SuspensionRecord
from billing.signals import organization_resumed, organization_suspended
from billing.tests.conftest import make_org, top_up
from conftest import make_user

_spent = itertools.count()


def spend(org, amount: int, now=None) -> None:
    ledger.record_entry(org, amount=-amount, kind=EntryKind.ADJUSTMENT, idempotency_key=f"spend:{next(_spent)}",
                          now=now)


def account(org) -> BillingAccount:
    return BillingAccount.objects.get(organization=org)


@pytest.fixture
def signals():
    """Every suspended/resumed signal sent while the test runs, as (action, organization id, record)."""
    sent = []

    @receiver(organization_suspended, weak=False)
    def on_suspended(sender, organization, record, **kwargs):
        sent.append(("suspended", organization.pk, record))

    @receiver(organization_resumed, weak=False)
    def on_resumed(sender, organization, record, **kwargs):
        sent.append(("resumed", organization.pk, record))

    yield sent
    organization_suspended.disconnect(on_suspended)
    organization_resumed.disconnect(on_resumed)


@pytest.mark.django_db
def test_low_balance_and_zero_e_mail_owners_and_admins_once_per_crossing(
    settings, eager_tasks, django_capture_on_commit_callbacks
):
    org = make_org("Acme", email="alice@example.com")  # 5,000; low at 1,000
    admin, member = make_user("ada@example.com"), make_user("bob@example.com")
    Membership.objects.create(user=admin, organization=org, role=Role.ADMIN)
    Membership.objects.create(user=member, organization=org, role=Role.MEMBER)

    with django_capture_on_commit_callbacks(execute=True):
        spend(org, 3_999)  # 1,001: not yet low
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        spend(org, 1)  # 1,000: low
    with django_capture_on_commit_callbacks(execute=True):
        spend(org, 500)  # still low: no second e-mail
    assert [m.subject for m in mail.outbox] == ["[PaaS] An organization you manage is running low on credits"]
    assert sorted(mail.outbox[0].to) == ["ada@example.com", "alice@example.com"]
    assert "1.000 credits left" in mail.outbox[0].body
    assert "/o/acme/billing/" in mail.outbox[0].body

    with django_capture_on_commit_callbacks(execute=True):
        spend(org, 500)  # zero
    with django_capture_on_commit_callbacks(execute=True):
        spend(org, 10)  # below zero: no second e-mail
    assert [m.subject for m in mail.outbox][1:] == ["[PaaS] An organization you manage is out of credits"]
    assert "will be suspended" in mail.outbox[1].body

    with django_capture_on_commit_callbacks(execute=True):
        top_up(org, 5_000)  # back to OK re-arms both thresholds
        spend(org, 4_500)
    assert [m.subject for m in mail.outbox][2:] == ["[PaaS] An organization you manage is running low on credits"]
    assert BalanceNotification.objects.filter(sent_at__isnull=True).count() == 0


@pytest.mark.django_db
def test_balance_e_mails_keep_the_organization_name_out_of_the_subject(
    eager_tasks, django_capture_on_commit_callbacks
):
    phishing = "Your account is locked - verify at https://evil.example/login"
    org = make_org(phishing)
    with django_capture_on_commit_callbacks(execute=True):
        spend(org, 6_000)
    (message,) = mail.outbox
    assert "evil.example" not in message.subject and "locked" not in message.subject
    assert f"The organization “{phishing}” is out of credits" in message.body


@pytest.mark.django_db
def test_dropping_straight_to_zero_sends_one_e_mail(eager_tasks, django_capture_on_commit_callbacks):
    org = make_org()
    with django_capture_on_commit_callbacks(execute=True):
        spend(org, 6_000)
    assert [m.subject for m in mail.outbox] == ["[PaaS] An organization you manage is out of credits"]


@pytest.mark.django_db
def test_without_grace_reaching_zero_sends_only_the_suspension_e_mail(
    settings, eager_tasks, django_capture_on_commit_callbacks
):
    settings.BILLING_SUSPEND_GRACE_MINUTES = 0
    org = make_org()
    with django_capture_on_commit_callbacks(execute=True):
        spend(org, 6_000)
    assert [m.subject for m in mail.outbox] == ["[PaaS] An organization you manage is suspended: out of credits"]
    assert "will not wake up on requests" in mail.outbox[0].body


@pytest.mark.django_db
def test_a_notice_is_sent_once_even_if_its_task_runs_twice(eager_tasks):
    from billing.tasks import send_balance_notification

    org = make_org()
    spend(org, 4_500)  # low; the on_commit task does not run in this transaction
    notice = BalanceNotification.objects.get()
    assert send_balance_notification(notice.pk) is True
    assert send_balance_notification(notice.pk) is False
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_a_notice_whose_task_was_lost_is_sent_by_the_sweeper(eager_tasks):
    from billing.tasks import send_pending_notifications

    org = make_org()
    spend(org, 4_500)
    assert send_pending_notifications() == 0  # too fresh: its own task may still be on the way
    BalanceNotification.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    assert send_pending_notifications() == 1
    assert len(mail.outbox) == 1 and send_pending_notifications() == 0


@pytest.mark.django_db
def test_at_zero_the_grace_period_runs_then_the_organization_is_suspended(signals):
    org = make_org()
    now = timezone.now()
    spend(org, 5_000, now=now)
    acc = account(org)
    assert acc.grace_until == now + timedelta(minutes=60) and not acc.is_suspended
    suspension.ensure_can_deploy(org)  # still allowed during the grace period

    assert suspension.enforce_suspensions(now + timedelta(minutes=59)) == []
    assert signals == []
    assert suspension.enforce_suspensions(now + timedelta(minutes=60)) == [org.pk]
    assert suspension.enforce_suspensions(now + timedelta(minutes=61)) == []  # once per transition
    acc = account(org)
    assert acc.suspended_at == now + timedelta(minutes=60)
    record = SuspensionRecord.objects.get(organization=org)
    assert record.action == SuspensionAction.SUSPENDED and record.balance == 0
    assert signals == [("suspended", org.pk, record)]
    with pytest.raises(suspension.DeployRefused, match="Top up credits"):
        suspension.ensure_can_deploy(org)


@pytest.mark.django_db
def test_a_top_up_lifts_the_suspension_and_records_it(signals, settings):
    settings.BILLING_SUSPEND_GRACE_MINUTES = 0
    org = make_org()
    spend(org, 5_100)
    assert account(org).is_suspended and [s[0] for s in signals] == ["suspended"]

    top_up(org, 50)  # still below zero: stays suspended
    assert account(org).is_suspended and len(signals) == 1

    operator = make_user("ops@example.com")
    ledger.record_entry(org, amount=1_000, kind=EntryKind.TOP_UP, idempotency_key="pay-1", created_by=operator)
    acc = account(org)
    assert not acc.is_suspended and acc.grace_until is None
    suspension.ensure_can_deploy(org)
    records = list(SuspensionRecord.objects.filter(organization=org).order_by("id"))
    assert [(r.action, r.balance) for r in records] == [("suspended", -100), ("resumed", 950)]
    assert records[1].created_by == operator
    assert signals == [("suspended", org.pk, records[0]), ("resumed", org.pk, records[1])]

    top_up(org, 1_000)  # no transition, no signal
    assert len(signals) == 2


@pytest.mark.django_db
def test_the_grace_period_can_be_set_per_organization(settings):
    settings.BILLING_SUSPEND_GRACE_MINUTES = 60
    org = make_org()
    BillingAccount.objects.filter(organization=org).update(grace_minutes=0)
    spend(org, 5_000)
    assert account(org).is_suspended


@pytest.mark.django_db
def test_a_failing_receiver_does_not_break_the_ledger(settings, caplog):
    settings.BILLING_SUSPEND_GRACE_MINUTES = 0

    @receiver(organization_suspended, weak=False)
    def broken(sender, organization, **kwargs):
        Membership.objects.filter(organization=organization).delete()  # written, then rolled back
        raise RuntimeError("projects app is down")

    try:
        org = make_org()
        spend(org, 5_000)
    finally:
        organization_suspended.disconnect(broken)
    assert account(org).is_suspended and ledger.ledger_sum(org) == 0
    assert Membership.objects.filter(organization=org).exists()
    assert "receiver of organization_suspended failed" in caplog.text


@pytest.mark.django_db
def test_an_organization_that_never_had_credits_is_not_suspended_until_it_uses_some(settings):
    settings.BILLING_SIGNUP_GRANT = 0
    org = make_org()
    assert suspension.enforce_suspensions(timezone.now() + timedelta(days=30)) == []
    # Not suspended, but it cannot deploy before it is funded.
    with pytest.raises(suspension.DeployRefused, match="has no credits yet") as refused:
        suspension.ensure_can_deploy(org)
    assert refused.value.code == "organization_unfunded"
    top_up(org, 1)
    suspension.ensure_can_deploy(org)


@pytest.mark.django_db
def test_a_suspended_user_s_new_organization_does_not_escape_the_suspension(settings):
    settings.BILLING_SUSPEND_GRACE_MINUTES = 0
    org = make_org()
    spend(org, 5_100)
    assert account(org).is_suspended
    fresh = create_organization(org.owners().get().user, "Fresh start")
    assert account(fresh).balance == 0
    with pytest.raises(suspension.DeployRefused, match="has no credits yet"):
        suspension.ensure_can_deploy(fresh)
