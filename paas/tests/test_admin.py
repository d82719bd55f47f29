"""Operators: the first-run operator account, and every admin page renders with its filters."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.core.management import call_command

from accounts.models import User
from clusters.services import create_cluster


@pytest.mark.django_db
def test_the_operator_is_created_once_and_can_log_in_to_admin(client, monkeypatch, capsys):
    monkeypatch.delenv("OPERATOR_PASSWORD", raising=False)
    monkeypatch.setenv("OPERATOR_EMAIL", "ops@example.com")
    call_command("ensure_operator")
    out = capsys.readouterr().out
    password = re.search(r"Operator created: ops@example.com / (\S+)", out).group(1)
    call_command("ensure_operator")
    assert "password unchanged" in capsys.readouterr().out
    assert User.objects.filter(is_superuser=True).count() == 1

    response = client.post("/accounts/login/", {"login": "ops@example.com", "password": password})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


# What an operator (a superuser) gets on each admin's "add" page: 403 where rows are only ever made by the
# platform itself (accounts come with their organization; usage, suspensions, notices and the audit log are
# records of what happened); everything else, credit entries included (a correction is a new entry), can be added.
ADD_REFUSED = {"billing.BillingAccount", "billing.UsageRecord", "billing.SuspensionRecord",
               "billing.BalanceNotification", "audit.AuditEvent"}
REGISTERED = sorted(admin.site._registry, key=lambda m: m._meta.label)


def admin_url(model) -> str:
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/"


def test_every_append_only_model_named_here_is_registered():
    assert ADD_REFUSED <= {m._meta.label for m in REGISTERED}


@pytest.mark.django_db
@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label)
def test_every_admin_changelist_renders_with_search_and_filters(admin_client, personas, model):
    for name in ("Falkenstein", "Helsinki"):  # two of each, so the filters by cluster and organization show
        create_cluster(name, f"{name.lower()}.example.com")
    url = admin_url(model)
    page = admin_client.get(url)
    assert page.status_code == 200
    model_admin = admin.site._registry[model]
    if model_admin.search_fields:
        assert admin_client.get(url, {"q": "acme"}).status_code == 200
    changelist = page.context["cl"]
    for spec in changelist.filter_specs:  # every link the filter sidebar offers
        for choice in spec.choices(changelist):
            assert admin_client.get(url + choice["query_string"]).status_code == 200, choice["display"]
    expected = 403 if model._meta.label in ADD_REFUSED else 200
    assert admin_client.get(url + "add/").status_code == expected


@pytest.mark.django_db
@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label)
def test_a_member_who_is_not_staff_is_sent_to_the_admin_login(client, personas, model):
    client.force_login(personas.owner)  # owns an organization, but is no operator
    url = admin_url(model)
    for page in (url, url + "add/"):
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), page
