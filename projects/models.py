"""Projects, their services, releases (every deploy, stored with its exact manifests) and variables."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import OuterRef, Prefetch, Q, Subquery
from django.utils import timezone

from accounts.models import Organization
from clusters import sealing
from clusters.models import Cluster
from projects.compose import labels


class ProjectQuerySet(models.QuerySet["Project"]):
    def active(self) -> ProjectQuerySet:
        return self.filter(deleted_at__isnull=True)

    def with_latest_release(self) -> ProjectQuerySet:
        """Read every listed project's newest release in one query, not one per project (latest_release())."""
        newest = Release.objects.filter(project=OuterRef("project")).order_by("-revision").values("pk")[:1]
        return self.prefetch_related(Prefetch("releases", Release.objects.filter(pk=Subquery(newest)),
                                              to_attr="prefetched_latest"))


class Project(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=60)
    slug = models.SlugField(max_length=40)
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="projects")
    # Stable identity, never reused: the agent's ownership mark on the project's namespace.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Stored, never recomputed: namespace_for() can collide across organizations (a-b/c vs a/b-c), and
    # projects created before the `tenant-` prefix keep the namespace they were given (docs/projects.md).
    namespace = models.CharField(max_length=63)
    allow_internet_egress = models.BooleanField(default=False, help_text="Containers may open connections out.")
    wants_database = models.BooleanField(default=False, help_text="A managed PostgreSQL database.")
    wants_bucket = models.BooleanField(default=False, help_text="An S3 bucket.")
    compose_text = models.TextField(blank=True, help_text="The editor's current compose file.")
    # While the organization is suspended every service runs with zero replicas.
    suspended = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # Deleting: the namespace is pruned at once; the row (and the data services) go after a grace period.
    deleted_at = models.DateTimeField(null=True, blank=True)
    purge_after = models.DateTimeField(null=True, blank=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["organization__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="one_project_slug_per_org"),
            models.UniqueConstraint(fields=["cluster", "namespace"], name="one_project_per_namespace"),
        ]

    def __str__(self) -> str:
        return f"{self.organization.slug}/{self.slug}"

    @property
    def labels(self) -> dict[str, str]:
        return {labels.ORGANIZATION: self.organization.slug, labels.PROJECT: self.slug,
                labels.PROJECT_UID: str(self.uid)}

    def latest_release(self) -> Release | None:
        if hasattr(self, "prefetched_latest"):  # ProjectQuerySet.with_latest_release()
            return self.prefetched_latest[0] if self.prefetched_latest else None
        return self.releases.order_by("-revision").first()

    def live_release(self) -> Release | None:
        return self.releases.filter(status=ReleaseStatus.LIVE).order_by("-revision").first()


class Exposure(models.TextChoices):
    PUBLIC = "public", "Public (URL)"
    PRIVATE = "private", "Private (inside the project)"


class SleepStrategy(models.TextChoices):
    # Sablier's strategies: a "starting" page that refreshes (browsers), or hold the request (API clients).
    DYNAMIC = "dynamic", "Starting page (browsers)"
    BLOCKING = "blocking", "Hold the request (API clients)"


IDLE_TIMEOUT_DEFAULT = 15 * 60
IDLE_TIMEOUT_MAX = 24 * 3600
BLOCKING_TIMEOUT_DEFAULT = 60
BLOCKING_TIMEOUT_MAX = 10 * 60


class Service(models.Model):
    """One compose service as the last release rendered it, with its live status from the agent."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="services")
    # The project's cluster, copied here so the database can refuse one public host twice on a cluster.
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=63)
    kind = models.CharField(max_length=20, default="Deployment")
    image = models.CharField(max_length=500, blank=True)
    exposure = models.CharField(max_length=10, choices=Exposure.choices, default=Exposure.PRIVATE)
    # The user's choice, winning over what the ports suggest ("" = follow the compose file).
    exposure_override = models.CharField(max_length=10, choices=Exposure.choices, blank=True)
    public_host = models.CharField(max_length=253, blank=True)
    # The last release serves it over HTTPS (its Ingress has TLS): only then is the URL shown as https://.
    tls = models.BooleanField(default=False)
    ports = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=20, default="pending")
    replicas = models.PositiveIntegerField(default=0)
    ready_replicas = models.PositiveIntegerField(default=0)
    restarts = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)
    # Scale to zero (Sablier): the user's choice; it applies only where sleep_blocker() is empty.
    sleep_enabled = models.BooleanField(default=True, help_text="Sleep when idle (public web services only).")
    idle_timeout = models.PositiveIntegerField(default=IDLE_TIMEOUT_DEFAULT, help_text="Seconds without requests.")
    sleep_strategy = models.CharField(max_length=10, choices=SleepStrategy.choices, default=SleepStrategy.DYNAMIC)
    blocking_timeout = models.PositiveIntegerField(default=BLOCKING_TIMEOUT_DEFAULT,
                                                   help_text="Seconds a held request waits for the service.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="one_service_name_per_project"),
            models.UniqueConstraint(fields=["cluster", "public_host"], condition=~Q(public_host=""),
                                    name="one_public_host_per_cluster"),
        ]

    def __str__(self) -> str:
        return f"{self.project}/{self.name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.cluster_id is None:
            self.cluster_id = self.project.cluster_id
        super().save(*args, **kwargs)

    @property
    def url(self) -> str:
        if not self.public_host:
            return ""
        return f"{'https' if self.tls else 'http'}://{self.public_host}/"

    def sleep_blocker(self) -> str:
        """Why this service cannot sleep ("" when it can): only Deployments reached through Traefik wake on
        a request."""
        if self.kind != "Deployment":
            return "only long-running web services can sleep" if self.kind != "Job" else "a job runs once"
        if not self.public_host:
            return "it has no public URL, so no request could wake it"
        return ""

    @property
    def sleeps(self) -> bool:
        """Sleeps when idle: Sablier owns its replicas."""
        return self.sleep_enabled and not self.sleep_blocker()

    def sleep_dict(self) -> dict[str, Any]:
        return {"enabled": self.sleep_enabled, "active": self.sleeps, "blocker": self.sleep_blocker(),
                "idle_timeout": self.idle_timeout, "strategy": self.sleep_strategy,
                "blocking_timeout": self.blocking_timeout}

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "image": self.image, "exposure": self.exposure,
                "url": self.url, "status": self.status, "replicas": self.replicas, "ready": self.ready_replicas,
                "restarts": self.restarts, "message": self.message, "sleep": self.sleep_dict()}


class ReleaseStatus(models.TextChoices):
    PENDING = "pending", "Queued"
    DEPLOYING = "deploying", "Deploying"
    LIVE = "live", "Live"
    FAILED = "failed", "Failed"
    SUPERSEDED = "superseded", "Superseded"


IN_FLIGHT = (ReleaseStatus.PENDING, ReleaseStatus.DEPLOYING)


class ReleaseKind(models.TextChoices):
    DEPLOY = "deploy", "Deploy"
    REDEPLOY = "redeploy", "Redeploy"
    ROLLBACK = "rollback", "Rollback"


# The deploy pipeline's steps, in order; each gets a status and a duration on the release.
STEPS = ("render", "data", "apply", "rollout")
STEP_LABELS = {"render": "Validate and render", "data": "Database and bucket", "apply": "Send to the cluster",
               "rollout": "Roll out"}


class Release(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="releases")
    revision = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=ReleaseKind.choices, default=ReleaseKind.DEPLOY)
    rollback_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    compose_text = models.TextField()
    variables = models.JSONField(default=dict, blank=True, help_text="The non-secret variables used to render.")
    # The exact objects applied, with every Secret's data replaced by a content hash.
    manifests = models.JSONField(default=list, blank=True)
    # The same objects with Secret data encrypted: what a rollback re-applies.
    sealed_manifests = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=12, choices=ReleaseStatus.choices, default=ReleaseStatus.PENDING)
    # {step: {"status": pending|running|done|failed|skipped|unavailable, "seconds": float, "message": str}}
    steps = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Renewed by the worker running the pipeline (and set when the release is queued again): a release in flight
    # whose heartbeat is older than PROJECTS_RELEASE_LEASE has lost its worker or its queue message.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a worker claimed this release.")

    class Meta:
        ordering = ["project", "-revision"]
        constraints = [models.UniqueConstraint(fields=["project", "revision"], name="one_release_per_revision")]

    def __str__(self) -> str:
        return f"{self.project} r{self.revision}"

    @property
    def in_flight(self) -> bool:
        return self.status in IN_FLIGHT

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None

    def step_list(self) -> list[dict[str, Any]]:
        return [{"name": s, "label": STEP_LABELS[s], **(self.steps.get(s) or {"status": "pending"})} for s in STEPS]

    def as_dict(self) -> dict[str, Any]:
        return {"project": self.project.slug, "revision": self.revision, "kind": self.kind,
                "status": self.status, "steps": self.steps, "error": self.error, "error_code": self.error_code,
                "warnings": self.warnings, "created_at": self.created_at.isoformat(),
                "created_by": self.created_by.email if self.created_by else None,
                "finished_at": self.finished_at.isoformat() if self.finished_at else None,
                "rollback_of": self.rollback_of.revision if self.rollback_of else None}


class Variable(models.Model):
    """A project variable (compose interpolation) or, with a service, an environment variable of it.

    Secret ones are stored encrypted, shown to nobody, and delivered as a Kubernetes Secret that the
    containers reference with envFrom; they are never interpolated into the manifests.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="variables")
    service = models.CharField(max_length=63, blank=True, help_text="Empty: the whole project.")
    name = models.CharField(max_length=128)
    is_secret = models.BooleanField(default=False)
    value = models.TextField(blank=True, help_text="Plain value (not secret variables only).")
    encrypted_value = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "service", "name"]
        constraints = [models.UniqueConstraint(fields=["project", "service", "name"], name="one_variable_per_scope")]

    def __str__(self) -> str:
        return f"{self.project}:{self.service or '*'}:{self.name}"

    def set_value(self, raw: str) -> None:
        if self.is_secret:
            self.value, self.encrypted_value = "", sealing.encrypt(raw)
        else:
            self.value, self.encrypted_value = raw, ""

    def plain_value(self) -> str:
        return sealing.decrypt(self.encrypted_value) if self.is_secret else self.value

    def as_dict(self) -> dict[str, Any]:
        # Secret values are write-only: never returned, not even masked-by-length.
        return {"id": self.pk, "name": self.name, "service": self.service, "secret": self.is_secret,
                "value": None if self.is_secret else self.value}


