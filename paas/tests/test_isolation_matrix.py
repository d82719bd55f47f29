"""The tenant boundary over every HTTP route: each URL pattern Django resolves (our pages, the REST API, allauth,
Django admin) is tried with GET, POST, PUT, PATCH and DELETE by the anonymous, outsider, viewer and member
personas, with the victim organization's identifiers filled in.

Per route and persona the requests run in these variants:
- "foreign": every URL argument is the victim's (its organization slug, project slug, object ids);
- "swapped": the persona's own organization slug with the victim's object ids (ids swapped into one's own org);
- "own" (viewer and member, tenant and personal routes): their own organization and its objects (another
  member's membership, the project, ...).

Every response must be free of the victim's marker strings (names, variable values, e-mails, fingerprints),
the victim's rows (and the platform's) must be unchanged, and in "own" no row their role may not change
(OWN_ROWS_LOCKED) may change.
Routes classified TENANT or OPERATOR must also refuse (404/403/405, 401 or a redirect to a login page).

ADDING A ROUTE: put its name in ROUTES below with one of the classifications, and if it takes a URL argument
with a new name, teach URL_ARGUMENTS how to fill it in. An unclassified route fails this test.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from paas.tests.isolation_world import Tenant, World, build_world, changed, org_rows, route_template, victim_rows

# --- Classification ---------------------------------------------------------------------------------
TENANT = "tenant"  # reaches a tenant's objects: foreigners get only refusals, never data
PERSONAL = "personal"  # the requester's own things (SSH keys, API tokens, MFA): another user's ids are refused
OPERATOR = "operator"  # staff only: every persona here is refused
PUBLIC = "public"  # open to everyone (sign-in, sign-up, the schema): only the data and row checks apply

# Every route by name ("namespace:name"; an unnamed route by its full pattern) -> classification.
# TENANT: serves or changes an organization's objects (an `org_slug` argument, or ids reached through the access
# functions). PERSONAL: the signed-in user's own settings. OPERATOR: staff-only pages (clusters; "admin:*" covers
# every Django admin page). PUBLIC: anyone may call it; no victim data may show and no victim row may change.
ROUTES: dict[str, str] = {
    # accounts
    "home": PUBLIC,
    "organization_create": PERSONAL,
    "org_home": TENANT,
    "org_settings": TENANT,
    "members": TENANT,
    "member_role": TENANT,
    "member_remove": TENANT,
    "invitation_revoke": TENANT,
    "invitation": PUBLIC,  # the raw token is the capability; the test sends a wrong one
    "ssh_keys": PERSONAL,
    "ssh_key_delete": PERSONAL,
    "api_tokens": PERSONAL,
    "api_token_revoke": PERSONAL,
    "api_me": PERSONAL,
    "api_ssh_gateway": PERSONAL,
    "api_organizations": PERSONAL,
    "api_organization": TENANT,
    # billing
    "billing": TENANT,
    "billing_ledger_csv": TENANT,
    "billing_usage_csv": TENANT,
    "api_billing_balance": TENANT,
    "api_billing_ledger": TENANT,
    "api_billing_usage": TENANT,
    "api_billing_usage_projects": TENANT,
    "api_billing_usage_services": TENANT,
    "api_billing_usage_daily": TENANT,
    # clusters (operators)
    "api_clusters": OPERATOR,
    "api_cluster": OPERATOR,
    "api_cluster_install": OPERATOR,
    # audit (owners and admins of the organization)
    "audit_log": TENANT,
    "audit_csv": TENANT,
    "api_audit_events": TENANT,
    "cluster_list": OPERATOR,
    "cluster_create": OPERATOR,
    "cluster_agent_manifest": OPERATOR,
    "cluster_detail": OPERATOR,
    "cluster_edit": OPERATOR,
    "cluster_install": OPERATOR,
    "cluster_bootstrap": OPERATOR,
    "cluster_rotate_token": OPERATOR,
    "cluster_revoke_token": OPERATOR,
    # projects
    "project_list": TENANT,
    "project_logs": TENANT,
    "service_logs": TENANT,
    "api_project_logs": TENANT,
    "api_service_logs": TENANT,
    "project_detail": TENANT,
    "project_validate": TENANT,
    "project_deploy": TENANT,
    "project_redeploy": TENANT,
    "project_delete": TENANT,
    "project_restore": TENANT,
    "project_service_rows": TENANT,
    "project_service_exposure": TENANT,
    "project_service_sleep": TENANT,
    "project_domain_add": TENANT,
    "project_domain_verify": TENANT,
    "project_domain_delete": TENANT,
    "project_service_wake": TENANT,
    "project_rows": TENANT,
    "project_suspended": PUBLIC,  # where a suspended project's URLs redirect; 404 unless that project is suspended
    "project_service_terminal": TENANT,
    "project_variables": TENANT,
    "project_variable_delete": TENANT,
    "project_kubectl_create": TENANT,  # a credential of one's own on the project (viewers too)
    "project_kubectl_revoke": TENANT,
    "release_list": TENANT,
    "release_detail": TENANT,
    "release_rollback": TENANT,
    "project_data_reveal": TENANT,
    "project_database_dump": TENANT,
    "project_database_restore": TENANT,
    "api_database_dump": TENANT,
    "api_database_restore": TENANT,
    "api_projects": TENANT,
    "api_project": TENANT,
    "api_deleted_projects": TENANT,
    "api_project_restore": TENANT,
    "api_project_validate": TENANT,
    "api_releases": TENANT,
    "api_release": TENANT,
    "api_release_rollback": TENANT,
    "api_service_exposure": TENANT,
    "api_service_sleep": TENANT,
    "api_service_domains": TENANT,
    "api_service_domain": TENANT,
    "api_service_domain_verify": TENANT,
    "api_service_wake": TENANT,
    "api_variables": TENANT,
    "api_variable": TENANT,
    "api_schema": PUBLIC,
    # ops: probes answer anyone (failure details only to scrapers); metrics need the token or an allowed network
    "healthz": PUBLIC,
    "readyz": PUBLIC,
    "metrics": OPERATOR,
    # allauth: signing in and up, and the signed-in user's e-mail, password and second factor
    "account_login": PUBLIC,
    "account_logout": PUBLIC,
    "account_inactive": PUBLIC,
    "account_signup": PUBLIC,
    "account_reauthenticate": PERSONAL,
    "account_request_reauthentication_code": PERSONAL,
    "account_confirm_reauthentication_code": PERSONAL,
    "account_email": PERSONAL,
    "account_email_verification_sent": PUBLIC,
    "account_change_password": PERSONAL,
    "account_set_password": PERSONAL,
    "account_reset_password": PUBLIC,
    "account_confirm_login_code": PUBLIC,
    "account_confirm_email": PUBLIC,  # the key is the capability; the test sends a wrong one
    "account_reset_password_from_key_done": PUBLIC,
    "account_reset_password_from_key": PUBLIC,  # likewise
    "account_reset_password_done": PUBLIC,
    "mfa_index": PERSONAL,
    "mfa_authenticate": PUBLIC,
    "mfa_reauthenticate": PERSONAL,
    "mfa_activate_totp": PERSONAL,
    "mfa_deactivate_totp": PERSONAL,
    "mfa_view_recovery_codes": PERSONAL,
    "mfa_generate_recovery_codes": PERSONAL,
    "mfa_download_recovery_codes": PERSONAL,
    # Django admin: every page is for staff, except signing in and out
    "admin:*": OPERATOR,
    "admin:login": PUBLIC,
    "admin:logout": PUBLIC,
}


# URL argument name -> its value, from the target tenant `t` (the victim, or the viewer's own organization).
# `org_slug` is set by the variant (the victim's, or the persona's own organization).
URL_ARGUMENTS: dict[str, Callable[[World, Tenant], Any]] = {
    "org_slug": lambda world, t: t.org.slug,
    "project_slug": lambda world, t: t.project.slug,
    "membership_id": lambda world, t: t.membership.pk,
    "invitation_id": lambda world, t: t.invitation.pk,
    "token": lambda world, t: "not-the-real-invitation-token",
    "key_id": lambda world, t: t.ssh_key.pk,
    "token_id": lambda world, t: t.api_token.pk,
    "revision": lambda world, t: t.release.revision,
    "name": lambda world, t: t.service.name,
    "service": lambda world, t: t.service.name,
    "variable_id": lambda world, t: t.variable.pk,
    "domain_id": lambda world, t: t.domain.pk,
    "access_id": lambda world, t: t.kube_access.pk,
    "uid": lambda world, t: t.project.uid,
    "slug": lambda world, t: world.cluster.slug,
    "cluster_id": lambda world, t: world.cluster.pk,
    "format": lambda world, t: "json",  # DRF's format suffixes, should a router add them
    # Django admin and allauth
    "app_label": lambda world, t: "accounts",
    "object_id": lambda world, t: t.org.pk,
    "content_type_id": lambda world, t: ContentType.objects.get_for_model(type(t.org)).pk,
    "id": lambda world, t: t.users[0].pk,
    "url": lambda world, t: "no-such-admin-page/",
    "key": lambda world, t: "not-a-real-key",
    "uidb36": lambda world, t: "2",
    "uidb64": lambda world, t: "Mg",
    "provider_id": lambda world, t: "github",
    "provider": lambda world, t: "github",
}

# Rows of their own organization that a role may not change: a viewer none at all but kubectl credentials of their
# own (read-only access to the project's namespace) and the audit events recording them; a member none of those
# only owners and admins manage (the organization, its members and invitations, its credits).
VIEWER_MAY_CHANGE = {"projects.KubeAccess", "audit.AuditEvent"}
OWN_ROWS_LOCKED: dict[str, set[str] | None] = {
    "viewer": {model._meta.label for model in apps.get_models(include_auto_created=True)} - VIEWER_MAY_CHANGE,
    "member": {"accounts.Organization", "accounts.Membership", "accounts.Invitation", "billing.BillingAccount",
               "billing.CreditEntry"},
}

METHODS = ("get", "post", "put", "patch", "delete")
REFUSED = {401, 403, 404, 405}
LOGIN_PAGES = ("/accounts/login/", "/admin/login/")

# --- Routes from the resolver -----------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    key: str  # "namespace:name", or the full pattern of an unnamed route
    namespace: str
    pattern: str  # the full pattern as a format string: "o/{org_slug}/members/{membership_id}/"
    arguments: tuple[str, ...]
    callback: Any

    @property
    def classification(self) -> str | None:
        return ROUTES.get(self.key) or ROUTES.get(f"{self.namespace}:*")


def walk(patterns: list, prefix: str = "", namespace: str = "") -> Iterator[Route]:
    """Every URLPattern under the root resolver, with the namespaces and prefixes of the includes around it."""
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = ":".join(filter(None, [namespace, entry.namespace]))
            yield from walk(entry.url_patterns, prefix + route_template(entry.pattern)[0], inner)
        elif isinstance(entry, URLPattern):
            full = prefix + route_template(entry.pattern)[0]
            key = ":".join(filter(None, [namespace, entry.name])) if entry.name else full
            yield Route(key, namespace, full, tuple(re.findall(r"\{(\w+)\}", full)), entry.callback)


ALL_ROUTES = list(walk(get_resolver().url_patterns))

# --- The world, built once for the module and rolled back at its end --------------------------------


FAST_HASHER = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Iterator[World]:
    with django_db_blocker.unblock(), override_settings(PASSWORD_HASHERS=FAST_HASHER), transaction.atomic():
        yield build_world()
        transaction.set_rollback(True)


@pytest.fixture(scope="module")
def victim_before(world, django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        return victim_rows(world)


@pytest.fixture(scope="module")
def sessions(world, django_db_blocker) -> dict[str, tuple[Client, str | None]]:
    """A client per persona with its session cookie, made once: a new Client loads the middleware again, which
    is slow. Each test restores the cookie, so a test that signs out only ends its own copy of the session."""
    users = {"anonymous": None, "outsider": world.outsider, "viewer": world.viewer, "member": world.member}
    clients = {}
    with django_db_blocker.unblock():
        for persona, user in users.items():
            client = Client()
            if user is not None:
                client.force_login(user)
            clients[persona] = (client, client.cookies[settings.SESSION_COOKIE_NAME].value if user else None)
    return clients


@dataclass
class Attempt:
    persona: str
    variant: str
    client: Client
    home: Any  # the organization whose slug the URL gets (victim's for "foreign")
    target: Tenant  # whose objects the other arguments name


def attempts(world: World, sessions: dict[str, tuple[Client, str | None]], route: Route) -> Iterator[Attempt]:
    for persona, (client, cookie) in sessions.items():
        client.cookies = SimpleCookie()
        if cookie is not None:
            client.cookies[settings.SESSION_COOKIE_NAME] = cookie
        yield Attempt(persona, "foreign", client, world.victim.org, world.victim)
        home = world.home_org(getattr(world, persona, None))
        if home is not None and "org_slug" in route.arguments:
            yield Attempt(persona, "swapped", client, home, world.victim)
        if persona in OWN_ROWS_LOCKED and route.arguments and route.classification in (TENANT, PERSONAL):
            yield Attempt(persona, "own", client, world.acme.org, world.acme)


def must_refuse(route: Route, attempt: Attempt) -> bool:
    """Operators' pages refuse everyone here; tenant and personal routes refuse whenever an argument names
    something of the victim's (its organization, or an object id)."""
    if route.classification == OPERATOR:
        return True
    if route.classification not in (TENANT, PERSONAL) or attempt.variant == "own":
        return False
    foreign = set(route.arguments) if attempt.variant == "foreign" else set(route.arguments) - {"org_slug"}
    return bool(foreign)


