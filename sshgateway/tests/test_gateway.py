"""The SSH gateway as users meet it: the real OpenSSH client against a `manage.py ssh_gateway` process, which
reaches the project's pods through Redis, daphne, the agent process and kubesim (its exec stream and shell)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import asyncssh
import pytest

from accounts.models import Membership, SSHKey
from accounts.services import add_ssh_key, create_organization
from audit.models import AuditEvent
from conftest import skip_or_fail
from paas.testing.processes import ManagedProcess, child_env, free_port, port_open
from projects import releases, services
from projects.tests.test_projects_deploy import finished

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SSH = shutil.which("ssh")


@pytest.fixture(autouse=True)
def _openssh_client() -> None:
    if SSH is None:
        skip_or_fail("the OpenSSH client is not installed (apt-get install -y openssh-client)")


class Gateway:
    """A gateway process on its own port and host key, and an OpenSSH client that trusts only that key."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.host_key = tmp_path / "gateway-host-key"
        self.known_hosts = tmp_path / "known_hosts"
        self.proc: ManagedProcess | None = None

    def start(self) -> Gateway:
        argv = [sys.executable, "manage.py", "ssh_gateway", "--port", str(self.port)]
        self.proc = ManagedProcess("ssh-gateway", argv, child_env(SSH_HOST_KEY_PATH=str(self.host_key))).start()
        self.proc.wait_for(lambda: port_open(self.port), 30, "listen")
        if not self.known_hosts.exists():  # what the client learnt the first time; a restart must match it
            public = asyncssh.read_private_key(self.host_key).export_public_key().decode().split()[:2]
            self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {' '.join(public)}\n")
        return self

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()

    def key_for(self, user, name: str = "laptop") -> Path:
        """A fresh key pair whose public half is on the user's SSH keys page (None: a key nobody registered)."""
        key = asyncssh.generate_private_key("ssh-ed25519")
        path = self.tmp_path / f"id-{name}-{getattr(user, 'pk', 'nobody')}"
        key.write_private_key(path)
        path.chmod(0o600)
        if user is not None:
            add_ssh_key(user, name, key.export_public_key().decode())
        return path

    def argv(self, key: Path, login: str, *args: str) -> list[str]:
        return [SSH, "-F", "/dev/null", "-p", str(self.port), "-i", str(key), "-o", "IdentitiesOnly=yes",
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", *args[:-1], f"{login}@127.0.0.1", *args[-1:]]

    def run(self, key: Path, login: str, *args: str, env: dict[str, str] | None = None,
            wrapper: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        """ssh [options] login@host COMMAND: the last of args is the remote command."""
        return subprocess.run([*wrapper, *self.argv(key, login, *args)], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


class Terminal:
    """ssh -tt in a real pseudo-terminal, so window changes happen as in a user's terminal emulator."""

    def __init__(self, argv: list[str], cols: int, rows: int) -> None:
        self.master, slave = pty.openpty()
        self.set_size(cols, rows)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        self.screen = b""

    def set_size(self, cols: int, rows: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def resize(self, cols: int, rows: int) -> None:
        self.set_size(cols, rows)
        self.proc.send_signal(signal.SIGWINCH)  # what the kernel sends the terminal's foreground process

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, text: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.screen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{text!r} not on the screen within {timeout}s: {self.screen[-500:]!r}")
            if select.select([self.master], [], [], left)[0]:
                try:
                    self.screen += os.read(self.master, 65536)
                except OSError:  # the client exited and closed the terminal
                    raise TimeoutError(f"{text!r} never came: {self.screen[-500:]!r}") from None
        before, _, self.screen = self.screen.partition(text.encode())
        return before.decode(errors="replace")

    def close(self) -> int:
        code = self.proc.wait(15)
        os.close(self.master)
        return code


@pytest.fixture
def gateway(tmp_path, redis_url):
    if not SSH:
        pytest.skip("NOT RUN: the OpenSSH client is not installed (apt-get install openssh-client)")
    started = Gateway(tmp_path).start()
    yield started
    started.stop()


@pytest.fixture
def deployed(connected, personas, project):
    """Shop deployed to kubesim: web, api and worker each run a pod."""
    release = finished(releases.deploy(project, personas.owner))
    assert release.status == "live", release.error
    return project


def test_a_pty_shell_echoes_what_is_typed_follows_window_changes_and_is_audited(gateway, deployed, personas):
    key = gateway.key_for(personas.member)
    term = Terminal(gateway.argv(key, "shop.web", "-tt"), cols=100, rows=30)
    term.expect("# ")
    term.type("stty size\r")
    assert "30 100" in term.expect("# ")  # the size the client's terminal had when it connected
    term.type("echo hello from the pod\r")
    assert "hello from the pod" in term.expect("# ")
    term.resize(132, 40)
    # The client sends the window change when it notices the signal, not in step with the keystrokes: ask again.
    deadline, size = time.monotonic() + 10, ""
    while "40 132" not in size and time.monotonic() < deadline:
        term.type("stty size\r")
        size = term.expect("# ")
    assert "40 132" in size
    term.type("exit 3\r")
    assert term.close() == 3

    event = AuditEvent.objects.filter(action="ssh.session").latest("pk")
    assert event.actor == personas.member and event.ip_address == "127.0.0.1"
    assert event.details["pod"].startswith("web-") and event.details["exit_status"] == 3
    assert event.details["bytes_in"] > 0 and event.details["bytes_out"] > 0
    assert SSHKey.objects.get(user=personas.member).last_used_at is not None


def test_a_command_returns_its_output_and_exit_status(gateway, deployed, personas):
    key = gateway.key_for(personas.owner)
    hello = gateway.run(key, "shop.web", "echo hello")
    assert (hello.returncode, hello.stdout) == (0, "hello\n"), hello.stderr
    assert gateway.run(key, "acme.shop.api", "exit 7").returncode == 7
    missing = gateway.run(key, "shop.worker", "cat /no/such/file")
    assert missing.returncode == 1 and missing.stdout == ""
    assert "No such file or directory" in missing.stderr
    assert gateway.run(key, "shop.web", "hostname").stdout.startswith("web-")
    piped = subprocess.run(gateway.argv(key, "shop.web", "cat"), input="piped in\n", capture_output=True, text=True,
                           timeout=30)
    assert (piped.returncode, piped.stdout) == (0, "piped in\n")  # stdin, then its end, reach the command


def test_who_may_connect(gateway, personas, project, cluster, viewer):
    project.services.create(name="web", image="nginx:1.27")
    charlie = gateway.key_for(personas.outsider)

    def refusal(key: Path, login: str) -> str:
        result = gateway.run(key, login, "true")
        assert result.returncode == 1 and result.stdout == ""
        return result.stderr.replace(login, "<login>")

    # Another tenant's project answers exactly as a project that does not exist.
    missing = refusal(charlie, "nothere.web")
    assert "no such service" in missing
    assert refusal(charlie, "shop.web") == refusal(charlie, "acme.shop.web") == missing
    assert "does not allow this" in refusal(gateway.key_for(viewer), "shop.web")

    stranger = gateway.run(gateway.key_for(None), "shop.web", "true")
    assert stranger.returncode == 255 and "Permission denied (publickey)" in stranger.stderr

    services.create_project(create_organization(personas.owner, "Beta"), personas.owner, "Shop", cluster)
    ambiguous = gateway.run(gateway.key_for(personas.owner), "shop.web", "true")
    assert ambiguous.returncode == 1
    assert "use acme.shop.web or beta.shop.web" in ambiguous.stderr


def test_forwarding_and_subsystems_are_refused_with_a_message(gateway, personas, project):
    project.services.create(name="web", image="nginx:1.27")
    key = gateway.key_for(personas.owner)

    stdio = gateway.run(key, "shop.web", "-W", "127.0.0.1:80", "-N")
    assert stdio.returncode == 255
    assert "administratively prohibited: Port forwarding is not offered by this gateway" in stdio.stderr

    # Under an ssh-agent of its own (which exits with it), so the client has an agent to offer.
    asked = gateway.run(key, "shop.web", "-R", "0:127.0.0.1:80", "-A", "-X", "true", env={"DISPLAY": ":99"},
                        wrapper=("ssh-agent",))
    for what in ("Remote port forwarding", "Agent forwarding", "X11 forwarding"):
        assert f"{what} is not offered by this gateway" in asked.stderr

    sftp = subprocess.run(["sftp", "-F", "/dev/null", "-P", str(gateway.port), "-i", str(key), "-o", "BatchMode=yes",
                           "-o", f"UserKnownHostsFile={gateway.known_hosts}", "shop.web@127.0.0.1"],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert sftp.returncode != 0 and "The sftp subsystem is not offered by this gateway" in sftp.stderr


def test_the_host_key_is_kept_across_restarts(gateway, personas, project):
    key = gateway.key_for(personas.owner)
    first = gateway.host_key.read_bytes()
    gateway.stop()
    gateway.start()
    assert gateway.host_key.read_bytes() == first
    result = gateway.run(key, "nothere.web", "true")
    assert result.returncode == 1 and "no such service" in result.stderr  # authenticated: the host key matched


def test_an_open_session_closes_when_its_user_loses_access(gateway, deployed, personas):
    key = gateway.key_for(personas.member)
    term = Terminal(gateway.argv(key, "shop.web", "-tt"), cols=80, rows=24)
    term.expect("# ")
    Membership.objects.filter(user=personas.member, organization=personas.org).delete()
    term.expect("session closed: you no longer have access to this service")
    assert term.close() == 255
    assert "no such service" in gateway.run(key, "shop.web", "true").stderr  # and no new session either
