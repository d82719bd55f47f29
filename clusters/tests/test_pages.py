"""Operators manage clusters on staff-only pages; tenants only reach clusters open to them."""

from __future__ import annotations

import pytest
from django.http import Http404

from clusters import services
from clusters.access import clusters_for_organization, get_cluster_for_org
from clusters.models import Cluster


def test_it_answers_404_to_non_staff_on_every_cluster_page(personas, cluster, client):
    client.force_login(personas.owner)
    for url in ["/clusters/", "/clusters/new/", f"/clusters/{cluster.slug}/", f"/clusters/{cluster.slug}/edit/"]:
        assert client.get(url).status_code == 404, url
    for url in [f"/clusters/{cluster.slug}/install/", f"/clusters/{cluster.slug}/token/rotate/",
                f"/clusters/{cluster.slug}/token/revoke/"]:
        assert client.post(url).status_code == 404, url
    cluster.refresh_from_db()
    assert not cluster.token_hash


def test_it_lets_an_operator_add_a_cluster_and_shows_the_install_command_once(operator, client):
    client.force_login(operator)
    response = client.post("/clusters/new/", {"name": "Helsinki", "base_domain": "apps.hel.example.com",
                                              "ssh_endpoint": "hel.example.com:2222", "all_organizations": "on"})
    assert response.status_code == 200
    cluster = Cluster.objects.get(name="Helsinki")
    command = response.context["install_command"]
    assert command.startswith("kubectl apply -f ") and f"/clusters/{cluster.pk}/agent.yaml?secret=" in command
    page = client.get(f"/clusters/{cluster.slug}/").content.decode()
    assert "secret=" not in page
    assert "Pending" in page


def test_it_shows_a_rotated_token_once(operator, cluster, client):
    client.force_login(operator)
    response = client.post(f"/clusters/{cluster.slug}/token/rotate/")
    token = response.context["token"]
    assert services.authenticate_agent(token) == cluster
    assert token not in client.get(f"/clusters/{cluster.slug}/").content.decode()


def test_it_marks_a_simulated_cluster(operator, client):
    services.create_cluster("local (simulated)", "localtest.me", simulated=True)
    client.force_login(operator)
    assert "simulated" in client.get("/clusters/").content.decode()
    assert 'data-testid="simulated"' in client.get("/clusters/local-simulated/").content.decode()


def test_tenants_only_get_clusters_open_to_them(personas):
    open_cluster = services.create_cluster("Open", "open.example.com")
    private = services.create_cluster("Private", "private.example.com", all_organizations=False,
                                      organizations=[personas.outsider_org])
    assert list(clusters_for_organization(personas.org)) == [open_cluster]
    assert set(clusters_for_organization(personas.outsider_org)) == {open_cluster, private}
    assert get_cluster_for_org(personas.outsider_org, "private") == private
    with pytest.raises(Http404):
        get_cluster_for_org(personas.org, "private")
    with pytest.raises(Http404):
        get_cluster_for_org(personas.org, "missing")


def test_the_admin_lists_clusters(operator, cluster, client):
    operator.is_superuser = True
    operator.save()
    client.force_login(operator)
    for url in ["/admin/clusters/cluster/", f"/admin/clusters/cluster/{cluster.pk}/change/",
                "/admin/clusters/clusterevent/", "/admin/clusters/desiredproject/", "/admin/clusters/observedproject/"]:
        assert client.get(url).status_code == 200, url


def test_the_cluster_page_shows_how_many_connections_were_refused(operator, cluster, client):
    for _ in range(3):
        services.record_rejected_connection(cluster.pk, "bad, expired or revoked token")
    client.force_login(operator)
    page = client.get(f"/clusters/{cluster.slug}/").content.decode()
    assert page.count("Connection refused") == 1 and "(3 times, last" in page
