"""Load: a production-mode stack under browsing, deploying and polling users for a fixed time.

    .venv/bin/python bench/load_bench.py                   # 200 browsers, 20 deployers, 10 API pollers, 60 s
    .venv/bin/python bench/load_bench.py --quick           # the same for 15 s
    .venv/bin/python bench/load_bench.py --browsers 20 --deployers 2 --pollers 2 --duration 20

The stack, started here as processes on loopback: DEBUG=false settings, a fresh PostgreSQL database made for
this run (dropped at the end unless --keep-database), Redis (--redis-db), 2 daphne processes (no proxy in front:
users are split between the two ports by turns), 2 Celery workers (`celery -A paas worker` as in production: a
prefork pool of one process per core each, --worker-concurrency), kubesim (controllers on, 0.5 s delay) and one
agent connected to the first daphne as the install manifest's ServiceAccount. The bench plays the TLS proxy:
requests carry `X-Forwarded-Proto: https` (SECURE_PROXY_SSL_HEADER), so the HTTPS redirect and secure cookies
stay on. Organizations, people, memberships, projects, API tokens and a first release per project are made with
the product's services functions; browsers get a session cookie made with Django's login.

The users run in a separate process (bench/load_users.py, Locust as a library with gevent): each browser opens
its organization's live socket and stays on it while it reads the dashboard, the project list, a project page,
its releases and billing (3-7 s between pages); each deployer POSTs a release through the REST API and polls it
until live or failed, again and again; each poller reads the projects, releases and ledger API lists (1-3 s).
Statistics cover the fixed window after every user has started.

Printed, each with its goal: p50/p99 per request kind (goal p50 < 100 ms; the same request on the idle stack
just before is the baseline, printed as a ratio), errors (goal: none), deploys completed (goal: every deploy
that ended went live), live sockets still open (goal: all), database queries per page before and after the
load added rows (goal: the same), and peak RSS of each daphne and worker (goal: < 512 MB, a 1 GiB container
with room to spare). Loopback only: refuses a database or Redis that is not on this machine.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
sys.path.insert(0, str(BASE_DIR / "bench"))

from tunnel_bench import percentile, setup_django, ws_url  # noqa: E402

COMPOSE = """services:
  web:
    image: ghcr.io/load/web:{tag}
    ports:
      - "8080:80"
