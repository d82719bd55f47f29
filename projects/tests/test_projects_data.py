"""The project's database and bucket credentials: revealed on request by members, never stored."""

from __future__ import annotations

import pytest
from django.test import Client
from kubernetes import client as k8s

from agent.data.services import secret_object
from agent.protocol import DATA_SERVICE_LABEL, DATABASE_SECRET, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from audit.models import AuditEvent

REVEAL = "/o/acme/projects/shop/data/{}/reveal/"


@pytest.fixture
def with_database(project):
    project.wants_database = True
    project.save(update_fields=["wants_database"])
    return project


@pytest.mark.django_db
def test_only_members_who_may_deploy_can_reveal(client, personas, viewer, with_database):
    client.force_login(personas.outsider)
    assert client.post(REVEAL.format("database")).status_code == 404
    client.force_login(viewer)
    assert client.post(REVEAL.format("database")).status_code == 403
    client.force_login(personas.member)
    assert client.post(REVEAL.format("bucket")).status_code == 404  # the project has no bucket
    assert client.get(REVEAL.format("database")).status_code == 405


@pytest.mark.django_db
def test_it_says_what_to_do_when_the_agent_cannot_answer(client, personas, with_database):
    client.force_login(personas.member)
    response = client.post(REVEAL.format("database"))
    assert response.status_code == 503 and "agent is offline" in response.json()["error"]
    assert response["Cache-Control"] == "no-store"
    page = client.get("/o/acme/projects/shop/").content.decode()
    assert "Reveal credentials" in page and "DATABASE_URL" in page


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_it_reads_the_credentials_from_the_cluster_through_the_agent(connected, kubesim, kube_api, personas,
                                                                     with_database):
    namespace = with_database.namespace
    core = k8s.CoreV1Api(kube_api)
    core.create_namespace({"metadata": {"name": namespace}})
    url = "postgresql://p_acme_shop:s3cret@paas-postgres-rw.paas-data.svc:5432/p_acme_shop"
    labels = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, DATA_SERVICE_LABEL: "database"}
    core.create_namespaced_secret(namespace, secret_object(namespace, DATABASE_SECRET, {"DATABASE_URL": url},
                                                                  labels))
    browser = Client()
    browser.force_login(personas.member)
    response = browser.post(REVEAL.format("database"))
    assert response.status_code == 200, response.content
    assert response.json()["values"]["DATABASE_URL"] == url
    # Audited by name, never by value.
    event = AuditEvent.objects.get(action="credential.revealed")
    assert (event.actor, event.organization, event.details) == (
        personas.member, personas.org, {"service": "database", "names": ["DATABASE_URL"]})
    assert "s3cret" not in str(list(AuditEvent.objects.values()))