def url_for(route: Route, world: World, attempt: Attempt) -> str:
    values = {}
    for name in route.arguments:
        if name not in URL_ARGUMENTS:
            pytest.fail(f"Route {route.key!r} ({route.pattern}) has a URL argument {name!r} this test cannot fill "
                        f"in: add it to URL_ARGUMENTS in {__name__}.")
        values[name] = attempt.home.slug if name == "org_slug" else URL_ARGUMENTS[name](world, attempt.target)
    url = "/" + route.pattern.format(**values)
    assert resolve(url).func == route.callback, f"{url} does not resolve to {route.key}"
    return url


def body_for(world: World, attempt: Attempt) -> dict[str, Any]:
    """Fields the views read, filled to make a write succeed if the view forgot a check."""
    return {"name": "Mallory", "compose": "services:\n  x:\n    image: nginx\n", "confirm": attempt.target.project.slug,
            "role": "owner", "email": "mallory@attacker.example", "exposure": "public", "value": "pwned",
            "secret": "true", "service": attempt.target.service.name, "cluster": world.private_cluster.slug,
            "slug": "mallory", "key": "ssh-ed25519 AAAA mallory", "amount": "1000"}


def send(client: Client, method: str, url: str, body: dict[str, Any]) -> Any:
    if method == "get":
        return client.get(url)
    if url.startswith("/api/"):
        return getattr(client, method)(url, body, content_type="application/json")
    if method == "post":
        return client.post(url, body)
    return getattr(client, method)(url, "&".join(f"{k}={v}" for k, v in body.items()),
                                   content_type="application/x-www-form-urlencoded")


