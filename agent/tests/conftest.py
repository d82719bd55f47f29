from __future__ import annotations

import pytest

from agent.k8s import Kube
from kubesim.pytest_plugin import _kubesim_server, kube_api, kubesim  # noqa: F401


@pytest.fixture
def kube(kubesim, tmp_path):  # noqa: F811
    """The agent's own Kubernetes module, over HTTP, against a fresh kubesim."""
    client = Kube(str(kubesim.write_kubeconfig(tmp_path / "kubeconfig")))
    yield client
    client.close()
