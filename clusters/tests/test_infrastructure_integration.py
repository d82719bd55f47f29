"""The bootstrap end to end with real processes: the agent (`python -m agent --bootstrap`) against kubesim,
daphne and the Redis channel layer; the local PostgreSQL and the Garage double as the shared services."""

from __future__ import annotations

import io

import psycopg
import pytest
from django.core.management import call_command

from agent import bootstrap as b
from agent import charts
from agent.data import services as agent_data
from agent.tests.garage_double import GarageDouble
from agent.tests.test_bootstrap import play_cnpg_operator
from clusters import data, services
from clusters.models import BootstrapComponent, ClusterStatus
from clusters.tests.test_integration import LABELS, agents, kubeconfig  # noqa: F401 (fixtures)
from conftest import skip_or_fail
from paas.testing.agent_account import admin_kube
from paas.testing.plane import poll

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def garage():
    double = GarageDouble().start()
    yield double
    double.stop()


@pytest.fixture
def bare_k3s(kubesim):  # noqa: F811
    """K3s as it comes, seen by its administrator (the agent itself runs as its ServiceAccount)."""
    try:
        psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc})")
    kube = admin_kube(kubesim)
    kube.apply(b.HELMCHART, {"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart",
                             "metadata": {"name": "traefik", "namespace": "kube-system"},
                             "spec": {"chart": "https://%{KUBERNETES_API}%/static/charts/traefik.tgz",
                                      "targetNamespace": "kube-system"}}, "kube-system")
    return kube


def test_a_connecting_agent_bootstraps_the_cluster_and_the_control_plane_follows(
        plane, agents, bare_k3s, garage, monkeypatch, kubesim):  # noqa: F811
    # The Garage admin token an earlier install left; the double knows the same one.
    bare_k3s.apply(b.NAMESPACE, b.data_namespace())
    bare_k3s.apply(agent_data.SECRET, agent_data.secret_object(charts.DATA_NAMESPACE, charts.GARAGE_ADMIN_SECRET,
                                                               {"token": garage.token}, {}), charts.DATA_NAMESPACE)
    for name, value in {"AGENT_BOOTSTRAP": "true", "AGENT_BOOTSTRAP_INTERVAL": "0.1",
                        "AGENT_POSTGRES_HOST": "127.0.0.1", "AGENT_GARAGE_ADMIN_URL": garage.url}.items():
        monkeypatch.setenv(name, value)
    cluster = services.create_cluster("Bare", "apps.example.com")
    agents.start(services.issue_token(cluster))

    seen: set[str] = set()

    def all_ready() -> bool:
        play_cnpg_operator(kubesim)  # kubesim has no CNPG operator
        cluster.refresh_from_db()
        seen.add(cluster.status)
        states = dict(BootstrapComponent.objects.filter(cluster=cluster).values_list("name", "state"))
        return (len(states) == len(b.COMPONENTS) and set(states.values()) == {"ready"}
                and cluster.status == ClusterStatus.ONLINE)

    poll(all_ready, 60, "every component ready")
    assert ClusterStatus.DEGRADED in seen  # degraded while the infrastructure was coming up
    assert garage.layout_applied
    versions = dict(BootstrapComponent.objects.filter(cluster=cluster).values_list("name", "version"))
    assert versions["cnpg"]["chart"] == "cloudnative-pg 0.29.0"

    # The projects app's entry point, through daphne and the agent process, to the local PostgreSQL.
    outcome = data.ensure_database(cluster, "acme-web", LABELS)
    try:
        assert outcome.ok, outcome.error
        assert outcome.result["database"] == "p_acme-web" and "PGPASSWORD" not in str(outcome.result)
        values = data.reveal_credentials(cluster, "acme-web", "database")
        assert values["PGHOST"] == charts.POSTGRES_HOST
        with psycopg.connect(host="127.0.0.1", user=values["PGUSER"], password=values["PGPASSWORD"],
                             dbname=values["PGDATABASE"]) as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == "p_acme-web"
    finally:
        assert data.drop_database(cluster, "acme-web").ok

    out = io.StringIO()
    call_command("cluster_bootstrap", cluster.slug, "--wait", "--timeout", "30", "--interval", "0.2", stdout=out)
    assert "Every component of bare is ready." in out.getvalue()
