"""The SSH gateway: `ssh -p 2222 <project>.<service>@<platform host>` opens a shell in one of the service's pods.

It terminates SSH itself (asyncssh) and carries the session over the same `exec` stream as the browser
terminal (projects.terminal.open_shell: access gate, pod choice, audit record), so no container needs an sshd
and clusters behind NAT work. Users authenticate with the public keys on their SSH keys page; the user name
picks the service. Only shells and commands are offered: port, agent and X11 forwarding and subsystems (sftp)
are refused with a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncssh
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils import timezone

from accounts.models import SSHKey, User, ssh_fingerprint
from agent import protocol
from lib.realtime import user_group
from projects.access import AmbiguousName, get_service_for_login, get_service_for_user
from projects.terminal import ShellRefused, ShellSession, open_shell
from sshgateway.hostkey import load_or_create_host_key

log = logging.getLogger(__name__)

NOT_OFFERED = "{} is not offered by this gateway: it opens shells and runs commands in your services, nothing else."
INPUT_QUEUE = 64  # chunks of input waiting for the exec stream before the client is paused


@database_sync_to_async
def user_for_key(key: asyncssh.SSHKey) -> tuple[User, int] | None:
    """The owner of this public key (compared by its SHA256 fingerprint, unique across users) and the key's id."""
    found = SSHKey.objects.select_related("user").filter(fingerprint=ssh_fingerprint(key.public_data),
                                                          user__is_active=True).first()
    return (found.user, found.pk) if found else None


@database_sync_to_async
def mark_key_used(key_id: int) -> None:
    SSHKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())


@database_sync_to_async
def resolve(user: User, login: str) -> tuple[str, str, str]:
    """(organization, project, service) slugs the user name names, through the projects access gate."""
    service, _ = get_service_for_login(user, login, "deploy")
    return service.project.organization.slug, service.project.slug, service.name


@database_sync_to_async
def still_allowed(user: User, org: str, project: str, service: str) -> bool:
    try:
        user.refresh_from_db()
        get_service_for_user(user, org, project, service, "deploy")
    except (User.DoesNotExist, Http404, PermissionDenied):
        return False
    return user.is_active


