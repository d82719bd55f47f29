"""The only ways views, API views and consumers reach projects' tenant-owned objects.

Each function scopes the lookup to the user's membership and answers 404 for a missing and for a
foreign object alike; a member whose role lacks the permission gets 403 (accounts.access.require).
Permissions: "view" to see (viewers too), "deploy" to deploy, roll back, redeploy, edit the compose
file and variables (members, admins, owners), "manage_organization" to delete a project (owners, admins).
"""

from __future__ import annotations

from django.http import Http404

from accounts.access import get_membership, require
from accounts.models import Membership, User
from projects.models import Project, Release, Service, Variable


def get_project_for_user(user: User, org_slug: str, project_slug: str,
                         permission: str = "view") -> tuple[Project, Membership]:
    membership = get_membership(user, org_slug)
    project = Project.objects.active().select_related("organization", "cluster").filter(
        organization=membership.organization, slug=project_slug).first()
    if project is None:
        raise Http404("No such project")
    require(membership, permission)
    return project, membership


def get_release_for_user(user: User, org_slug: str, project_slug: str, revision: int,
                         permission: str = "view") -> tuple[Release, Membership]:
    project, membership = get_project_for_user(user, org_slug, project_slug, permission)
    release = project.releases.select_related("created_by", "rollback_of").filter(revision=revision).first()
    if release is None:
        raise Http404("No such release")
    release.project = project
    return release, membership


def get_service_for_user(user: User, org_slug: str, project_slug: str, name: str,
                         permission: str = "view") -> tuple[Service, Membership]:
    project, membership = get_project_for_user(user, org_slug, project_slug, permission)
    service = project.services.filter(name=name).first()
    if service is None:
        raise Http404("No such service")
    service.project = project  # with its organization and cluster already loaded
    return service, membership


def get_variable_for_user(user: User, org_slug: str, project_slug: str, variable_id: int,
                          permission: str = "deploy") -> tuple[Variable, Membership]:
    project, membership = get_project_for_user(user, org_slug, project_slug, permission)
    variable = project.variables.filter(pk=variable_id).first()
    if variable is None:
        raise Http404("No such variable")
    return variable, membership
