"""Deleting a project: the namespace pruned at once, its data services and record purged after a grace period;
restoring it within that period brings it back with the same database and bucket and redeploys its live release."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from accounts.models import Organization, User
from audit import services as audit
from billing import ledger
from clusters import data, observed
from clusters import services as cluster_services
from lib.realtime import org_group, publish
from projects import releases
from projects.models import IN_FLIGHT, Project, Release, ReleaseStatus
from projects.services import data_ops_available

log = logging.getLogger(__name__)


def delete_project(project: Project, user: User | None, confirmation: str) -> None:
    """Prune the namespace now; the data services and the record go after PROJECTS_DATA_GRACE_HOURS."""
    from projects.tasks import purge_project

    if confirmation.strip() != project.slug:
        raise ValidationError(f"Type the project's name ({project.slug}) to confirm.")
    now = timezone.now()
    with transaction.atomic():
        if project.releases.filter(status__in=IN_FLIGHT).update(status=ReleaseStatus.SUPERSEDED, finished_at=now):
            # A task following one of them stops at its next look: make that now.
            transaction.on_commit(lambda: observed.poke(project.cluster_id, project.namespace))
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


def recently_deleted(org: Organization) -> list[Project]:
    """The organization's deleted projects that can still be restored, the most recently deleted first."""
    live = Release.objects.filter(project=OuterRef("pk"), status=ReleaseStatus.LIVE).order_by("-revision")
    return list(Project.objects.filter(organization=org, deleted_at__isnull=False, purge_after__gt=timezone.now())
                .select_related("organization", "cluster")
                .annotate(live_revision=Subquery(live.values("revision")[:1])).order_by("-deleted_at"))


def restore_project(project: Project, user: User | None) -> Release | None:
    """Bring a deleted project back before `purge_after`; returns the redeploy of its live release, if it had one.

    Steps, in one transaction (a refusal changes nothing): lock the row, refuse once the grace period is over,
    check the plan's project limit and (when there is something to redeploy) that the organization may deploy,
    clear the deletion, audit it, and queue a redeploy of the live release. That release's pipeline makes the
    namespace again and re-attaches the database and bucket, which were kept with the same credentials (the
    agent kept the database Secret for the grace period; the bucket's key never left Garage). The purge task
    queued at deletion finds the project alive and does nothing.
    """
    org = project.organization
    with transaction.atomic():
        locked = Project.objects.select_for_update().filter(pk=project.pk, deleted_at__isnull=False).first()
        if locked is None:
            raise ValidationError(f"{project.name} is not deleted.", code="not_deleted")
        if locked.purge_after is None or locked.purge_after <= timezone.now():
            ended = f" on {locked.purge_after:%Y-%m-%d %H:%M} UTC" if locked.purge_after else ""
            raise ValidationError(
                f"{project.name} can no longer be restored: its {settings.PROJECTS_DATA_GRACE_HOURS}-hour grace period "
                f"ended{ended} and its database and bucket are being removed.", code="grace_period_over")
        plan = ledger.plan_for_update(org)  # the billing account's lock, as for a new project
        active = Project.objects.filter(organization=org, deleted_at__isnull=True).count()
        if active >= plan.max_projects:
            raise ValidationError(
                f"The {plan.name} plan allows {plan.max_projects} projects and {org.name} has {active}; delete a "
                f"project or ask an operator for a larger plan before restoring {project.name}.", code="plan_limit")
        live = locked.live_release()
        if live is not None:
            releases.ensure_can_deploy(org)
        deleted_at = locked.deleted_at
        locked.deleted_at = locked.purge_after = None
        locked.save(update_fields=["deleted_at", "purge_after"])
        audit.record(audit.Action.PROJECT_RESTORED, actor=user, organization=org, target=locked,
                     details={"namespace": locked.namespace, "deleted_at": deleted_at,
                              "redeploys_revision": live.revision if live else None})
        release = releases.redeploy(locked, user) if live is not None else None  # audited as a deploy itself
    project.deleted_at = project.purge_after = None
    log.info("project %s restored by %s%s", project, user, f"; revision {release.revision} redeploys "
             f"r{live.revision}" if release and live else "")
    transaction.on_commit(lambda: publish(org_group(org.pk), "project.restored", {"project": project.slug}))
    return release
