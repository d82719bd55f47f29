"""Usage for billing, from what the agents report.

Once per billing window, each project's services are measured from the cluster's state: ready
replicas from the agent's observed state, CPU and memory requests per replica and volume sizes
from the desired manifests the cluster holds. A scaled-to-zero service costs only its storage.
A project whose cluster has no connected agent is skipped for that window: with no report there
is nothing to bill, and gaps are never filled in (billing is idempotent per service and window).

The project's managed database and bucket are measured too, in bytes: once per window each connected
cluster's agent is asked once for the sizes of all its projects' data (clusters.data.data_usage), and each
project's sizes are reported as one project-level record (service key billing.usage.PROJECT_DATA). A size the
agent could not measure is left out of that window, like any other gap.

The arrow runs from projects to billing: billing declares the report it accepts (billing.usage.UsageReport)
and knows nothing of projects or clusters; this module measures and reports into billing.usage.record_usage.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing import usage as billing_usage
from clusters import data
from clusters.models import Cluster, ClusterStatus, DesiredProject, ObservedProject
from projects.compose import labels
from projects.compose.quantities import millicpus, parse_quantity
from projects.models import Project

log = logging.getLogger(__name__)

CONNECTED = (ClusterStatus.ONLINE, ClusterStatus.DEGRADED)
MIB = 1024**2
GIB = 1024**3


def closed_window(now: datetime | None = None) -> datetime:
    """Start of the most recent window that has ended."""
    seconds = settings.BILLING_WINDOW_SECONDS
    epoch = int((now or timezone.now()).timestamp()) // seconds * seconds - seconds
    return datetime.fromtimestamp(epoch, tz=UTC)


def _requests(pod_spec: dict[str, Any]) -> tuple[int, int]:
    """(CPU millicores, memory MiB) requested by one replica: its containers' requests, summed."""
    cpu = memory = 0
    for container in pod_spec.get("containers") or []:
        requests = (container.get("resources") or {}).get("requests") or {}
        cpu += millicpus(requests.get("cpu", "0"))
        memory += math.ceil(parse_quantity(requests.get("memory", "0")) / MIB)
    return cpu, memory


def service_usage(manifests: list[dict[str, Any]], state: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per service: ready replicas, requests per replica and volume GiB, from one namespace's objects."""
    usage: dict[str, dict[str, int]] = {}
    observed = state.get("deployments") or {}
    claims = {o["metadata"]["name"]: o for o in manifests if o.get("kind") == "PersistentVolumeClaim"}
    for obj in manifests:
        if obj.get("kind") != "Deployment":
            continue
        service = (obj["metadata"].get("labels") or {}).get(labels.SERVICE) or obj["metadata"]["name"]
        pod_spec = obj["spec"]["template"]["spec"]
        cpu, memory = _requests(pod_spec)
        storage = 0
        for volume in pod_spec.get("volumes") or []:
            claim = claims.get((volume.get("persistentVolumeClaim") or {}).get("claimName", ""))
            if claim:
                size = claim["spec"]["resources"]["requests"].get("storage", "0")
                storage += math.ceil(parse_quantity(size) / GIB)
        ready = int((observed.get(obj["metadata"]["name"]) or {}).get("ready", 0))
        usage[service] = {"replicas": ready, "cpu_millicores": cpu, "memory_mib": memory, "storage_gib": storage}
    return usage


def record_window(window_start: datetime) -> int:
    """Record one window's usage for every project on a connected cluster; returns the reports made."""
    seconds = settings.BILLING_WINDOW_SECONDS
    made = 0
    projects = Project.objects.filter(deleted_at__isnull=True, cluster__status__in=CONNECTED).select_related(
        "organization", "cluster")
    for project in projects:
        desired = DesiredProject.objects.filter(cluster=project.cluster, namespace=project.namespace).first()
        if desired is None:
            continue  # never deployed: nothing runs
        observed = ObservedProject.objects.filter(cluster=project.cluster, namespace=project.namespace).first()
        # All of a project's services or none: a worker or database lost mid-loop leaves no half-measured window
        # for the charge to bill part of.
        with transaction.atomic():
            for service, figures in service_usage(desired.manifests, observed.state if observed else {}).items():
                billing_usage.record_usage(project.organization, {
                    "cluster": project.cluster.slug, "namespace": project.namespace, "service": service,
                    "window_start": window_start.isoformat(), "window_seconds": seconds, **figures,
                })
                made += 1
    return made + record_data_window(window_start)


def record_data_window(window_start: datetime) -> int:
    """Record one window's database and bucket sizes: one agent call per connected cluster, one project-level
    report per project that has either. Returns the reports made."""
    made = 0
    projects = Project.objects.filter(deleted_at__isnull=True, cluster__status__in=CONNECTED).filter(
        Q(wants_database=True) | Q(wants_bucket=True)).select_related("organization", "cluster")
    by_cluster: dict[int, list[Project]] = {}
    for project in projects:
        by_cluster.setdefault(project.cluster_id, []).append(project)
    for members in by_cluster.values():
        cluster: Cluster = members[0].cluster
        outcome = data.data_usage(cluster, sorted(p.namespace for p in members))
        if not outcome.ok:
            log.warning("data sizes not measured: cluster=%s window=%s error=%s", cluster.slug,
                        window_start.isoformat(), outcome.error)
            continue
        items = {item.get("namespace"): item for item in outcome.result.get("items") or []}
        for project in members:
            item = items.get(project.namespace) or {}
            for service, error in (item.get("errors") or {}).items():
                log.warning("data size not measured: cluster=%s namespace=%s service=%s error=%s", cluster.slug,
                            project.namespace, service, error)
            sizes = {"database_bytes": item.get("database_bytes") if project.wants_database else None,
                     "bucket_bytes": item.get("bucket_bytes") if project.wants_bucket else None}
            if all(size is None for size in sizes.values()):
                continue  # nothing provisioned (yet) or nothing measured: no report, no guess
            billing_usage.record_usage(project.organization, {
                "cluster": cluster.slug, "namespace": project.namespace, "service": billing_usage.PROJECT_DATA,
                "window_start": window_start.isoformat(), "window_seconds": settings.BILLING_WINDOW_SECONDS,
                "replicas": 0, "cpu_millicores": 0, "memory_mib": 0,
                **{name: size or 0 for name, size in sizes.items()},
            })
            made += 1
    return made


def record_last_window() -> int:
    window = closed_window()
    made = record_window(window)
    log.info("usage recorded: window=%s reports=%d", window.isoformat(), made)
    return made

