"""Three personas (plus a viewer) against the project pages and API: each sees and does what its role allows."""

from __future__ import annotations

import pytest

from projects import services
from projects.models import Project, Release

pytestmark = pytest.mark.django_db

PAGE = "/o/acme/projects/shop/"
API = "/api/v1/organizations/acme/projects/shop/"


def test_it_lists_projects_to_members_and_viewers(client, personas, viewer, project):
    for user in (personas.owner, personas.member, viewer):
        client.force_login(user)
        assert b"Shop" in client.get("/o/acme/projects/").content
        assert client.get(PAGE).status_code == 200
        assert client.get(API).json()["namespace"] == "tenant-acme-shop"


def test_it_answers_404_to_outsiders_for_project_pages_and_api(client, personas, project):
    client.force_login(personas.outsider)
    for url in (PAGE, PAGE + "releases/1/", API, API + "releases/", "/o/acme/projects/"):
        assert client.get(url).status_code == 404
    for url in (PAGE + "deploy/", PAGE + "validate/", PAGE + "delete/", API + "releases/", API + "variables/"):
        assert client.post(url, {"compose": "services: {}"}).status_code == 404
    assert not Release.objects.exists()


def test_it_answers_404_for_another_organizations_project_even_to_its_own_members(client, personas, cluster):
    services.create_project(personas.outsider_org, personas.outsider, "Secret plans", cluster)
    client.force_login(personas.owner)
    assert client.get("/o/acme/projects/secret-plans/").status_code == 404
    assert client.get("/o/charlie-corp/projects/secret-plans/").status_code == 404


def test_it_lets_viewers_look_but_not_deploy_or_edit(client, viewer, project):
    client.force_login(viewer)
    page = client.get(PAGE).content
    assert b'data-testid="deploy"' not in page and b"Delete project" not in page
    assert client.post(PAGE + "deploy/", {"compose": project.compose_text}).status_code == 403
    assert client.post(API + "releases/", {}, content_type="application/json").status_code == 403
    assert client.post(API + "variables/", {"name": "A", "value": "b"}, content_type="application/json"
                       ).status_code == 403
    assert client.post("/api/v1/organizations/acme/projects/", {"name": "x"}).status_code == 403
    # Validating is read-only, so viewers may.
    assert client.post(API + "validate/", {"compose": project.compose_text}, content_type="application/json"
                       ).json()["ok"] is True
    assert not Release.objects.exists()


def test_it_lets_members_deploy_but_only_owners_and_admins_delete(client, personas, project):
    client.force_login(personas.member)
    response = client.post(API + "releases/", {}, content_type="application/json")
    assert response.status_code == 202 and response.json()["revision"] == 1
    assert client.get(PAGE + "delete/").status_code == 403
    assert client.post(PAGE + "delete/", {"confirm": "shop"}).status_code == 403
    client.force_login(personas.owner)
    assert client.post(PAGE + "delete/", {"confirm": "wrong"}).status_code == 200
    assert Project.objects.active().filter(slug="shop").exists()
    assert client.post(PAGE + "delete/", {"confirm": "shop"}).status_code == 302
    assert not Project.objects.active().filter(slug="shop").exists()
    assert client.get(PAGE).status_code == 404


def test_the_api_deletes_a_project_for_owners_when_its_slug_confirms_it(client, personas, viewer, project):
    for user in (personas.member, viewer):  # may look (member: deploy), may not delete
        client.force_login(user)
        assert client.delete(API + "?confirm=shop").status_code == 403
    client.force_login(personas.outsider)
    assert client.delete(API + "?confirm=shop").status_code == 404
    client.force_login(personas.owner)
    wrong = client.delete(API + "?confirm=Shop!")
    assert wrong.status_code == 400 and "(shop) to confirm" in wrong.json()["detail"]
    assert client.delete(API).status_code == 400
    assert Project.objects.active().filter(slug="shop").exists()

    assert client.delete(API + "?confirm=shop").status_code == 204
    assert not Project.objects.active().filter(slug="shop").exists()
    assert client.get(API).status_code == 404


def test_it_creates_projects_through_the_api_with_a_unique_namespace(client, personas, cluster):
    client.force_login(personas.member)
    response = client.post("/api/v1/organizations/acme/projects/", {"name": "Web Shop"},
                           content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["namespace"] == "tenant-acme-web-shop" and response.json()["cluster"] == "fsn"
    again = client.post("/api/v1/organizations/acme/projects/", {"name": "Web Shop"}, content_type="application/json")
    assert again.status_code == 400 and "already has a project" in again.json()["detail"]


def test_it_keeps_namespaces_unique_when_slugs_collide_across_organizations(personas, cluster):
    from accounts.services import create_organization

    a_b = create_organization(personas.owner, "A B")  # slug a-b
    a = create_organization(personas.owner, "A")
    first = services.create_project(a_b, personas.owner, "C", cluster)
    second = services.create_project(a, personas.owner, "B C", cluster)
    assert first.namespace == "tenant-a-b-c" and second.namespace != first.namespace
    assert len(second.namespace) <= 63
