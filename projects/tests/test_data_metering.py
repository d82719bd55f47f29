"""Database and bucket sizes metered each window and billed: the projects app asks the cluster's agent (a real
process, over daphne and Redis) once, the agent measures the machine's real PostgreSQL and the Garage admin API
double, and billing prices the sizes at the plan's GiB-month prices, one ledger entry per organization and window."""

from __future__ import annotations

import psycopg
import pytest

from agent import charts
from agent.data import garage as agent_garage
from agent.data import services as agent_data
from agent.tests.garage_double import GarageDouble
from billing.ledger import get_account
from billing.models import CreditEntry, EntryKind, UsageRecord
from billing.money import FINE_PER_GIB_SECOND_OF_MONTH, GIB, split_fine
from billing.usage import charge_window
from clusters import data
from clusters import services as cluster_services
from clusters.tests.test_integration import agents, kubeconfig  # noqa: F401 (fixtures)
from conftest import skip_or_fail
from paas.testing.agent_account import admin_kube
from paas.testing.plane import online, poll
from projects import services
from projects.usage import closed_window, record_window

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PG = {"host": "127.0.0.1", "port": 5432, "connect_timeout": 3}


def database_size(name: str) -> int:
    with psycopg.connect(user="postgres", dbname="postgres", **PG) as conn:
        return conn.execute("SELECT pg_database_size(%s)", (name,)).fetchone()[0]


@pytest.fixture
def garage():
    double = GarageDouble().start()
    agent_garage.GarageAdmin(double.url, double.token).ensure_layout(capacity=10 * 1024**3)
    yield double
    double.stop()


@pytest.fixture
def cluster(plane, agents, kubesim, garage, monkeypatch):  # noqa: F811
    """A cluster whose shared PostgreSQL is the machine's and whose Garage is the double (their Secrets in place,
    as the bootstrap leaves them), with its agent connected."""
    try:
        psycopg.connect(user="postgres", dbname="postgres", **PG).close()
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc})")
    kube = admin_kube(kubesim)
    kube.apply(agent_data.NAMESPACE, {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": charts.DATA_NAMESPACE}})
    for name, values in ((charts.POSTGRES_SUPERUSER_SECRET, {"username": "postgres", "password": "trust-auth"}),
                         (charts.GARAGE_ADMIN_SECRET, {"token": garage.token})):
        kube.apply(agent_data.SECRET, agent_data.secret_object(charts.DATA_NAMESPACE, name, values, {}),
                   charts.DATA_NAMESPACE)
    monkeypatch.setenv("AGENT_POSTGRES_HOST", "127.0.0.1")
    monkeypatch.setenv("AGENT_GARAGE_ADMIN_URL", garage.url)
    cluster = cluster_services.create_cluster("Metered", "apps.example.com", slug="metered")
    agents.start(cluster_services.issue_token(cluster))
    poll(lambda: online(cluster), 30, "agent online")
    return cluster


def test_each_window_bills_the_projects_database_and_bucket_by_size(cluster, garage, personas):
    plan = get_account(personas.org).plan
    # Dear storage, so that one minute of a few hundred MB is whole millicredits.
    plan.price_database_gib_month = plan.price_bucket_gib_month = 10**9
    plan.save()
    shop = services.create_project(personas.org, personas.owner, "Shop", cluster, wants_database=True,
                                   wants_bucket=True)
    blog = services.create_project(personas.org, personas.owner, "Blog", cluster, wants_bucket=True)
    services.create_project(personas.org, personas.owner, "Static", cluster)  # no data: never asked about
    assert data.ensure_database(cluster, shop.namespace, shop.labels).ok
    try:
        for project in (shop, blog):
            assert data.ensure_bucket(cluster, project.namespace, project.labels).ok
        creds = data.reveal_credentials(cluster, shop.namespace, "database")
        with psycopg.connect(user=creds["PGUSER"], password=creds["PGPASSWORD"], dbname=creds["PGDATABASE"],
                             autocommit=True, **PG) as conn:
            conn.execute("CREATE TABLE orders AS SELECT i, md5(i::text) AS ref FROM generate_series(1, 50000) i")
        garage.put_object(agent_garage.bucket_name_for(shop.namespace), 300 * 1000 * 1000)
        garage.put_object(agent_garage.bucket_name_for(blog.namespace), 1234)
        garage.requests.clear()
        window = closed_window()

        before = database_size(creds["PGDATABASE"])
        assert record_window(window) == 2  # nothing deployed: only the two projects' data
        after = database_size(creds["PGDATABASE"])
        # The sizes each GetBucketInfo answered: one per bucket, in the one call made for the whole cluster.
        assert [op for _, op in garage.requests] == ["GetBucketInfo", "GetBucketInfo"]

        shop_data = UsageRecord.objects.get(project_key=shop.namespace)
        blog_data = UsageRecord.objects.get(project_key=blog.namespace)
        assert shop_data.service == blog_data.service == ""
        assert before <= shop_data.database_bytes <= after and shop_data.database_bytes > 5 * 1024 * 1024
        assert (shop_data.bucket_bytes, blog_data.database_bytes, blog_data.bucket_bytes) == (300_000_000, 0, 1234)
        assert (shop_data.replica_seconds, shop_data.cpu_millicores, shop_data.memory_mib) == (0, 0, 0)

        share = FINE_PER_GIB_SECOND_OF_MONTH * 60  # a 60-second window of a GiB-month price, in fine units per GiB
        assert shop_data.database_fine == shop_data.database_bytes * share * plan.price_database_gib_month // GIB
        assert shop_data.bucket_fine == 300_000_000 * share * plan.price_bucket_gib_month // GIB
        assert shop_data.cost_fine == shop_data.database_fine + shop_data.bucket_fine > 0
        assert shop_data.compute_fine == 0 and shop_data.volume_fine == 0

        # The next run of the same window finds it recorded; the charge is one entry for the organization.
        assert record_window(window) == 2 and UsageRecord.objects.count() == 2
        result = charge_window(personas.org.pk, window)
        millicredits, _ = split_fine(shop_data.cost_fine + blog_data.cost_fine)
        assert millicredits >= 6  # the 300 MB bucket alone: 6.467 millicredits
        assert result.records == 2 and result.amount == millicredits
        usage = CreditEntry.objects.filter(organization=personas.org, kind=EntryKind.USAGE)
        assert [(e.amount, e.idempotency_key) for e in usage] == [
            (-millicredits, f"usage:{personas.org.pk}:{int(window.timestamp())}")]
        assert charge_window(personas.org.pk, window) is None
    finally:
        assert data.drop_database(cluster, shop.namespace).ok


def test_an_unmeasured_bucket_is_not_guessed(cluster, garage, personas, kubesim):
    blog = services.create_project(personas.org, personas.owner, "Blog", cluster, wants_bucket=True)
    assert data.ensure_bucket(cluster, blog.namespace, blog.labels).ok
    # The admin token no longer matches Garage's: the agent still answers, with the bucket's error.
    admin_kube(kubesim).apply(agent_data.SECRET, agent_data.secret_object(
        charts.DATA_NAMESPACE, charts.GARAGE_ADMIN_SECRET, {"token": "stale"}, {}), charts.DATA_NAMESPACE)
    outcome = data.data_usage(cluster, [blog.namespace])
    assert outcome.ok, outcome.error
    [item] = outcome.result["items"]
    assert item["bucket_bytes"] is None and item["errors"]["bucket"].startswith("not measured: 403 AccessDenied")
    assert record_window(closed_window()) == 0 and not UsageRecord.objects.exists()
