"""manage.py ssh_gateway [--host H] [--port N]: run the SSH gateway in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from sshgateway.hostkey import host_key_fingerprint
from sshgateway.server import start_gateway


class Command(BaseCommand):
    help = "Run the SSH gateway: ssh -p PORT <project>.<service>@HOST opens a shell in that service."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=settings.SSH_PORT, help="port (default SSH_PORT, 2222)")

    def handle(self, *args, host: str, port: int, **options) -> None:
        asyncio.run(self.serve(host, port))

    async def serve(self, host: str, port: int) -> None:
        acceptor = await start_gateway(host, port)
        self.stdout.write(f"SSH gateway listening on {host}:{port}, host key {host_key_fingerprint()}")
        self.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        acceptor.close()
        await acceptor.wait_closed()
