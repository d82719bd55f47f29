"""Sign-up with mandatory e-mail verification, login, password reset."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client

from accounts.models import Membership, Organization, Role, User
from billing.ledger import get_account

PASSWORD = "a-long-and-unusual-password-42"


def _confirmation_link(message) -> str:
    return re.search(r"http://testserver(/accounts/confirm-email/[^\s]+)", message.body).group(1)


@pytest.mark.django_db
def test_it_requires_email_verification_before_login(client):
    response = client.post("/accounts/signup/", {"email": "new@example.com", "password1": PASSWORD,
                                                 "password2": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new@example.com"]

    client.logout()
    response = client.post("/accounts/login/", {"login": "new@example.com", "password": PASSWORD})
    assert response["Location"] == "/accounts/confirm-email/"  # not logged in: verification pending
    assert client.get("/").status_code == 302 and "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_it_verifies_the_email_and_gives_a_personal_organization(client):
    client.post("/accounts/signup/", {"email": "new@example.com", "password1": PASSWORD, "password2": PASSWORD})
    link = _confirmation_link(mail.outbox[0])
    assert client.get(link).status_code == 200
    response = client.post(link)
    assert response.status_code == 302

    user = User.objects.get(email="new@example.com")
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER and membership.organization.personal
    # The welcome credits arrive with the verified address, once.
    assert get_account(membership.organization).balance == settings.BILLING_SIGNUP_GRANT > 0
    # Logged in after confirming; the home page lands in the personal organization.
    response = client.get("/")
    assert response["Location"] == f"/o/{membership.organization.slug}/"
    assert client.get(response["Location"]).status_code == 200


@pytest.mark.django_db
def test_it_refuses_a_second_account_with_the_same_email(client):
    client.post("/accounts/signup/", {"email": "dup@example.com", "password1": PASSWORD, "password2": PASSWORD})
    client.logout()
    client.post("/accounts/signup/", {"email": "dup@example.com", "password1": PASSWORD, "password2": PASSWORD})
    assert User.objects.filter(email="dup@example.com").count() == 1
    assert Organization.objects.count() == 1  # the refused sign-up created nothing


@pytest.mark.django_db
def test_it_rate_limits_failed_logins(client, personas):
    for _ in range(5):
        client.post("/accounts/login/", {"login": "alice@example.com", "password": "wrong"})
    response = client.post("/accounts/login/", {"login": "alice@example.com", "password": "wrong"})
    assert response.status_code == 429 or b"Too many failed login attempts" in response.content


@pytest.mark.django_db
def test_a_stranger_s_failed_logins_do_not_lock_the_owner_out(personas):
    stranger, owner = Client(REMOTE_ADDR="198.51.100.7"), Client(REMOTE_ADDR="203.0.113.20")
    right = {"login": "alice@example.com", "password": "correct horse battery staple"}
    for _ in range(6):
        stranger.post("/accounts/login/", {"login": "alice@example.com", "password": "wrong"})
    # The stranger's address is stopped, even with the right password ...
    refused = stranger.post("/accounts/login/", right)
    assert b"Too many failed login attempts" in refused.content and "_auth_user_id" not in stranger.session
    # ... while alice, from her own address, logs in as usual.
    response = owner.post("/accounts/login/", right)
    assert response.status_code == 302 and owner.session["_auth_user_id"] == str(personas.owner.pk)


@pytest.mark.django_db
def test_it_resets_a_forgotten_password(client, personas):
    client.post("/accounts/password/reset/", {"email": "alice@example.com"})
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/password/reset/key/[^\s]+)", mail.outbox[0].body).group(1)
    response = client.get(link, follow=True)
    form_url = response.redirect_chain[-1][0] if response.redirect_chain else link
    client.post(form_url, {"password1": "brand-new-password-99", "password2": "brand-new-password-99"})
    assert client.login(username="alice", password="brand-new-password-99")
