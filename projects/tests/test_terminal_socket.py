"""The browser terminal: its socket (TerminalConsumer in a real daphne) and the xterm.js page in Chromium,
through Redis, the agent process and kubesim's exec."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from playwright.sync_api import expect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from accounts.models import Membership, Role
from audit.models import Action, AuditEvent
from conftest import logged_in_page
from lib.realtime import CLOSE_NO_ACCESS
from paas.testing.plane import poll
from paas.testing.processes import start_daphne
from projects.tests.test_terminal import deployed

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

IDLE = 4  # seconds: TERMINAL_IDLE_TIMEOUT of this module's daphne


@pytest.fixture(scope="module")
def terminal_daphne(django_db_setup, django_db_blocker, redis_url):
    """A daphne with a short idle timeout; it reaches the agent (connected to the session's daphne) over Redis."""
    with django_db_blocker.unblock():
        proc, url = start_daphne(TERMINAL_IDLE_TIMEOUT=str(IDLE))
    yield url
    proc.stop()


def socket(base: str, user, service: str = "web", query: str = "cols=90&rows=20"):
    client = Client()
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    url = base.replace("http://", "ws://") + f"/ws/o/acme/projects/shop/services/{service}/terminal/?{query}"
    return connect(url, additional_headers={"Cookie": cookie, "Origin": base}, open_timeout=15)


def read_until(ws, needle: bytes, timeout: float = 10) -> bytes:
    seen = b""
    while needle not in seen:
        frame = ws.recv(timeout=timeout)
        assert isinstance(frame, bytes), frame
        seen += frame
    return seen


def next_event(ws, timeout: float = 10) -> dict:
    while isinstance(frame := ws.recv(timeout=timeout), bytes):
        pass
    return json.loads(frame)


def test_the_socket_runs_a_shell_resizes_reports_the_exit_and_refuses_viewers_and_outsiders(
        terminal_daphne, connected, personas, project, viewer):
    deployed(project, personas.owner)
    with socket(terminal_daphne, personas.member) as ws:
        ready = json.loads(ws.recv(timeout=10))
        assert ready["type"] == "ready" and ready["pod"].startswith("web-") and ready["container"] == "web"
        read_until(ws, b"# ")
        ws.send(b"stty size\r")
        read_until(ws, b"20 90")
        ws.send(json.dumps({"type": "resize", "cols": 120, "rows": 33}))
        ws.send(b"stty size\r")
        read_until(ws, b"33 120")
        ws.send(b"exit 7\r")
        finished = next_event(ws)
        assert finished["type"] == "exit" and finished["exit_code"] == 7
    event = poll(lambda: AuditEvent.objects.filter(action=Action.TERMINAL_SESSION).first(), 5, "the audit event")
    assert event.actor == personas.member and event.details["exit_status"] == 7
    assert event.details["bytes_in"] == len(b"stty size\rstty size\rexit 7\r")

    for user in (viewer, personas.outsider):
        with pytest.raises(InvalidStatus) as refused:
            socket(terminal_daphne, user)
        assert refused.value.response.status_code == 403
    with socket(terminal_daphne, personas.member, query="pod=api-0") as ws:  # not a pod of this service
        assert next_event(ws) == {"type": "error", "message": "api-0 is not a pod of service web"}
    assert AuditEvent.objects.filter(action=Action.TERMINAL_SESSION).count() == 1

    # Demoted to viewer while a session is open: the session ends at once.
    with socket(terminal_daphne, personas.member) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        membership = Membership.objects.get(user=personas.member, organization=personas.org)
        membership.role = Role.VIEWER
        membership.save()  # accounts.receivers tell the user's sockets to re-check their access
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=5)
        assert ws.close_code == CLOSE_NO_ACCESS
    poll(lambda: AuditEvent.objects.filter(action=Action.TERMINAL_SESSION).count() == 2, 5, "the cut session's event")


def test_an_idle_session_is_closed_with_a_message(terminal_daphne, connected, personas, project):
    deployed(project, personas.owner)
    with socket(terminal_daphne, personas.owner) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "ready"
        read_until(ws, b"# ")
        event = next_event(ws, timeout=IDLE + 5)
        assert event == {"type": "idle", "message": f"Session closed after {IDLE} seconds without activity."}
    event = poll(lambda: AuditEvent.objects.filter(action=Action.TERMINAL_SESSION).first(), 5, "the audit event")
    assert event.details["exit_status"] is None and event.details["duration_seconds"] >= IDLE


@pytest.mark.browser
def test_chromium_types_into_the_terminal_reads_the_echo_and_sees_the_exit_status(
        daphne_server, connected, personas, project, browser, monkeypatch):
    # The default idle timeout: a slow moment of a loaded machine must not end this session.
    base = daphne_server
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with ThreadPoolExecutor(1) as pool:  # deploy() publishes with async_to_sync: not in Playwright's loop thread
        pool.submit(deployed, project, personas.owner).result()
        pool.submit(lambda: connection.close()).result()  # that thread's own connection
    page = logged_in_page(browser, base, personas.member)
    page.set_viewport_size({"width": 1200, "height": 800})
    page.goto(f"{base}/o/acme/projects/shop/")
    page.get_by_test_id("terminal-web").click()
    status = page.get_by_test_id("terminal-status")
    expect(status).to_contain_text("Connected to web-", timeout=15000)
    rows = page.locator("#terminal .xterm-rows")
    expect(rows).to_contain_text("#")
    page.locator("#terminal").click()
    page.keyboard.type("echo hello-from-chromium\n")
    expect(rows).to_contain_text("hello-from-chromium", timeout=10000)
    # The typed line is echoed by the terminal, then the command prints the word on a line of its own.
    page.wait_for_function("() => document.querySelector('#terminal .xterm-rows').innerText"
                           ".split('\\n').some(l => l.trim() === 'hello-from-chromium')", timeout=10000)

    page.keyboard.type("stty size\n")
    page.wait_for_function("() => /\\n\\d+ \\d+\\n/.test(document.querySelector('#terminal .xterm-rows').innerText)")
    before = re.findall(r"^(\d+) (\d+)\s*$", rows.inner_text(), re.M)[-1]
    page.set_viewport_size({"width": 700, "height": 500})  # the fit addon resizes; the shell sees the new size
    page.wait_for_timeout(300)
    page.keyboard.type("stty size\n")
    page.wait_for_function("n => document.querySelector('#terminal .xterm-rows').innerText.match(/^\\d+ \\d+\\s*$/gm)"
                           ".length >= n", arg=2)
    after = re.findall(r"^(\d+) (\d+)\s*$", rows.inner_text(), re.M)[-1]
    assert int(after[1]) < int(before[1]) and int(after[0]) < int(before[0])

    page.keyboard.type("exit 3\n")
    expect(status).to_have_text("Session ended with exit status 3. Press Connect to start a new one.", timeout=10000)
    expect(rows).to_contain_text("[session ended: exit status 3]")