def content(response: Any) -> bytes:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return body + "\n".join(f"{k}: {v}" for k, v in response.headers.items()).encode()


def refused(response: Any) -> bool:
    if response.status_code in REFUSED:
        return True
    return response.status_code == 302 and response.headers["Location"].startswith(LOGIN_PAGES)


# --- Tests ------------------------------------------------------------------------------------------


def test_every_route_is_classified():
    missing = sorted({f"{r.key}  ({r.pattern})" for r in ALL_ROUTES if r.classification is None})
    assert not missing, ("These routes have no entry in ROUTES in paas/tests/test_isolation_matrix.py; classify "
                         "each as TENANT, PERSONAL, OPERATOR or PUBLIC:\n  " + "\n  ".join(missing))
    stale = sorted(set(ROUTES) - {r.key for r in ALL_ROUTES} - {k for k in ROUTES if k.endswith(":*")})
    assert not stale, f"ROUTES names routes that no longer exist: {stale}"


@pytest.mark.django_db
@pytest.mark.parametrize("route", ALL_ROUTES, ids=[r.key for r in ALL_ROUTES])
def test_no_persona_crosses_the_tenant_boundary(route: Route, world: World, victim_before: dict, sessions: dict):
    classification = route.classification
    if classification is None:
        pytest.fail(f"Route {route.key!r} ({route.pattern}) is not classified: add it to ROUTES in {__name__}.")
    problems: list[str] = []
    for attempt in attempts(world, sessions, route):
        url = url_for(route, world, attempt)
        locked = OWN_ROWS_LOCKED.get(attempt.persona)
        own_before = org_rows(world.acme.org, labels=locked) if attempt.variant == "own" else {}
        for method in METHODS:
            response = send(attempt.client, method, url, body_for(world, attempt))
            where = f"{attempt.persona} {method.upper()} {url} ({attempt.variant}) -> {response.status_code}"
            body = content(response)
            leaked = [m for m in world.markers if m.encode() in body]
            if leaked:
                problems.append(f"{where}: the victim's {leaked} in the response")
            if must_refuse(route, attempt) and not refused(response):
                problems.append(f"{where}: expected a refusal for a {classification} route")
        if attempt.variant == "own" and (diff := changed(own_before, org_rows(world.acme.org, labels=locked))):
            problems.append(f"{attempt.persona} changed their own organization's {diff} through {url}")
    if diff := changed(victim_before, victim_rows(world)):
        problems.append(f"the victim's (or the platform's) rows changed: {diff}")
    assert not problems, f"{route.key} ({route.pattern}):\n  " + "\n  ".join(problems)
