"""The append-only ledger: entries, idempotency keys, the cached balance, the signup grant, the audit."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from allauth.account.signals import email_confirmed
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from accounts.models import Membership, Organization, Role
from accounts.services import create_organization
from billing import checks, ledger
from billing.models import BillingAccount, CreditEntry, EntryKind, Plan
from billing.tests.conftest import make_org, top_up
from conftest import make_user


@pytest.mark.django_db
def test_it_gives_a_new_organization_its_signup_grant_once(settings):
    settings.BILLING_SIGNUP_GRANT = 7_500
    org = make_org()
    entries = list(CreditEntry.objects.filter(organization=org))
    owner = org.owners().get().user
    assert [(e.kind, e.amount, e.idempotency_key) for e in entries] == [
        (EntryKind.SIGNUP_GRANT, 7_500, f"signup:user:{owner.pk}")
    ]
    assert ledger.grant_signup_credits(owner, org).created is False  # a second delivery changes nothing
    assert CreditEntry.objects.filter(organization=org).count() == 1
    account = BillingAccount.objects.get(organization=org)
    assert account.balance == 7_500 and account.plan == Plan.objects.get_default()


@pytest.mark.django_db
def test_the_grant_comes_once_per_person_however_many_organizations_they_create(settings):
    settings.BILLING_SIGNUP_GRANT = 5_000
    first = make_org("First", email="ten@example.com")
    owner = first.owners().get().user
    more = [create_organization(owner, f"Org {n}") for n in range(9)]
    grants = CreditEntry.objects.filter(kind=EntryKind.SIGNUP_GRANT, organization__in=[first, *more])
    assert [(g.organization, g.amount) for g in grants] == [(first, 5_000)]
    assert all(ledger.get_account(org).balance == 0 for org in more)
    # The same person, asked again for another organization (a replayed signal), still gets nothing.
    assert ledger.grant_signup_credits(owner, more[0]) is None


@pytest.mark.django_db
def test_co_owning_someone_else_s_organization_does_not_use_up_one_s_own_grant(settings):
    settings.BILLING_SIGNUP_GRANT = 5_000
    theirs = make_org("Theirs")
    me = make_user("co-owner@example.com")
    Membership.objects.create(user=me, organization=theirs, role=Role.OWNER)
    mine = create_organization(me, "Mine")
    assert ledger.get_account(mine).balance == 5_000


@pytest.mark.django_db
def test_a_grant_from_before_the_per_person_rule_counts_as_the_owner_s(settings):
    settings.BILLING_SIGNUP_GRANT = 5_000
    user = make_user("legacy@example.com")
    EmailAddress.objects.filter(user=user).update(verified=False)  # so creating it grants nothing new
    old = create_organization(user, "Old")
    ledger.record_entry(old, amount=5_000, kind=EntryKind.SIGNUP_GRANT, idempotency_key=f"signup:{old.pk}")
    EmailAddress.objects.filter(user=user).update(verified=True)
    assert ledger.get_account(create_organization(user, "New")).balance == 0


@pytest.mark.django_db
def test_the_grant_waits_for_a_verified_address(settings):
    settings.BILLING_SIGNUP_GRANT = 5_000
    user = make_user("unverified@example.com")
    EmailAddress.objects.filter(user=user).update(verified=False)
    org = create_organization(user, "Early")
    assert not CreditEntry.objects.filter(organization=org).exists()
    address = EmailAddress.objects.get(user=user)
    address.verified = True
    address.save()
    email_confirmed.send(sender=EmailAddress, request=None, email_address=address)
    assert [e.amount for e in CreditEntry.objects.filter(organization=org)] == [5_000]
    email_confirmed.send(sender=EmailAddress, request=None, email_address=address)  # a second address, later
    assert CreditEntry.objects.filter(organization=org).count() == 1


@pytest.mark.django_db
def test_it_gives_no_grant_when_the_grant_is_zero(settings):
    settings.BILLING_SIGNUP_GRANT = 0
    org = make_org()
    assert not CreditEntry.objects.filter(organization=org).exists()
    assert BillingAccount.objects.get(organization=org).balance == 0


@pytest.mark.django_db
def test_the_grant_rolls_back_with_the_organization():
    user = make_user("dana@example.com")
    with pytest.raises(RuntimeError), transaction.atomic():
        create_organization(user, "Doomed")
        raise RuntimeError
    assert not Organization.objects.filter(name="Doomed").exists()
    assert not CreditEntry.objects.exists()


@pytest.mark.django_db
def test_it_keeps_the_cached_balance_and_each_balance_after_equal_to_the_ledger():
    org = make_org()  # +5.000
    top_up(org, 2_000, kind=EntryKind.TOP_UP)
    ledger.record_entry(org, amount=-1_500, kind=EntryKind.ADJUSTMENT, idempotency_key="fix-1", reason="typo")
    top_up(org, 250, kind=EntryKind.REFUND)
    entries = list(CreditEntry.objects.filter(organization=org).order_by("id"))
    assert [e.balance_after for e in entries] == [5_000, 7_000, 5_500, 5_750]
    assert BillingAccount.objects.get(organization=org).balance == ledger.ledger_sum(org) == 5_750


@pytest.mark.django_db
def test_the_same_idempotency_key_records_one_entry():
    org = make_org()
    first = ledger.record_entry(org, amount=1_000, kind=EntryKind.TOP_UP, idempotency_key="pay-42")
    again = ledger.record_entry(org, amount=1_000, kind=EntryKind.TOP_UP, idempotency_key="pay-42")
    assert first.created and not again.created and again.entry.pk == first.entry.pk
    assert BillingAccount.objects.get(organization=org).balance == 6_000


@pytest.mark.django_db
def test_it_refuses_a_key_reused_for_a_different_entry():
    org, other = make_org(), make_org("Other")
    ledger.record_entry(org, amount=1_000, kind=EntryKind.TOP_UP, idempotency_key="pay-1")
    with pytest.raises(ledger.IdempotencyConflict):
        ledger.record_entry(org, amount=2_000, kind=EntryKind.TOP_UP, idempotency_key="pay-1")
    with pytest.raises(ledger.IdempotencyConflict):
        ledger.record_entry(other, amount=1_000, kind=EntryKind.TOP_UP, idempotency_key="pay-1")
    assert BillingAccount.objects.get(organization=other).balance == 5_000


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "kind", "error"),
    [
        (1.5, EntryKind.GRANT, TypeError),
        (True, EntryKind.GRANT, TypeError),
        (0, EntryKind.ADJUSTMENT, ValueError),
        (-5, EntryKind.TOP_UP, ValueError),
        (-5, EntryKind.REFUND, ValueError),
        (5, EntryKind.USAGE, ValueError),  # usage comes only from usage records
        (5, "bonus", ValueError),
    ],
)
def test_it_refuses_entries_that_break_the_rules(amount, kind, error):
    org = make_org()
    with pytest.raises(error):
        ledger.record_entry(org, amount=amount, kind=kind, idempotency_key="k")
    assert CreditEntry.objects.filter(organization=org).count() == 1


@pytest.mark.django_db
def test_entries_cannot_be_edited_or_deleted_through_django():
    org = make_org()
    entry = CreditEntry.objects.get(organization=org)
    entry.amount = 1
    with pytest.raises(TypeError, match="append-only"):
        entry.save()
    with pytest.raises(TypeError, match="append-only"):
        entry.delete()
    with pytest.raises(TypeError, match="append-only"):
        CreditEntry.objects.filter(pk=entry.pk).update(amount=1)
    with pytest.raises(TypeError, match="append-only"):
        CreditEntry.objects.all().delete()
    assert CreditEntry.objects.get(pk=entry.pk).amount == 5_000


@pytest.mark.django_db
def test_postgresql_refuses_raw_sql_edits_of_the_ledger_but_lets_users_be_deleted(postgres_db):
    org = make_org()
    operator = make_user("ops@example.com")
    entry = top_up(org, 100).entry
    ledger.record_entry(org, amount=100, kind=EntryKind.GRANT, idempotency_key="by-op", created_by=operator,
                          reason="goodwill")
    for sql in ("UPDATE billing_creditentry SET amount = 1 WHERE id = %s",
                "DELETE FROM billing_creditentry WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
            cur.execute(sql, [entry.pk])
    operator.delete()  # Django sets created_by to NULL: the one update the trigger allows
    kept = CreditEntry.objects.get(idempotency_key="by-op")
    assert kept.created_by is None and kept.created_by_email == "ops@example.com"


@pytest.mark.django_db
def test_the_audit_passes_on_a_consistent_ledger_and_fails_on_a_tampered_cache(capsys):
    org = make_org()
    top_up(org, 1_234)
    call_command("billing_audit")
    assert "OK: 1 accounts" in capsys.readouterr().out

    BillingAccount.objects.filter(organization=org).update(balance=999)
    with pytest.raises(CommandError, match="1 mismatch"):
        call_command("billing_audit")
    assert f"organization={org.pk}: cached balance 999 != ledger sum 6234" in capsys.readouterr().err


@pytest.mark.django_db
def test_the_audit_finds_a_broken_running_balance_and_entries_without_an_account():
    org = make_org()
    stray = Organization.objects.create(name="Stray", slug="stray")
    CreditEntry.objects.create(organization=org, amount=10, kind=EntryKind.GRANT, idempotency_key="raw",
                               balance_after=1)  # written around the service: wrong balance_after
    CreditEntry.objects.create(organization=stray, amount=10, kind=EntryKind.GRANT, idempotency_key="raw2",
                               balance_after=10)
    problems = [(p.organization_id, p.problem) for p in checks.audit()]
    assert (stray.pk, "ledger sums to 10 but there is no billing account") in problems
    assert any(o == org.pk and "balance_after 1 != running sum 5010" in p for o, p in problems)
    assert any(o == org.pk and "cached balance 5000 != ledger sum 5010" in p for o, p in problems)


@pytest.mark.django_db(transaction=True)
def test_the_audit_command_exits_non_zero_on_a_mismatch():
    """Run as operators do, in a process of its own, against the (committed) test database."""
    import subprocess
    import sys

    from django.conf import settings

    from paas.testing.processes import child_env

    org = make_org()
    run = [sys.executable, "manage.py", "billing_audit"]
    ok = subprocess.run(run, env=child_env(), cwd=settings.BASE_DIR, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    BillingAccount.objects.filter(organization=org).update(balance=5)
    bad = subprocess.run(run, env=child_env(), cwd=settings.BASE_DIR, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "cached balance 5 != ledger sum 5000" in bad.stderr
