"""`KubeSim`: the emulator on a background thread, for tests in any suite (sync or async)."""

from __future__ import annotations

import asyncio
import functools
import os
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import kubernetes

from kubesim.app import Emulator, load_crds, write_kubeconfig
from kubesim.controllers.base import set_condition
from kubesim.controllers.helm import HelmController
from kubesim.netpol import PodRef, Verdict, evaluate
from kubesim.resources import ResourceType
from kubesim.store import clone
from kubesim.streams import ExecHandler, ExecSession, LogGenerator, builtin_shell, default_log_lines

T = TypeVar("T")

__all__ = ["ExecSession", "KubeSim", "Verdict"]


class KubeSim:
    """A Kubernetes API emulator on 127.0.0.1 and a free port, served from its own thread and loop.

    `sim = KubeSim(); sim.start()` (or `with KubeSim() as sim:`), then point the official client at
    `sim.url` (`sim.api_client()`, `sim.write_kubeconfig(path)`), which authenticate as `system:admin`
    with `sim.admin_token`. `auth=False` lets every request through unauthenticated (the old open mode);
    `tls=True` serves HTTPS with a throw-away CA (kubectl sends tokens only over TLS). State reads (`get`,
    `list`) are thread-safe copies.
    """

    def __init__(self, controllers: bool = True, controller_delay: float = 0.0, preload_crds: bool | str | Path = True,
                 latency_ms: float = 0, *, host: str = "127.0.0.1", port: int = 0,
                 bookmark_interval: float = 1.0, k3s_addons: bool = False, auth: bool = True,
                 admin_token: str | None = None, tls: bool = False, pod_start_delay: float = 0.0,
                 edge: bool = False, sablier: bool = False, sablier_expiry_interval: float = 20.0) -> None:
        self.host, self.port = host, port
        crds_dir = None if preload_crds is True else preload_crds
        # Built on the server thread, whose event loop it binds to.
        self._make_emulator: Callable[[], Emulator] = functools.partial(
            Emulator, controllers=controllers, controller_delay=controller_delay,
            crds=load_crds(crds_dir) if preload_crds else [], latency_ms=latency_ms,
            bookmark_interval=bookmark_interval, k3s_addons=k3s_addons, auth=auth, admin_token=admin_token, tls=tls,
            pod_start_delay=pod_start_delay, edge_port=0 if edge else None, sablier_port=0 if sablier else None,
            sablier_expiry_interval=sablier_expiry_interval)
        self.url = ""
        self.emulator: Emulator | None = None
        self._ca_path: Path | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> KubeSim:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self.emulator = self._make_emulator()
                self.url = loop.run_until_complete(self.emulator.start(self.host, self.port))
            except BaseException as exc:  # surfaced to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.emulator.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="kubesim", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = self._thread = None
        if self._ca_path is not None:
            self._ca_path.unlink(missing_ok=True)
            self._ca_path = None

    def __enter__(self) -> KubeSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, fn: Callable[[], Coroutine[Any, Any, T] | T]) -> T:
        """Run `fn` on the emulator's loop (awaiting it if it is a coroutine) and return its result."""
        assert self._loop is not None, "KubeSim is not started"

        async def wrapper() -> T:
            result = fn()
            if isinstance(result, Awaitable):
                return await result  # type: ignore[no-any-return]
            return result

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(30)

    @property
    def _emu(self) -> Emulator:
        assert self.emulator is not None, "KubeSim is not started"
        return self.emulator

    def reset(self) -> None:
        """Back to a fresh cluster: default namespaces, two nodes, preloaded CRDs, built-in shell, the constructor's
        pod start delay, no Sablier sessions."""
        self.call(self._emu.reset)

    @property
    def edge_url(self) -> str:
        """The HTTP edge (`KubeSim(edge=True)`): send requests here with the Ingress host as `Host`."""
        assert self._emu.edge is not None, "KubeSim(edge=True) serves the edge"
        return self._emu.edge.url

    @property
    def sablier_url(self) -> str:
        """The Sablier stand-in's API (`KubeSim(sablier=True)`)."""
        assert self._emu.sablier is not None, "KubeSim(sablier=True) serves the Sablier stand-in"
        return self._emu.sablier.url

    def set_pod_start_delay(self, seconds: float) -> None:
        """Seconds a scheduled pod stays Pending before it runs, becomes Ready and answers HTTP (until `reset()`,
        which restores the constructor's `pod_start_delay`)."""
        self.call(lambda: self._emu.set_pod_start_delay(seconds))

    # --- clients ---------------------------------------------------------------------------------

    @property
    def admin_token(self) -> str:
        """The bearer token of `system:admin` (group `system:masters`), which the clients below use."""
        return self._emu.admin_token

    def configuration(self, token: str | None = None) -> kubernetes.client.Configuration:
        """Client configuration for the admin (or the given token's) identity."""
        cfg = kubernetes.client.Configuration()
        cfg.host = self.url
        cfg.api_key = {"authorization": token or self.admin_token}
        cfg.api_key_prefix = {"authorization": "Bearer"}
        if self._emu.ca_pem:
            cfg.ssl_ca_cert = str(self._ca_file())
        return cfg

    def _ca_file(self) -> Path:
        if self._ca_path is None:
            fd, name = tempfile.mkstemp(prefix="kubesim-ca-", suffix=".crt")
            os.write(fd, self._emu.ca_pem.encode())
            os.close(fd)
            self._ca_path = Path(name)
        return self._ca_path

    def api_client(self, token: str | None = None) -> kubernetes.client.ApiClient:
        return kubernetes.client.ApiClient(self.configuration(token))

    def write_kubeconfig(self, path: str | Path, token: str | None = None) -> Path:
        return write_kubeconfig(self.url, path, token or self.admin_token, self._emu.ca_pem)

    def service_account_token(self, namespace: str, name: str, expiration_seconds: int = 3600) -> str:
        """A TokenRequest for the ServiceAccount, made as the admin: the token a pod of it would mount."""
        with self.api_client() as api:
            resp = kubernetes.client.CoreV1Api(api).create_namespaced_service_account_token(
                name, namespace, {"spec": {"expirationSeconds": expiration_seconds}})
        return str(resp.status.token)

    # --- state and knobs -------------------------------------------------------------------------

    def _resolve(self, kind: str) -> ResourceType:
        """`Deployment`, `deployments`, `Deployment.apps`, `apps/v1/Deployment` or `Deployment/apps/v1`."""
        reg = self._emu.cluster.registry
        api_version = None
        if "/" in kind:
            head, _, tail = kind.partition("/")
            if head[:1].isupper():
                kind, api_version = head, tail
            else:
                api_version, _, kind = kind.rpartition("/")
        group = None
        if "." in kind:
            kind, group = kind.split(".", 1)
        for rt in reg.all():
            if kind not in (rt.kind, rt.plural, rt.singular):
                continue
            if (api_version is None or rt.api_version == api_version) and (group is None or rt.group == group):
                return rt
        raise KeyError(f"unknown kind {kind!r}")

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """A copy of a stored object, or None."""
        def read() -> dict[str, Any] | None:
            rt = self._resolve(kind)
            obj = self._emu.cluster.find(rt, namespace or "", name)
            return clone(obj) if obj is not None else None
        return self.call(read)

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.call(lambda: clone(self._emu.cluster.list(self._resolve(kind), namespace)))

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
        """Poll `predicate` until it returns something truthy; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout:.1f}s")
            time.sleep(interval)

    def push_logs(self, namespace: str, pod: str, lines: list[str] | str, container: str | None = None) -> None:
        """Append lines to a container's log (the pod's first container by default)."""
        if isinstance(lines, str):
            lines = lines.splitlines()

        def push() -> None:
            name = container
            if name is None:
                obj = self._emu.cluster.find(self._resolve("Pod"), namespace, pod)
                name = obj["spec"]["containers"][0]["name"] if obj else "main"
            self._emu.server.logs.push(namespace, pod, name, list(lines))
        self.call(push)

    def can_connect(self, source: PodRef | str, destination: PodRef | str, port: int, protocol: str = "TCP"
                    ) -> Verdict:
        """Would the NetworkPolicies let `source` open `port`/`protocol` on `destination` (kubesim.netpol)?

        `source` is a pod `(namespace, name)` or an address; `destination` a pod, or an address: a pod IP,
        a Service ClusterIP (decided for its endpoints), a node or anything outside the cluster.
        """
        return self.call(lambda: evaluate(self._emu.cluster, source, destination, port, protocol))

    def set_log_generator(self, generator: LogGenerator | None) -> None:
        """Lines each container logs when it starts: `generator(pod: dict, container: str) -> Iterable[str]`."""
        def setter() -> None:
            self._emu.server.logs.generator = generator or default_log_lines
        self.call(setter)

    def set_exec_handler(self, handler: ExecHandler | None) -> None:
        """Replace the built-in shell: `async def handler(session: ExecSession) -> int` (the exit code)."""
        def setter() -> None:
            self._emu.server.exec_handler = handler or builtin_shell
        self.call(setter)

    def set_cluster_dns(self, name: str, address: str | None) -> None:
        """Resolve an in-cluster name (a Service's `<svc>.<ns>.svc.cluster.local`) to an address on this machine
        for the PostgreSQL client programs exec runs for real (kubesim.pgclient); None forgets it."""
        def setter() -> None:
            if address is None:
                self._emu.server.cluster_dns.pop(name, None)
            else:
                self._emu.server.cluster_dns[name] = address
        self.call(setter)

    def fail_helm_chart(self, namespace: str, name: str, fail: bool = True) -> None:
        """Make the install Jobs of this HelmChart fail, as if `helm install` errored (`fail=False` undoes it).

        The failure applies to Jobs created from now on; a Job already created keeps its outcome.
        """
        def mark() -> None:
            helm = self._emu.controllers.controllers["helm"]
            assert isinstance(helm, HelmController)
            if fail:
                helm.forced_failures.add((namespace, name))
            else:
                helm.forced_failures.discard((namespace, name))
        self.call(mark)

    def set_cert_manager_condition(self, kind: str, namespace: str | None, name: str, ctype: str, status: str,
                                   reason: str, message: str) -> dict[str, Any]:
        """Set one status condition on a cert-manager object (`Certificate` or `ClusterIssuer`), as cert-manager's
        controllers would: kubesim runs no cert-manager, so tests play its outcomes (Ready True, Issuing False with
        reason Failed, ...). Writes the status subresource; returns the object."""
        rt = self._resolve(kind)

        def write() -> dict[str, Any]:
            current = self._emu.cluster.find(rt, namespace or "", name)
            assert current is not None, f"no {kind} {namespace}/{name}"
            updated = clone(current)
            conditions = (updated.get("status") or {}).get("conditions") or []
            updated.setdefault("status", {})["conditions"] = set_condition(conditions, ctype, status, reason, message)
            return self._emu.cluster.write(rt, updated, "cert-manager", subresource="status")

        return self.call(write)

    def configure_controllers(self, *, enabled: bool | None = None, delay: float | None = None,
                              only: list[str] | None = None) -> None:
        """Switch controllers on/off or change their delay; `only` names some (kubelet, deployment, helm...)."""
        self.call(lambda: self._emu.controllers.configure(enabled=enabled, delay=delay, only=only))

    def set_latency(self, latency_ms: float) -> None:
        def setter() -> None:
            self._emu.server.latency_ms = latency_ms
        self.call(setter)

    def compact(self) -> None:
        """Forget watch history, like etcd compaction: older resourceVersions then answer 410 Gone."""
        self.call(self._emu.cluster.store.compact)
