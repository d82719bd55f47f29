"""REST: balance for every member, ledger and usage for owners and admins, nothing for outsiders."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.services import create_api_token
from billing import ledger, usage
from billing.models import EntryKind
from billing.tests.conftest import T0, report

BASE = "/api/v1/organizations/acme/billing"


@pytest.fixture
def acme(personas):
    org = personas.org
    ledger.record_entry(org, amount=2_500, kind=EntryKind.TOP_UP, idempotency_key="pay-1")
    usage.record_usage(org, report(0, replicas=2))
    usage.record_usage(org, report(0, service="db"))
    usage.charge_window(org.pk, T0)
    return org


def api_as(user) -> APIClient:
    token, raw = create_api_token(user, "ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "owner", "member", "outsider"),
    [("balance/", 200, 200, 404), ("ledger/", 200, 403, 404), ("usage/", 200, 403, 404)],
)
def test_three_personas(personas, acme, path, owner, member, outsider):
    assert api_as(personas.owner).get(f"{BASE}/{path}").status_code == owner
    assert api_as(personas.member).get(f"{BASE}/{path}").status_code == member
    response = api_as(personas.outsider).get(f"{BASE}/{path}")
    assert response.status_code == outsider and b"acme" not in response.content.lower()
    assert APIClient().get(f"{BASE}/{path}").status_code == 401


@pytest.mark.django_db
def test_the_balance(personas, acme):
    data = api_as(personas.member).get(f"{BASE}/balance/").json()
    assert data == {
        "organization": "acme", "balance": 7_497, "balance_credits": "7.497", "low_balance": False,
        "suspended": False, "suspended_at": None, "grace_until": None, "plan": "default",
    }


@pytest.mark.django_db
def test_the_ledger_is_paginated_newest_first_and_filterable(personas, acme):
    client = api_as(personas.owner)
    data = client.get(f"{BASE}/ledger/").json()
    assert data["count"] == 3
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in data["results"]] == [
        ("usage", -3, 7_497), ("top_up", 2_500, 7_500), ("signup_grant", 5_000, 5_000),
    ]
    assert data["results"][1]["amount_credits"] == "2.500"
    assert client.get(f"{BASE}/ledger/", {"kind": "top_up"}).json()["count"] == 1
    assert client.get(f"{BASE}/ledger/", {"since": "2999-01-01"}).json()["count"] == 0
    bad = client.get(f"{BASE}/ledger/", {"kind": "bonus"})
    assert bad.status_code == 400 and "kind" in bad.json()


@pytest.mark.django_db
def test_usage_lists_records_with_their_cost(personas, acme):
    client = api_as(personas.owner)
    data = client.get(f"{BASE}/usage/").json()
    assert data["count"] == 2
    web = next(r for r in data["results"] if r["service"] == "web")
    assert web == {
        "id": web["id"], "cluster": "eu-1", "project": "acme-shop", "service": "web",
        "window_start": "2026-01-05T10:00:00Z", "window_seconds": 60, "replica_seconds": 120,
        "cpu_millicores": 1000, "memory_mib": 1024, "volume_gib": 0, "database_gib": 0, "bucket_gib": 0,
        "database_bytes": 0, "bucket_bytes": 0,
        "cost_millicredits": 2, "charged": True,
    }
    assert client.get(f"{BASE}/usage/", {"service": "db"}).json()["count"] == 1
    assert client.get(f"{BASE}/usage/", {"project": "other"}).json()["count"] == 0


@pytest.mark.django_db
def test_session_authentication_works_too(client, personas, acme):
    client.force_login(personas.owner)
    assert client.get(f"{BASE}/balance/").json()["balance"] == 7_497
