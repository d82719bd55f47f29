"""The simulated users of bench/load_bench.py, run by Locust as a library in a process of their own.

    .venv/bin/python bench/load_users.py <config.json> <results.json>

load_bench.py starts the stack, seeds it and writes the config (hosts, session cookies, API tokens, durations);
this process only speaks HTTP and WebSocket to loopback daphnes. It imports nothing from the product: gevent's
monkey-patching (which Locust applies on import) and Django do not share a process.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # before anything opens a socket: Locust's greenlets and websocket-client share the patched stdlib

import itertools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402
import websocket  # noqa: E402  (websocket-client: plain sockets, so it cooperates once patched)
from locust import between, events, task  # noqa: E402
from locust.contrib.fasthttp import FastHttpUser  # noqa: E402
from locust.env import Environment  # noqa: E402

CONFIG: dict = {}
TALLY = {"deploys_live": 0, "deploys_failed": 0, "deploys_timed_out": 0, "deploys_in_flight": 0,
         "sockets_opened": 0, "sockets_refused": 0, "sockets_dropped": 0, "socket_messages": 0}
DEPLOY_SECONDS: list[float] = []
# "The load balancer": daphne behind each user, by turns (the bench runs no proxy; users split between the ports).
_BROWSER_IDS = itertools.count()
_DEPLOYER_IDS = itertools.count()
_POLLER_IDS = itertools.count()


def _fire(request_type: str, name: str, started: float, exception: Exception | None = None, length: int = 0) -> None:
    events.request.fire(request_type=request_type, name=name, response_time=(time.perf_counter() - started) * 1000,
                        response_length=length, exception=exception, context={})


class _Identity:
    """Picks the next identity of its kind from the config before FastHttpUser builds its client on `host`."""

    kind = ""
    ids: itertools.count

    def _assign(self) -> dict:
        people = CONFIG[self.kind]
        me = people[next(self.ids) % len(people)]
        self.host = me["host"]
        # The bench plays the TLS proxy in front of daphne (SECURE_PROXY_SSL_HEADER), so production settings
        # (HTTPS redirect, secure cookies) stay on.
        self.default_headers = {"X-Forwarded-Proto": "https", **me.get("headers", {})}
        return me


class BrowsingUser(_Identity, FastHttpUser):
    """A signed-in person on the dashboard, a project page, its releases and billing, with the live socket open."""

    kind = "browsers"
    ids = _BROWSER_IDS
    wait_time = between(1, 1)  # replaced from the config in main()

    def __init__(self, environment) -> None:
        self.me = self._assign()
        super().__init__(environment)
        self.socket: websocket.WebSocket | None = None
        self.closing = False

    def on_start(self) -> None:
        started = time.perf_counter()
        parts = urlsplit(self.host)
        try:
            self.socket = websocket.create_connection(
                f"ws://{parts.netloc}/ws/o/{self.me['org']}/events/", timeout=30,
                header=[f"Cookie: {self.me['headers']['Cookie']}", "X-Forwarded-Proto: https"],
                origin=f"https://{parts.netloc}")
        except Exception as exc:  # noqa: BLE001  (any failure to open is what the report counts)
            _fire("WS", "org events socket: open", started, exc)
            TALLY["sockets_refused"] += 1
            return
        _fire("WS", "org events socket: open", started)
        TALLY["sockets_opened"] += 1
        self.socket.settimeout(None)
        gevent.spawn(self._read)

    def _read(self) -> None:
        """Drain live events as a browser does; a socket the server closes while the user is still there is an
        error."""
        try:
            while True:
                message = self.socket.recv()
                if not message:
                    break
                TALLY["socket_messages"] += 1
        except Exception:  # noqa: BLE001, S110  (closed, by us or the server: told apart below)
            pass
        if not self.closing:
            TALLY["sockets_dropped"] += 1
            _fire("WS", "org events socket: dropped", time.perf_counter(), ConnectionError("server closed the socket"))

    def on_stop(self) -> None:
        self.closing = True
        if self.socket:
            self.socket.close()

    def _page(self, path: str, name: str) -> None:
        with self.client.get(path, name=name, catch_response=True) as response:
            if response.status_code == 200 and b"</html>" not in (response.content or b""):
                response.failure("200 without a whole page")

    @task(3)
    def dashboard(self) -> None:
        self._page(f"/o/{self.me['org']}/", "page: dashboard")

    @task(2)
    def projects(self) -> None:
        self._page(f"/o/{self.me['org']}/projects/", "page: project list")

    @task(3)
    def project(self) -> None:
        self._page(f"/o/{self.me['org']}/projects/{self.me['project']}/", "page: project")

    @task(2)
    def releases(self) -> None:
        self._page(f"/o/{self.me['org']}/projects/{self.me['project']}/releases/", "page: releases")

    @task(1)
    def billing(self) -> None:
        self._page(f"/o/{self.me['org']}/billing/", "page: billing")


class DeployingUser(_Identity, FastHttpUser):
    """Deploys through the REST API, then polls the release until it is live or failed, over and over."""

    kind = "deployers"
    ids = _DEPLOYER_IDS
    wait_time = between(1, 1)

    def __init__(self, environment) -> None:
        self.me = self._assign()
        super().__init__(environment)
        self.round = 0

    @task
    def deploy(self) -> None:
        self.round += 1
        base = f"/api/v1/organizations/{self.me['org']}/projects/{self.me['project']}/releases/"
        compose = CONFIG["compose"].replace("{tag}", f"{self.round}")
        started = time.perf_counter()
        with self.client.post(base, json={"compose": compose}, name="API: deploy (POST release)",
                              catch_response=True) as response:
            if response.status_code != 202:
                response.failure(f"{response.status_code}: {(response.text or '')[:200]}")
                return
            revision = response.json()["revision"]
        TALLY["deploys_in_flight"] += 1
        try:
            deadline = started + CONFIG["deploy_timeout"]
            while time.perf_counter() < deadline:
                gevent.sleep(CONFIG["deploy_poll"])
                with self.client.get(f"{base}{revision}/", name="API: release (poll)", catch_response=True) as r:
                    if r.status_code != 200:
                        r.failure(f"{r.status_code}")
                        continue
                    state = r.json()["status"]
                if state == "live":
                    TALLY["deploys_live"] += 1
                    DEPLOY_SECONDS.append(time.perf_counter() - started)
                    _fire("DEPLOY", "deploy: request -> live", started)
                    return
                if state in ("failed", "superseded"):
                    TALLY["deploys_failed"] += 1
                    _fire("DEPLOY", "deploy: request -> live", started, RuntimeError(f"release {state}"))
                    return
            TALLY["deploys_timed_out"] += 1
            _fire("DEPLOY", "deploy: request -> live", started, TimeoutError("not live in time"))
        finally:
            TALLY["deploys_in_flight"] -= 1


class ApiPoller(_Identity, FastHttpUser):
    """A script polling the REST API's lists with a personal API token."""

    kind = "pollers"
    ids = _POLLER_IDS
    wait_time = between(1, 1)

    def __init__(self, environment) -> None:
        self.me = self._assign()
        super().__init__(environment)

    def _list(self, path: str, name: str) -> None:
        with self.client.get(path, name=name, catch_response=True) as response:
            if response.status_code == 200 and "results" not in (response.json() or {}):
                response.failure("200 without a page of results")

    @task
    def projects(self) -> None:
        self._list(f"/api/v1/organizations/{self.me['org']}/projects/", "API: projects list")

    @task
    def releases(self) -> None:
        self._list(f"/api/v1/organizations/{self.me['org']}/projects/{self.me['project']}/releases/",
                   "API: releases list")

    @task
    def ledger(self) -> None:
        self._list(f"/api/v1/organizations/{self.me['org']}/billing/ledger/", "API: ledger list")