class DomainStatus(models.TextChoices):
    PENDING = "pending", "Waiting for DNS verification"
    VERIFIED = "verified", "Verified"


class CustomDomain(models.Model):
    """A host name a service answers on besides its platform host, once its owner proved it through DNS.

    One row is one claim: the database refuses a host name twice, across every project and organization.
    A claim that stayed unverified, or whose DNS record has been gone, for DOMAINS_CLAIM_EXPIRY_DAYS may be
    taken over by another project (projects.domains.add_domain), so nobody can squat a name they do not own.
    """

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="domains")
    hostname = models.CharField(max_length=253, unique=True, help_text="Lowercase, IDNA (xn--) form.")
    # Published by the owner in the TXT record _paas-challenge.<hostname>; proves control, grants nothing else.
    token = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=DomainStatus.choices, default=DomainStatus.PENDING)
    verified_at = models.DateTimeField(null=True, blank=True)
    # The first failed re-check of a verified domain (None while its record is there).
    failing_since = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True, help_text="What the last DNS check found.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname

    @property
    def verified(self) -> bool:
        return self.status == DomainStatus.VERIFIED


class KubeAccessQuerySet(models.QuerySet["KubeAccess"]):
    def active(self) -> KubeAccessQuerySet:
        return self.filter(revoked_at__isnull=True)


class KubeAccess(models.Model):
    """A member's kubectl credential for one project (docs/kubectl.md). Only the token's SHA-256 is stored; the
    kubeconfig holding it is downloaded once. What it may do follows the member's role at each request."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="kube_accesses")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="kube_accesses")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise a token in lists.")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = KubeAccessQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "kubectl access"
        verbose_name_plural = "kubectl accesses"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
