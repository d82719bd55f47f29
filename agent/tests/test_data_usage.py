"""Metering of the data services: database sizes from the machine's real PostgreSQL (`pg_database_size`) and
bucket sizes from the Garage admin API v2 double (GetBucketInfo's `bytes`), per item, errors included."""

from __future__ import annotations

import pytest

from agent import protocol as p
from agent.data import garage, postgres, services
from agent.tests.garage_double import GarageDouble
from agent.tests.test_data_garage import put_admin_token
from agent.tests.test_data_postgres import PG_HOST, PG_PORT, as_tenant, keys, new_key, superuser  # noqa: F401
from agent.tests.test_reconcile import LABELS

pytestmark = pytest.mark.integration


def endpoints(double: GarageDouble | None = None) -> services.Endpoints:
    return services.Endpoints(postgres_host=PG_HOST, postgres_port=PG_PORT,
                              garage_admin_url=double.url if double else "http://127.0.0.1:9")


def test_a_database_grows_as_the_tenant_writes_into_it(keys):  # noqa: F811
    key = new_key(keys, "tenant-meter")
    creds = postgres.ensure_database(superuser, key)
    empty = postgres.database_sizes(superuser, [key])[key]
    assert empty is not None and empty > 0  # an empty database already holds the catalog
    with as_tenant(creds) as conn:
        conn.execute("CREATE TABLE blobs (id serial PRIMARY KEY, body text)")
        conn.execute("ALTER TABLE blobs ALTER COLUMN body SET STORAGE PLAIN")
        # 3,000 rows of 3,200 bytes, stored inline and uncompressed (two to a page): about 12 MB.
        conn.execute("INSERT INTO blobs (body) SELECT string_agg(md5(i::text || ':' || j::text), '') "
                     "FROM generate_series(1, 3000) i, generate_series(1, 100) j GROUP BY i")
    grown = postgres.database_sizes(superuser, [key])[key]
    assert grown is not None and grown - empty >= 8 * 1024 * 1024


def test_a_missing_database_has_no_size_and_no_error(keys):  # noqa: F811
    absent = "tenant-never-made"
    assert postgres.database_sizes(superuser, [absent]) == {absent: None}
    assert postgres.database_sizes(superuser, []) == {}


@pytest.mark.parametrize("stem", ['tenant-x"; DROP DATABASE postgres; --', "tenant-Ünïcode", "t" * 90])
def test_names_that_need_quoting_are_measured_as_bound_values(keys, stem):  # noqa: F811
    key = new_key(keys, stem)
    postgres.ensure_database(superuser, key)
    assert postgres.database_sizes(superuser, [key])[key] > 0
    with superuser("postgres") as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = 'postgres'").fetchone() == (1,)


def test_a_bucket_reports_the_bytes_garage_counts(double):
    admin = garage.GarageAdmin(double.url, double.token)
    admin.ensure_layout(capacity=10 * 1024**3)
    admin.ensure_bucket("tenant-media")
    assert admin.bucket_bytes("tenant-media") == 0
    double.put_object("tenant-media", 300 * 1000 * 1000)
    double.put_object("tenant-media", 5)
    assert admin.bucket_bytes("tenant-media") == 300_000_005
    assert admin.bucket_bytes("tenant-nothing") is None


def test_it_measures_the_namespaces_asked_for_both_services(keys, double, kube, kubesim):  # noqa: F811
    put_admin_token(kubesim, kube, double.token)
    shop, blog = new_key(keys, "tenant-shop"), new_key(keys, "tenant-blog")
    postgres.ensure_database(superuser, shop)
    admin = garage.GarageAdmin(double.url, double.token)
    admin.ensure_layout(capacity=10 * 1024**3)
    admin.ensure_bucket(garage.bucket_name_for(blog))
    double.put_object(garage.bucket_name_for(blog), 4096)
    answer = services.data_usage(kube, endpoints(double), [shop, blog], connect=superuser)
    items = {i["namespace"]: i for i in answer["items"]}
    assert items[shop]["database_bytes"] == postgres.database_sizes(superuser, [shop])[shop]
    assert items[shop]["bucket_bytes"] is None and items[shop]["errors"] == {}
    assert items[blog] == {"namespace": blog, "database_bytes": None, "bucket_bytes": 4096, "errors": {}}


def test_one_service_failing_leaves_the_rest_of_the_answer(keys, kube, kubesim):  # noqa: F811
    shop = new_key(keys, "tenant-shop")
    postgres.ensure_database(superuser, shop)
    # No Garage admin token Secret: the bucket is not measured, the database still is.
    answer = services.data_usage(kube, endpoints(), [shop], connect=superuser)
    [item] = answer["items"]
    assert item["database_bytes"] > 0 and item["bucket_bytes"] is None
    assert item["errors"] == {"bucket": "not measured: the Garage admin token Secret paas-data/garage-admin-token "
                                        "does not exist yet (is Garage bootstrapped?)"}
    # Garage unreachable (nothing listens on port 9): an error per bucket, never a failed call.
    put_admin_token(kubesim, kube, "token")
    [item] = services.data_usage(kube, endpoints(), [shop], connect=superuser)["items"]
    assert item["database_bytes"] > 0 and item["errors"]["bucket"].startswith("not measured: ")


def test_without_namespaces_it_measures_what_it_provisioned(keys, double, kube, kubesim):  # noqa: F811
    put_admin_token(kubesim, kube, double.token)
    garage.GarageAdmin(double.url, double.token).ensure_layout(capacity=10 * 1024**3)
    shop = new_key(keys, "tenant-shop")
    ends = endpoints(double)
    services.ensure_database(kube, shop, ends, labels={**LABELS, p.PROJECT_LABEL: "shop"}, connect=superuser)
    services.ensure_bucket(kube, shop, ends, labels={**LABELS, p.PROJECT_LABEL: "shop"})
    double.put_object(shop, 1234)
    [item] = services.data_usage(kube, ends, connect=superuser)["items"]
    assert item["namespace"] == shop and item["bucket_bytes"] == 1234 and item["database_bytes"] > 0
    services.drop_database(kube, shop, ends, connect=superuser)
    [item] = services.data_usage(kube, ends, connect=superuser)["items"]
    assert item["database_bytes"] is None and item["bucket_bytes"] == 1234  # only the bucket is left to measure
