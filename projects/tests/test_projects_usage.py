"""Usage for billing from the cluster's state: ready replicas times the manifests' requests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.models import UsageRecord
from clusters.models import ClusterStatus, DesiredProject, ObservedProject
from projects import manifests
from projects.compose import render_project
from projects.usage import closed_window, record_window

pytestmark = pytest.mark.django_db

WINDOW = datetime(2026, 1, 5, 10, 31, tzinfo=UTC)
COMPOSE = """services:
  web:
    image: nginx
    deploy:
      replicas: 2
      resources:
        reservations: {cpus: "0.25", memory: 256M}
    volumes: [data:/data]
  worker:
    image: busybox
volumes:
  data:
    labels: {kompose.volume.size: 3Gi}
"""


@pytest.fixture
def running(project):
    project.cluster.status = ClusterStatus.ONLINE
    project.cluster.save(update_fields=["status"])
    objects = render_project(COMPOSE, manifests.render_context(project, 1, {})).objects
    DesiredProject.objects.create(cluster=project.cluster, namespace=project.namespace, labels=project.labels,
                                  revision=1, manifests=objects)
    state = {"deployments": {"web": {"replicas": 2, "ready": 2}, "worker": {"replicas": 1, "ready": 0}}}
    return ObservedProject.objects.create(cluster=project.cluster, namespace=project.namespace, state=state)


def test_it_bills_ready_replicas_at_their_requests(project, running):
    assert record_window(WINDOW) == 2
    web = UsageRecord.objects.get(service="web")
    assert (web.replica_seconds, web.cpu_millicores, web.memory_mib, web.volume_gib) == (120, 250, 256, 3)
    assert web.project_key == project.namespace and web.cluster_key == "fsn"
    worker = UsageRecord.objects.get(service="worker")
    assert worker.replica_seconds == 0 and worker.cost_fine == 0  # not ready yet: costs nothing


def test_a_second_run_for_the_same_window_records_nothing_new(project, running):
    record_window(WINDOW)
    record_window(WINDOW)
    assert UsageRecord.objects.count() == 2


def test_a_service_scaled_to_zero_pays_only_for_its_volume(project, running):
    running.state = {"deployments": {"web": {"replicas": 0, "ready": 0}}}
    running.save()
    record_window(WINDOW)
    web = UsageRecord.objects.get(service="web")
    assert web.replica_seconds == 0 and web.volume_gib == 3 and web.cost_fine > 0


def test_no_report_while_the_agent_is_away(project, running):
    project.cluster.status = ClusterStatus.OFFLINE
    project.cluster.save(update_fields=["status"])
    assert record_window(WINDOW) == 0
    assert not UsageRecord.objects.exists()


def test_the_closed_window_is_the_last_whole_one(settings):
    settings.BILLING_WINDOW_SECONDS = 60
    assert closed_window(datetime(2026, 1, 5, 10, 32, 30, tzinfo=UTC)) == WINDOW
