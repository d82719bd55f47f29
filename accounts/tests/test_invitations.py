"""Invitations by e-mail: accept, expired, revoked, wrong user, already a member."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import Invitation, Membership, Role
from conftest import make_user


def invite(client, personas, email="dave@example.com", role=Role.MEMBER) -> str:
    client.force_login(personas.owner)
    response = client.post("/o/acme/members/", {"email": email, "role": role})
    assert response.status_code == 302, response.content
    return re.search(r"(/invitations/[^\s/]+/)", mail.outbox[-1].body).group(1)


@pytest.mark.django_db
def test_it_sends_an_invitation_and_the_invitee_joins_with_that_role(client, personas):
    link = invite(client, personas, role=Role.VIEWER)
    assert mail.outbox[-1].to == ["dave@example.com"]
    assert mail.outbox[-1].subject == "[PaaS] You are invited to join an organization"
    assert "the organization named “Acme”" in mail.outbox[-1].body
    assert Invitation.objects.get().token_hash not in link  # the link carries the secret, the DB its hash
    dave = make_user("dave@example.com")
    client.force_login(dave)
    assert b"Join Acme" in client.get(link).content
    response = client.post(link)
    assert response["Location"] == "/o/acme/"
    assert Membership.objects.get(user=dave, organization=personas.org).role == Role.VIEWER
    assert client.post(link).status_code == 400  # used once


@pytest.mark.django_db
def test_it_refuses_an_expired_invitation(client, personas):
    link = invite(client, personas)
    Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    client.force_login(make_user("dave@example.com"))
    response = client.post(link)
    assert response.status_code == 400 and b"expired" in response.content
    assert not Membership.objects.filter(user__email="dave@example.com").exists()


@pytest.mark.django_db
def test_it_refuses_an_invitation_for_someone_else(client, personas):
    link = invite(client, personas, email="dave@example.com")
    client.force_login(personas.outsider)
    response = client.post(link)
    assert response.status_code == 400 and b"sent to dave@example.com" in response.content
    assert not Membership.objects.filter(user=personas.outsider, organization=personas.org).exists()


@pytest.mark.django_db
def test_it_refuses_a_revoked_invitation(client, personas):
    link = invite(client, personas)
    client.post(f"/o/acme/invitations/{Invitation.objects.get().pk}/revoke/")
    client.force_login(make_user("dave@example.com"))
    assert client.post(link).status_code == 400


@pytest.mark.django_db
def test_it_does_not_invite_existing_members_and_shows_why(client, personas):
    client.force_login(personas.owner)
    response = client.post("/o/acme/members/", {"email": "bob@example.com", "role": "member"}, follow=True)
    assert b"already a member" in response.content
    assert not Invitation.objects.exists()


@pytest.mark.django_db
def test_it_sends_anonymous_visitors_to_sign_up_or_log_in(client, personas):
    link = invite(client, personas)
    client.logout()
    page = client.get(link).content.decode()
    assert "/accounts/signup/?next=" in page and "/accounts/login/?next=" in page


@pytest.mark.django_db
def test_it_lets_only_owners_and_admins_invite(client, personas):
    client.force_login(personas.member)
    assert client.post("/o/acme/members/", {"email": "x@example.com", "role": "member"}).status_code == 403
    client.force_login(personas.outsider)
    assert client.post("/o/acme/members/", {"email": "x@example.com", "role": "member"}).status_code == 404
    assert not Invitation.objects.exists()


PHISHING = "Your account is locked - verify at https://evil.example/login"


@pytest.mark.django_db
def test_an_organization_name_never_speaks_in_the_platform_s_voice(client, personas):
    personas.org.name = PHISHING
    personas.org.save()
    invite(client, personas)
    message = mail.outbox[-1]
    assert "evil.example" not in message.subject and "locked" not in message.subject
    # In the body the name is quoted as a name, and nowhere else.
    assert message.body.count("evil.example") == 1 and f"“{PHISHING}”" in message.body


@pytest.mark.django_db
def test_invitation_links_are_https_behind_a_tls_proxy(client, personas, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    client.force_login(personas.owner)
    client.post("/o/acme/members/", {"email": "dave@example.com", "role": "member"},
                HTTP_X_FORWARDED_PROTO="https", HTTP_HOST="testserver")  # as the proxy forwards them
    assert re.search(r"https://testserver/invitations/[^\s/]+/", mail.outbox[-1].body)
    # Without the proxy's header (or the setting) a request is plain http, as before.
    client.post("/o/acme/members/", {"email": "erin@example.com", "role": "member"})
    assert "http://testserver/invitations/" in mail.outbox[-1].body
