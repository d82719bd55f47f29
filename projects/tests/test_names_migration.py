"""projects.0002 on existing data: old namespaces stay, every project gets a uid its desired state carries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from agent.protocol import PROJECT_UID_LABEL

BEFORE = [("projects", "0001_initial"), ("clusters", "0002_bootstrap_components")]
AFTER = [("projects", "0002_project_uid_service_cluster")]


@pytest.mark.django_db(transaction=True)
def test_existing_projects_keep_their_namespace_and_are_given_a_uid(personas):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    cluster = old.get_model("clusters", "Cluster").objects.create(name="C", slug="c", base_domain="apps.example.com")
    Project = old.get_model("projects", "Project")
    make = dict(organization_id=personas.org.pk, cluster=cluster)
    shop = Project.objects.create(name="Shop", slug="shop", namespace="acme-shop", **make)
    data = Project.objects.create(name="Data", slug="data", namespace="paas-data", **make)
    old.get_model("clusters", "DesiredProject").objects.create(
        cluster=cluster, namespace="acme-shop", revision=4,
        labels={"paas.dev/organization": "acme", "paas.dev/project": "shop"})
    Service = old.get_model("projects", "Service")
    # Two services that the old host scheme had already given the same host.
    Service.objects.create(project=shop, name="web", public_host="web-my-shop-acme.apps.example.com")
    Service.objects.create(project=data, name="web", public_host="web-my-shop-acme.apps.example.com")

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())  # later migrations, for later tests
    projects = {p.slug: p for p in new.get_model("projects", "Project").objects.all()}
    assert {s: p.namespace for s, p in projects.items()} == {"shop": "acme-shop", "data": "paas-data"}
    assert projects["shop"].uid and projects["shop"].uid != projects["data"].uid
    desired = new.get_model("clusters", "DesiredProject").objects.get(namespace="acme-shop")
    assert desired.labels[PROJECT_UID_LABEL] == str(projects["shop"].uid)
    hosts = dict(new.get_model("projects", "Service").objects.values_list("project__slug", "public_host"))
    assert hosts == {"shop": "web-my-shop-acme.apps.example.com", "data": ""}
    assert set(new.get_model("projects", "Service").objects.values_list("cluster_id", flat=True)) == {cluster.pk}
