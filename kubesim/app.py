"""One emulator instance: cluster state, HTTP server and controllers wired together on one event loop."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from kubesim import schema
from kubesim.cluster import Cluster
from kubesim.controllers import ControllerManager
from kubesim.controllers.workloads import Kubelet
from kubesim.edge import Edge
from kubesim.sablier import Sablier
from kubesim.server import ApiServer
from kubesim.serving import serve
from kubesim.streams import builtin_shell


class Emulator:
    """Runs inside an event loop; `KubeSim` and `python -m kubesim` both drive one of these."""

    def __init__(self, *, controllers: bool = True, controller_delay: float = 0.0,
                 crds: list[dict[str, Any]] | None = None, latency_ms: float = 0.0,
                 bookmark_interval: float = 1.0, k3s_addons: bool = False, pod_start_delay: float = 0.0,
                 edge_port: int | None = None, sablier_port: int | None = None,
                 sablier_expiry_interval: float = 20.0) -> None:
        """`edge_port` / `sablier_port` (0: a free port) also serve the HTTP edge / the Sablier stand-in."""
        self.cluster = Cluster()
        self.server = ApiServer(self.cluster, latency_ms=latency_ms, bookmark_interval=bookmark_interval)
        self.controllers = ControllerManager(self.cluster, self.server.logs, delay=controller_delay,
                                             enabled=controllers)
        self.crds = crds or []
        self.k3s_addons = k3s_addons
        self.set_pod_start_delay(pod_start_delay)
        self.edge_port, self.sablier_port = edge_port, sablier_port
        self.sablier: Sablier | None = None
        self.sablier_expiry_interval = sablier_expiry_interval
        self.edge: Edge | None = None
        self.runner: web.AppRunner | None = None
        self.url = ""

    def set_pod_start_delay(self, seconds: float) -> None:
        kubelet = self.controllers.controllers["kubelet"]
        assert isinstance(kubelet, Kubelet)
        kubelet.start_delay = seconds

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.controllers.start()  # first, so they see the bootstrap objects (e.g. K3s's HelmCharts)
        self.cluster.bootstrap(self.crds, k3s_addons=self.k3s_addons)
        self.runner, self.url = await serve(self.server.app, host, port)
        if self.sablier_port is not None:
            self.sablier = Sablier(self.url, expiry_interval=self.sablier_expiry_interval)
            await self.sablier.start(host, self.sablier_port)
        if self.edge_port is not None:
            self.edge = Edge(self.cluster, sablier_url=self.sablier.url if self.sablier else "")
            await self.edge.start(host, self.edge_port)
        return self.url

    async def reset(self) -> None:
        for task in list(self.cluster.pending):
            task.cancel()
        self.controllers.reset()
        self.cluster.bootstrap(self.crds, k3s_addons=self.k3s_addons)
        self.server.logs.clear()
        self.server.exec_handler = builtin_shell
        for part in (self.sablier, self.edge):
            if part is not None:
                part.reset()

    async def stop(self) -> None:
        for part in (self.edge, self.sablier):
            if part is not None:
                await part.stop()
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
