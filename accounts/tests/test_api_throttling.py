"""REST API rate limits: guessing tokens ends in 429, and anonymous and signed-in use are throttled."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.services import create_api_token

pytestmark = pytest.mark.django_db


def test_guessing_tokens_ends_in_429_while_real_tokens_still_work(client, personas, settings):
    assert settings.API_THROTTLE_BAD_TOKEN == "20/minute"  # the default this test exercises
    _, raw = create_api_token(personas.owner, "ci")
    codes = [client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer paas_guess{n}").status_code for n in range(150)]
    assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}
    refused = client.get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer paas_guess")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert "Too many invalid API tokens" in refused.json()["detail"]

    # The real token from the same address still works: guessing does not lock its owner out.
    assert client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
    # Another address is not throttled for someone else's guessing.
    other = Client(REMOTE_ADDR="203.0.113.9")
    assert other.get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer paas_guess").status_code == 401


def test_a_forged_forwarded_for_header_does_not_escape_the_limit(client, settings):
    settings.API_THROTTLE_BAD_TOKEN = "3/minute"
    codes = [client.get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer paas_guess",
                        HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code for n in range(5)]
    assert codes == [401, 401, 401, 429, 429]  # TRUSTED_PROXY_COUNT=0: the peer address counts


def test_signed_in_use_is_throttled_per_user(client, personas, settings):
    settings.API_THROTTLE_USER = "5/minute"
    _, alice = create_api_token(personas.owner, "ci")
    _, bob = create_api_token(personas.member, "ci")
    codes = [client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {alice}").status_code for _ in range(7)]
    assert codes == [200] * 5 + [429] * 2
    assert client.get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {bob}").status_code == 200


def test_anonymous_use_is_throttled_per_address(client, settings):
    settings.API_THROTTLE_ANON = "2/minute"
    codes = [client.get("/api/schema/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
