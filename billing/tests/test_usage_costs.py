"""Database and bucket sizes priced at the plan's GiB-month prices (pro rata to the byte, money exact), and the
usage cost per project, per service and per day on the billing page and in the API, for the four roles."""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

import pytest
from rest_framework.test import APIClient

from accounts.models import Membership, Role
from billing import usage
from billing.models import BillingAccount, CreditEntry, EntryKind, Plan, UsageRecord
from billing.money import FINE_PER_MILLICREDIT, GIB
from billing.tests.conftest import T0, iso, make_org, recent_window, report, window
from billing.tests.test_api import api_as
from conftest import make_user

LATER = T0 + timedelta(days=1)
BASE = "/api/v1/organizations/acme/billing/usage"


def data_report(n: int = 0, namespace: str = "acme-shop", **sizes: int) -> dict:
    return report(n, namespace=namespace, service=usage.PROJECT_DATA, replicas=0, cpu_millicores=0, memory_mib=0,
                  **sizes)


@pytest.fixture
def round_prices(db) -> Plan:
    """Prices that make the arithmetic readable: a GiB-second of database costs 1 millicredit, of bucket 2."""
    plan = Plan.objects.get_default()
    plan.price_vcpu_second, plan.price_memory_gib_second, plan.price_volume_gib_month = 20, 2, 0
    plan.price_database_gib_month = 2_592_000_000  # microcredits per GiB-month = 1,000 per GiB-second
    plan.price_bucket_gib_month = 5_184_000_000
    plan.save()
    return plan


@pytest.mark.django_db
def test_a_300_mb_database_costs_its_share_of_the_gib_month_price():
    org = make_org()  # the default plan: 0.2 credits per GiB-month of database, 0.02 of bucket
    record = usage.record_usage(org, data_report(database_bytes=300_000_000, bucket_bytes=300_000_000)).record
    exact_database = Fraction(300_000_000, GIB) * Fraction(60, 2_592_000) * 200_000  # microcredits
    assert record.database_fine > 0 and record.bucket_fine > 0
    # Exact to the fine unit (1/10,368,000 of a microcredit): what is below it is rounded down.
    assert record.database_fine == int(exact_database * 10_368_000)
    assert record.bucket_fine == int(exact_database / 10 * 10_368_000)
    assert record.cost_fine == record.database_fine + record.bucket_fine
    assert record.compute_fine == record.volume_fine == 0
    assert (record.database_bytes, record.bucket_bytes) == (300_000_000, 300_000_000)


