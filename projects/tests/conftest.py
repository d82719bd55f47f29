from __future__ import annotations

import uuid
from types import SimpleNamespace

import psycopg
import pytest

from agent import charts
from agent.data import services as agent_data
from clusters import data
from clusters import services as cluster_services
from conftest import skip_or_fail
from kubesim.pytest_plugin import _kubesim_server, kube_api, kubesim  # noqa: F401
from paas.testing.agent_account import admin_kube, agent_kubeconfig
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


@pytest.fixture
def tenant_database(daphne_server, kubesim, tmp_path, personas, monkeypatch):  # noqa: F811
    """A connected agent whose shared PostgreSQL is this machine's, and a project with its database provisioned
    by the agent's data layer (its own role and password in its Secret)."""
    try:
        psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc})")
    admin = admin_kube(kubesim)
    admin.apply(agent_data.NAMESPACE, {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": charts.DATA_NAMESPACE}})
    admin.apply(agent_data.SECRET, agent_data.secret_object(  # trust authentication: the password is not checked
        charts.DATA_NAMESPACE, charts.POSTGRES_SUPERUSER_SECRET, {"username": "postgres", "password": "-"}, {}),
        charts.DATA_NAMESPACE)
    kubesim.set_cluster_dns(charts.POSTGRES_HOST, "127.0.0.1")  # the in-cluster name, resolved to this machine
    monkeypatch.setenv("AGENT_POSTGRES_HOST", "127.0.0.1")
    cluster = cluster_services.create_cluster("Dumps", "apps.example.com", simulated=True,
                                              slug=f"d{uuid.uuid4().hex[:8]}")
    plane = SimpleNamespace(agent_url=daphne_server.replace("http://", "ws://") + "/agent/ws")
    agents = Agents(plane, agent_kubeconfig(kubesim, tmp_path / "kubeconfig"), tmp_path)
    agents.start(cluster_services.issue_token(cluster))
    poll(lambda: online(cluster), 30, "agent online")
    project = services.create_project(personas.org, personas.owner, "Shop", cluster, wants_database=True,
                                      compose_text="services:\n  web:\n    image: nginx:1.27\n")
    outcome = data.ensure_database(cluster, project.namespace, project.labels)
    assert outcome.ok, outcome.error
    secret = data.reveal_credentials(cluster, project.namespace, "database")
    yield SimpleNamespace(project=project, cluster=cluster, url=daphne_server, connect=lambda: psycopg.connect(
        host="127.0.0.1", user=secret["PGUSER"], password=secret["PGPASSWORD"], dbname=secret["PGDATABASE"],
        autocommit=True))
    data.drop_database(cluster, project.namespace)
    agents.stop_all()
