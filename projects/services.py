"""Writes about projects: create, variables, deploy/rollback/redeploy, delete, suspension, live status.

Views, API views, receivers and the deploy task call these functions; the pipeline itself is in
projects.pipeline (one Celery task per release).
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import Organization, User
from audit import services as audit
from billing import ledger, suspension
from clusters import data
from clusters import services as cluster_services
from clusters.data import BUCKET_SECRET, DATABASE_SECRET
from clusters.models import Cluster
from lib.realtime import org_group, publish
from projects.compose import ComposeRefusal, RenderContext, RenderResult, SleepSettings, labels, namespace_for
from projects.compose import sleep as sleep_render
from projects.compose import validate_compose as _validate_compose
from projects.models import (
    BLOCKING_TIMEOUT_MAX,
    IDLE_TIMEOUT_MAX,
    IN_FLIGHT,
    Exposure,
    Project,
    Release,
    ReleaseKind,
    ReleaseStatus,
    Service,
    SleepStrategy,
    Variable,
)
from projects.plans import plan_limits

log = logging.getLogger(__name__)

# Where the project's own secrets and service variables are delivered (referenced with envFrom).
PROJECT_SECRET = "paas-env"  # noqa: S105
WORKLOAD_KINDS = ("Deployment", "Job")


class DeployError(ValidationError):
    """A deploy that cannot start; `problems` lists compose problems when there are any."""

    def __init__(self, message: str, code: str = "invalid", problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, code=code)
        self.problems = problems or []


# --- projects -----------------------------------------------------------------------------------


def _unique_namespace(org: Organization, slug: str, cluster: Cluster) -> str:
    namespace = namespace_for(org.slug, slug)
    if not Project.objects.filter(cluster=cluster, namespace=namespace).exists():
        return namespace
    # namespace_for collides across organizations (a-b/c vs a/b-c): disambiguate with the org's id.
    # The cut keeps the tenant prefix; the (cluster, namespace) constraint refuses whatever still collides.
    suffix = hashlib.sha256(f"{org.pk}/{slug}".encode()).hexdigest()[:8]
    return f"{namespace[: 62 - len(suffix)].rstrip('-')}-{suffix}"


def create_project(org: Organization, user: User | None, name: str, cluster: Cluster, *, slug: str = "",
                   allow_internet_egress: bool = False, wants_database: bool = False, wants_bucket: bool = False,
                   compose_text: str = "") -> Project:
    name = name.strip()
    if not name:
        raise ValidationError("A project needs a name.")
    slug = slugify(slug or name)[:40].strip("-")
    if not slug or not slug[0].isalpha():
        raise ValidationError("The project's name must start with a letter.")
    if Project.objects.filter(organization=org, slug=slug).exists():
        raise ValidationError(f"{org.name} already has a project called {slug!r} (or one being deleted).")
    try:
        with transaction.atomic():
            # Under the billing account's row lock, so two concurrent creations cannot both pass the limit.
            plan = ledger.plan_for_update(org)
            active = Project.objects.filter(organization=org, deleted_at__isnull=True).count()
            if active >= plan.max_projects:
                raise ValidationError(
                    f"The {plan.name} plan allows {plan.max_projects} projects and {org.name} has {active}; "
                    "delete a project or ask an operator for a larger plan.", code="plan_limit")
            project = Project.objects.create(
                organization=org, name=name, slug=slug, cluster=cluster,
                namespace=_unique_namespace(org, slug, cluster), allow_internet_egress=allow_internet_egress,
                wants_database=wants_database, wants_bucket=wants_bucket, compose_text=compose_text,
                created_by=user)
            audit.record(audit.Action.PROJECT_CREATED, actor=user, organization=org, target=project)
            return project
    except IntegrityError:
        raise ValidationError("That project name was taken a moment ago; pick another.") from None


def update_settings(project: Project, **fields: Any) -> Project:
    allowed = {"allow_internet_egress", "wants_database", "wants_bucket", "compose_text"}
    for key, value in fields.items():
        if key in allowed:
            setattr(project, key, value)
    project.save(update_fields=[k for k in fields if k in allowed])
    return project


def set_exposure(service: Service, exposure: str) -> Service:
    if exposure not in ("", *Exposure.values):
        raise ValidationError("Exposure is public, private or empty (follow the compose file).")
    service.exposure_override = exposure
    service.save(update_fields=["exposure_override"])
    return service


def set_sleep(service: Service, *, enabled: bool | None = None, idle_timeout: int | None = None,
              strategy: str | None = None, blocking_timeout: int | None = None) -> Service:
    """Change a service's scale-to-zero settings (applied by the next deploy); all checked before any is saved."""
    minimum = settings.PROJECTS_MIN_IDLE_TIMEOUT
    problems = []
    if idle_timeout is not None and not minimum <= idle_timeout <= IDLE_TIMEOUT_MAX:
        problems.append(f"The idle timeout must be between {minimum // 60 or minimum} "
                        f"{'minute' if minimum >= 60 else 'seconds'} and 24 hours ({minimum} to {IDLE_TIMEOUT_MAX} "
                        f"seconds); {idle_timeout} is not.")
    if strategy is not None and strategy not in SleepStrategy.values:
        problems.append(f"The strategy is dynamic or blocking, not {strategy!r}.")
    if blocking_timeout is not None and not 1 <= blocking_timeout <= BLOCKING_TIMEOUT_MAX:
        problems.append(f"The blocking timeout must be between 1 and {BLOCKING_TIMEOUT_MAX} seconds.")
    if enabled and service.sleep_blocker():
        problems.append(f"{service.name} cannot sleep: {service.sleep_blocker()}.")
    if problems:
        raise ValidationError(" ".join(problems), code="invalid_sleep_settings")
    for field, value in (("sleep_enabled", enabled), ("idle_timeout", idle_timeout), ("sleep_strategy", strategy),
                         ("blocking_timeout", blocking_timeout)):
        if value is not None:
            setattr(service, field, value)
    service.save(update_fields=["sleep_enabled", "idle_timeout", "sleep_strategy", "blocking_timeout"])
    return service


