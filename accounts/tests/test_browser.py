"""In Chromium: sign up, verify the e-mail, log in, create an organization, invite a member
who signs up through the invitation link and joins."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Page, expect

from paas.testing.processes import sent_mail

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-and-unusual-password-42"


def wait_for_mail(to: str, pattern: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for body in reversed(sent_mail()):
            if f"To: {to}" in body and (m := re.search(pattern, body)):
                return m.group(0)
        time.sleep(0.1)
    raise AssertionError(f"no e-mail to {to} matching {pattern}")


def sign_up_and_verify(page: Page, base: str, email: str, next_url: str = "") -> None:
    page.goto(f"{base}/accounts/signup/{next_url}")
    page.fill("input[name=email]", email)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Verify Your Email Address")).to_be_visible()
    page.goto(wait_for_mail(email, r"http://\S+/accounts/confirm-email/\S+"))
    page.click("button[type=submit]")  # "Confirm"



def test_a_new_user_signs_up_creates_an_organization_and_invites_a_member(daphne_server, browser):
    base = daphne_server
    page = browser.new_page()
    sign_up_and_verify(page, base, "founder@example.com")
    expect(page.get_by_role("heading", name="founder's organization")).to_be_visible()

    # Log out and back in with the verified address.
    page.locator("summary", has_text="founder@example.com").click()
    page.get_by_role("button", name="Log out").click()
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", "founder@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="founder's organization")).to_be_visible()

    # A new organization through the switcher.
    page.get_by_test_id("org-switcher").click()
    page.get_by_role("link", name="+ New organization").click()
    page.fill("input[name=name]", "Rocket Labs")
    page.get_by_role("button", name="Create organization").click()
    expect(page.get_by_role("heading", name="Rocket Labs")).to_be_visible()
    assert page.url.endswith("/o/rocket-labs/")

    # Invite a member.
    page.get_by_role("link", name="Members", exact=True).click()
    page.fill("input[name=email]", "engineer@example.com")
    page.select_option("select[name=role]", "member")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_text("Invitation sent to engineer@example.com.")).to_be_visible()

    # The invitee follows the link from the e-mail, signs up, verifies and joins.
    invitee = browser.new_context().new_page()
    link = wait_for_mail("engineer@example.com", r"http://\S+/invitations/\S+/")
    invitee.goto(link)
    expect(invitee.get_by_role("heading", name="Join Rocket Labs")).to_be_visible()
    invitee.get_by_role("main").get_by_role("link", name="Sign up").click()
    sign_up_and_verify(invitee, base, "engineer@example.com")
    invitee.goto(link)
    invitee.get_by_role("button", name="Accept invitation").click()
    expect(invitee.get_by_role("heading", name="Rocket Labs")).to_be_visible()
    expect(invitee.get_by_text("Your role: Member.")).to_be_visible()

    page.reload()
    expect(page.get_by_test_id("member-row")).to_have_count(2)


def test_a_removed_member_s_open_page_stops_its_live_updates(daphne_server, personas, monkeypatch, browser):
    from accounts.models import Membership
    from accounts.services import remove_member
    from conftest import logged_in_page

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop in this thread
    page = logged_in_page(browser, daphne_server, personas.member)
    page.goto(f"{daphne_server}/o/acme/")
    expect(page.locator("#live-root")).to_have_attribute("data-live-state", "connected")
    owner = Membership.objects.get(user=personas.owner, organization=personas.org)
    bob = Membership.objects.get(user=personas.member, organization=personas.org)
    # In a thread of its own, as a view runs: this one has Playwright's event loop, where publishing cannot.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(remove_member, owner, bob).result()
    # Closed by the server with 4403: the page says so and does not keep reconnecting.
    expect(page.locator("#live-root")).to_have_attribute("data-live-state", "access-lost")
    page.wait_for_timeout(2500)
    expect(page.locator("#live-root")).to_have_attribute("data-live-state", "access-lost")
