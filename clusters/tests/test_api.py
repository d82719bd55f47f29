"""The operators' REST endpoints: register a cluster, get its install URL, read its state; staff only."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import yaml
from rest_framework.test import APIClient

from accounts.services import create_api_token
from agent import bootstrap
from clusters import infrastructure, services
from clusters.models import BootstrapComponent, Cluster, ComponentState

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_api_token(user, 'test')[1]}")
    return client


def manifest_path(install_url: str) -> str:
    """The install URL without SITE_URL, for the test client."""
    parts = urlsplit(install_url)
    return f"{parts.path}?{parts.query}"


def test_it_registers_a_cluster_whose_install_url_serves_the_agent_manifest_once(operator):
    response = client_for(operator).post("/api/v1/clusters/", {"name": "Edge 1", "base_domain": "apps.edge.test."},
                                         format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    cluster = Cluster.objects.get(slug=body["slug"])
    assert (cluster.name, cluster.base_domain, body["status"], body["connected"]) == (
        "Edge 1", "apps.edge.test", "pending", False)
    assert body["install_command"] == f"kubectl apply -f '{body['install_url']}'"
    anonymous = APIClient()
    manifest = anonymous.get(manifest_path(body["install_url"]))
    kinds = [d["kind"] for d in yaml.safe_load_all(manifest.content) if d]
    assert manifest.status_code == 200 and "Deployment" in kinds and "ClusterRoleBinding" in kinds
    assert anonymous.get(manifest_path(body["install_url"])).status_code == 404  # single use


def test_a_new_install_url_replaces_the_previous_one(operator, cluster):
    client = client_for(operator)
    first = client.post(f"/api/v1/clusters/{cluster.slug}/install/").json()["install_url"]
    second = client.post(f"/api/v1/clusters/{cluster.slug}/install/").json()["install_url"]

    assert APIClient().get(manifest_path(first)).status_code == 404
    assert APIClient().get(manifest_path(second)).status_code == 200


def test_it_shows_every_bootstrap_component_with_unreported_ones_marked(operator, cluster):
    BootstrapComponent.objects.create(cluster=cluster, name="traefik", state=ComponentState.READY)
    BootstrapComponent.objects.create(cluster=cluster, name="cnpg", state=ComponentState.FAILED, reason="no disk")

    body = client_for(operator).get(f"/api/v1/clusters/{cluster.slug}/").json()

    assert [(c["component"], c["state"], c["reason"]) for c in body["infrastructure"]] == [
        ("traefik", "ready", ""), ("cnpg", "failed", "no disk"), ("sablier", "unreported", ""),
        ("garage", "unreported", ""), ("postgres", "unreported", ""), ("backups", "unreported", ""),
        ("tls", "unreported", "")]
    assert infrastructure.COMPONENT_ORDER == bootstrap.COMPONENTS  # every component the agent reports


def test_it_lists_every_cluster_to_operators(operator, cluster):
    services.create_cluster("Another", "b.test", all_organizations=False)

    body = client_for(operator).get("/api/v1/clusters/").json()

    assert [(c["name"], c["connected"]) for c in body["results"]] == [("Another", False), ("Falkenstein 1", False)]


def test_it_refuses_a_cluster_without_a_name(operator):
    response = client_for(operator).post("/api/v1/clusters/", {"name": "  ", "base_domain": "a.test"}, format="json")

    assert response.status_code == 400
    assert not Cluster.objects.exists()


@pytest.mark.parametrize("who", ["owner", "member", "outsider"])
def test_it_is_not_found_for_anyone_but_operators(personas, cluster, who):
    client = client_for(getattr(personas, who))

    assert client.post("/api/v1/clusters/", {"name": "Mine", "base_domain": "a.test"}, format="json").status_code == 404
    assert client.get("/api/v1/clusters/").status_code == 404
    assert client.get(f"/api/v1/clusters/{cluster.slug}/").status_code == 404
    assert client.post(f"/api/v1/clusters/{cluster.slug}/install/").status_code == 404
    assert Cluster.objects.count() == 1
    assert not Cluster.objects.get().install_secret_hash


def test_it_needs_authentication(cluster):
    assert APIClient().get(f"/api/v1/clusters/{cluster.slug}/").status_code in (401, 403)
    assert APIClient().post("/api/v1/clusters/", {"name": "x", "base_domain": "a.test"}).status_code in (401, 403)


def test_an_unknown_cluster_is_not_found(operator):
    assert client_for(operator).get("/api/v1/clusters/nope/").status_code == 404
