"""Serving an aiohttp application on a real socket from inside a running event loop."""

from __future__ import annotations

import socket
import ssl

from aiohttp import web


async def serve(app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None
                ) -> tuple[web.AppRunner, str]:
    """Start `app` on host:port (0: a free port; HTTPS with a context); returns its runner and base URL."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    bound = sock.getsockname()[1]
    return runner, f"{'https' if ssl_context else 'http'}://{'[' + host + ']' if ':' in host else host}:{bound}"
