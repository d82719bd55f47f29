"""Real processes for integration tests: daphne, a Celery worker, anything with a port.

They run with the test database and Redis the test session uses, so a test can act in the
browser or through a task and observe the effect in the database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings
from django.db import connection

from paas.lifeline import die_with_parent

BASE_DIR = Path(settings.BASE_DIR)
# Child processes write e-mail here (file backend), so tests can follow links in them.
MAIL_DIR = Path(tempfile.mkdtemp(prefix="paas-test-mail-"))


def sent_mail() -> list[str]:
    """Bodies of the e-mails child processes sent, oldest first."""
    return [p.read_text() for p in sorted(MAIL_DIR.glob("*.log"), key=lambda p: p.stat().st_mtime)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    """A DATABASE_URL for child processes that points at the test database in use."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="paas.settings",
        DATABASE_URL=test_database_url(),
        REDIS_URL=settings.REDIS_URL,
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(MAIL_DIR),
        CACHE_KEY_PREFIX=MAIL_DIR.name,  # unique per test run: no rate limits carried over
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class ManagedProcess:
    """A child process whose output goes to a log file, stopped (and reaped) on exit."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str]):
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.log = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None

    def start(self) -> ManagedProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, cwd=BASE_DIR, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                # Its own group, so stop() reaches its children too; the parent-death signal, so a killed
                # pytest leaves no daphne or worker behind to eat the next run's tasks. SIGKILL, not SIGTERM: a
                # test's process has nothing to save, and a daphne stuck in its shutdown once outlived a run by
                # minutes, holding the next run's test database open.
                start_new_session=True, preexec_fn=die_with_parent(signal.SIGKILL),
            )
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            if predicate():
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not {what} within {timeout}s:\n{self.output()[-3000:]}")

    def stop(self, timeout: float = 10) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_daphne(port: int | None = None, **env: str) -> tuple[ManagedProcess, str]:
    port = port or free_port()
    proc = ManagedProcess(
        "daphne",
        [sys.executable, "-m", "paas.daphne_server", "-b", "127.0.0.1", "-p", str(port), "paas.asgi:application"],
        child_env(**env),
    ).start()
    proc.wait_for(lambda: port_open(port), 30, "listen")
    return proc, f"http://127.0.0.1:{port}"


def start_tls_daphne(cert: Path, key: Path, port: int | None = None, **env: str) -> tuple[ManagedProcess, str]:
    """daphne serving HTTPS with that certificate (for kubectl, which sends a bearer token only over TLS)."""
    port = port or free_port()
    endpoint = f"ssl:port={port}:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    proc = ManagedProcess(
        "daphne-tls", [sys.executable, "-m", "paas.daphne_server", "-e", endpoint, "paas.asgi:application"],
        child_env(**env),
    ).start()
    proc.wait_for(lambda: port_open(port), 30, "listen")
    return proc, f"https://127.0.0.1:{port}"


def start_celery_worker(**env: str) -> ManagedProcess:
    proc = ManagedProcess(
        "celery",
        [sys.executable, "-m", "celery", "-A", "paas", "worker", "--pool=solo", "--loglevel=INFO",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        child_env(**env),
    ).start()
    proc.wait_for(lambda: "ready." in proc.output(), 60, "become ready")
    return proc


def start_celery_beat(schedule_dir: Path, **env: str) -> ManagedProcess:
    """Celery beat with its schedule file in `schedule_dir`: the periodic jobs of CELERY_BEAT_SCHEDULE."""
    proc = ManagedProcess(
        "celery-beat",
        [sys.executable, "-m", "celery", "-A", "paas", "beat", "--loglevel=INFO",
         "--schedule", str(schedule_dir / "celerybeat-schedule")],
        child_env(**env),
    ).start()
    proc.wait_for(lambda: "beat: Starting" in proc.output(), 60, "start")
    return proc
