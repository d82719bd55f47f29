"""The control plane's Prometheus metrics, as one scrape sees them.

Two sources:
- instruments the code updates where things happen (HTTP requests via django-prometheus, agent RPC latency and
  open streams in clusters.rpc). Each process has its own; with PROMETHEUS_MULTIPROC_DIR set (bin/run sets it),
  every process on the host writes there and a scrape of any daphne sums them (prometheus_client's
  multiprocess mode, as with gunicorn).
- facts read at scrape time from the database and Redis (`StateCollector`): releases and their durations,
  credits charged, connected agents, Celery's queue depth. They are right whichever process scrapes, and
  survive restarts, so nothing has to be counted twice.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta

import redis
from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from billing.models import CreditEntry, EntryKind
from clusters.models import Cluster, ClusterStatus
from projects.models import Release, ReleaseStatus

# Buckets of a release's time from start to live or failed: a deploy takes seconds to minutes.
RELEASE_BUCKETS = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
CELERY_QUEUES = ("celery",)  # the only queue the app uses (no task routes)


class StateCollector:
    """Metrics that are facts in the database or Redis, read when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        yield from self._releases()
        yield self._credits_charged()
        yield self._agents()
        yield self._queue_depth()

    def _releases(self) -> Iterator[Metric]:
        finished = Release.objects.exclude(finished_at=None)
        outcomes = CounterMetricFamily("paas_releases_finished", "Releases that finished, by outcome "
                                       "(superseded: replaced by a newer release).", labels=["outcome"])
        for row in finished.values("status").annotate(n=Count("id")).order_by("status"):
            outcomes.add_metric([row["status"]], row["n"])
        yield outcomes
        in_flight = GaugeMetricFamily("paas_releases_in_flight", "Releases queued or deploying.", labels=["status"])
        counts = dict(Release.objects.filter(status__in=[ReleaseStatus.PENDING, ReleaseStatus.DEPLOYING])
                      .values_list("status").annotate(n=Count("id")))
        for status in (ReleaseStatus.PENDING, ReleaseStatus.DEPLOYING):
            in_flight.add_metric([status], counts.get(status, 0))
        yield in_flight
        # One query: how many finished releases took at most each bucket's seconds, and their total time.
        took = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        timed = finished.exclude(started_at=None).filter(status__in=[ReleaseStatus.LIVE, ReleaseStatus.FAILED,
                                                                    ReleaseStatus.SUPERSEDED]).annotate(took=took)
        aggregates = {f"le_{i}": Count("id", filter=Q(took__lte=timedelta(seconds=bound)))
                      for i, bound in enumerate(RELEASE_BUCKETS)}
        row = timed.aggregate(n=Count("id"), total=Sum("took"), **aggregates)
        buckets = [(str(bound), row[f"le_{i}"]) for i, bound in enumerate(RELEASE_BUCKETS)]
        total = row["total"].total_seconds() if row["total"] else 0.0
        yield HistogramMetricFamily("paas_release_duration_seconds", "Time from a release's start to its end.",
                                    buckets=[*buckets, ("+Inf", row["n"])], sum_value=total)

    def _credits_charged(self) -> Metric:
        charged = -(CreditEntry.objects.filter(kind=EntryKind.USAGE).aggregate(s=Sum("amount"))["s"] or 0)
        family = CounterMetricFamily("paas_credits_charged_millicredits", "Millicredits charged for usage.")
        family.add_metric([], charged)
        return family

    def _agents(self) -> Metric:
        family = GaugeMetricFamily("paas_clusters", "Registered clusters by agent status "
                                   "(online: its agent is connected).", labels=["status"])
        counts = dict(Cluster.objects.values_list("status").annotate(n=Count("id")))
        for status in ClusterStatus.values:
            family.add_metric([status], counts.get(status, 0))
        return family

    def _queue_depth(self) -> Metric:
        family = GaugeMetricFamily("paas_celery_queue_length", "Tasks waiting in the broker's queue.", labels=["queue"])
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)
        try:
            for queue in CELERY_QUEUES:
                family.add_metric([queue], client.llen(queue))
        finally:
            client.close()
        return family


def exposition() -> bytes:
    """The text a scrape gets: this host's processes' instruments and the state read now."""
    instruments = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        instruments = CollectorRegistry()
        multiprocess.MultiProcessCollector(instruments)
    state = CollectorRegistry()
    state.register(StateCollector())
    return generate_latest(instruments) + generate_latest(state)
