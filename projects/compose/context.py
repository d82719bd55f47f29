"""The converter's inputs and outputs as plain values: plan limits, render context, result."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.charts import SABLIER_URL

from .labels import TENANT_NAMESPACE_PREFIX
from .problems import Problem

DNS_LABEL_MAX = 63


@dataclass(frozen=True)
class PlanLimits:
    """What an organization's plan allows; quantities are Kubernetes quantity strings."""

    max_replicas: int = 3
    max_services: int = 20
    default_cpu_request: str = "50m"
    default_cpu_limit: str = "500m"
    default_memory_request: str = "64Mi"
    default_memory_limit: str = "512Mi"
    default_volume_size: str = "1Gi"
    max_container_cpu: str = "2"
    max_container_memory: str = "4Gi"
    quota_cpu: str = "4"
    quota_memory: str = "8Gi"
    quota_pods: int = 20
    quota_storage: str = "20Gi"
    quota_volumes: int = 10


def _short_hash(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:8]


def dns_label(raw: str, *, limit: int = DNS_LABEL_MAX, salt: str = "") -> str:
    """A DNS-1123 label from `raw`; a short hash suffix keeps truncated or rewritten names unique."""
    label = re.sub(r"[^a-z0-9-]+", "-", raw.lower())
    label = re.sub(r"-{2,}", "-", label).strip("-") or "x"
    if label == raw and len(label) <= limit:
        return label
    suffix = _short_hash(raw, salt)
    return f"{label[: limit - len(suffix) - 1].rstrip('-')}-{suffix}"


def namespace_for(org_slug: str, project_slug: str) -> str:
    """The project's namespace: `tenant-<org>-<project>`, hashed when it must be rewritten or truncated.

    The fixed prefix makes it structural that no organization or project name gives a Kubernetes or
    platform namespace (`default`, `kube-system`, `paas-data`...); truncation keeps the prefix.
    """
    return dns_label(f"{TENANT_NAMESPACE_PREFIX}{org_slug}-{project_slug}", salt=f"{org_slug}/{project_slug}")


def hashed_label(readable: str, *identity: str, limit: int = DNS_LABEL_MAX) -> str:
    """`<readable>-<hash of identity>`: a readable DNS label that two identities never share.

    The hash is always there, so labels that happen to join alike ("my-shop"+"acme" vs "my"+"shop-acme")
    still differ; only the readable part is shortened to fit `limit`.
    """
    suffix = _short_hash(*identity)
    label = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]+", "-", readable.lower())).strip("-") or "x"
    return f"{label[: limit - len(suffix) - 1].rstrip('-')}-{suffix}"


@dataclass(frozen=True)
class SleepSettings:
    """Scale to zero for one public web service (Sablier); durations in seconds."""

    enabled: bool = True
    idle_timeout: int = 15 * 60
    strategy: str = "dynamic"  # or "blocking"
    blocking_timeout: int = 60


@dataclass(frozen=True)
class RenderContext:
    """Everything besides the compose text that decides the rendered objects."""

    org_slug: str
    project_slug: str
    namespace: str = ""
    revision: int = 1
    variables: Mapping[str, str] = field(default_factory=dict)
    plan: PlanLimits = field(default_factory=PlanLimits)
    base_domain: str = "apps.localhost"
    database_secret: str | None = None
    bucket_secret: str | None = None
    allow_internet_egress: bool = False
    # Per-service choice to replace an official postgres image by the managed database (default on).
    replace_postgres: Mapping[str, bool] = field(default_factory=dict)
    # Per-service "public" / "private", winning over what the ports suggest.
    exposure: Mapping[str, str] = field(default_factory=dict)
    # Usernames / subjects bound to the namespace's view Role.
    members: Sequence[str] = ()
    # Contents of files the compose file references (env_file, secrets, configs, bind mounts),
    # keyed by their path relative to the compose file, e.g. "db/password.txt".
    files: Mapping[str, str] = field(default_factory=dict)
    traefik_namespace: str = "kube-system"
    traefik_pod_labels: Mapping[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/name": "traefik"}
    )
    dns_namespace: str = "kube-system"
    postgres_namespace: str = "paas-data"
    postgres_port: int = 5432
    postgres_pod_labels: Mapping[str, str] = field(default_factory=lambda: {"cnpg.io/cluster": "paas-postgres"})
    # Where a replaced postgres service's hostname points (CNPG's read-write Service).
    postgres_host: str = "paas-postgres-rw.paas-data.svc.cluster.local"
    garage_namespace: str = "paas-data"
    garage_ports: Sequence[int] = (3900,)
    garage_pod_labels: Mapping[str, str] = field(default_factory=lambda: {"app.kubernetes.io/name": "garage"})
    # Pod and Service CIDRs of the cluster (K3s defaults), never reachable as "internet".
    cluster_cidrs: Sequence[str] = ("10.42.0.0/16", "10.43.0.0/16")
    # The nodes' own addresses (from the agent's handshake), never reachable as "internet" either: on bare
    # metal they are often public, and the API server, the kubelet and host ports listen on them.
    node_addresses: Sequence[str] = ()
    # Image of the init containers that wait for a dependency (depends_on).
    wait_image: str = "busybox:1.36"
    # Scale to zero: per-service settings (a service not listed gets SleepSettings()) and the cluster's
    # Sablier, as Traefik's plugin reaches it from kube-system (agent.charts.SABLIER_URL).
    sleep: Mapping[str, SleepSettings] = field(default_factory=dict)
    sablier_url: str = SABLIER_URL

    def __post_init__(self) -> None:
        if not self.namespace:
            object.__setattr__(self, "namespace", namespace_for(self.org_slug, self.project_slug))


@dataclass(frozen=True)
class ServiceSummary:
    name: str
    kind: str  # Deployment, Job, or ManagedDatabase for a replaced postgres service
    public_host: str | None
    ports: list[dict[str, Any]]
    replaced_by_managed_db: bool = False
    # An official postgres image: the control plane offers the managed database for it.
    managed_db_candidate: bool = False


@dataclass
class RenderResult:
    objects: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    services: list[ServiceSummary] = field(default_factory=list)
    namespace: str = ""
