"""Suspension by billing: every project of the organization scaled to zero and out of Sablier's reach; resumption."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings

from accounts.models import Organization
from clusters import services as cluster_services
from projects.compose import sleep as sleep_render
from projects.manifests import relabel
from projects.models import Project


def suspended_page_url(project: Project) -> str:
    from django.urls import reverse

    return settings.SITE_URL + reverse("project_suspended", args=[project.uid])


def reapply_live(project: Project, transform: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    """The live release's objects again, transformed (suspended or resumed), as the next desired revision."""
    release = project.live_release()
    if release is None or not release.sealed_manifests:
        return
    objects = transform(release.sealed_manifests)
    revision = max(release.revision, cluster_services.desired_revision(project.cluster_id, project.namespace)) + 1
    cluster_services.set_desired_project(project.cluster, project.namespace, project.labels, revision,
                                         relabel(objects, revision))


def _set_suspended(org: Organization, suspended: bool) -> int:
    projects = list(Project.objects.active().filter(organization=org, suspended=not suspended)
                    .select_related("cluster"))
    for project in projects:
        project.suspended = suspended
        project.save(update_fields=["suspended"])
        reapply_live(project, functools.partial(sleep_render.suspended, page_url=suspended_page_url(project))
                     if suspended else sleep_render.resumed)
    return len(projects)


def suspend_organization(org: Organization) -> int:
    """Billing suspended the organization: every service of every project scales to zero, out of Sablier's
    reach, and its URLs lead to the "suspended" page instead of waking it."""
    return _set_suspended(org, True)


def resume_organization(org: Organization) -> int:
    """Credits are back: the live release again (compose replicas; sleeping-when-idle where enabled)."""
    return _set_suspended(org, False)
