"""In Chromium against daphne, a Celery worker, the agent and kubesim: paste a three-service compose file,
deploy, watch it go live, see the URLs, deploy a broken image and read why, roll back, delete."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from conftest import logged_in_page
from projects.models import Project
from projects.tests.conftest import THREE_SERVICES

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]



def type_compose(page: Page, text: str) -> None:
    expect(page.get_by_test_id("editor")).to_have_attribute("data-ready", "true", timeout=15000)
    page.evaluate("text => window.composeEditor.setValue(text)", text)


def deploy_and_wait(page: Page, status: str) -> None:
    page.get_by_test_id("deploy").click()
    expect(page.get_by_test_id("progress-status")).to_have_text(status, timeout=30000)


def test_a_member_deploys_from_the_editor_watches_it_live_rolls_back_and_deletes(
        daphne_server, connected, personas, viewer, project, monkeypatch, browser):
    # Playwright's sync API runs an event loop in this thread; our ORM checks here are plain sync code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    base = daphne_server
    page = logged_in_page(browser, base, personas.owner)
    page.goto(f"{base}/o/acme/")
    page.get_by_test_id("projects-link").click()
    page.get_by_role("link", name="Shop").click()

    # Validation as you type: a refused key shows up as an error marker at its line.
    privileged = THREE_SERVICES.replace("    image: nginx:1.27\n", "    image: nginx:1.27\n    privileged: true\n")
    type_compose(page, privileged)
    expect(page.get_by_test_id("problems")).to_contain_text("line 4", timeout=10000)
    markers = page.evaluate("() => monaco.editor.getModelMarkers({}).map(m => [m.startLineNumber, m.severity])")
    assert [4, 8] in markers  # 8 = MarkerSeverity.Error

    type_compose(page, THREE_SERVICES)
    expect(page.get_by_test_id("problems")).to_contain_text("Valid: 3 service(s)", timeout=10000)
    deploy_and_wait(page, "live")
    expect(page.get_by_test_id("url-web")).to_have_text("http://web-shop-acme-47cbdb9d.apps.example.com/")
    expect(page.get_by_test_id("url-api")).to_have_text("http://api-shop-acme-b8d0645d.apps.example.com/")
    expect(page.locator("tr[data-service=worker]")).to_contain_text("private")
    expect(page.locator("tr[data-service=web] [data-field=replicas]")).to_have_text("1/1")

    # A broken image: the release fails with a reason a user can act on.
    type_compose(page, THREE_SERVICES.replace("nginx:1.27", "nginx:does-not-exist"))
    deploy_and_wait(page, "failed")
    expect(page.get_by_test_id("release-error")).to_contain_text(
        "image nginx:does-not-exist could not be pulled: check the name and tag")

    # The diff between the releases names the image change.
    page.goto(f"{base}/o/acme/projects/shop/releases/2/")
    expect(page.get_by_test_id("diff")).to_contain_text("+        image: nginx:does-not-exist")
    page.goto(f"{base}/o/acme/projects/shop/")
    page.get_by_test_id("rollback-1").click()
    expect(page.get_by_test_id("progress-status")).to_have_text("live", timeout=30000)
    expect(page.get_by_test_id("release-status-3")).to_have_text("Live")

    # A viewer sees the project but no editor, deploy or delete.
    viewer_page = logged_in_page(browser, base, viewer)
    viewer_page.goto(f"{base}/o/acme/projects/shop/")
    expect(viewer_page.get_by_test_id("url-web")).to_be_visible()
    assert viewer_page.get_by_test_id("deploy").count() == 0
    assert viewer_page.get_by_text("Delete project").count() == 0

    page.get_by_role("link", name="Delete project…").click()
    page.get_by_test_id("confirm").fill("shop")
    page.get_by_test_id("confirm-delete").click()
    expect(page.get_by_text("Shop is deleted")).to_be_visible()
    assert not Project.objects.active().filter(slug="shop", cluster=connected).exists()