def main() -> None:
    config_path, results_path = sys.argv[1], sys.argv[2]
    CONFIG.update(json.loads(open(config_path).read()))  # noqa: SIM115, PTH123
    classes = []
    for cls, kind, think in ((BrowsingUser, "browsers", "browse_think"), (DeployingUser, "deployers", None),
                             (ApiPoller, "pollers", "poll_think")):
        cls.fixed_count = CONFIG["counts"][kind]
        if cls.fixed_count:
            cls.wait_time = between(*CONFIG[think]) if think else between(0.5, 1.5)
            classes.append(cls)
    env = Environment(user_classes=classes, events=events)
    runner = env.create_local_runner()
    total = sum(cls.fixed_count for cls in classes)
    runner.start(total, spawn_rate=CONFIG["spawn_rate"])
    ramp_started = time.monotonic()
    while runner.user_count < total and time.monotonic() - ramp_started < 120:
        gevent.sleep(0.2)
    gevent.sleep(2)  # the last users' first requests (sockets opening) land in the ramp, not in the window
    env.stats.reset_all()  # measure the fixed window at full load only
    for key in ("deploys_live", "deploys_failed", "deploys_timed_out"):
        TALLY[key] = 0  # deploys that end inside the window
    DEPLOY_SECONDS.clear()
    print(f"load: {runner.user_count} users running; measuring for {CONFIG['duration']} s", flush=True)
    window_started = time.monotonic()
    gevent.sleep(CONFIG["duration"])
    window = time.monotonic() - window_started
    entries = [{"type": e.method, "name": e.name, "count": e.num_requests, "failures": e.num_failures,
                "p50": e.get_response_time_percentile(0.5), "p99": e.get_response_time_percentile(0.99),
                "max": e.max_response_time} for e in env.stats.entries.values()]
    errors = [{"name": e.name, "type": e.method, "error": str(e.error), "count": e.occurrences}
              for e in env.stats.errors.values()]
    tally = dict(TALLY)  # before quit(): stopping the users ends their deploys' waits
    runner.quit()
    results = {"entries": entries, "errors": errors, "tally": tally,
               "sockets_open_at_end": tally["sockets_opened"] - tally["sockets_dropped"],
               "deploy_seconds": DEPLOY_SECONDS, "window": window, "users": total}
    with open(results_path, "w") as out:  # noqa: PTH123
        json.dump(results, out)


if __name__ == "__main__":
    main()
