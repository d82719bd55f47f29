"""Liveness (/healthz: the event loop answers) and readiness (/readyz: the tunnel is up)."""

from __future__ import annotations

import asyncio

from aiohttp import web


async def serve(port: int, ready: asyncio.Event, host: str = "0.0.0.0") -> web.AppRunner:  # noqa: S104
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        if ready.is_set():
            return web.Response(text="connected\n")
        return web.Response(status=503, text="not connected to the control plane\n")

    app = web.Application()
    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
