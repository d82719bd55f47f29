"""Clusters, their agent credentials, the agent's connection events and per-project desired/observed state."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import Organization
from clusters import sealing


def hash_secret(raw: str) -> str:
    # Agent tokens and install secrets are 256-bit random values: a fast hash is enough.
    return hashlib.sha256(raw.encode()).hexdigest()


class ClusterStatus(models.TextChoices):
    PENDING = "pending", "Pending (agent never connected)"
    ONLINE = "online", "Online"
    OFFLINE = "offline", "Offline"
    DEGRADED = "degraded", "Degraded (Kubernetes unreachable or infrastructure not ready)"


class ClusterQuerySet(models.QuerySet["Cluster"]):
    def for_organization(self, org: Organization) -> ClusterQuerySet:
        return self.filter(models.Q(all_organizations=True) | models.Q(organizations=org)).distinct()


class Cluster(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=40, unique=True)
    base_domain = models.CharField(
        max_length=253, help_text="Public services get <service>-<project>-<org>-<hash>.<base domain> (the hash keeps "
                                  "names that join alike apart); a wildcard DNS record must point it at the cluster.")
    ssh_endpoint = models.CharField(max_length=260, blank=True, help_text="host:port shown to users for SSH.")
    simulated = models.BooleanField(default=False, help_text="Backed by kubesim, not a real cluster.")
    all_organizations = models.BooleanField(default=True, help_text="Every organization may deploy here.")
    organizations = models.ManyToManyField(
        Organization, blank=True, related_name="clusters", help_text="When not open to all: who may deploy."
    )

    status = models.CharField(max_length=10, choices=ClusterStatus.choices, default=ClusterStatus.PENDING)
    last_seen = models.DateTimeField(null=True, blank=True)
    agent_version = models.CharField(max_length=40, blank=True)
    kubernetes_version = models.CharField(max_length=40, blank=True)
    nodes = models.JSONField(default=list, blank=True,
                             help_text="As the agent last reported: [{name, roles, ingress_ready, ready, capacity, "
                                       "addresses}].")
    capabilities = models.JSONField(default=dict, blank=True)
    components = models.JSONField(default=dict, blank=True)

    # The live agent session: which consumer holds the socket (a channel-layer channel name).
    session_id = models.CharField(max_length=32, blank=True)
    channel_name = models.CharField(max_length=200, blank=True)
    connected_at = models.DateTimeField(null=True, blank=True)

    # Credentials, hashed. Rotation keeps the previous hash valid until a grace deadline.
    token_hash = models.CharField(max_length=64, blank=True)
    token_created_at = models.DateTimeField(null=True, blank=True)
    previous_token_hash = models.CharField(max_length=64, blank=True)
    previous_token_valid_until = models.DateTimeField(null=True, blank=True)
    install_secret_hash = models.CharField(max_length=64, blank=True)
    install_secret_expires_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)

    objects = ClusterQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def token_matches(self, raw: str, now=None) -> bool:
        """Constant-time check against the current token and, within its grace period, the previous one."""
        now = now or timezone.now()
        digest = hash_secret(raw)
        ok = bool(self.token_hash) and hmac.compare_digest(digest, self.token_hash)
        in_grace = bool(self.previous_token_hash) and (self.previous_token_valid_until or now) > now
        # Evaluate both comparisons regardless, so timing does not reveal which one matched.
        ok_previous = hmac.compare_digest(digest, self.previous_token_hash or "0" * 64)
        return ok or (in_grace and ok_previous)

    def install_secret_matches(self, raw: str, now=None) -> bool:
        now = now or timezone.now()
        if not self.install_secret_hash or not self.install_secret_expires_at or self.install_secret_expires_at <= now:
            return False
        return hmac.compare_digest(hash_secret(raw), self.install_secret_hash)

    @property
    def is_connected(self) -> bool:
        return self.status in (ClusterStatus.ONLINE, ClusterStatus.DEGRADED) and bool(self.channel_name)

    @property
    def has_credentials(self) -> bool:
        return bool(self.token_hash)

    def ingress_nodes(self) -> list[dict]:
        return [n for n in self.nodes if n.get("ingress_ready")]

    def tls_ready(self) -> bool:
        """Service hosts get certificates: an ACME e-mail is configured and the agent reported cert-manager
        installed with its ClusterIssuer Ready (component "tls", agent/bootstrap.py)."""
        return bool(settings.PAAS_BOOTSTRAP.get("acme_email")) and self.bootstrap_components.filter(
            name="tls", state=ComponentState.READY).exists()

    def infrastructure_pending(self) -> bool:
        """Some reported bootstrap component is not ready (an agent that never reported counts as fine)."""
        return self.bootstrap_components.exclude(state=ComponentState.READY).exists()


class EventKind(models.TextChoices):
    CONNECTED = "connected", "Agent connected"
    DISCONNECTED = "disconnected", "Agent disconnected"
    REPLACED = "replaced", "Connection replaced by a newer one"
    REJECTED = "rejected", "Connection refused"
    TOKEN_ISSUED = "token_issued", "Token issued"
    TOKEN_ROTATED = "token_rotated", "Token rotated"
    TOKEN_REVOKED = "token_revoked", "Token revoked"
    INSTALL_FETCHED = "install_fetched", "Install manifest fetched"
    RESYNC = "resync", "Desired state re-sent"
    APPLY_FAILED = "apply_failed", "Apply failed"
    BOOTSTRAP = "bootstrap", "Bootstrap requested"


class ClusterEvent(models.Model):
    """Recent things that happened to a cluster's agent connection, shown on the cluster page."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Repeated events (refused connections) are counted on one row instead of one row each.
    count = models.PositiveIntegerField(default=1, help_text="How many times this happened since created_at.")
    last_at = models.DateTimeField(null=True, blank=True, help_text="The latest time, when count is above 1.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.cluster}: {self.get_kind_display()}"


class DesiredProject(models.Model):
    """What the control plane wants in one namespace of a cluster: the complete object set of a revision."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="desired_projects")
    namespace = models.CharField(max_length=63)
    labels = models.JSONField(default=dict)
    revision = models.PositiveBigIntegerField()
    manifests = models.JSONField(default=list, help_text="The complete set of Kubernetes objects.")
    updated_at = models.DateTimeField(auto_now=True)
    # What the agent answered last time this revision was applied.
    applied_revision = models.PositiveBigIntegerField(null=True, blank=True)
    last_result = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cluster", "namespace"], name="one_desired_state_per_namespace")]
        ordering = ["cluster", "namespace"]

    def __str__(self) -> str:
        return f"{self.namespace}@{self.cluster} r{self.revision}"

    @property
    def in_sync(self) -> bool:
        return self.applied_revision == self.revision and not self.last_error

    def rpc_payload(self) -> dict:
        # Secret data is stored sealed (encrypted); it is opened only here, just before sending.
        return {"namespace": self.namespace, "labels": self.labels, "revision": self.revision,
                "objects": sealing.unseal_objects(self.manifests)}


class ObservedProject(models.Model):
    """The latest state the agent reported for one namespace (rollouts, pods, warnings)."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="observed_projects")
    namespace = models.CharField(max_length=63)
    state = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cluster", "namespace"], name="one_observed_state_per_namespace")
        ]
        ordering = ["cluster", "namespace"]

    def __str__(self) -> str:
        return f"{self.namespace}@{self.cluster}"


class ComponentState(models.TextChoices):
    PENDING = "pending", "Pending"
    INSTALLING = "installing", "Installing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class BootstrapComponent(models.Model):
    """One piece of a cluster's shared infrastructure (Traefik, CNPG, Sablier, Garage, PostgreSQL), as the
    agent last reported it. The agent's cluster is the source of truth; this is the live view of it."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="bootstrap_components")
    name = models.CharField(max_length=20)
    state = models.CharField(max_length=10, choices=ComponentState.choices, default=ComponentState.PENDING)
    reason = models.TextField(blank=True)
    logs = models.JSONField(default=list, blank=True, help_text="The install Job's last log lines, on failure.")
    attempt = models.PositiveIntegerField(default=0, help_text="Install retries so far.")
    version = models.JSONField(default=dict, blank=True, help_text="Pinned chart and application versions.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cluster", "name"], name="one_component_per_cluster")]
        ordering = ["cluster", "name"]

    def __str__(self) -> str:
        return f"{self.name}@{self.cluster}: {self.state}"


def install_secret_ttl() -> timedelta:
    return timedelta(minutes=30)
