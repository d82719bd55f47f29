"""Run daphne, a Celery worker, Celery beat and the SSH gateway together in the foreground (bin/run).

Their output is interleaved line by line with a coloured name prefix. Ctrl-C (or SIGTERM, or SIGHUP when
the terminal closes) stops all of them; if one dies, the others are stopped too so nothing half-runs. If the
supervisor itself is killed, its children get the parent-death signal (paas.lifeline), and the next start
stops any recorded in var/pids/ that still run. One supervisor runs per var/ directory: a second one says
which pid runs and exits with 1.

--emulated-cluster also runs kubesim (the Kubernetes API emulator, with its HTTP edge and Sablier stand-in)
and an agent connected to it, registered as the cluster "local (simulated)" with the base domain
`apps.localhost`, so the whole product works without K3s and service URLs
(http://<name>.apps.localhost:<edge port>/, which browsers resolve to loopback) answer.
--k3s registers the local K3s instead (KUBECONFIG or /etc/rancher/k3s/k3s.yaml) and runs the agent
against it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from paas.lifeline import PidFiles, die_with_parent

BASE_DIR = Path(__file__).resolve().parent.parent
COLOURS = {"daphne": 36, "worker": 33, "beat": 35, "redis": 32, "kubesim": 34, "agent": 31, "ssh": 92}


def prefix(name: str) -> bytes:
    return f"\033[{COLOURS.get(name, 37)}m{name:>7} |\033[0m ".encode()


VAR = Path(os.environ.get("PAAS_VAR_DIR") or BASE_DIR / "var")  # the local cluster's token, beat's schedule
KUBESIM_KUBECONFIG = VAR / "kubesim.kubeconfig"  # kubesim's admin
AGENT_KUBECONFIG = VAR / "agent.kubeconfig"  # the agent's ServiceAccount on kubesim
AGENT_TOKEN = VAR / "agent-token"
K3S_KUBECONFIG = Path("/etc/rancher/k3s/k3s.yaml")
# *.localhost is loopback (RFC 6761): Chromium and curl resolve it themselves, with no DNS.
EMULATED_BASE_DOMAIN = "apps.localhost"
DJANGO_PROCESSES = ("daphne", "worker", "beat", "ssh")  # the control plane's own, which share its metrics
LOCK = VAR / "run.lock"  # held (flock) by the running supervisor; the kernel drops it however that ends
PIDS = PidFiles(VAR / "pids")


def out(data: bytes) -> None:
    """Write to our terminal, which may be gone (SIGHUP): stopping the children matters more than saying so."""
    with contextlib.suppress(OSError):
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def running_pid() -> int | None:
    """The pid of the supervisor running on this var/ directory, if one runs."""
    if not LOCK.exists():
        return None
    with LOCK.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            return int(lock.read().strip() or 0)
        return None


def already_running(pid: int) -> str:
    return (f"bin/run: already running, pid {pid} (with {VAR}); stop it with Ctrl-C in its terminal or "
            f"`kill {pid}`, or give this one another PAAS_VAR_DIR and ports.\n")


def take_lock() -> TextIO | None:
    """Hold the var/ directory's lock for as long as this process lives (None when another one holds it)."""
    VAR.mkdir(parents=True, exist_ok=True)
    lock = LOCK.open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def spawn(name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    """A child in a process group of its own (the terminal's signals reach the supervisor only, which stops
    the children in order), which the kernel signals if the supervisor dies, recorded for the next start."""
    proc = subprocess.Popen(cmd, cwd=BASE_DIR, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, process_group=0, preexec_fn=die_with_parent())
    PIDS.record(name, proc.pid)
    return proc


def wait_for_file(path: Path, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            out = proc.stdout.read().decode(errors="replace") if proc.poll() is not None else ""
            raise SystemExit(f"bin/run: kubesim did not start (no {path}):\n{out}")
        time.sleep(0.05)


def local_cluster_commands(args: argparse.Namespace, env: dict[str, str],
                           py: str) -> tuple[dict[str, list[str]], list[str] | None]:
    """kubesim (when emulated) and an agent for the local cluster, after registering it with a fresh token.

    With kubesim, registering also installs the agent's ServiceAccount and RBAC from the install manifest, so
    the agent runs with its own permissions, not kubesim's admin: that command is returned, to be run once
    kubesim serves. Otherwise the cluster is registered here and None is returned.
    """
    VAR.mkdir(exist_ok=True)
    commands: dict[str, list[str]] = {}
    register = [py, "manage.py", "ensure_local_cluster", "--token-file", str(AGENT_TOKEN)]
    if args.emulated_cluster:
        KUBESIM_KUBECONFIG.unlink(missing_ok=True)
        commands["kubesim"] = [py, "-m", "kubesim", "--port", str(args.kubesim_port),
                               "--kubeconfig-out", str(KUBESIM_KUBECONFIG), "--preload-crds", "--k3s-addons",
                               "--edge-port", str(args.edge_port), "--pod-start-delay", str(args.pod_start_delay),
                               "--sablier-port", str(args.sablier_port)]
        # The agent's "wake" calls Sablier; here that is kubesim's stand-in instead of the in-cluster Service.
        env["AGENT_SABLIER_URL"] = f"http://127.0.0.1:{args.sablier_port}"
        register += ["--simulated", "--install-with", str(KUBESIM_KUBECONFIG),
                     "--agent-kubeconfig", str(AGENT_KUBECONFIG), "--base-domain", EMULATED_BASE_DOMAIN]
        kubeconfig = AGENT_KUBECONFIG
    else:
        kubeconfig = Path(os.environ.get("KUBECONFIG") or K3S_KUBECONFIG)
        if not kubeconfig.is_file():
            raise RuntimeError(f"--k3s: no kubeconfig at {kubeconfig} (set KUBECONFIG, or run as a user who can "
                               f"read {K3S_KUBECONFIG})")
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # noqa: S104
    commands["agent"] = [py, "-m", "agent", "--server", f"ws://{host}:{args.port}/agent/ws",
                         "--token-file", str(AGENT_TOKEN), "--kubeconfig", str(kubeconfig), "--health-port", "0"]
    if args.emulated_cluster:
        return commands, register
    subprocess.run(register, cwd=BASE_DIR, env=env, check=True)
    return commands, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/run", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="address daphne binds")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")), help="daphne's port")
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--emulated-cluster", action="store_true",
                         help="also run kubesim and a local agent, registered as the cluster 'local (simulated)'")
    cluster.add_argument("--k3s", action="store_true",
                         help="register the local K3s (KUBECONFIG or /etc/rancher/k3s/k3s.yaml) and run an agent on it")
    parser.add_argument("--kubesim-port", type=int, default=int(os.environ.get("KUBESIM_PORT", "16443")),
                        help="kubesim's port with --emulated-cluster (default 16443)")
    parser.add_argument("--edge-port", type=int, default=int(os.environ.get("EDGE_PORT", "8080")),
                        help="where service URLs answer with --emulated-cluster (kubesim's HTTP edge; default 8080)")
    parser.add_argument("--sablier-port", type=int, default=int(os.environ.get("SABLIER_PORT", "10000")),
                        help="the Sablier stand-in's port with --emulated-cluster (default 10000, Sablier's own)")
    parser.add_argument("--pod-start-delay", type=float, default=2.0, metavar="S",
                        help="seconds an emulated pod takes to start, so waking a sleeping service shows (default 2)")
    parser.add_argument("--ssh-port", type=int, default=int(os.environ.get("SSH_PORT", "2222")),
                        help="the SSH gateway's port (default 2222)")
    parser.add_argument("--check", action="store_true",
                        help="only say whether a supervisor already runs on this var/ directory (exit 1 if so)")
    args = parser.parse_args(argv)
    if args.check:
        pid = running_pid()
        if pid:
            sys.stderr.write(already_running(pid))
        return 1 if pid else 0
    lock = take_lock()
    if lock is None:
        sys.stderr.write(already_running(running_pid() or 0))
        return 1
    for stale in PIDS.reclaim():
        out(f"bin/run: stopped {stale}, left running by a previous bin/run\n".encode())
    try:
        return supervise(args)
    finally:
        PIDS.forget("redis")
        lock.close()