def sleep_settings(project: Project) -> dict[str, SleepSettings]:
    """What the renderer needs; services not deployed yet get the defaults (sleep after 15 minutes)."""
    return {s.name: SleepSettings(enabled=s.sleep_enabled, idle_timeout=s.idle_timeout, strategy=s.sleep_strategy,
                                  blocking_timeout=s.blocking_timeout) for s in project.services.all()}


# --- variables and secrets ---------------------------------------------------------------------


@transaction.atomic
def set_variable(project: Project, name: str, value: str, *, service: str = "", secret: bool = False,
                 actor: User | None = None) -> Variable:
    name = name.strip()
    if not name or not (name[0].isalpha() or name[0] == "_") or not all(c.isalnum() or c == "_" for c in name):
        raise ValidationError("A variable name has letters, digits and underscores and does not start with a digit.")
    variable = Variable.objects.filter(project=project, service=service, name=name).first() or Variable(
        project=project, service=service, name=name)
    created = variable.pk is None
    variable.is_secret = secret
    variable.set_value(value)
    variable.save()
    audit.record(audit.Action.SECRET_SET if secret else audit.Action.VARIABLE_SET, actor=actor,
                 organization=project.organization, target=variable,
                 details={"name": name, "service": service, "created": created})
    log.info("variable %s set on %s (secret=%s)", name, project, secret)  # never the value
    return variable


@transaction.atomic
def delete_variable(variable: Variable, *, actor: User | None = None) -> None:
    audit.record(audit.Action.SECRET_UNSET if variable.is_secret else audit.Action.VARIABLE_UNSET, actor=actor,
                 organization=variable.project.organization, target=variable,
                 details={"name": variable.name, "service": variable.service})
    variable.delete()


def interpolation_variables(project: Project) -> dict[str, str]:
    """Project-wide, non-secret variables: the compose file's `${VAR}` values (like its .env)."""
    return dict(project.variables.filter(service="", is_secret=False).values_list("name", "value"))


