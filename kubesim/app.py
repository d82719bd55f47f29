"""One emulator instance: cluster state, HTTP server and controllers wired together on one event loop."""

from __future__ import annotations

import functools
import socket
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from kubesim import schema
from kubesim.cluster import Cluster
from kubesim.controllers import ControllerManager
from kubesim.server import ApiServer
from kubesim.streams import builtin_shell


class Emulator:
    """Runs inside an event loop; `KubeSim` and `python -m kubesim` both drive one of these."""

    def __init__(self, *, controllers: bool = True, controller_delay: float = 0.0,
                 crds: list[dict[str, Any]] | None = None, latency_ms: float = 0.0,
                 bookmark_interval: float = 1.0, k3s_addons: bool = False) -> None:
        self.cluster = Cluster()
        self.server = ApiServer(self.cluster, latency_ms=latency_ms, bookmark_interval=bookmark_interval)
        self.controllers = ControllerManager(self.cluster, self.server.logs, delay=controller_delay,
                                             enabled=controllers)
        self.crds = crds or []
        self.k3s_addons = k3s_addons
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.controllers.start()  # first, so they see the bootstrap objects (e.g. K3s's HelmCharts)
        self.cluster.bootstrap(self.crds, k3s_addons=self.k3s_addons)
        self.runner = web.AppRunner(self.server.app, handle_signals=False, access_log=None,
                                    shutdown_timeout=0.5)
        await self.runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        site = web.SockSite(self.runner, sock)
        await site.start()
        bound = sock.getsockname()[1]
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{bound}"
        return self.url

    async def reset(self) -> None:
        for task in list(self.cluster.pending):
            task.cancel()
        self.controllers.reset()
        self.cluster.bootstrap(self.crds, k3s_addons=self.k3s_addons)
        self.server.logs.clear()
        self.server.exec_handler = builtin_shell

    async def stop(self) -> None:
        await self.controllers.stop()
        for task in list(self.cluster.pending):
            task.cancel()
        self.cluster.store.clear()
        if self.runner is not None:
            await self.runner.cleanup()


def load_crds(directory: str | Path | None) -> list[dict[str, Any]]:
    return _load_crds(str(Path(directory) if directory else schema.crds_dir()))


@functools.lru_cache(maxsize=4)
def _load_crds(directory: str) -> list[dict[str, Any]]:
    # Parsed once per process: every KubeSim (one per test module) shares the read-only documents.
    return schema.load_crd_files(Path(directory))


def kubeconfig(url: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "kubesim", "cluster": {"server": url}}],
        "users": [{"name": "kubesim", "user": {"token": "kubesim"}}],
        "contexts": [{"name": "kubesim", "context": {"cluster": "kubesim", "user": "kubesim",
                                                     "namespace": "default"}}],
        "current-context": "kubesim",
    }


def write_kubeconfig(url: str, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig(url), sort_keys=False))
    return path
