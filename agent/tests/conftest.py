from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import pytest

from agent.handlers import build_ops, build_stream_ops
from agent.k8s import Kube
from agent.tests.garage_double import GarageDouble
from agent.tests.test_tunnel import FakeControlPlane, hello
from agent.tunnel import Backoff, Tunnel
from kubesim.pytest_plugin import _kubesim_server, kube_api, kubesim  # noqa: F401
from paas.testing.agent_account import agent_kubeconfig


@pytest.fixture
def kube(kubesim, tmp_path):  # noqa: F811
    """The agent's own Kubernetes module, over HTTP, against a fresh kubesim, as the agent's ServiceAccount."""
    client = Kube(str(agent_kubeconfig(kubesim, tmp_path / "kubeconfig")))
    yield client
    client.close()


@pytest.fixture
def double() -> Iterator[GarageDouble]:
    """A Garage admin API v2 double on a free port."""
    server = GarageDouble().start()
    yield server
    server.stop()


@contextlib.asynccontextmanager
async def agent_tunnel(kube: Kube) -> AsyncIterator[FakeControlPlane]:
    """The agent's real tunnel, serving every operation with `kube`, connected to a stand-in control plane."""
    cp = FakeControlPlane(heartbeat=5)  # kubesim shares this process: a busy moment must not look like a dead peer
    await cp.start()
    tunnel = Tunnel(cp.url, lambda: "1.secret", hello, build_ops(kube), build_stream_ops(kube),
                    backoff=Backoff(base=0.05, cap=0.2), open_timeout=2)
    task = asyncio.create_task(tunnel.run())
    await asyncio.wait_for(tunnel.connected.wait(), 5)
    try:
        yield cp
    finally:
        tunnel.stop()
        await asyncio.wait_for(task, 5)
        await cp.stop()
