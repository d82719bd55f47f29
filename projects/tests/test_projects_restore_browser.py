"""In Chromium against daphne, a Celery worker, the agent and kubesim: the owner finds a deleted project under
"Recently deleted", restores it, and watches its live release redeploy on the project page; a member is never
offered it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from playwright.sync_api import expect

from conftest import logged_in_page
from paas.testing.plane import poll
from projects import deletion, releases
from projects.models import Release, ReleaseStatus

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_owner_restores_a_deleted_project_and_watches_it_go_live(daphne_server, connected, kubesim, personas,
                                                                      project, monkeypatch, browser):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop in this thread

    def deploy_then_delete() -> None:  # in a thread of its own: the services publish live events (async_to_sync)
        try:
            first = releases.deploy(project, personas.owner)
            poll(lambda: Release.objects.get(pk=first.pk).status == ReleaseStatus.LIVE, 60, "the first release live")
            deletion.delete_project(project, personas.owner, "shop")
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(deploy_then_delete).result()
    kubesim.wait_for(lambda: kubesim.get("namespaces", None, "tenant-acme-shop") is None, timeout=30)

    member = logged_in_page(browser, daphne_server, personas.member)
    member.goto(f"{daphne_server}/o/acme/projects/")
    expect(member.get_by_text("No projects yet.")).to_be_visible()
    expect(member.get_by_test_id("recently-deleted")).to_have_count(0)

    page = logged_in_page(browser, daphne_server, personas.owner)
    page.goto(f"{daphne_server}/o/acme/projects/")
    expect(page.get_by_test_id("deleted-shop")).to_contain_text("Shop")
    page.get_by_test_id("restore-shop").click()
    expect(page).to_have_url(f"{daphne_server}/o/acme/projects/shop/")
    expect(page.get_by_text("Shop is back with its database and bucket; revision 2 redeploys its live release."
                            )).to_be_visible()
    expect(page.get_by_test_id("progress-status")).to_have_text("live", timeout=60000)
    expect(page.locator("tr[data-service=web] [data-field=replicas]")).to_have_text("1/1", timeout=30000)
    assert {d["metadata"]["name"] for d in kubesim.list("deployments", "tenant-acme-shop")} == {"web", "api", "worker"}
