"""The control-plane shell API (projects.terminal) over the whole path: daphne, Redis, the agent process, kubesim."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent import protocol as p
from audit.models import Action, AuditEvent
from paas.testing.plane import poll
from projects import releases, terminal
from projects.models import ReleaseStatus, Service
from projects.terminal import ShellRefused, Target, choose_pod, open_shell


def deployed(project, user) -> None:
    release = releases.deploy(project, user)

    def live() -> bool:
        release.refresh_from_db()
        return release.status in (ReleaseStatus.LIVE, ReleaseStatus.FAILED)

    poll(live, 60, "the release to finish")
    assert release.status == ReleaseStatus.LIVE, release.error


async def read_until(session: terminal.ShellSession, needle: bytes, timeout: float = 10.0) -> bytes:
    seen = b""
    async with asyncio.timeout(timeout):
        while needle not in seen:
            frame = await session.recv()
            assert frame is not None, f"the session ended before {needle!r}: {seen!r} {session.message}"
            seen += frame[1]
    return seen


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_member_gets_a_shell_and_the_session_is_audited_without_its_contents(connected, kubesim, personas,
                                                                               project, viewer):
    deployed(project, personas.owner)

    async def shell() -> terminal.ShellSession:
        session = await open_shell(personas.member, "acme", "shop", "web", cols=100, rows=30, client_ip="203.0.113.9")
        await read_until(session, b"# ")
        await session.send(b"echo secret-word-42\r")
        await read_until(session, b"secret-word-42\r\n")
        await session.send(b"stty size\r")
        await read_until(session, b"30 100")
        await session.resize(132, 43)
        await session.send(b"stty size\r")
        await read_until(session, b"43 132")
        await session.send(b"exit 5\r")
        async with asyncio.timeout(10):
            while await session.recv() is not None:
                pass
        await session.close()
        return session

    session = asyncio.run(shell())
    assert session.exit_code == 5
    assert session.pod.startswith("web-") and session.container == "web"
    event = AuditEvent.objects.get(action=Action.TERMINAL_SESSION)
    assert event.actor == personas.member and event.organization == personas.org
    assert event.target_type == "service" and event.ip_address == "203.0.113.9"
    assert event.details["pod"] == session.pod and event.details["exit_status"] == 5
    assert event.details["bytes_in"] == len(b"echo secret-word-42\rstty size\rstty size\rexit 5\r")
    assert event.details["bytes_out"] == session.bytes_out > 40
    assert "secret-word" not in json.dumps(event.details) + event.target_label

    async def refused(user, service: str = "web", **kwargs) -> ShellRefused:
        with pytest.raises(ShellRefused) as caught:
            await open_shell(user, "acme", "shop", service, **kwargs)
        return caught.value

    async def refusals() -> list[ShellRefused]:
        return [await refused(viewer), await refused(personas.outsider), await refused(personas.member, "nope"),
                await refused(personas.member, pod=session.pod.replace("web-", "api-")),
                await refused(personas.member, container="db")]

    viewer_no, outsider_no, missing, foreign_pod, no_container = asyncio.run(refusals())
    assert viewer_no.code == "forbidden" and "may deploy" in viewer_no.message
    assert outsider_no.code == "not_found" and missing.code == "not_found"
    assert "is not a pod of service web" in foreign_pod.message
    assert "has no container db; it has: web" in no_container.message
    assert AuditEvent.objects.filter(action=Action.TERMINAL_SESSION).count() == 1


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_command_runs_without_tty_and_returns_its_exit_status(connected, kubesim, personas, project):
    deployed(project, personas.owner)

    async def run() -> tuple[terminal.ShellSession, dict[int, bytes]]:
        session = await open_shell(personas.owner, "acme", "shop", "api", command=["sh", "-c", "echo out; cat /x; "
                                   "exit 4"], tty=False, channel="ssh")
        out = {p.EXEC_STDOUT: b"", p.EXEC_STDERR: b""}
        async for channel, data in session:
            out[channel] += data
        await session.close()
        return session, out

    session, out = asyncio.run(run())
    assert out == {p.EXEC_STDOUT: b"out\n", p.EXEC_STDERR: b"cat: /x: No such file or directory\n"}
    assert session.exit_code == 4
    assert AuditEvent.objects.get(action=Action.SSH_SESSION).details["exit_status"] == 4


def test_a_service_without_a_running_pod_is_refused(project):
    service = Service(project=project, name="web", status="starting")
    target = Target(project.created_by, project, service)
    pods = [{"name": "web-1", "phase": "Pending", "deleting": False, "containers": ["web"]},
            {"name": "web-2", "phase": "Running", "deleting": True, "containers": ["web"]}]
    with pytest.raises(ShellRefused, match="service web has no running pod"):
        choose_pod(target, pods, None)
    with pytest.raises(ShellRefused, match=r"pod web-1 is not running \(Pending\)"):
        choose_pod(target, pods, "web-1")
    with pytest.raises(ShellRefused, match=r"pod web-2 is not running \(terminating\)"):
        choose_pod(target, pods, "web-2")
    pods.append({"name": "web-3", "phase": "Running", "deleting": False, "containers": ["web"]})
    assert choose_pod(target, pods, None)["name"] == "web-3"


def test_the_terminal_page_and_link_are_for_members_who_may_deploy(client, personas, project, viewer):
    Service.objects.create(project=project, name="web", status="running")
    url = "/o/acme/projects/shop/services/web/terminal/"
    for user, status in ((personas.outsider, 404), (viewer, 403)):
        client.force_login(user)
        assert client.get(url).status_code == status
        assert 'data-testid="terminal-web"' not in client.get("/o/acme/projects/shop/services/").content.decode()
    client.force_login(personas.member)
    assert 'data-testid="terminal-web"' in client.get("/o/acme/projects/shop/services/").content.decode()
    page = client.get(url).content.decode()  # no agent is connected to this cluster
    assert "the project&#x27;s cluster is offline" in page
    assert client.get("/o/acme/projects/shop/services/nope/terminal/").status_code == 404
