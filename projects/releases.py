"""Releases: deploy, redeploy, rollback. Each creates a Release, rendered once, and queues its pipeline.

The pipeline itself (data services, apply, following the rollout) is projects.pipeline, one Celery task
per release.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import Organization, User
from audit import services as audit
from billing import suspension as billing_suspension
from clusters import observed
from clusters import services as cluster_services
from clusters.sealing import seal_objects
from lib.realtime import org_group, publish
from projects import manifests
from projects.compose import ComposeRefusal, labels
from projects.models import IN_FLIGHT, Exposure, Project, Release, ReleaseKind, ReleaseStatus, Service
from projects.services import interpolation_variables, update_settings


class DeployError(ValidationError):
    """A deploy that cannot start; `problems` lists compose problems when there are any."""

    def __init__(self, message: str, code: str = "invalid", problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, code=code)
        self.problems = problems or []


def ensure_can_deploy(org: Organization) -> None:
    """Billing's word (a suspended organization deploys nothing), as a DeployError."""
    try:
        billing_suspension.ensure_can_deploy(org)
    except ValidationError as exc:
        raise DeployError(" ".join(exc.messages), code=exc.code or "organization_suspended") from None


def _render(project: Project, release: Release) -> None:
    """The release's objects, rendered once: redacted for people, sealed for the cluster (raises DeployError).

    A rollback re-uses its target's stored objects (with the secret values sealed then) under the new revision.
    """
    if release.rollback_of is not None:
        release.sealed_manifests = manifests.relabel(release.rollback_of.sealed_manifests, release.revision)
        release.manifests = manifests.relabel(release.rollback_of.manifests, release.revision)
        release.warnings = []
        return
    try:
        objects, result = manifests.render_release(project, release)
    except ComposeRefusal as refusal:
        problems = [manifests.problem_dict(p) for p in refusal.problems]
        raise DeployError("The compose file was refused: " + "; ".join(p["message"] for p in problems),
                          code="invalid_compose", problems=problems) from None
    release.sealed_manifests, release.manifests = seal_objects(objects)
    release.warnings = [manifests.problem_dict(w) for w in result.warnings]


def _new_release(project: Project, user: User | None, *, kind: str, compose_text: str, variables: dict[str, str],
                 rollback_of: Release | None = None) -> Release:
    from projects.tasks import deploy_release

    with transaction.atomic():
        # Lock the project row: revisions are allocated one at a time.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        # Suspension re-applies with revisions of its own, so the desired revision may be ahead.
        revision = max(project.releases.aggregate(m=Max("revision"))["m"] or 0,
                       cluster_services.desired_revision(project.cluster_id, project.namespace)) + 1
        release = Release(project=project, revision=revision, kind=kind, compose_text=compose_text,
                          variables=variables, rollback_of=rollback_of, created_by=user)
        _render(project, release)  # before anything is written: a refused file changes nothing
        # A newer release supersedes whatever is still in flight; their tasks notice and stop.
        superseded = project.releases.filter(status__in=IN_FLIGHT).update(status=ReleaseStatus.SUPERSEDED,
                                                                          finished_at=timezone.now())
        release.save()
        audit.record(audit.Action.PROJECT_ROLLED_BACK if rollback_of else audit.Action.PROJECT_DEPLOYED,
                     actor=user, organization=project.organization, target=project,
                     details={"revision": revision, "kind": kind,
                              **({"to_revision": rollback_of.revision} if rollback_of else {})})
        if superseded:  # wake a task following the superseded release's rollout, so it stops now
            transaction.on_commit(lambda: observed.poke(project.cluster_id, project.namespace))
        transaction.on_commit(lambda: deploy_release.delay(release.pk))
    publish_progress(release)
    return release


def deploy(project: Project, user: User | None, compose_text: str | None = None) -> Release:
    """Render at once (so the caller sees the compose file's problems now), then queue the release's pipeline."""
    if project.deleted_at:
        raise DeployError("This project is being deleted.", code="deleted")
    ensure_can_deploy(project.organization)
    text = project.compose_text if compose_text is None else compose_text
    if not text.strip():
        raise DeployError("Paste a docker-compose.yml first.", code="empty")
    release = _new_release(project, user, kind=ReleaseKind.DEPLOY, compose_text=text,
                           variables=interpolation_variables(project))
    if compose_text is not None and compose_text != project.compose_text:
        update_settings(project, compose_text=compose_text)
    return release


def redeploy(project: Project, user: User | None) -> Release:
    """The current release's compose file again, with today's variables and secrets."""
    current = project.live_release() or project.latest_release()
    if current is None:
        raise DeployError("Nothing to redeploy yet.", code="no_release")
    ensure_can_deploy(project.organization)
    return _new_release(project, user, kind=ReleaseKind.REDEPLOY, compose_text=current.compose_text,
                        variables=interpolation_variables(project))


def rollback(project: Project, user: User | None, target: Release) -> Release:
    """A new revision re-applying `target`'s stored manifests exactly (secret values included)."""
    if target.project_id != project.pk or not target.sealed_manifests:
        raise DeployError(f"Revision {target.revision} has no applied manifests to roll back to.",
                          code="not_rollbackable")
    ensure_can_deploy(project.organization)
    return _new_release(project, user, kind=ReleaseKind.ROLLBACK, compose_text=target.compose_text,
                        variables=target.variables, rollback_of=target)


def publish_progress(release: Release, message: str = "") -> None:
    project = release.project
    data = {"project": project.slug, "revision": release.revision, "status": release.status,
            "steps": release.steps, "error": release.error, "error_code": release.error_code,
            "message": message, "duration": release.duration}
    transaction.on_commit(lambda: publish(org_group(project.organization_id), "release.progress", data))


def sync_services(project: Project, objects: list[dict[str, Any]]) -> None:
    """The project's Service rows from a release's objects (workloads, Ingress hosts, managed databases)."""
    found: dict[str, dict[str, Any]] = {}
    hosts: dict[str, str] = {}
    tls: set[str] = set()
    for obj in objects:
        service = ((obj.get("metadata") or {}).get("labels") or {}).get(labels.SERVICE)
        if not service:
            continue
        kind = obj.get("kind")
        if kind in manifests.WORKLOAD_KINDS:
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
            if obj["spec"].get("tls"):
                tls.add(service)
    for name, info in found.items():
        try:
            with transaction.atomic():
                Service.objects.update_or_create(project=project, name=name, defaults={
                    "kind": info["kind"], "image": info["image"][:500], "replicas": info["replicas"],
                    "ports": info.get("ports", []), "public_host": hosts.get(name, ""), "tls": name in tls,
                    "exposure": Exposure.PUBLIC if hosts.get(name) else Exposure.PRIVATE})
        except IntegrityError:
            # Hosts are unique by construction; this is the database's backstop (one_public_host_per_cluster).
            raise DeployError(f"The public host {hosts.get(name)} of service {name!r} is already used by another "
                              "project on this cluster.", code="host_taken") from None
    project.services.exclude(name__in=list(found)).delete()
