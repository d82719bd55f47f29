"""One emulator instance: cluster state, HTTP server and controllers wired together on one event loop."""

from __future__ import annotations

import base64
import functools
import os
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from kubesim import schema
from kubesim.auth import API_AUDIENCES
from kubesim.cluster import Cluster, WriteOptions
from kubesim.controllers import ControllerManager
from kubesim.controllers.tokens import TokenController
from kubesim.controllers.workloads import Kubelet
from kubesim.edge import Edge
from kubesim.sablier import CLUSTER_ROLE_RULES, Sablier
from kubesim.server import ApiServer
from kubesim.serving import serve
from kubesim.streams import builtin_shell
from kubesim.tls import serving_context

# Where the Sablier stand-in's ServiceAccount lives (a kubesim name: the platform installs its own Sablier's).
SABLIER_SA = ("kube-system", "kubesim-sablier")


class Emulator:
    """Runs inside an event loop; `KubeSim` and `python -m kubesim` both drive one of these."""

    def __init__(self, *, controllers: bool = True, controller_delay: float = 0.0,
                 crds: list[dict[str, Any]] | None = None, latency_ms: float = 0.0,
                 bookmark_interval: float = 1.0, k3s_addons: bool = False, auth: bool = True,
                 admin_token: str | None = None, tls: bool = False, pod_start_delay: float = 0.0,
                 edge_port: int | None = None, sablier_port: int | None = None,
                 sablier_expiry_interval: float = 20.0) -> None:
        """`edge_port` / `sablier_port` (0: a free port) also serve the HTTP edge / the Sablier stand-in."""
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
        self.pod_start_delay = pod_start_delay  # what reset() restores
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
        self.server.access.bootstrap()
        context = None
        if self.tls:
            context, self.ca_pem = serving_context(host)
        self.runner, self.url = await serve(self.server.app, host, port, context)
        if self.sablier_port is not None:
            self.sablier = Sablier(self.url, token=self._sablier_token(), ca_pem=self.ca_pem,
                                   expiry_interval=self.sablier_expiry_interval)
            await self.sablier.start(host, self.sablier_port)
        if self.edge_port is not None:
            self.edge = Edge(self.cluster, sablier_url=self.sablier.url if self.sablier else "")
            await self.edge.start(host, self.edge_port)
        return self.url

    def _sablier_token(self) -> str:
        """The Sablier stand-in's own identity: a ServiceAccount bound to Sablier's ClusterRole (and its token)."""
        opts = WriteOptions(field_manager="kubesim", trusted=True)
        rbac_group = "rbac.authorization.k8s.io/v1"
        sa = self.cluster.create(self.cluster.rt_for("v1", "ServiceAccount"), SABLIER_SA[0],
                                 {"metadata": {"name": SABLIER_SA[1]}}, opts)
        self.cluster.create(self.cluster.rt_for(rbac_group, "ClusterRole"), "", {
            "metadata": {"name": SABLIER_SA[1]}, "rules": CLUSTER_ROLE_RULES}, opts)
        self.cluster.create(self.cluster.rt_for(rbac_group, "ClusterRoleBinding"), "", {
            "metadata": {"name": SABLIER_SA[1]},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": SABLIER_SA[1]},
            "subjects": [{"kind": "ServiceAccount", "name": SABLIER_SA[1], "namespace": SABLIER_SA[0]}]}, opts)
        token, _ = self.server.access.tokens.request_token(sa, list(API_AUDIENCES), 10 * 365 * 86400, None)
        return token

    async def reset(self) -> None:
        for task in list(self.cluster.pending):
            task.cancel()
        self.controllers.reset()
        self.cluster.bootstrap(self.crds, k3s_addons=self.k3s_addons)
        self.server.access.bootstrap()
        self.server.logs.clear()
        self.server.exec_handler = builtin_shell
        self.server.cluster_dns.clear()
        self.set_pod_start_delay(self.pod_start_delay)
        if self.sablier is not None:
            self.sablier.reset(self._sablier_token())  # the ServiceAccount was recreated with a new uid
        if self.edge is not None:
            self.edge.reset()

    @property
    def admin_token(self) -> str:
        """The bearer token of `system:admin` (group `system:masters`: allowed everything)."""
        return self.server.access.tokens.admin_token

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
