"""One emulator instance: cluster state, HTTP server and controllers wired together on one event loop."""

from __future__ import annotations

import base64
import functools
import os
import socket
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from kubesim import schema
from kubesim.cluster import Cluster
from kubesim.controllers import ControllerManager
from kubesim.controllers.tokens import TokenController
from kubesim.server import ApiServer
from kubesim.streams import builtin_shell
from kubesim.tls import serving_context


class Emulator:
    """Runs inside an event loop; `KubeSim` and `python -m kubesim` both drive one of these."""

    def __init__(self, *, controllers: bool = True, controller_delay: float = 0.0,
                 crds: list[dict[str, Any]] | None = None, latency_ms: float = 0.0,
                 bookmark_interval: float = 1.0, k3s_addons: bool = False, auth: bool = True,
                 admin_token: str | None = None, tls: bool = False) -> None:
        self.cluster = Cluster()
        self.tls = tls
        self.ca_pem = ""  # with tls: the CA clients trust (in the kubeconfig as certificate-authority-data)
        self.server = ApiServer(self.cluster, latency_ms=latency_ms, bookmark_interval=bookmark_interval,
                                auth=auth, admin_token=admin_token)
        self.controllers = ControllerManager(self.cluster, self.server.logs, delay=controller_delay,
                                             enabled=controllers)
        tokens = self.controllers.controllers["tokens"]
        assert isinstance(tokens, TokenController)
        tokens.tokens = self.server.access.tokens  # legacy token Secrets are signed like TokenRequest tokens
        self.crds = crds or []
        self.k3s_addons = k3s_addons
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.controllers.start()  # first, so they see the bootstrap objects (e.g. K3s's HelmCharts)
        self.cluster.bootstrap(self.crds, k3s_addons=self.k3s_addons)
        self.server.access.bootstrap()
        self.runner = web.AppRunner(self.server.app, handle_signals=False, access_log=None,
                                    shutdown_timeout=0.5)
        await self.runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        context = None
        if self.tls:
            context, self.ca_pem = serving_context(host)
        site = web.SockSite(self.runner, sock, ssl_context=context)
        await site.start()
        bound = sock.getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://{'[' + host + ']' if ':' in host else host}:{bound}"
        return self.url

    async def reset(self) -> None:
        for task in list(self.cluster.pending):
            task.cancel()
        self.controllers.reset()
        self.cluster.bootstrap(self.crds, k3s_addons=self.k3s_addons)
        self.server.access.bootstrap()
        self.server.logs.clear()
        self.server.exec_handler = builtin_shell

    @property
    def admin_token(self) -> str:
        """The bearer token of `system:admin` (group `system:masters`: allowed everything)."""
        return self.server.access.tokens.admin_token

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


def kubeconfig(url: str, token: str, ca_pem: str = "") -> dict[str, Any]:
    cluster: dict[str, Any] = {"server": url}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem.encode()).decode()
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "kubesim", "cluster": cluster}],
        "users": [{"name": "kubesim", "user": {"token": token}}],
        "contexts": [{"name": "kubesim", "context": {"cluster": "kubesim", "user": "kubesim",
                                                     "namespace": "default"}}],
        "current-context": "kubesim",
    }


def write_kubeconfig(url: str, path: str | Path, token: str, ca_pem: str = "") -> Path:
    """A kubeconfig for `url` authenticating with `token` (readable by its owner only: it holds a credential)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(yaml.safe_dump(kubeconfig(url, token, ca_pem), sort_keys=False))
    os.replace(partial, path)  # whole or absent: a reader polling for the file never sees half of it
    return path
