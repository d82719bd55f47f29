"""/healthz, /readyz and /metrics as operators and their probes and scrapers see them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from billing import usage as billing
from clusters import rpc
from clusters.models import Cluster, ClusterStatus
from clusters.services import create_cluster
from ops import metrics
from projects.models import Release, ReleaseStatus

TOKEN = "scrape-" + "x" * 32


def samples(response) -> dict[tuple[str, tuple], float]:
    text = response.content.decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def scraper(settings, client):
    settings.METRICS_TOKEN = TOKEN
    return lambda: client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


def test_healthz_answers_anyone_while_the_process_runs(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_readyz_is_ready_when_database_redis_channel_layer_and_a_worker_answer(client, settings, celery_worker):
    settings.METRICS_TOKEN = TOKEN
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {name: {"ok": True} for name in
                                                              ("database", "redis", "channel_layer", "celery")}}
    detailed = client.get("/readyz", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").json()["checks"]
    assert detailed["celery"]["detail"].endswith("worker(s)")


@pytest.mark.django_db
def test_readyz_names_the_dependency_that_is_down_and_only_operators_see_why(client, settings, redis_url):
    settings.METRICS_TOKEN = TOKEN
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["redis"] == {"ok": False} and body["checks"]["database"] == {"ok": True}
    detailed = client.get("/readyz", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").json()
    assert "ConnectionError" in detailed["checks"]["redis"]["detail"]


@pytest.mark.django_db
def test_metrics_are_not_public_by_default(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = []
    refused = client.get("/metrics")
    assert refused.status_code == 403 and "METRICS_TOKEN" in refused.content.decode()
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


@pytest.mark.django_db
def test_metrics_may_be_scraped_from_an_allowed_network(client, settings):
    import ipaddress

    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.0.0.0/8")]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 403


@pytest.mark.django_db
def test_metrics_report_releases_charges_clusters_and_the_queue(scraper, personas, monkeypatch, redis_url):
    from projects.models import Project

    online = create_cluster("a", "a.example.com")
    offline = create_cluster("b", "b.example.com")
    Cluster.objects.filter(pk=online.pk).update(status=ClusterStatus.ONLINE)
    Cluster.objects.filter(pk=offline.pk).update(status=ClusterStatus.OFFLINE)
    project = Project.objects.create(organization=personas.org, cluster=online, name="shop", slug="shop",
                                     namespace="tenant-acme-shop")
    now = timezone.now()

    def release(revision: int, status: str, seconds: float | None) -> None:
        started = now - timedelta(seconds=600)
        Release.objects.create(project=project, revision=revision, status=status, compose_text="services: {}",
                               started_at=started if seconds is not None else None,
                               finished_at=started + timedelta(seconds=seconds) if seconds is not None else None)

    release(1, ReleaseStatus.SUPERSEDED, 8)
    release(2, ReleaseStatus.FAILED, 45)
    release(3, ReleaseStatus.LIVE, 20)
    release(4, ReleaseStatus.PENDING, None)
    before = samples(scraper())
    charged = before.get(("paas_credits_charged_millicredits_total", ()), 0)
    window = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    billing.record_usage(personas.org, {"cluster": "eu-1", "namespace": "tenant-acme-shop", "service": "web",
                                        "window_start": window.isoformat(), "window_seconds": 60, "replicas": 2,
                                        "cpu_millicores": 1000, "memory_mib": 1024, "storage_gib": 0})
    charge = billing.charge_window(personas.org.pk, window)
    assert charge.amount > 0
    queue = f"metrics-test-{uuid.uuid4().hex}"
    monkeypatch.setattr(metrics, "CELERY_QUEUES", (queue,))
    client = redis.Redis.from_url(redis_url)
    client.rpush(queue, "a", "b", "c")
    try:
        after = samples(scraper())
    finally:
        client.delete(queue)

    assert after[("paas_releases_finished_total", (("outcome", "live"),))] == 1
    assert after[("paas_releases_finished_total", (("outcome", "failed"),))] == 1
    assert after[("paas_releases_finished_total", (("outcome", "superseded"),))] == 1
    assert after[("paas_releases_in_flight", (("status", "pending"),))] == 1
    assert after[("paas_release_duration_seconds_bucket", (("le", "10.0"),))] == 1  # 8 s
    assert after[("paas_release_duration_seconds_bucket", (("le", "30.0"),))] == 2  # and 20 s
    assert after[("paas_release_duration_seconds_bucket", (("le", "60.0"),))] == 3  # and 45 s
    assert after[("paas_release_duration_seconds_count", ())] == 3
    assert after[("paas_release_duration_seconds_sum", ())] == pytest.approx(73)
    assert after[("paas_credits_charged_millicredits_total", ())] == charged + charge.amount
    assert after[("paas_clusters", (("status", "online"),))] == 1
    assert after[("paas_clusters", (("status", "offline"),))] == 1
    assert after[("paas_celery_queue_length", (("queue", queue),))] == 3


@pytest.mark.django_db
def test_metrics_time_agent_calls_by_outcome_and_count_requests(scraper):
    cluster = create_cluster("nobody home", "x.example.com")
    before = samples(scraper())
    key = ("paas_agent_rpc_seconds_count", (("op", "ping"), ("outcome", "offline")))
    with pytest.raises(rpc.AgentOffline):
        rpc.call(cluster, "ping", {}, timeout=1)
    after = samples(scraper())
    assert after[key] == before.get(key, 0) + 1
    # django-prometheus counts the scrapes themselves among the requests, by view.
    requests = {k: v for k, v in after.items() if k[0] == "django_http_responses_total_by_status_view_method_total"}
    assert any(dict(labels).get("view") == "metrics" for _, labels in requests)
