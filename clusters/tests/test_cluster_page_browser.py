"""In Chromium: the operator's cluster page follows the agent live, without a reload."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from playwright.sync_api import expect

from clusters import services
from clusters.tests.test_integration import Agents, online, poll
from conftest import logged_in_page
from paas.testing.agent_account import agent_kubeconfig

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def token(cluster):
    # Issued before Chromium starts: Playwright's sync API runs an event loop in the test's thread,
    # and Django's live-event publishing refuses to run inside one.
    return services.issue_token(cluster)


def test_the_cluster_page_shows_the_agent_connect_and_go_away_live(operator, cluster, token, daphne_server, kubesim,
                                                                  tmp_path, monkeypatch, browser):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop in this thread
    page = logged_in_page(browser, daphne_server, operator)
    page.goto(f"{daphne_server}/clusters/{cluster.slug}/")
    expect(page.get_by_test_id("agent-connection")).to_have_text("agent not connected")

    plane = SimpleNamespace(agent_url=daphne_server.replace("http://", "ws://") + "/agent/ws")
    agents = Agents(plane, agent_kubeconfig(kubesim, tmp_path / "kubeconfig"), tmp_path)
    try:
        agents.start(token)
        poll(lambda: online(cluster), 30, "agent online")
        expect(page.get_by_test_id("agent-connection")).to_have_text("agent connected", timeout=10000)
        expect(page.locator("#cluster-status")).to_have_text("Online")
        expect(page.locator("#kubernetes-version")).to_contain_text("v1.35")
    finally:
        agents.stop_all()
    expect(page.get_by_test_id("agent-connection")).to_have_text("agent not connected", timeout=10000)
    expect(page.locator("#cluster-status")).to_have_text("Offline")
