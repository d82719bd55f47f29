"""The log view in Chromium: opened from the service row, lines arrive live, filter, pause, and a daphne restart
that resumes without showing a line twice. The `plane` fixture (root conftest) is our own daphne on a fixed port,
so the test can restart it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from clusters import services as cluster_services
from conftest import logged_in_page
from paas.testing.plane import Agents, online, poll
from projects import releases
from projects.tests.test_projects_deploy import finished

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NS = "tenant-acme-shop"


@pytest.fixture
def live(plane, celery_worker, kubesim, tmp_path, personas, project):
    """The project deployed through our daphne (before Playwright starts its event loop in this thread)."""
    agents = Agents(plane, kubesim.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path)
    agents.start(cluster_services.issue_token(project.cluster))
    poll(lambda: online(project.cluster), 30, "agent online")
    assert finished(releases.deploy(project, personas.owner)).status == "live"
    yield project
    agents.stop_all()


def test_the_log_view_follows_filters_pauses_and_resumes_after_a_daphne_restart(
        plane, live, kubesim, viewer, browser, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop in this thread
    project = live
    web = next(p["metadata"]["name"] for p in kubesim.list("Pod", NS)
               if p["metadata"]["labels"]["paas.dev/service"] == "web")
    page = logged_in_page(browser, plane.url, viewer)  # a viewer may read logs
    page.goto(f"{plane.url}/o/acme/projects/shop/")
    page.get_by_test_id("logs-web").click()
    view, lines = page.get_by_test_id("log-view"), page.get_by_test_id("log-lines")
    expect(lines).to_contain_text("web: started nginx:1.27", timeout=15000)
    expect(view).to_have_attribute("data-state", "live")

    kubesim.push_logs(NS, web, ["GET /hello 200"])
    expect(lines).to_contain_text("GET /hello 200")
    colour = page.locator(".log-line .pod").first.evaluate("el => getComputedStyle(el).color")
    assert colour.startswith("rgb(")

    page.get_by_label("Filter lines").fill("needle")
    kubesim.push_logs(NS, web, ["a needle in", "the haystack"])
    expect(page.locator(".log-line", has_text="a needle in")).to_be_visible()
    expect(page.locator(".log-line", has_text="the haystack")).to_be_hidden()
    expect(page.locator(".log-line", has_text="GET /hello 200")).to_be_hidden()
    page.get_by_label("Filter lines").fill("")
    expect(page.locator(".log-line", has_text="the haystack")).to_be_visible()

    page.get_by_role("button", name="Pause").click()
    kubesim.push_logs(NS, web, ["said while paused"])
    expect(page.locator("#log-status")).to_contain_text("1 new lines held")
    expect(lines).not_to_contain_text("said while paused")
    page.get_by_role("button", name="Resume").click()
    expect(lines).to_contain_text("said while paused")

    plane.stop()  # daphne goes away: the page notices and keeps trying
    expect(view).to_have_attribute("data-state", "reconnecting", timeout=10000)
    kubesim.push_logs(NS, web, ["logged during the outage"])
    plane.start()
    poll(lambda: online(project.cluster), 30, "agent back online")
    expect(lines).to_contain_text("logged during the outage", timeout=30000)
    kubesim.push_logs(NS, web, ["after the restart"])
    expect(lines).to_contain_text("after the restart", timeout=15000)

    texts = [t for t in page.locator(".log-line").all_text_contents() if "cannot be reached" not in t
             and "went away" not in t]
    assert len(texts) == len(set(texts)), "a line was shown twice after the resume"

    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    content = open(download.value.path()).read()  # noqa: SIM115
    assert "after the restart" in content and f"{web}/web" in content
