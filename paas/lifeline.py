"""Child processes that end with the process that started them, however it ends.

Two safety nets, used by bin/run's supervisor (paas.serve), the embedded Redis and the test fixtures
(paas.testing.processes):

- Linux's parent-death signal: `die_with_parent()` is a `preexec_fn` that asks the kernel to send the child
  a signal when its parent dies, SIGKILL included, when no code of the parent's can run any more.
- Pid files: `PidFiles` records each child's pid and start time, so the next start finds and stops any
  that still outlived their supervisor (another OS, a child that forked away from the signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import psutil

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen: the child gets `sig` when this process dies (None off Linux).

    The kernel ties the signal to the thread that forks, not to the process: started from a thread that
    may end first, the child would be killed with that thread, so only the main thread's children get it.
    """
    if _prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def preexec() -> None:
        _prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl: nobody would signal us
            os.kill(os.getpid(), sig)

    return preexec


def _started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def stop_tree(process: psutil.Process, timeout: float = 5) -> None:
    """SIGTERM a process and its descendants, then SIGKILL whatever is left after `timeout` seconds."""
    with contextlib.suppress(psutil.Error):
        family = [process, *process.children(recursive=True)]
        for member in family:
            with contextlib.suppress(psutil.Error):
                member.terminate()
        _, alive = psutil.wait_procs(family, timeout=timeout)
        for member in alive:
            with contextlib.suppress(psutil.Error):
                member.kill()
        psutil.wait_procs(alive, timeout=timeout)


class PidFiles:
    """`<dir>/<name>.pid` files holding "<pid> <start time>" for each running child.

    The start time tells a stale entry from an unrelated process that was given the same pid since.
    """

    def __init__(self, directory: Path):
        self.directory = directory

    def record(self, name: str, pid: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / f"{name}.pid").write_text(f"{pid} {_started(pid) or 0}\n")

    def forget(self, name: str) -> None:
        (self.directory / f"{name}.pid").unlink(missing_ok=True)

    def reclaim(self) -> list[str]:
        """Stop every recorded process that still runs (its supervisor is gone); "name (pid N)" of each."""
        stopped = []
        for path in sorted(self.directory.glob("*.pid")) if self.directory.is_dir() else []:
            with contextlib.suppress(ValueError, OSError):
                pid_text, started_text = path.read_text().split()
                pid, started = int(pid_text), float(started_text)
                if (now := _started(pid)) is not None and abs(now - started) < 0.01:
                    stop_tree(psutil.Process(pid))
                    stopped.append(f"{path.stem} (pid {pid})")
            path.unlink(missing_ok=True)
        return stopped

