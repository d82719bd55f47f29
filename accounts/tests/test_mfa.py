"""TOTP enrolment (with recovery codes) and login with a TOTP code, through allauth.mfa."""

from __future__ import annotations

import re

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value, yield_hotp_counters_from_time

PASSWORD = "correct horse battery staple"


def current_code(secret: str) -> str:
    counters = list(yield_hotp_counters_from_time())
    return format_hotp_value(hotp_value(secret, counters[len(counters) // 2]))


def login(client, email: str) -> None:
    response = client.post("/accounts/login/", {"login": email, "password": PASSWORD})
    assert response.status_code == 302


def start_totp_enrolment(client) -> str:
    """Enabling MFA asks for the password again first; then the page shows the TOTP secret."""
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 302 and page["Location"].startswith("/accounts/reauthenticate/")
    client.post(page["Location"], {"password": PASSWORD})
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    return re.search(r"\b([A-Z2-7]{32})\b", page.content.decode()).group(1)  # shown beside the QR code


@pytest.mark.django_db
def test_it_enrols_totp_and_then_asks_for_a_code_at_login(client, personas):
    login(client, "alice@example.com")
    secret = start_totp_enrolment(client)
    response = client.post("/accounts/2fa/totp/activate/", {"code": "000000"})
    assert response.status_code == 200 and b"Incorrect code" in response.content
    response = client.post("/accounts/2fa/totp/activate/", {"code": current_code(secret)})
    assert response.status_code == 302
    kinds = set(Authenticator.objects.filter(user=personas.owner).values_list("type", flat=True))
    assert kinds == {Authenticator.Type.TOTP, Authenticator.Type.RECOVERY_CODES}

    client.post("/accounts/logout/")
    login(client, "alice@example.com")
    assert "_auth_user_id" not in client.session  # password alone is not enough now
    response = client.post("/accounts/2fa/authenticate/", {"code": "123456"})
    assert "_auth_user_id" not in client.session
    response = client.post("/accounts/2fa/authenticate/", {"code": current_code(secret)})
    assert response.status_code == 302
    assert int(client.session["_auth_user_id"]) == personas.owner.pk


@pytest.mark.django_db
def test_it_accepts_a_recovery_code_once(client, personas):
    login(client, "alice@example.com")
    secret = start_totp_enrolment(client)
    client.post("/accounts/2fa/totp/activate/", {"code": current_code(secret)})
    recovery = Authenticator.objects.get(user=personas.owner, type=Authenticator.Type.RECOVERY_CODES)
    unused = recovery.wrap().get_unused_codes()
    assert len(unused) >= 8

    for attempt in range(2):
        client.post("/accounts/logout/")
        login(client, "alice@example.com")
        client.post("/accounts/2fa/authenticate/", {"code": unused[0]})
        logged_in = "_auth_user_id" in client.session
        assert logged_in is (attempt == 0), "a recovery code works exactly once"
