"""A terminal, or the logs, of a sleeping service: daphne, Redis, Celery, the agent process, and kubesim with its
Sablier stand-in. Opening a shell wakes the service through Sablier and keeps it awake while the shell is open;
the logs of a sleeping service show its last pod's last lines."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import kubernetes
import pytest
from django.db import connection
from django.test import Client
from playwright.sync_api import expect

from clusters.tests.test_integration import poll
from conftest import logged_in_page
from projects import releases, suspension
from projects.models import Service
from projects.tests.test_projects_deploy import finished
from projects.tests.test_sleep_cluster import COMPOSE, NS, _kubesim_server, asleep, replicas, short_idle, sleepy  # noqa: F401 (the cluster with Sablier)
from projects.tests.test_terminal_socket import next_event, read_until, socket

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sleepy")]

IDLE = 2  # seconds: the service's idle timeout (Sablier's session)


def sleeping_web(kubesim, project, owner, idle: int = IDLE) -> Service:
    """Shop deployed, its web service asleep (after a short first idle timeout), then `idle` as its timeout."""
    short_idle(project, IDLE)
    release = finished(releases.deploy(project, owner, COMPOSE))
    assert release.status == "live", release.error
    web = project.services.get(name="web")
    asleep(kubesim, web)
    Service.objects.filter(pk=web.pk).update(idle_timeout=idle)
    web.refresh_from_db()
    return web


def test_a_shell_wakes_a_sleeping_service_and_keeps_it_awake_while_open(
        connected, daphne_server, kubesim, personas, project):
    web = sleeping_web(kubesim, project, personas.owner)
    with socket(daphne_server, personas.member) as ws:
        assert json.loads(ws.recv(timeout=10)) == {"type": "waking", "message": "waking web…"}
        ready = json.loads(ws.recv(timeout=60))
        assert ready["type"] == "ready" and ready["pod"].startswith("web-")
        read_until(ws, b"# ")
        # Three idle timeouts with nothing typed: Sablier would have put it back to sleep without the refreshes.
        time.sleep(3 * IDLE)
        assert replicas(kubesim, "web") == 1
        ws.send(b"echo still-here\r")
        read_until(ws, b"still-here\r\n")
        ws.send(b"exit 0\r")
        assert next_event(ws) == {"type": "exit", "exit_code": 0, "message": ""}
    asleep(kubesim, web)  # closed: the last refresh runs out and Sablier scales it down again


def test_a_suspended_organizations_service_is_not_woken_by_a_terminal(
        connected, daphne_server, kubesim, personas, project):
    sleeping_web(kubesim, project, personas.owner)
    assert suspension.suspend_organization(personas.org) == 1
    with socket(daphne_server, personas.member) as ws:
        event = next_event(ws, timeout=30)
    assert event["type"] == "error" and "Shop is suspended" in event["message"], event
    time.sleep(1)
    assert replicas(kubesim, "web") == 0


def test_a_service_that_cannot_start_ends_the_wait_with_the_reason_and_what_to_do(
        connected, daphne_server, kubesim, personas, project):
    sleeping_web(kubesim, project, personas.owner, idle=60)
    # A new release to a sleeping service updates its template without waking it: the next start crash-loops.
    crashing = finished(releases.deploy(project, personas.owner,
                                        COMPOSE.replace("nginx:1.27", "ghcr.io/acme/web:crash")))
    assert crashing.status == "live", crashing.error
    with socket(daphne_server, personas.member) as ws:
        assert next_event(ws) == {"type": "waking", "message": "waking web…"}
        refused = next_event(ws, timeout=90)
    assert refused["type"] == "error", refused
    assert refused["message"].startswith("service web could not be woken: web did not start: ")
    assert "CrashLoopBackOff" in refused["message"]
    assert "fix the image or its command and deploy again" in refused["message"]


def test_the_logs_of_a_sleeping_service_are_its_last_pods_last_lines(
        connected, kubesim, kube_api, personas, project, viewer):
    short_idle(project, 600)
    assert finished(releases.deploy(project, personas.owner, COMPOSE)).status == "live"
    pod = poll(lambda: [p["metadata"]["name"] for p in kubesim.list("Pod", NS)
                        if p["metadata"]["labels"].get("paas.dev/service") == "web"
                        and (p.get("status") or {}).get("phase") == "Running"], 20, "web's pod")[0]
    kubesim.push_logs(NS, pod, ["GET / 200", "the last request"])
    # Sablier's session runs out: it scales the Deployment to zero (the scale subresource, its field manager).
    kubernetes.client.AppsV1Api(kube_api).patch_namespaced_deployment_scale(
        "web", NS, {"spec": {"replicas": 0}}, field_manager="sablier")
    asleep(kubesim, project.services.get(name="web"))
    client = Client()
    client.force_login(viewer)  # viewers may read logs
    url = "/api/v1/organizations/acme/projects/shop/services/web/logs/?tail=1"
    # While the pod terminates (about a second in kubesim) its live log is read; then the kept lines.
    text = poll(lambda: (r := client.get(url)).status_code == 200 and r.content.decode().startswith("[service")
                and r.content.decode(), 20, "the kept lines")
    first, line = text.splitlines()
    assert first.startswith(f"[service web is sleeping — last lines from pod {pod}, stopped at 20"), first
    assert line.endswith(f"{pod}/web the last request")

    page = client.get("/o/acme/projects/shop/services/web/logs/").content.decode()
    assert '<script id="log-sleeping" type="application/json">["web"]</script>' in page


@pytest.mark.browser
def test_chromium_opens_the_terminal_of_a_sleeping_service_sees_waking_then_types(
        connected, daphne_server, kubesim, personas, project, browser, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with ThreadPoolExecutor(1) as pool:  # deploy() publishes with async_to_sync: not in Playwright's loop thread
        pool.submit(sleeping_web, kubesim, project, personas.owner, 60).result()
        pool.submit(lambda: connection.close()).result()
    kubesim.set_pod_start_delay(1.5)  # long enough to see the page wait for the pod
    page = logged_in_page(browser, daphne_server, personas.member)
    page.goto(f"{daphne_server}/o/acme/projects/shop/services/web/terminal/")
    expect(page.get_by_test_id("terminal-sleeping")).to_contain_text("web is asleep: connecting wakes it")
    status = page.get_by_test_id("terminal-status")
    expect(status).to_contain_text("Waking web…", timeout=10000)
    rows = page.locator("#terminal .xterm-rows")
    expect(rows).to_contain_text("[waking web…]")
    expect(status).to_contain_text("Connected to web-", timeout=60000)
    page.locator("#terminal").click()
    page.keyboard.type("echo woke-up-for-chromium\n")
    page.wait_for_function("() => document.querySelector('#terminal .xterm-rows').innerText"
                           ".split('\\n').some(l => l.trim() === 'woke-up-for-chromium')", timeout=10000)
