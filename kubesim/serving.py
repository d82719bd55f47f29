"""Serving an aiohttp application on a real socket from inside a running event loop."""

from __future__ import annotations

import socket

from aiohttp import web


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Start `app` on host:port (0: a free port); returns its runner (for `cleanup()`) and its base URL."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    await web.SockSite(runner, sock).start()
    bound = sock.getsockname()[1]
    return runner, f"http://{'[' + host + ']' if ':' in host else host}:{bound}"