async def access_lost(user: User, target: tuple[str, str, str]) -> None:
    """Returns once the user may no longer open this shell (member removed, role changed, account deactivated):
    the same notices (lib.realtime.access_changed) that close the user's browser sockets."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(user_group(user.pk), channel)
    try:
        if not await still_allowed(user, *target):  # changed between the first check and joining the group
            return
        while True:
            message = await layer.receive(channel)
            if message.get("type") == "access.changed" and not await still_allowed(user, *target):
                return
    finally:
        await layer.group_discard(user_group(user.pk), channel)


class GatewayServer(asyncssh.SSHServer):
    """One per connection: who authenticated, and what the client asked for that was refused."""

    def __init__(self) -> None:
        self.user: User | None = None
        self.ip = ""
        self.notices: list[str] = []
        self._offered: tuple[User, int] | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.ip = (conn.get_extra_info("peername") or ("",))[0]
        # asyncssh has no hook for refused agent or X11 forwarding (the OpenSSH client asks for agent forwarding
        # without wanting a reply, so it would be refused silently); these are the two calls that would grant them.
        conn.create_agent_listener = self._refuse_agent  # type: ignore[method-assign]
        conn.attach_x11_listener = self._refuse_x11  # type: ignore[method-assign]

    async def _refuse_agent(self) -> bool:
        self.notices.append(NOT_OFFERED.format("Agent forwarding"))
        return False

    async def _refuse_x11(self, *_: Any) -> None:
        self.notices.append(NOT_OFFERED.format("X11 forwarding"))

    def begin_auth(self, username: str) -> bool:
        return True  # every user name needs a key

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # asyncssh verifies the signature right after this call and authenticates with the last key validated.
        self._offered = await user_for_key(key)
        return self._offered is not None

    async def auth_completed(self) -> None:
        assert self._offered is not None
        self.user, key_id = self._offered
        await mark_key_used(key_id)

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                                        NOT_OFFERED.format("Port forwarding"))

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        self.notices.append(NOT_OFFERED.format("Remote port forwarding"))
        return False

    def session_requested(self) -> GatewaySession:
        return GatewaySession(self)


class GatewaySession(asyncssh.SSHServerSession):
    """One session channel: a shell, a command, or a refused subsystem, relayed to a pod's exec stream."""

    def __init__(self, server: GatewayServer) -> None:
        self.server = server
        self.chan: asyncssh.SSHServerChannel | None = None
        self.command: str | None = None
        self.subsystem = ""
        self.tty = False
        self.cols, self.rows = 80, 24
        # Keystrokes, window sizes and EOF in the order they came; the client is paused while it is long.
        self.input: asyncio.Queue[bytes | tuple[int, int] | None] = asyncio.Queue()
        self.writable = asyncio.Event()
        self.writable.set()
        self.task: asyncio.Task | None = None

    def connection_made(self, chan: asyncssh.SSHServerChannel) -> None:
        self.chan = chan

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any) -> bool:
        self.tty = True
        self.cols, self.rows = term_size[0] or 80, term_size[1] or 24
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self.command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        self.subsystem = subsystem  # accepted only to say it is refused (a bare failure shows no reason)
        return True

    def session_started(self) -> None:
        self.task = asyncio.ensure_future(self.run())

    def data_received(self, data: bytes, datatype: int | None) -> None:
        self.input.put_nowait(data)
        if self.input.qsize() > INPUT_QUEUE:
            self.chan.pause_reading()

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self.input.put_nowait((width, height))

    def eof_received(self) -> bool:
        self.input.put_nowait(None)
        return True  # keep the channel open for the command's remaining output

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task:
            self.task.cancel()

    def say(self, message: str) -> None:
        self.chan.write_stderr((message + ("\r\n" if self.tty else "\n")).encode())

    async def progress(self, message: str) -> None:
        """What the session waits for (a sleeping service waking), on stderr so a command's output stays clean."""
        self.say(f"{message} (the shell opens when a pod is ready)" if self.command is None else message)

    async def run(self) -> None:
        await asyncio.sleep(0)  # let refusals of requests that came with the session's opening be noted first
        for notice in self.server.notices:
            self.say(notice)
        if self.subsystem:
            self.say(NOT_OFFERED.format(f"The {self.subsystem} subsystem"))
            self.chan.exit(1)
            return
        opened = await self.open()
        if opened is None:
            self.chan.exit(1)
            return
        shell, target = opened
        relay = asyncio.ensure_future(self.relay(shell))
        lost = asyncio.ensure_future(access_lost(self.server.user, target))
        try:
            await asyncio.wait([relay, lost], return_when=asyncio.FIRST_COMPLETED)
        finally:
            relay.cancel()
            lost.cancel()
            await shell.close()
        if lost.done() and not lost.cancelled() and lost.exception() is None:
            self.say("session closed: you no longer have access to this service")
            self.chan.exit(255)
            return
        if shell.exit_code is None:  # the stream ended without a status: say why (agent gone, pod refused...)
            self.say(f"session ended: {shell.message}")
        self.chan.exit(shell.exit_code if shell.exit_code is not None else 255)

    async def open(self) -> tuple[ShellSession, tuple[str, str, str]] | None:
        user, login = self.server.user, self.chan.get_extra_info("username")
        try:
            target = org, project, service = await resolve(user, login)
            shell = await open_shell(user, org, project, service, tty=self.tty, cols=self.cols, rows=self.rows,
                                     command=["sh", "-c", self.command] if self.command else None,
                                     client_ip=self.server.ip, channel="ssh", progress=self.progress)
        except Http404:
            # The same answer for a missing and for another tenant's project.
            self.say(f"{login}: no such service among your projects. Use <project>.<service> or "
                     f"<organization>.<project>.<service> as the user name.")
            return None
        except (PermissionDenied, AmbiguousName, ShellRefused) as exc:
            self.say(f"{login}: {exc}")
            return None
        log.info("ssh session: %s from %s to %s", user, self.server.ip, login)
        return shell, target

    async def relay(self, shell: ShellSession) -> None:
        """Copy input and window changes to the exec stream and its output back, until the command exits."""

        async def upstream() -> None:
            with contextlib.suppress(ConnectionError):  # the process ended while input was still coming
                while (item := await self.input.get()) is not None:
                    if self.input.qsize() < INPUT_QUEUE // 2:
                        self.chan.resume_reading()
                    if isinstance(item, tuple):
                        await shell.resize(*item)
                    else:
                        await shell.send(item)
                await shell.eof()

        reader = asyncio.ensure_future(upstream())
        try:
            async for channel, data in shell:
                await self.writable.wait()  # the client's window is full: stop reading the stream meanwhile
                if channel == protocol.EXEC_STDERR:
                    self.chan.write_stderr(data)
                else:
                    self.chan.write(data)
        finally:
            reader.cancel()


async def start_gateway(host: str, port: int) -> asyncssh.SSHAcceptor:
    return await asyncssh.create_server(
        GatewayServer, host, port, server_host_keys=[load_or_create_host_key()], encoding=None,
        agent_forwarding=False, x11_forwarding=False, password_auth=False, kbdint_auth=False)
