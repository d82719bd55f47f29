"""Per-service sleep settings and "Wake now" through the API and the project page: who may, what is refused,
and what the next release renders. No cluster: waking a suspended project is refused before any call."""

from __future__ import annotations

import pytest

from projects import manifests
from projects.compose import render_project
from projects.compose import sleep as S
from projects.models import Service

pytestmark = pytest.mark.django_db

API = "/api/v1/organizations/acme/projects/shop/services/"


@pytest.fixture
def web(project):
    return Service.objects.create(project=project, name="web", image="nginx:1.27", exposure="public",
                                  public_host="web-shop.apps.example.com")


def put(client, name: str, body: dict):
    return client.put(API + f"{name}/sleep/", body, content_type="application/json")


def sablier_config(project) -> dict:
    objects = render_project(project.compose_text, manifests.render_context(project, 1, {})).objects
    middleware = [o for o in objects if S.sleeps_middleware(o) and o["metadata"]["labels"]["paas.dev/service"] == "web"]
    return middleware[0]["spec"]["plugin"]["sablier"] if middleware else {}


def test_members_set_sleep_settings_viewers_read_them_outsiders_see_nothing(client, personas, viewer, web):
    client.force_login(viewer)
    assert client.get(API + "web/sleep/").json() == {
        "enabled": True, "active": True, "blocker": "", "idle_timeout": 900, "strategy": "dynamic",
        "blocking_timeout": 60}
    assert put(client, "web", {"idle_timeout": 120}).status_code == 403
    assert client.post(API + "web/wake/").status_code == 403
    client.force_login(personas.outsider)
    assert client.get(API + "web/sleep/").status_code == 404
    assert put(client, "web", {"idle_timeout": 120}).status_code == 404
    assert client.post(API + "web/wake/").status_code == 404

    client.force_login(personas.member)
    answer = put(client, "web", {"idle_timeout": 120, "strategy": "blocking", "blocking_timeout": 30})
    assert answer.status_code == 200 and answer.json()["idle_timeout"] == 120
    assert sablier_config(web.project) | {"sablierUrl": "", "group": ""} == {
        "sablierUrl": "", "group": "", "sessionDuration": "2m", "blocking": {"timeout": "30s"}}
    assert put(client, "web", {"enabled": False}).status_code == 200
    assert sablier_config(web.project) == {}


@pytest.mark.parametrize(("body", "message"), [
    ({"idle_timeout": 59}, "The idle timeout must be between 1 minute and 24 hours"),
    ({"idle_timeout": 86401}, "The idle timeout must be between 1 minute and 24 hours"),
    ({"blocking_timeout": 0}, "The blocking timeout must be between 1 and 600 seconds"),
])
def test_bad_values_are_refused_with_the_reason_and_nothing_changes(client, personas, web, body, message):
    client.force_login(personas.member)
    answer = put(client, "web", {"strategy": "blocking", **body})
    assert answer.status_code == 400 and message in answer.json()["detail"]
    web.refresh_from_db()
    assert (web.idle_timeout, web.sleep_strategy, web.blocking_timeout) == (900, "dynamic", 60)
    assert put(client, "web", {"strategy": "sometimes"}).status_code == 400


def test_services_that_cannot_sleep_say_why(client, personas, project, web):
    worker = Service.objects.create(project=project, name="worker", image="acme/worker:1")
    assert worker.sleep_blocker() == "it has no public URL, so no request could wake it" and not worker.sleeps
    client.force_login(personas.member)
    answer = put(client, "worker", {"enabled": True})
    assert answer.status_code == 400 and "worker cannot sleep: it has no public URL" in answer.json()["detail"]
    page = client.get("/o/acme/projects/shop/").content.decode()
    assert "always on: it has no public URL, so no request could wake it" in page
    assert 'data-testid="wake-web"' in page


def test_the_project_page_form_changes_the_idle_timeout_in_minutes(client, personas, web):
    client.force_login(personas.member)
    page = client.post("/o/acme/projects/shop/services/web/sleep/",
                       {"enabled": "on", "idle_minutes": "30", "strategy": "dynamic", "blocking_timeout": "60"},
                       follow=True)
    assert b"press Redeploy" in page.content
    web.refresh_from_db()
    assert web.idle_timeout == 1800 and web.sleep_enabled
    page = client.post("/o/acme/projects/shop/services/web/sleep/", {"idle_minutes": "lots"}, follow=True)
    assert b"The idle timeout must be a whole number" in page.content


def test_a_sleeping_service_shows_it_costs_nothing(client, personas, web):
    Service.objects.filter(pk=web.pk).update(status="sleeping")
    client.force_login(personas.member)
    assert "sleeping — no charge" in client.get("/o/acme/projects/shop/services/").content.decode()


def test_a_suspended_project_cannot_be_woken(client, personas, project, web):
    project.suspended = True
    project.save()
    client.force_login(personas.member)
    answer = client.post(API + "web/wake/")
    assert answer.status_code == 409 and "Shop is suspended" in answer.json()["detail"]
