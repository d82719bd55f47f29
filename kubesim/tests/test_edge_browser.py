"""In Chromium: a sleeping service's URL shows Sablier's starting page, then the pod's page, then sleeps again."""

from __future__ import annotations

import pytest
from kubernetes import client
from playwright.sync_api import expect

from kubesim.testing import KubeSim
from kubesim.tests.edge_helpers import NS, deploy, ingress, sablier_middleware

pytestmark = [pytest.mark.browser]


def test_a_sleeping_service_wakes_in_the_browser_and_sleeps_again(sim: KubeSim, api: client.ApiClient,
                                                                   browser) -> None:
    sim.set_pod_start_delay(1.0)
    deploy(api, "sleepy", replicas=0, group="sleepy", image="registry.example/sleepy:4")
    mw = sablier_middleware(api, "sablier-sleepy", "sleepy", session="2s",
                            displayName="Sleepy", refreshFrequency="1s")
    ingress(api, "sleepy", "sleepy.apps.localhost", [("/", "Prefix", "sleepy")], middlewares=mw)
    port = sim.edge_url.rsplit(":", 1)[1]
    page = browser.new_page()
    # Chromium resolves *.localhost to loopback by itself: no DNS, no Host header games.
    page.goto(f"http://sleepy.apps.localhost:{port}/")
    expect(page).to_have_title("Starting Sleepy…")
    expect(page.get_by_text("deployment_default_sleepy_1")).to_be_visible()
    # The page refreshes itself until the pod answers in its place.
    expect(page.get_by_role("heading", name="Hello from sleepy-")).to_be_visible(timeout=15000)
    expect(page.get_by_text("registry.example/sleepy:4")).to_be_visible()
    page.close()
    # No more requests: the session ends and Sablier scales the Deployment back to zero.
    sim.wait_for(lambda: sim.get("Deployment", NS, "sleepy")["spec"]["replicas"] == 0, timeout=15)
    sim.wait_for(lambda: not sim.list("Pod", NS), timeout=10)
    page = browser.new_page()
    page.goto(f"http://sleepy.apps.localhost:{port}/")
    expect(page).to_have_title("Starting Sleepy…")
    page.close()