def supervise(args: argparse.Namespace) -> int:
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)  # the terminal closed: stop as for Ctrl-C, not die and leave them
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas.settings")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if not os.environ.get("REDIS_URL"):
        from django.conf import settings

        from paas import embedded_redis

        url = embedded_redis.start(settings.EMBEDDED_REDIS_PORT, VAR / "redis")
        PIDS.record("redis", embedded_redis.pid())
        env["REDIS_URL"] = url
        out(prefix("redis") + f"embedded Redis listening at {url}\n".encode())

    py = sys.executable
    commands = {
        "daphne": [py, "-m", "paas.daphne_server", "-b", args.host, "-p", str(args.port), "paas.asgi:application"],
        "worker": [py, "-m", "celery", "-A", "paas", "worker", "--loglevel=INFO", "--concurrency=2"],
        "beat": [py, "-m", "celery", "-A", "paas", "beat", "--loglevel=INFO",
                 "--schedule", str(VAR / "celerybeat-schedule")],
        "ssh": [py, "manage.py", "ssh_gateway", "--host", args.host, "--port", str(args.ssh_port)],
    }
    register_after_kubesim = None
    if args.emulated_cluster or args.k3s:
        try:
            local, register_after_kubesim = local_cluster_commands(args, env, py)
            commands = {**local, **commands}
        except RuntimeError as exc:
            sys.stderr.write(f"bin/run: {exc}\n")
            return 2
    # The control plane's processes write their metrics to one directory that /metrics sums (prometheus_client's
    # multiprocess mode); it starts empty so a previous run's counters do not carry over.
    metrics_dir = VAR / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    django_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    procs: dict[str, subprocess.Popen] = {}
    sel = selectors.DefaultSelector()
    for name, cmd in commands.items():
        proc = procs[name] = spawn(name, cmd, django_env if name in DJANGO_PROCESSES else env)
        sel.register(proc.stdout, selectors.EVENT_READ, name)
        if name == "kubesim":
            wait_for_file(KUBESIM_KUBECONFIG, proc)  # the agent's install needs the kubeconfig kubesim writes
            if register_after_kubesim:
                subprocess.run(register_after_kubesim, cwd=BASE_DIR, env=env, check=True)

    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host  # noqa: S104
    out(f"\n  Open http://{host}:{args.port}/  (Ctrl-C stops everything)\n".encode())
    if args.emulated_cluster:
        out(f"  Deployed services answer at http://<name>.{EMULATED_BASE_DOMAIN}:{args.edge_port}/ "
            f"(each URL is printed by an 'edge:' line when its route appears)\n".encode())
    out(b"\n")

    exit_code = 0
    partial = {name: b"" for name in procs}  # a line's start, until its newline arrives
    while not stopping:
        for key, _ in sel.select(timeout=0.5):
            # Raw reads: a buffered readline() would keep further lines of one chunk out of the selector's sight.
            chunk = os.read(key.fileobj.fileno(), 65536)
            *lines, partial[key.data] = (partial[key.data] + chunk).split(b"\n")
            out(b"".join(prefix(key.data) + line + b"\n" for line in lines))
        for name, proc in list(procs.items()):
            if proc.poll() is not None:
                if name == "agent":
                    # The local agent exits on its own only when its token was revoked: keep the rest up.
                    out(prefix(name) + f"exited with {proc.returncode}\n".encode())
                    sel.unregister(proc.stdout)
                    procs.pop(name)
                    PIDS.forget(name)
                    continue
                out(prefix(name) + f"exited with {proc.returncode}; stopping\n".encode())
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
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own children too (the worker's pool)
            proc.wait()
        PIDS.forget(name)
        if partial[name]:
            out(prefix(name) + partial[name] + b"\n")
        out(b"".join(prefix(name) + line for line in proc.stdout))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
