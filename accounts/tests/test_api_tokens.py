"""Personal API tokens: shown once, stored hashed, usable as Bearer tokens, revocable."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import APIToken, hash_token


def create_token(client, user, name="ci") -> str:
    client.force_login(user)
    page = client.post("/settings/api-tokens/", {"name": name}).content.decode()
    return re.search(r'data-testid="new-token">(paas_[\w-]+)<', page).group(1)


@pytest.mark.django_db
def test_it_shows_a_new_token_once_and_stores_only_its_hash(client, personas):
    raw = create_token(client, personas.owner)
    token = APIToken.objects.get()
    assert token.token_hash == hash_token(raw) and raw not in token.token_hash
    assert raw.startswith(token.prefix)
    assert raw not in client.get("/settings/api-tokens/").content.decode()


@pytest.mark.django_db
def test_it_authenticates_api_requests_with_a_bearer_token(client, personas):
    raw = create_token(client, personas.owner)
    client.logout()
    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200 and response.json()["email"] == "alice@example.com"
    assert APIToken.objects.get().last_used_at is not None
    orgs = client.get("/api/v1/organizations/", HTTP_AUTHORIZATION=f"Bearer {raw}").json()["results"]
    slugs = [o["slug"] for o in orgs]
    assert slugs == ["acme"]


@pytest.mark.django_db
def test_it_rejects_revoked_expired_and_unknown_tokens(client, personas):
    raw = create_token(client, personas.owner)
    token = APIToken.objects.get()
    client.post(f"/settings/api-tokens/{token.pk}/revoke/")
    client.logout()
    response = client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401 and "revoked" in response.json()["detail"]

    raw2 = create_token(client, personas.owner, "short-lived")
    APIToken.objects.filter(name="short-lived").update(expires_at=timezone.now() - timedelta(seconds=1))
    client.logout()
    assert client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw2}").status_code == 401
    assert client.get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer paas_made_up").status_code == 401
    assert client.get("/api/v1/me/").status_code in (401, 403)


@pytest.mark.django_db
def test_it_lets_users_revoke_only_their_own_tokens(client, personas):
    create_token(client, personas.owner)
    token = APIToken.objects.get()
    client.force_login(personas.outsider)
    assert client.post(f"/settings/api-tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
