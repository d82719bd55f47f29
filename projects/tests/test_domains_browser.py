"""In Chromium against daphne, a Celery worker, the agent and kubesim: a member adds a domain on the project page,
reads the records to create, is refused until the DNS (the run's local DNS server) has one, then sees it verified
and routed by the redeploy that verifying starts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from conftest import logged_in_page
from paas.testing.plane import poll
from projects import releases
from projects.models import ReleaseStatus
from projects.tests.test_projects_deploy import finished

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_member_adds_a_domain_sees_the_records_and_verifies_it(daphne_server, connected, personas, project,
                                                                 local_dns, kubesim, monkeypatch, browser):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop in this thread
    # Deploy from another thread: publishing progress cannot run inside Playwright's event loop.
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(releases.deploy, project, personas.owner).result()
    assert finished(first).status == ReleaseStatus.LIVE
    web = project.services.get(name="web")
    page = logged_in_page(browser, daphne_server, personas.member)
    page.goto(f"{daphne_server}/o/acme/projects/shop/")

    form = page.get_by_test_id("add-domain-web")
    form.locator("input[name=hostname]").fill("*.example.com")
    form.get_by_role("button").click()
    expect(page.locator(".msg-error")).to_contain_text("Wildcard domains are not supported")

    page.get_by_test_id("add-domain-web").locator("input[name=hostname]").fill("WWW.Example.com")
    page.get_by_test_id("add-domain-web").get_by_role("button").click()
    row = page.get_by_test_id("domain-www.example.com")
    expect(row.get_by_test_id("domain-status")).to_have_text("waiting for DNS")
    token = web.domains.get().token
    expect(row).to_contain_text(f'TXT _paas-challenge.www.example.com "{token}"')
    expect(row).to_contain_text(f"CNAME www.example.com → {web.public_host}")

    page.get_by_test_id("verify-www.example.com").click()
    expect(page.locator(".msg-error")).to_contain_text(
        f"Create a TXT record _paas-challenge.www.example.com with the value {token}")

    local_dns.add("www.example.com", "CNAME", web.public_host)
    page.get_by_test_id("verify-www.example.com").click()
    row = page.get_by_test_id("domain-www.example.com")
    expect(row.get_by_test_id("domain-status")).to_have_text("verified")
    expect(row.get_by_test_id("domain-certificate")).to_have_text("none")
    expect(row.locator("a[href='http://www.example.com/']")).to_be_visible()
    redeploy = poll(lambda: project.releases.filter(revision=2).first(), 15, "the redeploy verifying starts")
    assert finished(redeploy).status == ReleaseStatus.LIVE
    rules = kubesim.get("Ingress", "tenant-acme-shop", "web")["spec"]["rules"]
    assert [r["host"] for r in rules] == [web.public_host, "www.example.com"]
