"""Deleting a project: the namespace pruned at once, its data services and record purged after a grace period."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit import services as audit
from clusters import data, observed
from clusters import services as cluster_services
from lib.realtime import org_group, publish
from projects.models import IN_FLIGHT, Project, ReleaseStatus
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
