"""Simulated controllers, each switchable and delayed, so clients observe progress as on a cluster."""

from __future__ import annotations

import asyncio

from kubesim.cluster import Cluster
from kubesim.controllers.base import Controller
from kubesim.controllers.helm import HelmController
from kubesim.controllers.network import (
    IngressController,
    NamespaceDefaultsController,
    ServiceLBController,
    VolumeController,
)
from kubesim.controllers.tokens import TokenController
from kubesim.controllers.workloads import (
    DeploymentController,
    JobController,
    Kubelet,
    ReplicaSetController,
    StatefulSetController,
)
from kubesim.store import Event
from kubesim.streams import LogHub

CONTROLLER_CLASSES: tuple[type[Controller], ...] = (
    Kubelet, ReplicaSetController, DeploymentController, StatefulSetController, JobController, HelmController,
    ServiceLBController, IngressController, VolumeController, NamespaceDefaultsController, TokenController,
)

__all__ = ["CONTROLLER_CLASSES", "ControllerManager"]


class ControllerManager:
    def __init__(self, cluster: Cluster, logs: LogHub, *, delay: float = 0.0, enabled: bool = True) -> None:
        self.cluster = cluster
        self.controllers: dict[str, Controller] = {cls.name: cls(cluster, logs, delay) for cls in CONTROLLER_CLASSES}
        for c in self.controllers.values():
            c.enabled = enabled
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.cluster.store.listeners.append(self._on_event)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(c.run()) for c in self.controllers.values()]

    async def stop(self) -> None:
        if self._on_event in self.cluster.store.listeners:
            self.cluster.store.listeners.remove(self._on_event)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_event(self, event: Event) -> None:
        for c in self.controllers.values():
            if c.enabled:
                for key in c.keys_for(event):
                    c.enqueue(key)

    def configure(self, *, enabled: bool | None = None, delay: float | None = None, only: list[str] | None = None
                  ) -> None:
        for name, c in self.controllers.items():
            if only is not None and name not in only:
                continue
            if enabled is not None:
                if enabled and not c.enabled:
                    c.resync()  # a controller that (re)starts catches up with what it missed
                c.enabled = enabled
            if delay is not None:
                c.delay = delay

    def reset(self) -> None:
        for c in self.controllers.values():
            while not c.queue.empty():
                c.queue.get_nowait()
            c.queued.clear()
        kubelet = self.controllers["kubelet"]
        assert isinstance(kubelet, Kubelet)
        kubelet.starts_at.clear()
        helm = self.controllers["helm"]
        assert isinstance(helm, HelmController)
        helm.forced_failures.clear()
