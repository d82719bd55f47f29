"""The organization's audit log (page, CSV, API) for owners and admins only, and the events that the product's
pages, the REST API and allauth's forms leave in it."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from django.test import Client

from accounts.models import Membership, Organization
from accounts.tests.test_mfa import PASSWORD, current_code, start_totp_enrolment
from accounts.tests.test_ssh_keys import public_key
from audit import services as audit
from audit.models import Action, AuditEvent
from projects.tests.conftest import THREE_SERVICES

PAGE, CSV, API = "/o/acme/audit/", "/o/acme/audit/events.csv", "/api/v1/organizations/acme/audit-events/"
IP = "203.0.113.77"


def csv_rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def stored() -> str:
    return json.dumps(list(AuditEvent.objects.values()), default=str)


def test_owners_and_admins_read_the_log_members_and_viewers_may_not_outsiders_see_nothing(
        client, personas, viewer, admin_user):
    for user in (personas.owner, admin_user):
        client.force_login(user)
        assert client.get(PAGE).status_code == 200
        assert client.get(CSV).status_code == 200
        assert client.get(API).status_code == 200
    for user in (personas.member, viewer):
        client.force_login(user)
        assert [client.get(url).status_code for url in (PAGE, CSV, API)] == [403, 403, 403]
    client.force_login(personas.outsider)
    assert [client.get(url).status_code for url in (PAGE, CSV, API)] == [404, 404, 404]
    client.logout()
    assert client.get(PAGE).status_code == 302 and client.get(API).status_code in (401, 403)
    # Only owners and admins get the link in the organization's navigation.
    client.force_login(personas.member)
    assert PAGE not in client.get("/o/acme/").content.decode()
    client.force_login(personas.owner)
    assert PAGE in client.get("/o/acme/").content.decode()


def test_it_shows_only_this_organizations_events(client, personas):
    audit.record(Action.MEMBER_ADDED, actor=personas.outsider, organization=personas.outsider_org,
                 target=personas.outsider, details={"role": "owner"})
    audit.record(Action.LOGIN, actor=personas.owner)  # user-level: in no organization's log
    client.force_login(personas.owner)
    rows = client.get(PAGE).content.decode().split('data-testid="audit-row"')[1:]
    assert len(rows) == 1 and "Organization created" in rows[0] and "alice@example.com" in rows[0]
    assert [e["action"] for e in client.get(API).json()["results"]] == ["organization.created"]
    assert [r["action"] for r in csv_rows(client.get(CSV))] == ["organization.created"]
    client.force_login(personas.outsider)
    rows = client.get("/o/charlie-corp/audit/").content.decode().split('data-testid="audit-row"')[1:]
    assert len(rows) == 2 and "alice" not in "".join(rows)


@pytest.fixture
def history(personas):
    """Events over three days by alice and bob."""
    def at(day: int, action: str, user, label: str) -> None:
        AuditEvent.objects.create(action=action, actor=user, actor_label=user.email, organization=personas.org,
                                  created_at=datetime(2026, 3, day, 12, tzinfo=UTC), target_type="variable",
                                  target_label=label)
    at(1, Action.VARIABLE_SET, personas.owner, "first")
    at(2, Action.VARIABLE_SET, personas.member, "second")
    at(2, Action.PROJECT_DEPLOYED, personas.member, "third")
    at(3, Action.VARIABLE_SET, personas.member, "fourth")


def test_filters_apply_to_the_page_the_csv_and_the_api_alike(client, personas, history):
    client.force_login(personas.owner)
    query = {"action": "variable.set", "actor": "BOB@", "since": "2026-03-02", "until": "2026-03-02"}
    page = client.get(PAGE, query).content.decode()
    assert page.count('data-testid="audit-row"') == 1 and "second" in page
    rows = csv_rows(client.get(CSV, query))
    assert [(r["action"], r["actor"], r["target"]) for r in rows] == [("variable.set", "bob@example.com", "second")]
    assert [e["target"]["label"] for e in client.get(API, query).json()["results"]] == ["second"]
    assert [e["target"]["label"] for e in client.get(API, {"actor": "bob"}).json()["results"]] == [
        "fourth", "third", "second"]  # newest first
    csv_link = f'href="{CSV}?action=variable.set&amp;actor=BOB%40&amp;since=2026-03-02&amp;until=2026-03-02"'
    assert csv_link in page  # the download link carries the filter


def test_a_bad_filter_is_refused_rather_than_ignored(client, personas, history):
    client.force_login(personas.owner)
    for query in ({"action": "nonsense"}, {"since": "2026-03-03", "until": "2026-03-01"}):
        response = client.get(CSV, query)
        assert response.status_code == 400 and b"filter is not valid" in response.content
        assert client.get(API, query).status_code == 400
        page = client.get(PAGE, query).content.decode()
        assert 'data-testid="audit-row"' not in page and "errorlist" in page


def test_it_pages_through_long_logs(client, personas):
    for n in range(60):
        audit.record(Action.VARIABLE_SET, actor=personas.owner, organization=personas.org, details={"name": f"V{n}"})
    client.force_login(personas.owner)
    first = client.get(PAGE, {"action": "variable.set"}).content.decode()
    assert first.count('data-testid="audit-row"') == 50 and "name=V59" in first and "Page 1 of 2" in first
    second = client.get(PAGE, {"action": "variable.set", "page": 2}).content.decode()
    assert second.count('data-testid="audit-row"') == 10 and "name=V0<" in second.replace(" ", "")
    body = client.get(API, {"action": "variable.set"}).json()
    assert body["count"] == 60 and len(body["results"]) == 50 and body["next"]
    assert len(csv_rows(client.get(CSV, {"action": "variable.set"}))) == 60


def test_the_api_is_in_the_openapi_schema(client, personas):
    client.force_login(personas.owner)
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/organizations/{org_slug}/audit-events/"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"org_slug", "action", "actor", "since", "until", "page"}
    assert set(schema["paths"]["/api/v1/organizations/{org_slug}/audit-events/"]) == {"get"}  # read-only
    assert client.post(API, {}).status_code == 405 and client.delete(API).status_code == 405


def test_what_people_do_on_the_pages_and_the_api_lands_in_the_log_with_their_ip(client, personas, cluster, operator):
    client.force_login(personas.owner)
    send = {"REMOTE_ADDR": IP}
    bob = Membership.objects.get(user=personas.member, organization=personas.org)
    client.post(f"/o/acme/members/{bob.pk}/role/", {"role": "viewer"}, **send)
    client.post("/o/acme/members/", {"email": "erin@example.com", "role": "member"}, **send)
    invitation = personas.org.invitations.get()
    client.post(f"/o/acme/invitations/{invitation.pk}/revoke/", **send)
    client.post(f"/o/acme/members/{bob.pk}/remove/", **send)
    client.post("/api/v1/organizations/acme/projects/", {"name": "Shop", "compose": THREE_SERVICES},
                content_type="application/json", **send)
    variables = "/api/v1/organizations/acme/projects/shop/variables/"
    client.post(variables, {"name": "API_KEY", "value": "s3cr3t-v4lue", "secret": True},
                content_type="application/json", **send)
    client.post("/o/acme/projects/shop/variables/", {"name": "MODE", "value": "visible-value"}, **send)
    variable = personas.org.projects.get().variables.get(name="API_KEY")
    client.delete(f"{variables}{variable.pk}/", **send)
    client.post("/api/v1/organizations/acme/projects/shop/releases/", {}, content_type="application/json", **send)
    client.post("/o/acme/projects/shop/delete/", {"confirm": "shop"}, **send)
    client.post("/o/new/", {"name": "Second Org"}, **send)
    expected = ["member.role_changed", "invitation.sent", "invitation.revoked", "member.removed", "project.created",
                "secret.set", "variable.set", "secret.unset", "project.deployed", "project.deleted"]
    events = list(AuditEvent.objects.filter(organization=personas.org).exclude(action="organization.created")
                  .order_by("id"))
    assert [e.action for e in events] == expected
    assert {(e.actor, e.ip_address) for e in events} == {(personas.owner, IP)}
    assert Organization.objects.get(name="Second Org").audit_events.get().action == "organization.created"
    assert "s3cr3t-v4lue" not in stored() and "visible-value" not in stored()

    client.post("/settings/ssh-keys/", {"name": "laptop", "public_key": public_key()}, **send)
    client.post(f"/settings/ssh-keys/{personas.owner.ssh_keys.get().pk}/delete/", **send)
    page = client.post("/settings/api-tokens/", {"name": "ci"}, **send).content.decode()
    token = personas.owner.api_tokens.get()
    client.post(f"/settings/api-tokens/{token.pk}/revoke/", **send)
    user_level = AuditEvent.objects.filter(organization=None, actor=personas.owner).exclude(action="auth.login")
    assert [e.action for e in user_level.order_by("id")] == [
        "ssh_key.added", "ssh_key.removed", "api_token.created", "api_token.revoked"]
    raw = page.split(token.prefix, 1)[1].split("<", 1)[0].split('"', 1)[0]
    assert len(raw) > 20 and raw not in stored()  # the token's secret part, shown once on the page

    client.force_login(operator)
    client.post(f"/clusters/{cluster.slug}/token/rotate/", **send)
    client.post(f"/clusters/{cluster.slug}/token/revoke/", **send)
    assert [(e.action, e.actor, e.ip_address) for e in AuditEvent.objects.filter(target_type="cluster")] == [
        ("cluster.token_revoked", operator, IP), ("cluster.token_issued", operator, IP)]


def test_allauth_logins_failures_password_and_mfa_changes_are_recorded(personas, django_capture_on_commit_callbacks):
    client = Client(REMOTE_ADDR=IP)
    assert client.post("/accounts/login/", {"login": "alice@example.com", "password": "wrong"}).status_code == 200
    assert client.post("/accounts/login/", {"login": "nobody@example.com", "password": "wrong"}).status_code == 200
    failed = list(AuditEvent.objects.filter(action=Action.LOGIN_FAILED).order_by("id"))
    assert [(e.actor, e.actor_label, e.target_label, e.ip_address) for e in failed] == [
        (None, "alice@example.com", "alice@example.com", IP), (None, "nobody@example.com", "", IP)]
    assert client.post("/accounts/login/", {"login": "alice@example.com", "password": PASSWORD}).status_code == 302
    login = AuditEvent.objects.get(action=Action.LOGIN)
    assert (login.actor, login.ip_address, login.organization) == (personas.owner, IP, None)

    secret = start_totp_enrolment(client)
    with django_capture_on_commit_callbacks(execute=True):  # allauth signals the change once it is committed
        client.post("/accounts/2fa/totp/activate/", {"code": current_code(secret)})
    changes = AuditEvent.objects.filter(action=Action.MFA_CHANGED).order_by("id")
    assert [e.details for e in changes] == [{"change": "added", "type": "totp"},
                                            {"change": "added", "type": "recovery_codes"}]
    assert {(e.actor, e.ip_address) for e in changes} == {(personas.owner, IP)}
    assert secret not in stored()
    client.post("/accounts/logout/")
    client.post("/accounts/login/", {"login": "alice@example.com", "password": PASSWORD})
    client.post("/accounts/2fa/authenticate/", {"code": "000000"})  # a wrong second factor
    wrong_code = AuditEvent.objects.filter(action=Action.LOGIN_FAILED).latest("id")
    assert (wrong_code.actor, wrong_code.target_label, wrong_code.details) == (
        None, "alice@example.com", {"factor": "totp", "reauthentication": False})
    assert AuditEvent.objects.filter(action=Action.LOGIN).count() == 1  # not logged in yet
    client.post("/accounts/2fa/authenticate/", {"code": current_code(secret)})
    assert AuditEvent.objects.filter(action=Action.LOGIN).count() == 2
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})  # removing a factor asks again
    client.post("/accounts/2fa/totp/deactivate/")
    assert [e.details["change"] for e in changes.all()] == ["added", "added", "removed", "removed"]

    client.post("/accounts/password/change/", {"oldpassword": PASSWORD, "password1": "a new long passphrase 42",
                                               "password2": "a new long passphrase 42"})
    assert AuditEvent.objects.get(action=Action.PASSWORD_CHANGED).details == {"how": "changed"}
    assert "wrong" not in stored() and PASSWORD not in stored() and "new long passphrase" not in stored()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_under_daphne_the_service_still_finds_the_clients_ip(daphne_server, personas, project):
    """The request reaches services through ASGI's thread hop; the middleware's context must follow it."""
    import urllib.request

    from accounts.services import create_api_token

    _, raw = create_api_token(personas.member, "ci")
    body = json.dumps({"name": "DB_PASS", "value": "hunter2", "secret": True}).encode()
    url = f"{daphne_server}/api/v1/organizations/acme/projects/shop/variables/"
    headers = {"Authorization": f"Bearer {raw}", "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310  (our test server)
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        assert response.status == 201
    event = AuditEvent.objects.get(action=Action.SECRET_SET)
    assert (event.actor, event.ip_address, event.details["name"]) == (personas.member, "127.0.0.1", "DB_PASS")
    assert "hunter2" not in stored()
