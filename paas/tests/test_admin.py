"""Operators: the first-run operator account, and every admin page renders with its filters."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.core.management import call_command

from accounts.models import User


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


@pytest.mark.django_db
@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label)
def test_every_admin_changelist_renders_with_search_and_filters(admin_client, personas, model):
    opts = model._meta
    url = f"/admin/{opts.app_label}/{opts.model_name}/"
    assert admin_client.get(url).status_code == 200
    model_admin = admin.site._registry[model]
    if model_admin.search_fields:
        assert admin_client.get(url, {"q": "acme"}).status_code == 200
    assert admin_client.get(url + "add/").status_code in (200, 403)  # 403: append-only models