"""
P50_GOAL_MS = 100
RSS_GOAL_MB = 512


def loopback(url: str, what: str) -> None:
    """The bench loads only this machine: anything else is refused before a connection is made."""
    host = urlsplit(url).hostname or ""
    try:
        ok = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise SystemExit(f"load_bench: {what} must be on loopback (127.0.0.0/8, ::1 or localhost), not {host!r}")


def fresh_database(base_url: str) -> tuple[str, str]:
    """Create an empty database next to the one `base_url` names; (its URL, its name)."""
    import psycopg

    parts = urlsplit(base_url)
    name = f"{parts.path.strip('/') or 'paas'}_load_{datetime.now(UTC):%Y%m%d%H%M%S}"
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}")), name


def drop_database(base_url: str, name: str) -> None:
    import psycopg

    parts = urlsplit(base_url)
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def production_environment(database_url: str, redis_url: str) -> None:
    """What an operator sets in production (README, *Running it*), for this process and its children."""
    from cryptography.fernet import Fernet

    os.environ.update(
        DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), PAAS_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="127.0.0.1,testserver", SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https",
        SITE_URL="https://127.0.0.1", LOG_LEVEL="WARNING", PROJECTS_ROLLOUT_TIMEOUT="120",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",  # the seed's invitations
        DATABASE_URL=database_url, REDIS_URL=redis_url,
    )


def collect_static() -> None:
    """DEBUG=false serves hashed names from STATIC_ROOT's manifest; collecting takes minutes on a busy machine
    (monaco compressed twice), so an up-to-date manifest is reused."""
    from django.conf import settings
    from django.core.management import call_command

    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    sources = [p for p in (BASE_DIR / "static").rglob("*") if p.is_file()]
    if manifest.exists() and all(p.stat().st_mtime < manifest.stat().st_mtime for p in sources):
        print(f"static files: reusing {manifest} (newer than static/)")
        return
    print("static files: collecting (a few minutes the first time)")
    call_command("collectstatic", interactive=False, verbosity=0)


class Stack:
    """The processes of the control plane, kubesim and the agent; stopped in reverse order."""

    def __init__(self, workdir: Path, concurrency: int) -> None:
        self.workdir = workdir
        self.concurrency = concurrency  # of each worker's prefork pool; 0: Celery's default, one per core
        self.procs: list = []
        self.daphnes: list = []
        self.workers: list = []
        self.hosts: list[str] = []

    def start(self) -> None:
        from clusters import manifest
        from clusters import services as cluster_services
        from clusters.models import Cluster, ClusterStatus
        from paas.testing.processes import ManagedProcess, child_env, free_port, port_open, start_daphne

        port = free_port()
        kubeconfig = self.workdir / "kubesim.kubeconfig"
        sim = ManagedProcess("kubesim", [sys.executable, "-m", "kubesim", "--port", str(port), "--kubeconfig-out",
                                         str(kubeconfig), "--preload-crds"], child_env()).start()
        self.procs.append(sim)
        sim.wait_for(lambda: port_open(port) and kubeconfig.exists(), 60, "listen")
        for _ in range(2):
            daphne, host = start_daphne()
            self.procs.append(daphne)
            self.daphnes.append(daphne)
            self.hosts.append(host)
        for n in range(2):
            worker = ManagedProcess(f"worker{n}", [
                sys.executable, "-m", "celery", "-A", "paas", "worker", "--loglevel=WARNING", "-n", f"load{n}@%h",
                *([f"--concurrency={self.concurrency}"] if self.concurrency else []),
                "--without-gossip", "--without-mingle", "--without-heartbeat"], child_env())
            self.procs.append(worker.start())
            self.workers.append(worker)
        self.cluster = cluster_services.create_cluster("Load (simulated)", "apps.load.test", simulated=True)
        token_file = self.workdir / "agent-token"
        token_file.write_text(cluster_services.issue_token(self.cluster))
        agent_kubeconfig = manifest.install_for_local_agent(kubeconfig, self.workdir / "agent.kubeconfig")
        agent = ManagedProcess("agent", [sys.executable, "-m", "agent", "--server", ws_url(self.hosts[0]),
                                         "--token-file", str(token_file), "--kubeconfig", str(agent_kubeconfig),
                                         "--health-port", "0", "--log-level", "WARNING"], child_env()).start()
        self.procs.append(agent)
        agent.wait_for(lambda: Cluster.objects.get(pk=self.cluster.pk).status == ClusterStatus.ONLINE, 60,
                       "connect")

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.proc.poll() is not None:
                raise RuntimeError(f"{proc.name} exited with {proc.proc.returncode}:\n{proc.output()[-3000:]}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def seed(stack: Stack, orgs: int, browsers: int, deployers: int, pollers: int) -> dict:
    """Organizations with an owner (who deploys), members (who browse), projects and API tokens, made with the
    product's services functions; a first release of every browsed project, deployed through the stack."""
    from allauth.account.models import EmailAddress
    from django.conf import settings
    from django.test import Client

    from accounts.models import Membership, User
    from accounts.services import accept_invitation, create_api_token, create_organization, invite
    from projects import releases
    from projects.models import Release, ReleaseStatus
    from projects.services import create_project

    def make_user(email: str) -> User:
        # Signed in by session cookie: no password, so no 220 slow password hashes on a busy machine.
        user = User.objects.create_user(username=email.split("@")[0], email=email, password=None)
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        return user

    def cookie(user) -> str:
        client = Client()
        client.force_login(user)
        return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"

    world: dict = {"browsers": [], "deployers": [], "pollers": [], "orgs": []}
    first_releases = []
    per_org = -(-browsers // orgs)
    for i in range(orgs):
        owner = make_user(f"owner{i}@load.test")
        org = create_organization(owner, f"Load {i}")
        owner_membership = Membership.objects.get(user=owner, organization=org)
        shop = create_project(org, owner, "Shop", stack.cluster, compose_text=COMPOSE.replace("{tag}", "0"))
        target = create_project(org, owner, "Deploy target", stack.cluster)
        for k in range(3):  # the default plan allows 5 projects: the list shows a full organization
            create_project(org, owner, f"Extra {k}", stack.cluster)
        first_releases.append(releases.deploy(shop, owner, shop.compose_text))
        first_releases.append(releases.deploy(target, owner, shop.compose_text))  # lists with a row from the start
        members = []
        for j in range(min(per_org, browsers - i * per_org)):
            member = make_user(f"member{i}-{j}@load.test")
            issued = invite(owner_membership, member.email)
            accept_invitation(member, issued.url.rstrip("/").rsplit("/", 1)[-1])
            members.append(member)
        host = stack.hosts[i % len(stack.hosts)]
        for n, member in enumerate(members):
            world["browsers"].append({"org": org.slug, "project": shop.slug, "email": member.email,
                                      "host": stack.hosts[(i + n) % len(stack.hosts)],
                                      "headers": {"Cookie": cookie(member)}})
        owner_token = create_api_token(owner, "load deployer")[1]
        world["orgs"].append({"org": org, "owner": owner, "shop": shop, "target": target, "token": owner_token})
        if i < deployers:
            world["deployers"].append({"org": org.slug, "project": target.slug, "host": host,
                                       "headers": {"Authorization": f"Bearer {owner_token}"}})
        if i < pollers:  # the owner's script (a member may not read the ledger)
            poller_token = create_api_token(owner, "load poller")[1]
            world["pollers"].append({"org": org.slug, "project": shop.slug, "host": stack.hosts[(i + 1) % 2],
                                     "headers": {"Authorization": f"Bearer {poller_token}"}})
    # More deployers than organizations: the extra ones share an owner, each with a project of its own.
    for n in range(orgs, deployers):
        spot = world["orgs"][n % orgs]
        project = create_project(spot["org"], spot["owner"], f"Deploy target {n}", stack.cluster)
        world["deployers"].append({"org": spot["org"].slug, "project": project.slug,
                                   "host": stack.hosts[n % 2], "headers": {"Authorization": f"Bearer {spot['token']}"}})
    deadline = time.monotonic() + 300
    pks = [r.pk for r in first_releases]
    while Release.objects.filter(pk__in=pks, status__in=(ReleaseStatus.PENDING, ReleaseStatus.DEPLOYING)).exists():
        stack.check_alive()
        if time.monotonic() > deadline:
            raise SystemExit("load_bench: the seed's first releases did not finish within 300 s")
        time.sleep(0.5)
    failed = list(Release.objects.filter(pk__in=pks).exclude(status=ReleaseStatus.LIVE).values_list("error", flat=True))
    if failed:
        raise SystemExit(f"load_bench: {len(failed)} seed releases did not go live: {failed[:3]}")
    return world


def pages_of(spot: dict) -> list[tuple[str, str, str]]:
    """(kind, URL, auth) of each page and API list the users request, on one organization's projects."""
    o, target = spot["org"].slug, spot["target"].slug
    return [
        ("page: dashboard", f"/o/{o}/", "session"),
        ("page: project list", f"/o/{o}/projects/", "session"),
        ("page: project", f"/o/{o}/projects/{target}/", "session"),
        ("page: releases", f"/o/{o}/projects/{target}/releases/", "session"),
        ("page: billing", f"/o/{o}/billing/", "session"),
        ("API: projects list", f"/api/v1/organizations/{o}/projects/", "token"),
        ("API: releases list", f"/api/v1/organizations/{o}/projects/{target}/releases/", "token"),
        ("API: ledger list", f"/api/v1/organizations/{o}/billing/ledger/", "token"),
    ]


def count_queries(spot: dict) -> dict[str, int]:
    """Database queries of each page and list for the deploying owner, through Django's test client on the same
    database the stack uses (the deploy target's releases grow during the run)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(spot["owner"])
    counts = {}
    for kind, url, auth in pages_of(spot):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {spot['token']}"} if auth == "token" else {}
        (Client() if auth == "token" else client).get(url, secure=True, **headers)  # warm: caches, last_used
        with CaptureQueriesContext(connection) as captured:
            response = (Client() if auth == "token" else client).get(url, secure=True, **headers)
        if response.status_code != 200:
            raise SystemExit(f"load_bench: {url} answered {response.status_code}")
        counts[kind] = len(captured)
    return counts


def idle_latency(host: str, spot: dict, session_cookie: str, rounds: int) -> dict[str, float]:
    """p50 (ms) of each request on the idle stack, one at a time: the baseline of the loaded figures."""
    import requests

    out = {}
    with requests.Session() as http:
        for kind, url, auth in pages_of(spot):
            headers = {"X-Forwarded-Proto": "https"}
            headers |= {"Authorization": f"Bearer {spot['token']}"} if auth == "token" else {"Cookie": session_cookie}
            samples = []
            for _ in range(rounds + 2):  # two warm-ups
                t0 = time.perf_counter()
                response = http.get(host + url, headers=headers, timeout=30, allow_redirects=False)
                samples.append((time.perf_counter() - t0) * 1000)
                if response.status_code != 200:
                    raise SystemExit(f"load_bench: idle {url} answered {response.status_code}")
            out[kind] = statistics.median(samples[2:])
    return out


def _tree(pid: int) -> list:
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


class Sampler(threading.Thread):
    """Peak resident memory and CPU time of each process (and its children) while the load runs."""

    def __init__(self, procs: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = procs
        self.peak = dict.fromkeys(procs, 0.0)
        self.cpu = dict.fromkeys(procs, 0.0)  # CPU seconds, user + system, last seen
        self.done = threading.Event()
        self.started = time.monotonic()
        self.ended = self.started

    def rss(self, pid: int) -> float:
        import psutil

        try:
            return sum(p.memory_info().rss for p in _tree(pid)) / 2**20
        except psutil.Error:
            return 0.0

    def cpu_seconds(self, pid: int) -> float:
        import psutil

        try:
            return sum(sum(p.cpu_times()[:2]) for p in _tree(pid))
        except psutil.Error:
            return 0.0

    def run(self) -> None:
        start = {name: self.cpu_seconds(pid) for name, pid in self.pids.items()}
        while not self.done.wait(0.5):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], self.rss(pid))
                self.cpu[name] = max(self.cpu[name], self.cpu_seconds(pid) - start[name])
            self.ended = time.monotonic()

    def cpu_percent(self, name: str) -> float:
        return 100 * self.cpu[name] / max(0.001, self.ended - self.started)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def report(results: dict, idle: dict[str, float], queries_before: dict, queries_after: dict, rss_idle: dict,
           sampler: Sampler, args, releases_added: int) -> bool:
    all_met = True
    entries = sorted(results["entries"], key=lambda e: (e["type"], e["name"]))
    print(f"\nLoad: {results['users']} users for {results['window']:.0f} s ({args.browsers} browsing with a live "
          f"socket, {args.deployers} deploying, {args.pollers} polling the API); 2 daphne, 2 workers, 1 agent\n")
    print(f"{'request':<34} {'count':>6} {'fail':>5} {'p50 ms':>7} {'p99 ms':>7} {'idle p50':>9} {'ratio':>6}  goal")
    for e in entries:
        if e["count"] == 0 and e["failures"] == 0:
            continue
        base = idle.get(e["name"])
        ratio = f"x{e['p50'] / base:.1f}" if base else ""
        base_text = f"{base:.1f}" if base else ""
        if e["type"] == "DEPLOY":
            goal = "(request -> live: no goal, see deploys)"
        elif "dropped" in e["name"]:
            goal = "none dropped: NOT MET"
            all_met = False
        else:
            ok = e["p50"] < P50_GOAL_MS
            all_met &= ok
            goal = f"p50 < {P50_GOAL_MS} ms: {verdict(ok)}"
        print(f"{e['name']:<34} {e['count']:>6} {e['failures']:>5} {e['p50']:>7.0f} {e['p99']:>7.0f} "
              f"{base_text:>9} {ratio:>6}  {goal}")

    failures = sum(e["failures"] for e in results["entries"])
    all_met &= failures == 0
    print(f"\nerrors: {failures} (goal: none): {verdict(failures == 0)}")
    for err in results["errors"]:
        print(f"  {err['count']:>5} x {err['type']} {err['name']}: {err['error'][:160]}")

    t = results["tally"]
    ended = t["deploys_live"] + t["deploys_failed"] + t["deploys_timed_out"]
    deploys_ok = t["deploys_live"] > 0 and t["deploys_live"] == ended
    all_met &= deploys_ok
    seconds = results["deploy_seconds"]
    timing = (f"; request -> live p50 {statistics.median(seconds):.1f} s, p99 {percentile(seconds, 99):.1f} s"
              if seconds else "")
    print(f"deploys completed (live) in the window: {t['deploys_live']}, failed {t['deploys_failed']}, timed out "
          f"{t['deploys_timed_out']}, still in flight at the end {t['deploys_in_flight']}{timing} "
          f"(goal: every deploy that ended went live): {verdict(deploys_ok)}")

    sockets_ok = results["sockets_open_at_end"] == args.browsers
    all_met &= sockets_ok
    print(f"live sockets open at the end: {results['sockets_open_at_end']} of {args.browsers} (since the start, ramp "
          f"included: {t['sockets_refused']} failed to open, {t['sockets_dropped']} closed by the server); "
          f"{t['socket_messages']} live events received (goal: all open): {verdict(sockets_ok)}")

    print(f"\ndatabase queries per request, before the load and after it added {releases_added} releases "
          "(goal: the same):")
    for kind, before in queries_before.items():
        ok = queries_after[kind] == before
        all_met &= ok
        print(f"  {kind:<32} {before:>4} -> {queries_after[kind]:<4} {verdict(ok)}")

    print(f"\npeak RSS (MB, process and its children; goal < {RSS_GOAL_MB} MB each) and CPU (% of one core, "
          "averaged over ramp and window):")
    for name in rss_idle:
        peak = sampler.peak[name]
        ok = peak < RSS_GOAL_MB
        all_met &= ok
        print(f"  {name:<10} idle {rss_idle[name]:>6.0f}  peak {peak:>6.0f}  {verdict(ok):<8} CPU "
              f"{sampler.cpu_percent(name):>4.0f}%")
    busy = sampler.cpu_percent("locust")
    print(f"  {'locust':<10} (the load generator, one gevent process)                CPU {busy:>4.0f}%"
          + ("  <- near a core: latencies include its own queueing" if busy > 80 else ""))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end (other processes "
          "included)")
    print(f"\nall goals met: {'yes' if all_met else 'NO'}")
    return all_met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60, help="seconds measured at full load (default 60)")
    parser.add_argument("--quick", action="store_true", help="measure for 15 s")
    parser.add_argument("--browsers", type=int, default=200, help="browsing users, each with a live socket")
    parser.add_argument("--deployers", type=int, default=20, help="users deploying at once through the API")
    parser.add_argument("--pollers", type=int, default=10, help="API clients polling lists")
    parser.add_argument("--orgs", type=int, default=20, help="organizations the browsers are spread over")
    parser.add_argument("--spawn-rate", type=float, default=20, help="users started per second (default 20)")
    parser.add_argument("--browse-think", default="3,7", help="seconds between a browser's pages (min,max)")
    parser.add_argument("--poll-think", default="1,3", help="seconds between a poller's requests (min,max)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/paas_load"),
                        help="PostgreSQL server (and name prefix) of the fresh database made for this run")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"),
                        help="Redis server (its database number is replaced by --redis-db)")
    parser.add_argument("--redis-db", type=int, default=8, help="Redis database number (default 8)")
    parser.add_argument("--worker-concurrency", type=int, default=0,
                        help="processes in each Celery worker's pool (default: Celery's, one per core)")
    parser.add_argument("--keep-database", action="store_true", help="leave the run's database behind")
    args = parser.parse_args()
    duration = 15.0 if args.quick else max(5.0, args.duration)
    if not urlsplit(args.database_url).scheme.startswith("postgres"):
        raise SystemExit("load_bench: --database-url must be PostgreSQL (postgres://...), as in production")
    loopback(args.database_url, "the database")
    loopback(args.redis_url, "Redis")
    if min(args.browsers, args.orgs) < 1 or min(args.deployers, args.pollers) < 0:
        raise SystemExit("load_bench: --browsers and --orgs take at least 1; --deployers, --pollers at least 0")
    args.pollers = min(args.pollers, args.orgs)  # one poller per organization (a member's token)
    redis_url = urlunsplit(urlsplit(args.redis_url)._replace(path=f"/{args.redis_db}"))

    # Stopped with Ctrl-C or kill: still stop the stack and drop the database (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    database_url, database = fresh_database(args.database_url)
    workdir = Path(tempfile.mkdtemp(prefix="load-bench-"))
    production_environment(database_url, redis_url)
    print(f"load bench: database {database}, Redis db {args.redis_db}, work files in {workdir}")
    stack = None
    try:
        setup_django(database_url, redis_url)
        import redis

        from projects.models import Release

        redis.Redis.from_url(redis_url).flushdb()  # queues and rate limits of an earlier run on this db
        collect_static()
        stack = Stack(workdir, args.worker_concurrency)
        stack.start()
        print(f"stack up: daphne {' and '.join(stack.hosts)}; seeding {args.orgs} organizations")
        world = seed(stack, args.orgs, args.browsers, args.deployers, args.pollers)
        spot = world["orgs"][0]
        queries_before = count_queries(spot)
        idle = idle_latency(stack.hosts[0], spot, world["browsers"][0]["headers"]["Cookie"], 20)
        # The browsers' pages are on the Shop project, the idle ones on the deploy target: the same templates.
        releases_before = Release.objects.count()

        config = {"browsers": world["browsers"], "deployers": world["deployers"], "pollers": world["pollers"],
                  "counts": {"browsers": args.browsers, "deployers": args.deployers, "pollers": args.pollers},
                  "browse_think": [float(x) for x in args.browse_think.split(",")],
                  "poll_think": [float(x) for x in args.poll_think.split(",")],
                  "duration": duration, "spawn_rate": args.spawn_rate, "compose": COMPOSE,
                  "deploy_timeout": 150, "deploy_poll": 0.5}
        (workdir / "config.json").write_text(json.dumps(config))
        pids = {f"daphne{n}": p.proc.pid for n, p in enumerate(stack.daphnes)}
        pids |= {w.name: w.proc.pid for w in stack.workers}
        from paas.testing.processes import ManagedProcess

        users = ManagedProcess("locust", [sys.executable, str(BASE_DIR / "bench" / "load_users.py"),
                                          str(workdir / "config.json"), str(workdir / "results.json")],
                               dict(os.environ, PYTHONUNBUFFERED="1")).start()
        sampler = Sampler(pids | {"locust": users.proc.pid})
        rss_idle = {name: sampler.rss(pid) for name, pid in pids.items()}
        sampler.start()
        print(f"users starting ({args.spawn_rate:.0f}/s); their log: {users.log}")
        deadline = time.monotonic() + duration + 300
        while users.proc.poll() is None:
            stack.check_alive()
            if time.monotonic() > deadline:
                users.stop()
                raise SystemExit(f"load_bench: the users did not finish:\n{users.output()[-3000:]}")
            time.sleep(1)
        sampler.done.set()
        if users.proc.returncode != 0 or not (workdir / "results.json").exists():
            raise SystemExit(f"load_bench: the users failed:\n{users.output()[-3000:]}")
        results = json.loads((workdir / "results.json").read_text())
        queries_after = count_queries(spot)
        all_met = report(results, idle, queries_before, queries_after, rss_idle, sampler, args,
                         Release.objects.count() - releases_before)
        return 0 if all_met else 1
    finally:
        if stack:
            stack.stop()
        from django.db import connections

        connections.close_all()
        if args.keep_database:
            print(f"kept database {database}")
        else:
            drop_database(args.database_url, database)


if __name__ == "__main__":
    sys.exit(main())
