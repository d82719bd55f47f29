"""Operators: the ledger is read-only in admin; grants, top-ups, refunds and adjustments are added
with a mandatory reason; the manual payment provider; plans and their limits."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import PermissionDenied

from billing import ledger
from billing.models import BillingAccount, CreditEntry, EntryKind, Plan
from billing.money import MAX_ENTRY_MILLICREDITS
from billing.providers import ManualTopUpProvider, PaymentProvider, get_provider
from conftest import make_user


def add_form(admin_client) -> str:
    page = admin_client.get("/admin/billing/creditentry/add/").content.decode()
    return re.search(r'name="idempotency_key" value="([^"]+)"', page).group(1)


@pytest.mark.django_db
def test_an_operator_adds_an_adjustment_with_a_reason(admin_client, admin_user, personas):
    key = add_form(admin_client)
    data = {"organization": personas.org.pk, "kind": "adjustment", "credits": "-1.25", "reference": "INC-7",
            "reason": "Double-charged on 3 Jan", "idempotency_key": key}
    response = admin_client.post("/admin/billing/creditentry/add/", data)
    assert response.status_code == 302, response.content
    entry = CreditEntry.objects.get(idempotency_key=key)
    assert (entry.amount, entry.kind, entry.reason, entry.created_by) == (
        -1_250, EntryKind.ADJUSTMENT, "Double-charged on 3 Jan", admin_user
    )
    assert BillingAccount.objects.get(organization=personas.org).balance == 3_750

    admin_client.post("/admin/billing/creditentry/add/", data)  # the same form submitted again
    assert CreditEntry.objects.filter(organization=personas.org).count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"reason": "  "}, "This field is required"),
        ({"kind": "grant", "credits": "-1"}, "Only adjustments can be negative"),
        ({"credits": "0"}, "Zero moves no credits"),
        ({"credits": "0.0001"}, "at most three decimals"),
        ({"kind": "usage"}, "Select a valid choice"),
        ({"credits": "99999999999999999999"}, "At most 1,000,000,000,000.000 credits"),
        ({"kind": "top_up", "credits": "99999999999999999999"}, "At most 1,000,000,000,000.000 credits"),
        ({"kind": "adjustment", "credits": "-1e999999999"}, "At most 1,000,000,000,000.000 credits"),
    ],
)
def test_the_operator_form_refuses_what_the_ledger_would_not_take(admin_client, personas, changes, error):
    data = {"organization": personas.org.pk, "kind": "grant", "credits": "10", "reason": "promo",
            "idempotency_key": add_form(admin_client), **changes}
    response = admin_client.post("/admin/billing/creditentry/add/", data)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert CreditEntry.objects.filter(organization=personas.org).count() == 1


@pytest.mark.django_db
def test_a_manual_top_up_from_admin_goes_through_the_provider(admin_client, admin_user, personas):
    key = add_form(admin_client)
    admin_client.post("/admin/billing/creditentry/add/", {
        "organization": personas.org.pk, "kind": "top_up", "credits": "20", "reference": "bank transfer 889",
        "reason": "Paid invoice 2026-001", "idempotency_key": key,
    })
    entry = CreditEntry.objects.get(kind=EntryKind.TOP_UP)
    assert entry.idempotency_key == f"topup:manual:{key}"
    assert (entry.amount, entry.reference, entry.created_by) == (20_000, "bank transfer 889", admin_user)


@pytest.mark.django_db
def test_entries_are_read_only_in_admin(admin_client, personas):
    entry = CreditEntry.objects.get(organization=personas.org)
    page = admin_client.get(f"/admin/billing/creditentry/{entry.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content and b"signup:" in page.content
    admin_client.post(f"/admin/billing/creditentry/{entry.pk}/change/", {"reason": "edited"})
    assert admin_client.get(f"/admin/billing/creditentry/{entry.pk}/delete/").status_code == 403
    admin_client.post("/admin/billing/creditentry/", {"action": "delete_selected", "_selected_action": [entry.pk]})
    assert CreditEntry.objects.get(pk=entry.pk).reason == ""
    assert admin_client.get("/admin/billing/creditentry/").status_code == 200


@pytest.mark.django_db
def test_the_manual_provider_is_for_operators_and_idempotent_on_the_payment(personas):
    provider = get_provider("manual")
    assert isinstance(provider, ManualTopUpProvider) and isinstance(provider, PaymentProvider)
    with pytest.raises(PermissionDenied):
        provider.top_up(personas.org, 1_000, payment_id="p1", actor=personas.owner)
    operator = make_user("ops@example.com")
    operator.is_staff = True
    operator.save()
    first = provider.top_up(personas.org, 1_000, payment_id="p1", actor=operator)
    again = provider.top_up(personas.org, 1_000, payment_id="p1", actor=operator)
    assert first.created and not again.created
    assert first.entry.reference == "Manual top-up by ops@example.com"
    with pytest.raises(ValueError):
        provider.top_up(personas.org, 1_000, payment_id="", actor=operator)
    with pytest.raises(ValueError, match="No payment provider"):
        get_provider("card")


@pytest.mark.django_db
def test_there_is_one_default_plan_and_organizations_get_it():
    default = Plan.objects.get_default()
    assert default.slug == "default" and Plan.objects.get_default() == default
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Plan.objects.create(name="Other", slug="other", is_default=True)


@pytest.mark.django_db
def test_the_operator_form_refuses_an_entry_that_would_overflow_the_balance(admin_client, personas):
    for n in range(99):  # 99 entries of the most one entry may move; the 100th would pass the most a balance holds
        ledger.record_entry(personas.org, amount=MAX_ENTRY_MILLICREDITS, kind=EntryKind.GRANT,
                              idempotency_key=f"big:{n}")
    data = {"organization": personas.org.pk, "kind": "grant", "credits": "1000000000000", "reason": "promo",
            "idempotency_key": add_form(admin_client)}
    response = admin_client.post("/admin/billing/creditentry/add/", data)
    assert response.status_code == 200 and "That would take the balance beyond" in response.content.decode()
    assert CreditEntry.objects.filter(organization=personas.org).count() == 100


@pytest.mark.django_db
def test_plan_prices_out_of_range_are_refused_with_a_message(admin_client):
    plan = Plan(name="Big", slug="big")
    data = {f.name: getattr(plan, f.name) for f in Plan._meta.fields if f.editable and f.name not in ("id",)}
    data.update(is_default="", price_vcpu_second="99999999999999999999")
    response = admin_client.post("/admin/billing/plan/add/", data)
    assert response.status_code == 200
    assert "Ensure this value is less than or equal to" in response.content.decode()
    assert not Plan.objects.filter(slug="big").exists()
