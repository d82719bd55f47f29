"""kubesim's own tests use the public fixtures (the root conftest may also enable the plugin)."""

from collections.abc import Iterator

import pytest
from kubernetes import client

from kubesim.pytest_plugin import _kubesim_server, kube_api, kubesim  # noqa: F401
from kubesim.testing import KubeSim


@pytest.fixture(scope="module")
def _edge_server() -> Iterator[KubeSim]:
    sim = KubeSim(edge=True, sablier=True, sablier_expiry_interval=0.1)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(_edge_server: KubeSim) -> KubeSim:
    """A fresh emulator serving the HTTP edge and the Sablier stand-in (sessions checked every 0.1 s)."""
    _edge_server.reset()
    return _edge_server


@pytest.fixture
def api(sim: KubeSim) -> Iterator[client.ApiClient]:
    api = sim.api_client()
    yield api
    api.close()
