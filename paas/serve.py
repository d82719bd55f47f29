"""Run daphne, a Celery worker and Celery beat together in the foreground (bin/run).

Their output is interleaved line by line with a coloured name prefix. Ctrl-C (or SIGTERM)
stops all of them; if one dies, the others are stopped too so nothing half-runs.
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
COLOURS = {"daphne": 36, "worker": 33, "beat": 35, "redis": 32, "kubesim": 34, "agent": 31}


def prefix(name: str) -> bytes:
    return f"\033[{COLOURS.get(name, 37)}m{name:>7} |\033[0m ".encode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/run", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="address daphne binds")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")), help="daphne's port")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas.settings")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if not os.environ.get("REDIS_URL"):
        from django.conf import settings

        from paas import embedded_redis

        url = embedded_redis.start(settings.EMBEDDED_REDIS_PORT, BASE_DIR / "var" / "redis")
        env["REDIS_URL"] = url
        sys.stdout.buffer.write(prefix("redis") + f"embedded Redis listening at {url}\n".encode())

    py = sys.executable
    commands = {
        "daphne": [py, "-m", "daphne", "-b", args.host, "-p", str(args.port), "paas.asgi:application"],
        "worker": [py, "-m", "celery", "-A", "paas", "worker", "--loglevel=INFO", "--concurrency=2"],
        "beat": [py, "-m", "celery", "-A", "paas", "beat", "--loglevel=INFO",
                 "--schedule", str(BASE_DIR / "var" / "celerybeat-schedule")],
    }
    procs: dict[str, subprocess.Popen] = {}
    sel = selectors.DefaultSelector()
    for name, cmd in commands.items():
        proc = subprocess.Popen(cmd, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        procs[name] = proc
        sel.register(proc.stdout, selectors.EVENT_READ, name)

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # noqa: S104
    sys.stdout.buffer.write(f"\n  Open http://{host}:{args.port}/  (Ctrl-C stops everything)\n\n".encode())
    sys.stdout.flush()

    exit_code = 0
    while not stopping:
        for key, _ in sel.select(timeout=0.5):
            line = key.fileobj.readline()
            if line:
                sys.stdout.buffer.write(prefix(key.data) + line)
                sys.stdout.flush()
        for name, proc in procs.items():
            if proc.poll() is not None:
                sys.stdout.buffer.write(prefix(name) + f"exited with {proc.returncode}; stopping\n".encode())
                exit_code = proc.returncode or 1
                stopping = True

    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for name, proc in procs.items():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
        for line in proc.stdout:
            sys.stdout.buffer.write(prefix(name) + line)
    sys.stdout.flush()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
