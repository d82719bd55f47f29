"""pytest fixtures: `kubesim` (one server per module, reset before each test) and `kube_api`.

Enable with `pytest_plugins = ["kubesim.pytest_plugin"]` in the root conftest, or import the fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator

import kubernetes
import pytest

from kubesim.testing import KubeSim


@pytest.fixture(scope="module")
def _kubesim_server() -> Iterator[KubeSim]:
    sim = KubeSim(controllers=True, controller_delay=0.0, preload_crds=True, latency_ms=0)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def kubesim(_kubesim_server: KubeSim) -> Iterator[KubeSim]:
    """A fresh cluster for this test (the server is shared by the module and reset in between)."""
    _kubesim_server.reset()
    _kubesim_server.configure_controllers(enabled=True, delay=0.0)
    _kubesim_server.set_latency(0)
    yield _kubesim_server


@pytest.fixture
def kube_api(kubesim: KubeSim) -> Iterator[kubernetes.client.ApiClient]:
    """An official-client ApiClient pointed at the `kubesim` server."""
    client = kubesim.api_client()
    yield client
    client.close()
