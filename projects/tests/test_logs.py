"""Live logs end to end: a real daphne and Redis, the agent process, kubesim; the browser's socket and the
REST download, for each persona."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from accounts.models import Membership
from lib.realtime import CLOSE_NO_ACCESS
from projects import releases
from projects.consumers import BROWSER_WINDOW
from projects.tests.test_projects_deploy import finished

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

NS = "tenant-acme-shop"


@pytest.fixture
def deployed(connected, kubesim, personas, project):
    release = finished(releases.deploy(project, personas.owner))
    assert release.status == "live", release.error
    return project


def pods_of(kubesim, service: str) -> list[str]:
    return sorted(p["metadata"]["name"] for p in kubesim.list("Pod", NS)
                  if p["metadata"]["labels"].get("paas.dev/service") == service
                  and (p.get("status") or {}).get("phase") == "Running")


def cookie_for(user) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


class LogSocket:
    """The browser's end of the log socket."""

    def __init__(self, ws, ack: bool = True) -> None:
        self.ws, self.ack = ws, ack
        self.frames: list[dict[str, Any]] = []
        self.received = 0  # bytes of "lines" messages
        self.last_seq = 0
        self.messages: list[dict[str, Any]] = []

    async def start(self, **options: Any) -> None:
        await self.ws.send(json.dumps({"type": "start", **options}))

    async def read_until(self, predicate, timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                raw = await self.ws.recv()
                header, _, ndjson = raw.partition("\n")
                message = json.loads(header)
                self.messages.append(message)
                if message["type"] == "lines":
                    self.received += len(raw)
                    self.frames += [json.loads(line) for line in ndjson.splitlines()]
                    self.last_seq = message["seq"]
                    if self.ack:
                        await self.ws.send(json.dumps({"type": "ack", "seq": message["seq"]}))

    def lines(self) -> list[str]:
        return [f["line"] for f in self.frames if "line" in f]


async def open_socket(base: str, cookie: str, path: str, ack: bool = True):
    ws = await connect(base.replace("http://", "ws://") + path,
                       additional_headers={"Cookie": cookie, "Origin": base}, max_size=None)
    return LogSocket(ws, ack)


def test_a_viewer_follows_a_service_live_and_sees_only_its_pods(daphne_server, deployed, kubesim, viewer):
    web, api = pods_of(kubesim, "web")[0], pods_of(kubesim, "api")[0]
    cookie = cookie_for(viewer)

    async def scenario() -> LogSocket:
        sock = await open_socket(daphne_server, cookie, "/ws/o/acme/projects/shop/services/web/logs/")
        await sock.start(follow=True, tail=5)
        await sock.read_until(lambda s: any("started" in line for line in s.lines()))  # kubesim's start-up lines
        await asyncio.to_thread(kubesim.push_logs, NS, web, ["GET / 200"])
        await asyncio.to_thread(kubesim.push_logs, NS, api, ["api secret line"])
        await sock.read_until(lambda s: "GET / 200" in s.lines())
        # Removed from the organization: the socket closes at once, and no further line reaches it.
        await asyncio.to_thread(Membership.objects.filter(user=viewer).delete)
        with pytest.raises(ConnectionClosed):
            await sock.read_until(lambda s: False, timeout=10)
        return sock

    sock = asyncio.run(scenario())
    assert {f["pod"] for f in sock.frames if "line" in f} == {web}
    assert "api secret line" not in sock.lines()
    assert sock.ws.close_code == CLOSE_NO_ACCESS


def test_the_project_view_merges_services_and_resumes_without_duplicates(daphne_server, deployed, kubesim,
                                                                          personas):
    web, worker = pods_of(kubesim, "web")[0], pods_of(kubesim, "worker")[0]
    cookie = cookie_for(personas.member)

    async def scenario() -> tuple[LogSocket, LogSocket]:
        first = await open_socket(daphne_server, cookie, "/ws/o/acme/projects/shop/logs/")
        await first.start(follow=True, tail=100)
        await asyncio.to_thread(kubesim.push_logs, NS, web, ["web one"])
        await asyncio.to_thread(kubesim.push_logs, NS, worker, ["worker one"])
        await first.read_until(lambda s: {"web one", "worker one"} <= set(s.lines())
                               and {f["container"] for f in s.frames if "line" in f} == {"web", "api", "worker"})
        await first.ws.close()  # the network drops (or daphne restarts) here
        marks: dict[str, list] = {}
        for frame in first.frames:
            if "line" in frame:
                key = f"{frame['pod']}/{frame['container']}"
                mark = marks.get(key)
                marks[key] = [frame["ts"], mark[1] + 1] if mark and mark[0] == frame["ts"] else [frame["ts"], 1]
        await asyncio.to_thread(kubesim.push_logs, NS, web, ["web two"])
        second = await open_socket(daphne_server, cookie, "/ws/o/acme/projects/shop/logs/")
        await second.start(follow=True, tail=100, resume=marks)
        await second.read_until(lambda s: "web two" in s.lines())
        await asyncio.to_thread(kubesim.push_logs, NS, worker, ["worker two"])
        await second.read_until(lambda s: "worker two" in s.lines())
        await second.ws.close()
        return first, second

    first, second = asyncio.run(scenario())
    assert second.lines() == ["web two", "worker two"]  # nothing the first socket showed comes again


def test_an_outsider_and_a_missing_service_are_refused(daphne_server, deployed, personas):
    async def refused(user, path: str) -> int:
        with pytest.raises(InvalidStatus) as info:
            await open_socket(daphne_server, user, path)
        return info.value.response.status_code

    outsider, owner = cookie_for(personas.outsider), cookie_for(personas.owner)
    assert asyncio.run(refused(outsider, "/ws/o/acme/projects/shop/logs/")) == 403
    assert asyncio.run(refused(outsider, "/ws/o/acme/projects/shop/services/web/logs/")) == 403
    assert asyncio.run(refused(owner, "/ws/o/acme/projects/shop/services/nope/logs/")) == 403


def test_a_slow_browser_holds_at_most_the_window_and_then_sees_a_skipped_marker(daphne_server, deployed, kubesim,
                                                                                 personas):
    web = pods_of(kubesim, "web")[0]
    cookie = cookie_for(personas.owner)
    total = 60_000

    async def scenario() -> tuple[LogSocket, int]:
        sock = await open_socket(daphne_server, cookie, "/ws/o/acme/projects/shop/services/web/logs/",
                                 ack=False)
        await sock.start(follow=True, tail=0)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(kubesim.push_logs, NS, web, [f"flood {i:06d} " + "x" * 100 for i in range(total)])
        await asyncio.sleep(3)
        with pytest.raises(TimeoutError):  # it stops sending once a window is unacknowledged
            await sock.read_until(lambda s: False, timeout=2)
        assert sock.received <= BROWSER_WINDOW + 600 * 1024  # one window plus the batch that crossed it
        sock.ack = True
        await sock.ws.send(json.dumps({"type": "ack", "seq": sock.last_seq}))
        probes = 0
        while not any(line.startswith("probe") for line in sock.lines()):  # sent while dropping: dropped too
            probes += 1
            await asyncio.to_thread(kubesim.push_logs, NS, web, [f"probe {probes}"])
            with contextlib.suppress(TimeoutError):
                await sock.read_until(lambda s: any(line.startswith("probe") for line in s.lines()), timeout=1)
        await sock.ws.close()
        return sock, probes

    sock, probes = asyncio.run(scenario())
    skipped = sum(f.get("skipped", 0) for f in sock.frames)
    shown = sum(1 for line in sock.lines() if line.startswith("flood"))
    first_probe = next(i for i, f in enumerate(sock.frames) if f.get("line", "").startswith("probe"))
    assert all("skipped" not in f for f in sock.frames[first_probe:])  # the marker sits where lines went missing
    assert skipped > 0 and shown + skipped == total + probes - 1


def test_the_rest_download_for_each_persona(daphne_server, deployed, kubesim, personas, viewer):
    web = pods_of(kubesim, "web")[0]
    kubesim.push_logs(NS, web, [f"line {i}" for i in range(20)])
    client = Client()
    client.force_login(viewer)
    response = client.get("/api/v1/organizations/acme/projects/shop/services/web/logs/?tail=3")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="shop-web-logs.txt"'
    text = response.content.decode()
    assert [line.split(" ", 2)[2] for line in text.splitlines()] == ["line 17", "line 18", "line 19"]
    assert text.splitlines()[0].split(" ")[1] == f"{web}/web"
    everything = client.get("/api/v1/organizations/acme/projects/shop/logs/?tail=1").content.decode()
    assert {line.split(" ")[1].split("/")[1] for line in everything.splitlines()} == {"web", "api", "worker"}
    assert client.get("/api/v1/organizations/acme/projects/shop/logs/?tail=nope").status_code == 400
    client.force_login(personas.outsider)
    assert client.get("/api/v1/organizations/acme/projects/shop/services/web/logs/").status_code == 404
