"""A control plane and agents as real processes, shared by every app's integration tests.

`ControlPlane` is daphne on a fixed port (a test can stop and start it and the agent finds it again);
`Agents` runs `python -m agent` subprocesses against it; `poll` waits for a condition in the database.
The `plane` fixture in the root conftest wraps `ControlPlane`.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from clusters.models import Cluster, ClusterStatus
from paas.testing.processes import ManagedProcess, child_env, free_port, port_open, start_daphne

HEARTBEAT = "1"  # seconds: a dead agent is noticed within 3 s
T = TypeVar("T")


def poll(predicate: Callable[[], T], timeout: float = 15.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise TimeoutError(f"{what} not met within {timeout}s")


class ControlPlane:
    """Our own daphne on a fixed port, so a test can restart it and the agent finds it again."""

    def __init__(self, **env: str) -> None:
        self.port = free_port()
        self.proc: ManagedProcess | None = None
        self.env = env  # extra environment for daphne (the chaos tests' private Redis)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def agent_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/agent/ws"

    def start(self) -> None:
        self.proc, _ = start_daphne(self.port, **{"AGENT_HEARTBEAT_SECONDS": HEARTBEAT, "SITE_URL": self.url,
                                                   **self.env})

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
        poll(lambda: not port_open(self.port), 10, "daphne to stop listening")


class Agents:
    """Agent processes dialling `plane` (anything with an `agent_url`), each with its own token file."""

    def __init__(self, plane: ControlPlane, kubeconfig: Path, tmp_path: Path, **env: str) -> None:
        self.plane, self.kubeconfig, self.tmp_path = plane, kubeconfig, tmp_path
        self.env = env  # extra environment for every agent (where the chaos tests' data services listen)
        self.running: list[ManagedProcess] = []

    def start(self, token: str, name: str = "agent") -> ManagedProcess:
        token_file = self.tmp_path / f"{name}-token"
        token_file.write_text(token)
        health = free_port()
        proc = ManagedProcess(name, [sys.executable, "-m", "agent", "--server", self.plane.agent_url,
                                     "--token-file", str(token_file), "--kubeconfig", str(self.kubeconfig)],
                              child_env(AGENT_HEALTH_PORT=str(health), AGENT_BACKOFF_CAP="1",
                                        AGENT_REFUSED_GRACE="1", **self.env)).start()
        proc.health_port = health  # type: ignore[attr-defined]
        self.running.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.running:
            if proc.proc and proc.proc.poll() is None:
                os.killpg(proc.proc.pid, signal.SIGCONT)  # a test may have paused it with SIGSTOP
            proc.stop()


def online(cluster: Cluster, session_other_than: str = "") -> Cluster | None:
    cluster.refresh_from_db()
    if cluster.status == ClusterStatus.ONLINE and cluster.channel_name and cluster.session_id != session_other_than:
        return cluster
    return None