# --- rendering ---------------------------------------------------------------------------------


def data_ops_available(cluster: Cluster) -> dict[str, bool]:
    ops = set((cluster.capabilities or {}).get("ops") or [])
    return {"database": "ensure_database" in ops, "bucket": "ensure_bucket" in ops}


def reveal_credentials(project: Project, service: str, *, actor: User) -> dict[str, str] | None:
    """The data service's credentials, read live from the cluster (stored nowhere); each reveal is audited."""
    values = data.reveal_credentials(project.cluster, project.namespace, service)
    if values is not None:
        audit.record(audit.Action.CREDENTIAL_REVEALED, actor=actor, organization=project.organization,
                     target=project, details={"service": service, "names": sorted(values)})
    return values


def render_context(project: Project, revision: int, variables: dict[str, str]) -> RenderContext:
    available = data_ops_available(project.cluster)
    exposure = dict(project.services.exclude(exposure_override="").values_list("name", "exposure_override"))
    members = sorted(project.organization.memberships.values_list("user__username", flat=True))
    return RenderContext(
        org_slug=project.organization.slug, project_slug=project.slug, namespace=project.namespace,
        revision=revision, variables=variables, plan=plan_limits(project.organization),
        base_domain=project.cluster.base_domain,
        database_secret=DATABASE_SECRET if project.wants_database and available["database"] else None,
        bucket_secret=BUCKET_SECRET if project.wants_bucket and available["bucket"] else None,
        allow_internet_egress=project.allow_internet_egress, exposure=exposure, members=members,
        sleep=sleep_settings(project),
        node_addresses=sorted({a for node in project.cluster.nodes for a in node.get("addresses") or []}))


def problem_dict(problem: Any) -> dict[str, Any]:
    return {"service": problem.service, "key": problem.key, "message": problem.message,
            "line": problem.line, "column": problem.column}


def validate(project: Project, compose_text: str) -> dict[str, Any]:
    """What the editor shows as you type: {ok, problems, warnings, notes, services}."""
    ctx = render_context(project, (project.latest_release().revision if project.latest_release() else 0) + 1,
                         interpolation_variables(project))
    try:
        result = _validate_compose(compose_text, ctx)
    except ComposeRefusal as refusal:
        return {"ok": False, "problems": [problem_dict(p) for p in refusal.problems], "warnings": [], "notes": [],
                "services": []}
    return {"ok": True, "problems": [], "warnings": [problem_dict(p) for p in result.warnings],
            "notes": [problem_dict(p) for p in result.notes],
            "services": [{"name": s.name, "kind": s.kind, "public_host": s.public_host} for s in result.services]}


def _secret_object(project: Project, name: str, values: dict[str, str], service: str = "") -> dict[str, Any]:
    meta_labels = {labels.MANAGED_BY: labels.MANAGED_BY_VALUE, **project.labels,
                   labels.COMPONENT: "variables"}
    if service:
        meta_labels[labels.SERVICE] = service
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": project.namespace, "labels": meta_labels},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(values.items())}}


