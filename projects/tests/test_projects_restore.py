"""Restoring a deleted project within its grace period: owners only, refused after it, audited, and end to end
(daphne, Celery, the agent process, kubesim, the machine's PostgreSQL, the Garage double) with the same database
and bucket credentials and its live release redeployed."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import psycopg
import pytest
from django.test import Client
from django.utils import timezone

from agent import charts
from agent.data import garage as agent_garage
from agent.data import postgres as agent_postgres
from agent.data import services as agent_data
from agent.tests.garage_double import GarageDouble
from audit.models import AuditEvent
from clusters import services as cluster_services
from clusters import tasks as cluster_tasks
from conftest import skip_or_fail
from paas.testing.agent_account import admin_kube, agent_kubeconfig
from paas.testing.plane import Agents, online, poll
from projects import deletion, releases, services
from projects.models import Project, Release, ReleaseKind, ReleaseStatus

LIST = "/o/acme/projects/"
RESTORE = "/o/acme/deleted-projects/shop/restore/"
API_LIST = "/api/v1/organizations/acme/deleted-projects/"
API_RESTORE = "/api/v1/organizations/acme/deleted-projects/shop/restore/"


def live(release: Release) -> Release:
    """As the pipeline leaves a release that rolled out (the pipeline itself runs in the integration test)."""
    Release.objects.filter(pk=release.pk).update(status=ReleaseStatus.LIVE, finished_at=timezone.now())
    release.refresh_from_db()
    return release


@pytest.fixture
def deleted(project, personas):
    first = live(releases.deploy(project, personas.owner))
    deletion.delete_project(project, personas.owner, "shop")
    project.first_release = first
    return project


def api(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.mark.django_db
def test_only_the_owner_sees_and_restores_a_deleted_project(client, personas, viewer, deleted):
    restore_api, list_api = API_RESTORE, API_LIST
    client.force_login(personas.outsider)
    assert client.post(RESTORE).status_code == 404
    assert client.get(list_api).status_code == 404
    assert client.post(restore_api).status_code == 404
    for user in (personas.member, viewer):
        client.force_login(user)
        assert "Recently deleted" not in client.get(LIST).content.decode()
        assert client.post(RESTORE).status_code == 403
        assert client.get(list_api).status_code == 403
        assert client.post(restore_api).status_code == 403
    assert Project.objects.get(pk=deleted.pk).deleted_at is not None  # nobody above changed anything

    client.force_login(personas.owner)
    page = client.get(LIST).content.decode()
    assert "Recently deleted" in page and 'data-testid="restore-shop"' in page
    listed = client.get(list_api).json()
    assert listed["count"] == 1 and listed["results"][0]["slug"] == "shop"
    assert listed["results"][0]["live_revision"] == deleted.first_release.revision
    response = client.post(RESTORE)
    assert response.status_code == 302 and response["Location"] == "/o/acme/projects/shop/"
    assert Project.objects.active().filter(pk=deleted.pk).exists()
    assert "is back with its database and bucket" in client.get(response["Location"]).content.decode()


@pytest.mark.django_db
def test_the_restore_redeploys_the_live_release_and_is_audited(personas, deleted):
    response = api(personas.owner).post(API_RESTORE)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["project"]["slug"] == "shop" and body["project"]["namespace"] == "tenant-acme-shop"
    redeploy = Release.objects.get(project=deleted, revision=body["release"]["revision"])
    assert redeploy.kind == ReleaseKind.REDEPLOY and redeploy.status == ReleaseStatus.PENDING
    assert redeploy.compose_text == deleted.first_release.compose_text
    deleted.refresh_from_db()
    assert (deleted.deleted_at, deleted.purge_after) == (None, None)
    event = AuditEvent.objects.get(action="project.restored")
    assert (event.actor, event.organization, event.target_label) == (personas.owner, personas.org, str(deleted))
    assert event.details["redeploys_revision"] == deleted.first_release.revision
    # No longer listed as deleted, and a second restore says why it cannot.
    assert api(personas.owner).get(API_LIST).json()["count"] == 0
    assert api(personas.owner).post(API_RESTORE).status_code == 404


@pytest.mark.django_db
def test_after_the_grace_period_the_restore_is_refused_with_the_reason(client, personas, deleted):
    Project.objects.filter(pk=deleted.pk).update(purge_after=timezone.now() - timedelta(minutes=1))
    response = api(personas.owner).post(API_RESTORE)
    assert response.status_code == 400
    assert response.json()["code"] == "grace_period_over"
    assert response.json()["detail"].startswith("Shop can no longer be restored: its 72-hour grace period ended on ")
    assert "its database and bucket are being removed" in response.json()["detail"]
    client.force_login(personas.owner)
    page = client.post(RESTORE, follow=True).content.decode()
    assert "Shop can no longer be restored" in page
    assert "Recently deleted" not in page  # no longer offered
    assert Project.objects.get(pk=deleted.pk).deleted_at is not None
    assert not AuditEvent.objects.filter(action="project.restored").exists()
    assert Release.objects.filter(project=deleted).count() == 1


@pytest.mark.django_db
def test_a_restore_over_the_plans_project_limit_changes_nothing(personas, deleted, cluster):
    from billing import ledger

    plan = ledger.plan_for_update(personas.org)
    for n in range(plan.max_projects):
        services.create_project(personas.org, personas.owner, f"Other {n}", cluster)
    response = api(personas.owner).post(API_RESTORE)
    assert response.status_code == 400 and response.json()["code"] == "plan_limit"
    assert "before restoring Shop" in response.json()["detail"]
    assert Project.objects.get(pk=deleted.pk).deleted_at is not None


# --- end to end ---------------------------------------------------------------------------------------------


@pytest.fixture
def garage():
    double = GarageDouble().start()
    yield double
    double.stop()


@pytest.fixture
def data_cluster(daphne_server, celery_worker, kubesim, tmp_path, cluster, garage, monkeypatch):
    """The cluster's agent as a process with its data services: the machine's PostgreSQL as the shared one
    (its superuser Secret as CloudNativePG would publish it), the Garage double with its layout applied."""
    try:
        psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc})")
    kube = admin_kube(kubesim)
    kube.apply(agent_data.NAMESPACE, {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": charts.DATA_NAMESPACE}})
    for name, values in ((charts.POSTGRES_SUPERUSER_SECRET, {"username": "postgres", "password": "trust-auth"}),
                         (charts.GARAGE_ADMIN_SECRET, {"token": garage.token})):
        kube.apply(agent_data.SECRET, agent_data.secret_object(charts.DATA_NAMESPACE, name, values, {}),
                   charts.DATA_NAMESPACE)
    agent_garage.GarageAdmin(garage.url, garage.token).ensure_layout(1 << 30)
    monkeypatch.setenv("AGENT_POSTGRES_HOST", "127.0.0.1")
    monkeypatch.setenv("AGENT_GARAGE_ADMIN_URL", garage.url)
    plane = SimpleNamespace(agent_url=daphne_server.replace("http://", "ws://") + "/agent/ws")
    agents = Agents(plane, agent_kubeconfig(kubesim, tmp_path / "kubeconfig"), tmp_path)
    agents.start(cluster_services.issue_token(cluster))
    poll(lambda: online(cluster), 30, "agent online")
    yield cluster
    agents.stop_all()
    agent_postgres.drop_database(
        lambda db: psycopg.connect(host="127.0.0.1", user="postgres", dbname=db, connect_timeout=3),
        "tenant-acme-shop")


def finished(release_pk: int, timeout: float = 60.0) -> Release:
    def done() -> Release | None:
        release = Release.objects.get(pk=release_pk)
        return release if release.status in (ReleaseStatus.LIVE, ReleaseStatus.FAILED) else None

    return poll(done, timeout, f"release {release_pk} to finish")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_restored_project_comes_back_running_with_the_same_database_and_bucket(data_cluster, kubesim, personas,
                                                                                  project):
    services.update_settings(project, wants_database=True, wants_bucket=True)
    first = finished(releases.deploy(project, personas.owner).pk)
    assert first.status == ReleaseStatus.LIVE, first.error
    assert [s["status"] for s in first.step_list()][1] == "done"  # the data step made both
    before = {s: services.reveal_credentials(project, s, actor=personas.owner) for s in ("database", "bucket")}
    assert before["database"]["PGPASSWORD"] and before["bucket"]["S3_SECRET_ACCESS_KEY"]

    deletion.delete_project(project, personas.owner, "shop")
    kubesim.wait_for(lambda: kubesim.get("namespaces", None, "tenant-acme-shop") is None, timeout=30)

    response = api(personas.owner).post(API_RESTORE)
    assert response.status_code == 200, response.content
    again = finished(Release.objects.get(project=project, revision=response.json()["release"]["revision"]).pk)
    assert again.status == ReleaseStatus.LIVE, again.error
    assert again.kind == ReleaseKind.REDEPLOY and [s["status"] for s in again.step_list()][1] == "done"
    assert {d["metadata"]["name"] for d in kubesim.list("deployments", "tenant-acme-shop")} == {"web", "api", "worker"}
    project.refresh_from_db()
    after = {s: services.reveal_credentials(project, s, actor=personas.owner) for s in ("database", "bucket")}
    assert after == before
    assert kubesim.get("Secret", charts.DATA_NAMESPACE, "retained-tenant-acme-shop-database") is None

    # A deletion task delivered late (after the restore) must not take the restored project's namespace.
    cluster_tasks.delete_project_namespace(project.cluster_id, project.namespace, project.labels)
    assert kubesim.get("namespaces", None, "tenant-acme-shop") is not None
    assert {d["metadata"]["name"] for d in kubesim.list("deployments", "tenant-acme-shop")} == {"web", "api", "worker"}
