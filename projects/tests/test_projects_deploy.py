"""Deploys end to end without a browser: a real daphne, a Celery worker, the agent process and kubesim."""

from __future__ import annotations

import base64
import json
import time

import kubernetes
import pytest

from clusters.models import ClusterEvent, DesiredProject, EventKind
from paas.testing.plane import poll
from projects import deletion, releases, services
from projects.models import Project, Release, ReleaseStatus
from projects.tests.conftest import THREE_SERVICES

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished(release: Release, timeout: float = 30.0) -> Release:
    def done():
        release.refresh_from_db()
        return release.status in (ReleaseStatus.LIVE, ReleaseStatus.FAILED)

    poll(done, timeout, f"release r{release.revision} to finish")
    return release


def test_it_deploys_fails_with_reasons_rolls_back_and_deletes(connected, kubesim, personas, project):
    started = time.monotonic()
    first = finished(releases.deploy(project, personas.owner))
    assert first.status == "live", first.error
    assert [s["status"] for s in first.step_list()] == ["done", "skipped", "done", "done"]
    assert {d["metadata"]["name"] for d in kubesim.list("deployments", "tenant-acme-shop")} == {"web", "api", "worker"}
    urls = {s.name: s.url for s in project.services.all()}
    assert urls == {"web": "http://web-shop-acme-47cbdb9d.apps.example.com/",
                    "api": "http://api-shop-acme-b8d0645d.apps.example.com/",
                    "worker": ""}

    broken = finished(releases.deploy(project, personas.owner, THREE_SERVICES.replace(
        "ghcr.io/acme/api:1.0", "ghcr.io/acme/does-not-exist:1.0")))
    assert broken.status == "failed" and broken.error_code == "image_not_found"
    assert "image ghcr.io/acme/does-not-exist:1.0 could not be pulled: check the name and tag" in broken.error

    back = finished(releases.rollback(project, personas.owner, first))
    assert back.status == "live", back.error
    assert back.revision == 3 and back.rollback_of == first
    api = kubesim.get("deployments", "tenant-acme-shop", "api")
    assert api["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/acme/api:1.0"

    crash = finished(releases.deploy(project, personas.owner, THREE_SERVICES.replace(
        "ghcr.io/acme/worker:1.0", "ghcr.io/acme/worker:crash")))
    assert crash.status == "failed" and crash.error_code == "crash_loop"
    assert "'worker' keeps crashing" in crash.error and "simulated crash" in crash.error
    assert time.monotonic() - started < 60

    deletion.delete_project(project, personas.owner, "shop")
    kubesim.wait_for(lambda: kubesim.get("namespaces", None, "tenant-acme-shop") is None, timeout=15)
    assert not DesiredProject.objects.filter(namespace="tenant-acme-shop").exists()


def test_a_new_image_that_cannot_be_pulled_fails_the_release_while_the_old_pods_still_serve(
        connected, kubesim, personas, project):
    first = finished(releases.deploy(project, personas.owner))
    assert first.status == "live", first.error
    # New pods now stay Pending for a while before kubesim's kubelet finds their image missing. Meanwhile the
    # old pods are the ready and available ones: the agent once reported that as a complete rollout, and the
    # release went live (the flake of the browser test, made certain).
    kubesim.set_pod_start_delay(1.5)
    broken = finished(releases.deploy(project, personas.owner, THREE_SERVICES.replace("nginx:1.27",
                                                                                     "nginx:does-not-exist")))
    assert (broken.status, broken.error_code) == ("failed", "image_not_found"), broken.error
    assert "image nginx:does-not-exist could not be pulled" in broken.error
    first.refresh_from_db()
    assert first.status == "live"  # still the live one


def test_it_delivers_secrets_as_kubernetes_secrets_and_never_stores_them_in_clear(connected, kubesim, personas,
                                                                                 project):
    services.set_variable(project, "GREETING", "bonjour")
    services.set_variable(project, "API_KEY", "s3cr3t-value-42", secret=True)
    services.set_variable(project, "WORKERS", "4", service="worker")
    release = finished(releases.deploy(project, personas.owner))
    assert release.status == "live", release.error

    secret = kubesim.get("secrets", "tenant-acme-shop", "paas-env")
    assert base64.b64decode(secret["data"]["API_KEY"]).decode() == "s3cr3t-value-42"
    web = kubesim.get("deployments", "tenant-acme-shop", "web")["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "paas-env"}} in web["envFrom"]
    assert {"name": "GREETING", "value": "bonjour"} in web["env"]
    assert "s3cr3t" not in json.dumps(web)
    worker = kubesim.get("deployments", "tenant-acme-shop", "worker")["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "paas-env-worker"}} in worker["envFrom"]

    release.refresh_from_db()
    stored = json.dumps([release.manifests, release.sealed_manifests,
                         DesiredProject.objects.get(namespace="tenant-acme-shop").manifests,
                         list(project.variables.values("value", "encrypted_value"))])
    assert "s3cr3t-value-42" not in stored and base64.b64encode(b"s3cr3t-value-42").decode() not in stored


def test_a_namespace_that_is_not_the_projects_is_refused_shown_on_the_release_and_left_untouched(
        connected, kubesim, kube_api, client, personas, project):
    core = kubernetes.client.CoreV1Api(kube_api)
    if kubesim.get("namespaces", None, "paas-data") is None:
        core.create_namespace({"metadata": {"name": "paas-data"}})
    core.create_namespaced_secret("paas-data", {"metadata": {"name": "paas-postgres-superuser"},
                                                "stringData": {"password": "platform-only"}})
    # A project named before the tenant prefix existed, whose names gave it the platform's data namespace.
    Project.objects.filter(pk=project.pk).update(namespace="paas-data")
    project.refresh_from_db()
    before = kubesim.get("namespaces", None, "paas-data")["metadata"]

    release = finished(releases.deploy(project, personas.owner))
    assert release.status == "failed" and release.error_code == "namespace_not_owned"
    assert "namespace paas-data exists and is not owned by project acme/shop" in release.error
    assert release.step_list()[2]["status"] == "failed"  # the apply step
    client.force_login(personas.member)
    page = client.get(f"/o/acme/projects/shop/releases/{release.revision}/").content.decode()
    assert "paas-data exists and is not owned by project acme/shop" in page

    deletion.delete_project(project, personas.owner, "shop")
    poll(lambda: ClusterEvent.objects.filter(cluster=connected, kind=EventKind.APPLY_FAILED,
                                             message__startswith="delete of paas-data refused").exists(),
         15, "the refused delete on the cluster's events")
    after = kubesim.get("namespaces", None, "paas-data")["metadata"]
    assert (after["resourceVersion"], after.get("labels")) == (before["resourceVersion"], before.get("labels"))
    assert after.get("deletionTimestamp") is None
    assert kubesim.list("deployments", "paas-data") == []
    assert kubesim.get("secrets", "paas-data", "paas-postgres-superuser") is not None
