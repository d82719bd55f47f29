from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.k8s import Kube
from agent.tests.garage_double import GarageDouble
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