@pytest.mark.django_db
def test_a_window_charges_compute_database_and_bucket_in_one_exact_entry(round_prices):
    org = make_org()
    usage.record_usage(org, report(0, replicas=2, cpu_millicores=250, memory_mib=256))
    usage.record_usage(org, data_report(0, database_bytes=3 * GIB // 4, bucket_bytes=300_000_000))
    [result] = usage.charge_closed_windows(now=LATER)
    # Compute: 2 x 0.25 vCPU x 60 s x 20 + 2 x 0.25 GiB x 60 s x 2 = 660 microcredits = 0.66 millicredits.
    # Database: 0.75 GiB x 60 s x 1 millicredit = 45. Bucket: 300 MB x 60 s x 2 = 33.527... millicredits.
    exact = Fraction(660, 1000) + 45 + Fraction(300_000_000, GIB) * 60 * 2
    assert 79 < exact < 80
    assert result.amount == 79 and result.records == 2
    [entry] = CreditEntry.objects.filter(organization=org, kind=EntryKind.USAGE)
    assert entry.amount == -79 and entry.idempotency_key == f"usage:{org.pk}:{int(window(0).timestamp())}"
    assert "acme-shop (data)" in entry.reference and "acme-shop/web" in entry.reference
    # The fraction is carried, not lost: to the fine unit below which the bucket's byte share was rounded.
    remainder = BillingAccount.objects.get(organization=org).usage_remainder
    assert remainder == int((exact - 79) * FINE_PER_MILLICREDIT)
    assert usage.charge_closed_windows(now=LATER) == []


@pytest.mark.django_db
@pytest.mark.parametrize(("overrides", "message"), [
    ({"replicas": 1}, "carries only database and bucket sizes"),
    ({"storage_gib": 1}, "carries only database and bucket sizes"),
    ({"cpu_millicores": 5}, "carries only database and bucket sizes"),
    ({"database_bytes": "300MB"}, "database_bytes must be a non-negative integer"),
    ({"bucket_bytes": 1.5}, "bucket_bytes must be a non-negative integer"),
])
def test_a_project_level_report_carries_only_sizes(overrides, message):
    with pytest.raises(ValueError, match=message):
        usage.record_usage(make_org(), {**data_report(database_bytes=1), **overrides})
    assert not UsageRecord.objects.exists()


@pytest.mark.django_db
def test_a_repeated_data_report_keeps_the_first_sizes():
    org = make_org()
    first = usage.record_usage(org, data_report(database_bytes=1000))
    again = usage.record_usage(org, data_report(database_bytes=5000))
    assert first.created and not again.created and UsageRecord.objects.get().database_bytes == 1000


# --- page and API ------------------------------------------------------------------------------------------


@pytest.fixture
def acme(personas, round_prices):
    """Acme with, in one recent window, a web service and a worker in the shop, the shop's database and bucket,
    and a blog's bucket; and a window 40 days ago, outside the default period."""
    org = personas.org
    start = recent_window()
    usage.record_usage(org, report(window_start=iso(start), replicas=1, cpu_millicores=1000, memory_mib=0))
    usage.record_usage(org, report(window_start=iso(start), service="worker", replicas=1, cpu_millicores=500,
                                   memory_mib=0, storage_gib=0))
    usage.record_usage(org, data_report(window_start=iso(start), database_bytes=GIB // 2, bucket_bytes=GIB // 4))
    usage.record_usage(org, data_report(window_start=iso(start), namespace="acme-blog", bucket_bytes=GIB))
    usage.record_usage(org, report(window_start=iso(start - timedelta(days=40)), replicas=1))
    return org


# (project, service, compute, volume, database, bucket, total), millicredits, for the recent window:
# web 1 vCPU x 60 s x 20 = 1.2; worker 0.6; shop data 0.5 GiB x 60 x 1 = 30 and 0.25 GiB x 60 x 2 = 30;
# blog bucket 1 GiB x 60 x 2 = 120.
SERVICES = [("acme-blog", "", 0, 0, 0, 120, 120), ("acme-shop", "", 0, 0, 30, 30, 60),
            ("acme-shop", "web", 1, 0, 0, 0, 1), ("acme-shop", "worker", 0, 0, 0, 0, 0)]


def parts(row: dict) -> tuple:
    return tuple(row[f"{part}_millicredits"] for part in ("compute", "volume", "database", "bucket", "cost"))


@pytest.mark.django_db
def test_owners_and_admins_see_cost_per_project_and_service_on_the_page(client, personas, acme):
    ada = make_user("ada@example.com")
    Membership.objects.create(user=ada, organization=acme, role=Role.ADMIN)
    for user in (personas.owner, ada):
        client.force_login(user)
        response = client.get("/o/acme/billing/")
        assert response.status_code == 200
        rows = response.context["service_costs"]
        assert [(r["project"], r["service"], *parts(r)) for r in rows] == SERVICES
        assert [(r["project"], *parts(r)) for r in response.context["project_costs"]] == [
            ("acme-blog", 0, 0, 0, 120, 120), ("acme-shop", 1, 0, 30, 30, 61)]
        page = response.content.decode()
        assert 'data-testid="service-costs"' in page and "database and bucket" in page and "0.120" in page
        chart = response.context["chart"]
        assert len(chart["labels"]) == 30 and [d["label"] for d in chart["datasets"]] == ["acme-blog", "acme-shop"]
        assert sum(chart["datasets"][1]["data"]) == 61  # the shop's 1.8 + 60 millicredits, rounded down once


@pytest.mark.django_db
def test_the_page_shows_a_chosen_period(client, personas, acme):
    client.force_login(personas.owner)
    today = recent_window().date()
    old = today - timedelta(days=40)
    response = client.get("/o/acme/billing/", {"usage-since": old.isoformat(), "usage-until": old.isoformat()})
    assert [(r["project"], r["service"]) for r in response.context["service_costs"]] == [("acme-shop", "web")]
    assert response.context["chart"]["labels"] == [old.isoformat()]
    refused = client.get("/o/acme/billing/", {"usage-since": (today - timedelta(days=400)).isoformat(),
                                              "usage-until": today.isoformat()})
    assert "Choose a period of at most 366 days." in refused.content.decode()
    assert len(refused.context["chart"]["labels"]) == 30  # the default period, not a year of empty days


@pytest.mark.django_db
def test_members_viewers_and_outsiders_see_no_costs_on_the_page(client, personas, viewer, acme):
    for user in (personas.member, viewer):
        client.force_login(user)
        response = client.get("/o/acme/billing/")
        assert response.status_code == 200
        assert "service_costs" not in response.context and b"service-costs" not in response.content
    client.force_login(personas.outsider)
    assert client.get("/o/acme/billing/").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["projects/", "services/", "daily/"])
def test_the_cost_summaries_are_for_owners_and_admins_only(personas, viewer, acme, path):
    assert api_as(personas.owner).get(f"{BASE}/{path}").status_code == 200
    assert api_as(personas.member).get(f"{BASE}/{path}").status_code == 403
    assert api_as(viewer).get(f"{BASE}/{path}").status_code == 403
    outsider = api_as(personas.outsider)
    response = outsider.get(f"{BASE}/{path}")
    assert response.status_code == 404 and b"acme-shop" not in response.content
    # The outsider's own organization answers, with none of Acme's usage in it.
    own = personas.outsider.memberships.get().organization
    mine = outsider.get(f"/api/v1/organizations/{own.slug}/billing/usage/{path}")
    assert mine.status_code == 200 and mine.json()["count"] == 0
    assert APIClient().get(f"{BASE}/{path}").status_code == 401


@pytest.mark.django_db
def test_the_api_gives_cost_per_service_with_its_parts(personas, acme):
    client = api_as(personas.owner)
    since = (recent_window() - timedelta(days=1)).date().isoformat()
    data = client.get(f"{BASE}/services/", {"since": since}).json()
    assert data["count"] == 4 and data["next"] is None
    assert [(r["project"], r["service"], *parts(r)) for r in data["results"]] == SERVICES
    blog = data["results"][0]
    assert blog == {"project": "acme-blog", "service": "", "windows": 1, "replica_seconds": 0,
                    "compute_millicredits": 0, "volume_millicredits": 0, "database_millicredits": 0,
                    "bucket_millicredits": 120, "cost_millicredits": 120, "cost_credits": "0.120"}
    everything = client.get(f"{BASE}/services/").json()["results"]
    assert [(r["service"], r["windows"]) for r in everything if r["project"] == "acme-shop"] == [
        ("", 1), ("web", 2), ("worker", 1)]  # without a period: all time
    paged = client.get(f"{BASE}/services/", {"since": since, "page_size": 3}).json()
    assert len(paged["results"]) == 3 and "page=2" in paged["next"]
    assert [r["service"] for r in client.get(paged["next"]).json()["results"]] == ["worker"]
    assert client.get(f"{BASE}/services/", {"project": "acme-blog"}).json()["count"] == 1
    assert client.get(f"{BASE}/services/", {"since": "not a date"}).status_code == 400


@pytest.mark.django_db
def test_the_api_gives_cost_per_project_and_per_day(personas, acme):
    client = api_as(personas.owner)
    projects = client.get(f"{BASE}/projects/").json()["results"]
    assert [(r["project"], r["windows"], *parts(r)) for r in projects] == [
        ("acme-blog", 1, 0, 0, 0, 120, 120), ("acme-shop", 4, 3, 0, 30, 30, 63)]  # + the old window's 1.32
    daily = client.get(f"{BASE}/daily/").json()["results"]
    today, old = recent_window().date(), (recent_window() - timedelta(days=40)).date()
    assert [(r["day"], r["project"], r["cost_millicredits"]) for r in daily] == [
        (old.isoformat(), "acme-shop", 1), (today.isoformat(), "acme-blog", 120), (today.isoformat(), "acme-shop", 61)]
