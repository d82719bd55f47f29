"""Liveness (/healthz: the event loop answers), readiness (/readyz: the tunnel is up) and Prometheus /metrics
(agent/metrics.py; in-cluster only, like any exporter: the Service is not exposed by an Ingress)."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


async def serve(port: int, ready: asyncio.Event, host: str = "0.0.0.0") -> web.AppRunner:  # noqa: S104
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        if ready.is_set():
            return web.Response(text="connected\n")
        return web.Response(status=503, text="not connected to the control plane\n")

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