def _inject_variables(project: Project, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Project secrets and per-service variables as Secrets, referenced by every container with envFrom."""
    project_secrets: dict[str, str] = {}
    per_service: dict[str, dict[str, str]] = {}
    for v in project.variables.all():
        if v.service:
            per_service.setdefault(v.service, {})[v.name] = v.plain_value()
        elif v.is_secret:
            project_secrets[v.name] = v.plain_value()
    extra: list[dict[str, Any]] = []
    if project_secrets:
        extra.append(_secret_object(project, PROJECT_SECRET, project_secrets))
    for obj in objects:
        if obj.get("kind") not in WORKLOAD_KINDS:
            continue
        service = (obj["metadata"].get("labels") or {}).get(labels.SERVICE, "")
        refs = [PROJECT_SECRET] if project_secrets else []
        if per_service.get(service):
            refs.append(f"{PROJECT_SECRET}-{service}")
        pod = obj["spec"]["template"]["spec"]
        for container in pod.get("containers") or []:
            container.setdefault("envFrom", []).extend({"secretRef": {"name": r}} for r in refs)
    for service, values in sorted(per_service.items()):
        extra.append(_secret_object(project, f"{PROJECT_SECRET}-{service}", values, service))
    # Keep the converter's order: Secrets before the workloads that reference them.
    first_workload = next((i for i, o in enumerate(objects) if o.get("kind") in ("Service", *WORKLOAD_KINDS)),
                          len(objects))
    return objects[:first_workload] + extra + objects[first_workload:]


def render_release(project: Project, release: Release) -> tuple[list[dict[str, Any]], RenderResult]:
    """The complete object set of a new release (raises ComposeRefusal)."""
    from projects.compose import render_project

    result = render_project(release.compose_text, render_context(project, release.revision, release.variables))
    objects = _inject_variables(project, copy.deepcopy(result.objects))
    return objects, result


def relabel(objects: list[dict[str, Any]], revision: int) -> list[dict[str, Any]]:
    """A stored release's objects as a new revision (rollback): only the revision label changes."""
    out = copy.deepcopy(objects)
    for obj in out:
        meta_labels = obj.setdefault("metadata", {}).setdefault("labels", {})
        if labels.REVISION in meta_labels:
            meta_labels[labels.REVISION] = str(revision)
    return out


def sync_services(project: Project, objects: list[dict[str, Any]]) -> None:
    """The project's Service rows from a release's objects (workloads, Ingress hosts, managed databases)."""
    found: dict[str, dict[str, Any]] = {}
    hosts: dict[str, str] = {}
    for obj in objects:
        service = ((obj.get("metadata") or {}).get("labels") or {}).get(labels.SERVICE)
        if not service:
            continue
        kind = obj.get("kind")
        if kind in WORKLOAD_KINDS:
            pod = obj["spec"]["template"]["spec"]
            found[service] = {"kind": kind, "image": (pod.get("containers") or [{}])[0].get("image", ""),
                              "replicas": obj["spec"].get("replicas", 1) if kind == "Deployment" else 1}
        elif kind == "Service" and obj["spec"].get("type") == "ExternalName":
            found.setdefault(service, {"kind": "ManagedDatabase", "image": "", "replicas": 0})
        elif kind == "Service":
            found.setdefault(service, {"kind": "Service", "image": "", "replicas": 0})
            found[service]["ports"] = [p.get("port") for p in obj["spec"].get("ports") or []]
        elif kind == "Ingress":
            hosts[service] = ((obj["spec"].get("rules") or [{}])[0]).get("host", "")
    for name, info in found.items():
        try:
            with transaction.atomic():
                Service.objects.update_or_create(project=project, name=name, defaults={
                    "kind": info["kind"], "image": info["image"][:500], "replicas": info["replicas"],
                    "ports": info.get("ports", []), "public_host": hosts.get(name, ""),
                    "exposure": Exposure.PUBLIC if hosts.get(name) else Exposure.PRIVATE})
        except IntegrityError:
            # Hosts are unique by construction; this is the database's backstop (one_public_host_per_cluster).
            raise DeployError(f"The public host {hosts.get(name)} of service {name!r} is already used by another "
                              "project on this cluster.", code="host_taken") from None
    project.services.exclude(name__in=list(found)).delete()


# --- releases ----------------------------------------------------------------------------------


def _ensure_can_deploy(org: Organization) -> None:
    try:
        suspension.ensure_can_deploy(org)
    except ValidationError as exc:
        raise DeployError(" ".join(exc.messages), code=exc.code or "organization_suspended") from None


def _new_release(project: Project, user: User | None, *, kind: str, compose_text: str, variables: dict[str, str],
                 rollback_of: Release | None = None) -> Release:
    from projects.tasks import deploy_release

    with transaction.atomic():
        # Lock the project row: revisions are allocated one at a time.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        # Suspension re-applies with revisions of its own, so the desired revision may be ahead.
        revision = max(project.releases.aggregate(m=Max("revision"))["m"] or 0, _desired_revision(project)) + 1
        # A newer release supersedes whatever is still in flight; their tasks notice and stop.
        project.releases.filter(status__in=IN_FLIGHT).update(status=ReleaseStatus.SUPERSEDED,
                                                             finished_at=timezone.now())
        release = Release.objects.create(project=project, revision=revision, kind=kind, compose_text=compose_text,
                                         variables=variables, rollback_of=rollback_of, created_by=user)
        audit.record(audit.Action.PROJECT_ROLLED_BACK if rollback_of else audit.Action.PROJECT_DEPLOYED,
                     actor=user, organization=project.organization, target=project,
                     details={"revision": revision, "kind": kind,
                              **({"to_revision": rollback_of.revision} if rollback_of else {})})
        transaction.on_commit(lambda: deploy_release.delay(release.pk))
    publish_progress(release)
    return release


def deploy(project: Project, user: User | None, compose_text: str | None = None) -> Release:
    """Validate at once (so the caller sees problems now), then queue the release's pipeline."""
    if project.deleted_at:
        raise DeployError("This project is being deleted.", code="deleted")
    _ensure_can_deploy(project.organization)
    text = project.compose_text if compose_text is None else compose_text
    if not text.strip():
        raise DeployError("Paste a docker-compose.yml first.", code="empty")
    checked = validate(project, text)
    if not checked["ok"]:
        raise DeployError("The compose file was refused: " + "; ".join(p["message"] for p in checked["problems"]),
                          code="invalid_compose", problems=checked["problems"])
    if compose_text is not None and compose_text != project.compose_text:
        update_settings(project, compose_text=compose_text)
    return _new_release(project, user, kind=ReleaseKind.DEPLOY, compose_text=text,
                        variables=interpolation_variables(project))


def redeploy(project: Project, user: User | None) -> Release:
    """The current release's compose file again, with today's variables and secrets."""
    current = project.live_release() or project.latest_release()
    if current is None:
        raise DeployError("Nothing to redeploy yet.", code="no_release")
    _ensure_can_deploy(project.organization)
    return _new_release(project, user, kind=ReleaseKind.REDEPLOY, compose_text=current.compose_text,
                        variables=interpolation_variables(project))


def rollback(project: Project, user: User | None, target: Release) -> Release:
    """A new revision re-applying `target`'s stored manifests exactly (secret values included)."""
    if target.project_id != project.pk or not target.sealed_manifests:
        raise DeployError(f"Revision {target.revision} has no applied manifests to roll back to.",
                          code="not_rollbackable")
    _ensure_can_deploy(project.organization)
    return _new_release(project, user, kind=ReleaseKind.ROLLBACK, compose_text=target.compose_text,
                        variables=target.variables, rollback_of=target)


def publish_progress(release: Release, message: str = "") -> None:
    project = release.project
    data = {"project": project.slug, "revision": release.revision, "status": release.status,
            "steps": release.steps, "error": release.error, "error_code": release.error_code,
            "message": message, "duration": release.duration}
    transaction.on_commit(lambda: publish(org_group(project.organization_id), "release.progress", data))


# --- live status -------------------------------------------------------------------------------


def service_states(project: Project, state: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Per service: status, replicas, ready, restarts, message, from the agent's observed summary."""
    state = state or {}
    result: dict[str, dict[str, Any]] = {}
    for name, dep in (state.get("deployments") or {}).items():
        result[name] = {"replicas": dep.get("replicas", 0), "ready": dep.get("ready", 0), "restarts": 0,
                        "status": live_status(dep), "message": ""}
    for pod in (state.get("pods") or {}).values():
        service = (pod.get("labels") or {}).get(labels.SERVICE)
        if service in result:
            result[service]["restarts"] += int(pod.get("restarts") or 0)
            if pod.get("waiting") in ("ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff"):
                result[service].update(status="failing", message=pod["waiting"])
    return result


def live_status(dep: dict[str, Any]) -> str:
    """running, sleeping (Sablier scaled it to zero), waking (Sablier is scaling it up), starting..."""
    rollout = dep.get("rollout")
    if dep.get("sleeps"):
        if rollout == "scaled-to-zero":
            return "sleeping"
        if rollout == "progressing" and not dep.get("ready"):
            return "waking"
    return {"complete": "running", "scaled-to-zero": "scaled to zero", "failed": "failed"}.get(rollout, "starting")


def apply_observed(project: Project, state: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Fold an observed state into the Service rows and publish them to the project page."""
    states = service_states(project, state)
    for service in project.services.all():
        s = states.get(service.name)
        if s is None:
            continue
        changed = (service.status, service.replicas, service.ready_replicas, service.restarts, service.message) != (
            s["status"], s["replicas"], s["ready"], s["restarts"], s["message"])
        if changed:
            service.status, service.replicas, service.ready_replicas = s["status"], s["replicas"], s["ready"]
            service.restarts, service.message = s["restarts"], s["message"]
            service.save(update_fields=["status", "replicas", "ready_replicas", "restarts", "message", "updated_at"])
    services = [s.as_dict() for s in project.services.all()]
    transaction.on_commit(lambda: publish(org_group(project.organization_id), "project.services",
                                          {"project": project.slug, "services": services}))
    return services


def on_observed(cluster_id: int, namespace: str, state: dict[str, Any] | None) -> None:
    project = Project.objects.active().select_related("organization").filter(
        cluster_id=cluster_id, namespace=namespace).first()
    if project is not None:
        apply_observed(project, state)


# --- scale to zero: wake ----------------------------------------------------------------------


class WakeError(ValidationError):
    pass


def wake_service(service: Service, *, timeout: int = 60) -> dict[str, Any]:
    """Wake a sleeping service through Sablier (blocking strategy) and return once it is ready.

    For features that need a running pod (terminal, SSH, logs) and the "Wake now" action. Sablier holds a
    session of the service's idle timeout, so it puts the service back to sleep itself; a service that does
    not sleep is simply running (or stopped on purpose) and is left alone.
    """
    from clusters import rpc

    project = service.project
    if Project.objects.filter(pk=project.pk, suspended=True).exists():  # fresh: suspension may be seconds old
        raise WakeError(f"{project.name} is suspended: its services stay asleep until the organization's billing "
                        "is settled.", code="suspended")
    if not service.sleeps:
        return {"woken": False, "ready": service.status == "running",
                "message": f"{service.name} does not sleep: {service.sleep_blocker() or 'sleeping is turned off'}."}
    payload = {"namespace": project.namespace, "deployment": service.name, "timeout": timeout,
               "session_duration": sleep_render.duration(service.idle_timeout)}
    try:
        result = rpc.call(project.cluster_id, "wake", payload, timeout=timeout + 15)
    except rpc.RPCError as exc:
        raise WakeError(f"{service.name} could not be woken: {exc}", code="wake_failed") from None
    if not result.get("ready"):
        raise WakeError(f"{service.name} did not start: {result.get('error') or 'not ready in time'}",
                        code="wake_failed")
    return {"woken": True, "ready": True, "message": f"{service.name} is awake."}


def start_idle_clocks(project: Project, awake: set[str]) -> None:
    """Sablier puts a service to sleep when its session expires, and only a request opens one: give each awake
    sleeping-enabled service a session after a deploy, so one nobody visits still goes to sleep."""
    for service in project.services.filter(name__in=awake):
        if service.sleeps:
            try:
                wake_service(service, timeout=10)
            except WakeError as exc:
                log.info("no idle clock for %s: %s", service, " ".join(exc.messages))


# --- delete, suspension ------------------------------------------------------------------------


def delete_project(project: Project, user: User | None, confirmation: str) -> None:
    """Prune the namespace now; the data services and the record go after PROJECTS_DATA_GRACE_HOURS."""
    from projects.tasks import purge_project

    if confirmation.strip() != project.slug:
        raise ValidationError(f"Type the project's name ({project.slug}) to confirm.")
    now = timezone.now()
    with transaction.atomic():
        project.releases.filter(status__in=IN_FLIGHT).update(status=ReleaseStatus.SUPERSEDED, finished_at=now)
        project.deleted_at = now
        project.purge_after = now + timedelta(hours=settings.PROJECTS_DATA_GRACE_HOURS)
        project.save(update_fields=["deleted_at", "purge_after"])
        cluster_services.delete_desired_project(project.cluster, project.namespace, project.labels)
        project.services.all().delete()
        audit.record(audit.Action.PROJECT_DELETED, actor=user, organization=project.organization, target=project,
                     details={"namespace": project.namespace, "purge_after": project.purge_after})
        pk, countdown = project.pk, settings.PROJECTS_DATA_GRACE_HOURS * 3600
        transaction.on_commit(lambda: purge_project.apply_async((pk,), countdown=countdown))
    log.info("project %s deleted by %s; data purge after %s", project, user, project.purge_after)
    transaction.on_commit(lambda: publish(org_group(project.organization_id), "project.deleted",
                                          {"project": project.slug}))


def purge_project(project_pk: int) -> bool:
    """Remove the data services (when the cluster can) and the project's record. Safe to run twice."""
    project = Project.objects.filter(pk=project_pk, deleted_at__isnull=False).first()
    if project is None:
        return False
    if project.purge_after and project.purge_after > timezone.now():
        return False  # queued early (a retry): the beat sweep picks it up later
    available = data_ops_available(project.cluster)
    for wanted, drop, ok in ((project.wants_database, data.drop_database, available["database"]),
                             (project.wants_bucket, data.delete_bucket, available["bucket"])):
        if wanted and ok:
            outcome = drop(project.cluster_id, project.namespace)
            if not outcome.ok:
                log.warning("removing data of %s failed (%s); retrying later", project, outcome.error)
                return False
    project.delete()
    return True


def purge_due_projects() -> int:
    due = Project.objects.filter(deleted_at__isnull=False, purge_after__lte=timezone.now())
    return sum(purge_project(pk) for pk in due.values_list("pk", flat=True))


def _desired_revision(project: Project) -> int:
    return project.cluster.desired_projects.filter(namespace=project.namespace).values_list(
        "revision", flat=True).first() or 0


def suspended_page_url(project: Project) -> str:
    from django.urls import reverse

    return settings.SITE_URL + reverse("project_suspended", args=[project.uid])


def _reapply_live(project: Project, transform: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    """The live release's objects again, transformed (suspended or resumed), as the next desired revision."""
    release = project.live_release()
    if release is None or not release.sealed_manifests:
        return
    objects = transform(release.sealed_manifests)
    revision = max(release.revision, _desired_revision(project)) + 1
    cluster_services.set_desired_project(project.cluster, project.namespace, project.labels, revision,
                                         relabel(objects, revision))


def suspend_organization(org: Organization) -> int:
    """Billing suspended the organization: every service of every project scales to zero, out of Sablier's
    reach, and its URLs lead to the "suspended" page instead of waking it."""
    return _set_suspended(org, True)


def resume_organization(org: Organization) -> int:
    """Credits are back: the live release again (compose replicas; sleeping-when-idle where enabled)."""
    return _set_suspended(org, False)


def _set_suspended(org: Organization, suspended: bool) -> int:
    """Flip every active project of the organization that is not yet in that state, and re-apply its live
    release suspended or resumed. Returns how many projects changed."""
    projects = Project.objects.active().filter(organization=org, suspended=not suspended).select_related("cluster")
    projects = list(projects)
    for project in projects:
        project.suspended = suspended
        project.save(update_fields=["suspended"])
        if suspended:
            _reapply_live(project, functools.partial(sleep_render.suspended, page_url=suspended_page_url(project)))
        else:
            _reapply_live(project, sleep_render.resumed)
    return len(projects)
