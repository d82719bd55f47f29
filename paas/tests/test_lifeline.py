"""Children end with their parent (parent-death signal), and stale ones are reclaimed from pid files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from paas.lifeline import PidFiles

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")

# A parent that starts a long sleep the way the named module does, prints the sleep's pid, then waits to be killed.
PARENT = """
import os, sys, time
import django
django.setup()
if sys.argv[1] == "fixture":
    from paas.testing.processes import ManagedProcess
    child = ManagedProcess("sleeper", ["sleep", "600"], dict(os.environ)).start().proc
else:
    import subprocess
    from paas.lifeline import die_with_parent
    child = subprocess.Popen(["sleep", "600"], preexec_fn=die_with_parent())
print(child.pid, flush=True)
time.sleep(600)
"""


def gone(pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("starter", ["fixture", "lifeline"])
def test_a_child_ends_when_its_parent_is_killed(starter):
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="paas.settings")
    parent = subprocess.Popen([sys.executable, "-c", PARENT, starter], env=env, stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert psutil.Process(child).status() != psutil.STATUS_ZOMBIE
        parent.send_signal(signal.SIGKILL)  # nothing of the parent's runs any more: the kernel must do it
        parent.wait(10)
        assert gone(child), f"the {starter}'s child {child} outlived its killed parent"
    finally:
        parent.kill()
        parent.wait()


def test_reclaim_stops_recorded_processes_that_still_run_and_only_those(tmp_path):
    pids = PidFiles(tmp_path / "pids")
    stale = subprocess.Popen(["sleep", "600"], start_new_session=True)
    unrelated = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        assert stale.poll() is None
        pids.record("worker", stale.pid)
        # The same pid given to another process since: its start time differs, so it is left alone.
        (tmp_path / "pids" / "daphne.pid").write_text(f"{unrelated.pid} 12345.0\n")
        (tmp_path / "pids" / "beat.pid").write_text("not a pid\n")

        assert pids.reclaim() == [f"worker (pid {stale.pid})"]

        assert stale.poll() is not None  # stopped, and reaped, before reclaim() returned
        assert unrelated.poll() is None
        assert list((tmp_path / "pids").iterdir()) == []
        assert pids.reclaim() == []
    finally:
        for proc in (stale, unrelated):
            proc.kill()
            proc.wait()
