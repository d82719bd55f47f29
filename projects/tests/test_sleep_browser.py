"""In Chromium: deploy a web service that sleeps when idle, watch it fall asleep on the project page and the
project list (live, no reload), open its URL through the edge, see Sablier's starting page and then the pod's
own page, and watch it go back to sleep. daphne, Celery, the agent and kubesim with its edge and Sablier."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from conftest import CHROMIUM_ARGS, logged_in_page
from projects.tests.test_projects_browser import deploy_and_wait, type_compose
from projects.tests.test_sleep_cluster import COMPOSE, _kubesim_server, short_idle, sleepy  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def edge_browser(chromium_path):
    """Chromium resolving the cluster's base domain to loopback, where the edge listens (as *.localhost does)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=[
            *CHROMIUM_ARGS, "--host-resolver-rules=MAP *.apps.example.com 127.0.0.1"])
        yield browser
        browser.close()


def test_a_sleeping_service_wakes_in_the_browser_and_goes_back_to_sleep(
        sleepy, daphne_server, connected, kubesim, personas, project, monkeypatch, edge_browser):  # noqa: F811
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # Long enough for the starting page to show even when the browser takes a while to load it (a loaded machine).
    kubesim.set_pod_start_delay(4)
    # Sleeps after 8 s idle (the UI's minimum is a minute; tests lower it): longer than the pod's start, as a
    # session shorter than the start would put it back to sleep before it could serve.
    short_idle(project, 8)
    base = daphne_server
    listing = logged_in_page(edge_browser, base, personas.member)
    listing.goto(f"{base}/o/acme/projects/")
    page = logged_in_page(edge_browser, base, personas.member)
    page.goto(f"{base}/o/acme/projects/shop/")
    type_compose(page, COMPOSE)
    deploy_and_wait(page, "live")

    status = page.get_by_test_id("status-web")
    expect(status).to_have_text("sleeping", timeout=20000)
    expect(page.locator("tr[data-service=web] [data-field=billing]")).to_have_text("sleeping — no charge")
    expect(page.get_by_test_id("sleep-worker")).to_contain_text("always on: it has no public URL")
    expect(listing.get_by_test_id("list-status-shop-web")).to_have_text("web: sleeping", timeout=10000)

    host = project.services.get(name="web").public_host
    visitor = edge_browser.new_page()
    visitor.goto(f"{kubesim.edge_url.replace('127.0.0.1', host)}/")
    expect(visitor.locator("h1")).to_have_text("Starting web…")
    expect(page.get_by_test_id("status-web")).to_have_text("waking", timeout=10000)
    expect(visitor.locator("h1")).to_contain_text("Hello from web-", timeout=20000)  # the page reloaded itself
    expect(visitor.locator("dd").nth(1)).to_have_text("nginx:1.27")
    expect(status).to_have_text("running", timeout=10000)

    visitor.close()  # idle: Sablier's session runs out and it goes back to sleep
    expect(status).to_have_text("sleeping", timeout=20000)
    expect(listing.get_by_test_id("list-status-shop-web")).to_have_text("web: sleeping", timeout=10000)
