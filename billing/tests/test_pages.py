"""The billing page, CSV exports, the balance card and the banner, for owner, admin, member, outsider."""

from __future__ import annotations

import csv
import io

import pytest

from accounts.models import Membership, Role
from billing import ledger, usage
from billing.models import BillingAccount, EntryKind
from billing.tests.conftest import iso, recent_window, report, top_up
from conftest import make_user


@pytest.fixture
def acme(personas):
    """Acme with some history: its signup grant, a top-up, a charged usage window."""
    org = personas.org
    ledger.record_entry(org, amount=2_500, kind=EntryKind.TOP_UP, idempotency_key="pay-1",
                          reference="=HYPERLINK(evil)")
    start = recent_window()
    usage.record_usage(org, report(window_start=iso(start), replicas=2))
    usage.charge_window(org.pk, start)
    return org


def csv_rows(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.mark.django_db
def test_owners_and_admins_see_everything(client, personas, acme):
    ada = make_user("ada@example.com")
    Membership.objects.create(user=ada, organization=acme, role=Role.ADMIN)
    for user in (personas.owner, ada):
        client.force_login(user)
        response = client.get("/o/acme/billing/")
        page = response.content.decode()
        assert response.status_code == 200
        assert 'data-testid="balance">7.498' in page  # 5 + 2.5 - 0.002 (0.00064 carried)
        for part in ("burn-rate", "time-left", "usage-chart", "ledger-row", "ledger-csv", "usage-csv",
                     "vendor/chart.js/chart.umd.js"):
            assert part in page, part
        assert response.context["page"].paginator.count == 3
        assert response.context["chart"]["datasets"][0]["label"] == "acme-shop"  # stacked per project


@pytest.mark.django_db
def test_members_see_only_the_balance(client, personas, acme):
    client.force_login(personas.member)
    response = client.get("/o/acme/billing/")
    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="balance">7.498' in page
    for secret in ("burn-rate", "usage-chart", "ledger-row", "ledger-csv", "pay-1", "HYPERLINK"):
        assert secret not in page, secret
    assert client.get("/o/acme/billing/ledger.csv").status_code == 403
    assert client.get("/o/acme/billing/usage.csv").status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/o/acme/billing/", "/o/acme/billing/ledger.csv", "/o/acme/billing/usage.csv"])
def test_outsiders_see_nothing(client, personas, acme, url):
    client.force_login(personas.outsider)
    response = client.get(url)
    assert response.status_code == 404
    assert b"Acme" not in response.content and b"7.498" not in response.content
    client.logout()
    assert client.get(url).status_code == 302  # to the login page


@pytest.mark.django_db
def test_the_ledger_can_be_filtered_and_paged(client, personas, acme):
    for _ in range(60):
        top_up(acme, 1)
    client.force_login(personas.owner)
    response = client.get("/o/acme/billing/", {"kind": "top_up"})
    assert [e.kind for e in response.context["page"]] == ["top_up"]
    response = client.get("/o/acme/billing/", {"kind": "grant"})
    assert response.context["page"].paginator.count == 60
    assert "?kind=grant&amp;page=2" in response.content.decode()
    page2 = client.get("/o/acme/billing/", {"kind": "grant", "page": 2})
    assert len(page2.context["page"]) == 10
    none = client.get("/o/acme/billing/", {"since": "2000-01-01", "until": "2000-01-02"})
    assert none.context["page"].paginator.count == 0 and b"match these filters" in none.content
    bad = client.get("/o/acme/billing/", {"since": "2001-01-02", "until": "2001-01-01"})
    assert bad.status_code == 200 and b"on or before" in bad.content


@pytest.mark.django_db
def test_the_ledger_csv_has_every_entry_and_defuses_formulas(client, personas, acme):
    client.force_login(personas.owner)
    response = client.get("/o/acme/billing/ledger.csv")
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="acme-ledger.csv"' in response["Content-Disposition"]
    rows = csv_rows(response)
    assert [(r["kind"], r["amount_millicredits"], r["amount_credits"]) for r in rows] == [
        ("signup_grant", "5000", "5.000"), ("top_up", "2500", "2.500"), ("usage", "-2", "-0.002"),
    ]
    assert rows[1]["reference"] == "'=HYPERLINK(evil)"
    assert [r["balance_after_millicredits"] for r in rows] == ["5000", "7500", "7498"]
    only_usage = csv_rows(client.get("/o/acme/billing/ledger.csv", {"kind": "usage"}))
    assert [r["kind"] for r in only_usage] == ["usage"]


@pytest.mark.django_db
def test_the_usage_csv_lists_each_window_with_its_exact_cost(client, personas, acme):
    client.force_login(personas.owner)
    rows = csv_rows(client.get("/o/acme/billing/usage.csv"))
    assert len(rows) == 1
    row = rows[0]
    assert (row["project"], row["service"], row["replica_seconds"]) == ("acme-shop", "web", "120")
    assert row["cost_millicredits"] == "2.640000" and row["charge_key"].startswith("usage:")
    assert csv_rows(client.get("/o/acme/billing/usage.csv", {"service": "db"})) == []


@pytest.mark.django_db
def test_the_organization_home_shows_the_balance_and_the_nav_links_to_billing(client, personas, acme):
    client.force_login(personas.member)
    page = client.get("/o/acme/").content.decode()
    assert 'data-testid="org-balance-card"' in page and "7.498 credits" in page
    assert 'href="/o/acme/billing/"' in page


@pytest.mark.django_db
def test_the_banner_warns_owners_of_low_balance_and_everyone_of_a_suspension(client, personas, settings):
    settings.BILLING_SUSPEND_GRACE_MINUTES = 0
    org = personas.org
    ledger.record_entry(org, amount=-4_500, kind=EntryKind.ADJUSTMENT, idempotency_key="a")
    client.force_login(personas.owner)
    assert b"Low balance:</strong> 0.500 credits left" in client.get("/o/acme/").content
    client.force_login(personas.member)
    assert b"billing-banner" not in client.get("/o/acme/").content

    ledger.record_entry(org, amount=-600, kind=EntryKind.ADJUSTMENT, idempotency_key="b")
    assert BillingAccount.objects.get(organization=org).is_suspended
    for user in (personas.member, personas.owner):
        client.force_login(user)
        page = client.get("/o/acme/members/").content
        assert b"Acme is suspended: out of credits." in page
    client.force_login(personas.outsider)
    assert b"billing-banner" not in client.get("/o/acme/").content  # 404 page, no banner


@pytest.mark.django_db
def test_the_banner_says_when_services_will_be_suspended(client, personas):
    ledger.record_entry(personas.org, amount=-5_000, kind=EntryKind.ADJUSTMENT, idempotency_key="a")
    client.force_login(personas.owner)
    page = client.get("/o/acme/billing/").content
    assert b"Out of credits.</strong> Services will be suspended at" in page
