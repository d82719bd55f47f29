from __future__ import annotations

from types import SimpleNamespace

import pytest

from clusters import services as cluster_services
from kubesim.pytest_plugin import _kubesim_server, kube_api, kubesim  # noqa: F401
from paas.testing.agent_account import agent_kubeconfig
from paas.testing.plane import Agents, online, poll
from projects import services

THREE_SERVICES = """services:
  web:
    image: nginx:1.27
    ports:
      - "8080:80"
    environment:
      GREETING: ${GREETING:-hello}
  api:
    image: ghcr.io/acme/api:1.0
    ports:
      - "9000:9000"
  worker:
    image: ghcr.io/acme/worker:1.0
"""


@pytest.fixture
def cluster(db):
    return cluster_services.create_cluster("Falkenstein", "apps.example.com", simulated=True, slug="fsn")


@pytest.fixture
def project(personas, cluster):
    return services.create_project(personas.org, personas.owner, "Shop", cluster, compose_text=THREE_SERVICES)


@pytest.fixture
def connected(daphne_server, celery_worker, kubesim, tmp_path, cluster):  # noqa: F811
    """The cluster with its agent connected over the real tunnel to our daphne."""
    plane = SimpleNamespace(agent_url=daphne_server.replace("http://", "ws://") + "/agent/ws")
    agents = Agents(plane, agent_kubeconfig(kubesim, tmp_path / "kubeconfig"), tmp_path)
    agents.start(cluster_services.issue_token(cluster))
    poll(lambda: online(cluster), 30, "agent online")
    yield cluster
    agents.stop_all()
