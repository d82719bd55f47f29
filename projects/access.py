"""The only ways views, API views and consumers reach projects' tenant-owned objects.

Each function scopes the lookup to the user's membership and answers 404 for a missing and for a
foreign object alike; a member whose role lacks the permission gets 403 (accounts.access.require).
Permissions: "view" to see (viewers too), "deploy" to deploy, roll back, redeploy, edit the compose
file and variables (members, admins, owners), "manage_organization" to delete a project (owners, admins),
"restore_project" to bring a deleted one back within its grace period (owners).
"""

from __future__ import annotations

from django.http import Http404

from accounts.access import get_membership, require
from accounts.models import Membership, User
from projects.models import CustomDomain, KubeAccess, Project, Release, Service, Variable


def get_project_for_user(user: User, org_slug: str, project_slug: str,
                         permission: str = "view") -> tuple[Project, Membership]:
    membership = get_membership(user, org_slug)
    project = Project.objects.active().select_related("organization", "cluster").filter(
        organization=membership.organization, slug=project_slug).first()
    if project is None:
        raise Http404("No such project")
    require(membership, permission)
    return project, membership


def get_deleted_project_for_user(user: User, org_slug: str, project_slug: str,
                                 permission: str = "restore_project") -> tuple[Project, Membership]:
    """A project deleted but not purged yet (its grace period may be over: the caller says so)."""
    membership = get_membership(user, org_slug)
    project = Project.objects.filter(deleted_at__isnull=False).select_related("organization", "cluster").filter(
        organization=membership.organization, slug=project_slug).first()
    if project is None:
        raise Http404("No such deleted project")
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


def get_domain_for_user(user: User, org_slug: str, project_slug: str, name: str, domain_id: int,
                        permission: str = "deploy") -> tuple[CustomDomain, Membership]:
    service, membership = get_service_for_user(user, org_slug, project_slug, name, permission)
    domain = service.domains.filter(pk=domain_id).first()
    if domain is None:
        raise Http404("No such domain")
    domain.service = service
    return domain, membership


def get_kube_access_for_user(user: User, org_slug: str, project_slug: str, access_id: int) -> KubeAccess:
    """The user's own active kubectl credential on that project: 404 for anyone else's, as for any tenant object
    (an owner revokes others' access by removing the member, which revokes all of theirs)."""
    project, _ = get_project_for_user(user, org_slug, project_slug, "view")
    access = KubeAccess.objects.active().filter(pk=access_id, project=project, user=user).first()
    if access is None:
        raise Http404("No such kubectl credential")
    access.project = project
    return access


class AmbiguousName(Exception):
    """A `project.service` name that matches projects in more than one of the user's organizations."""


def get_service_for_login(user: User, login: str, permission: str = "deploy") -> tuple[Service, Membership]:
    """The service an SSH user name names: `project.service` or `org.project.service`.

    `project.service` is looked up only among the user's own organizations, so another tenant's project
    looks exactly like a missing one; a name found in two of them raises AmbiguousName listing both forms.
    """
    parts = login.split(".")
    if len(parts) == 3:
        return get_service_for_user(user, parts[0], parts[1], parts[2], permission)
    if len(parts) != 2 or not all(parts):
        raise Http404("Use <project>.<service> or <organization>.<project>.<service> as the user name")
    project_slug, name = parts
    orgs = list(Project.objects.active().filter(slug=project_slug, organization__memberships__user=user)
                .values_list("organization__slug", flat=True).order_by("organization__slug"))
    if len(orgs) > 1:
        forms = " or ".join(f"{org}.{login}" for org in orgs)
        raise AmbiguousName(f"{login} is a project in more than one of your organizations; use {forms}")
    if not orgs:
        raise Http404("No such project")
    return get_service_for_user(user, orgs[0], project_slug, name, permission)


def ssh_login(user: User, project: Project, service_name: str) -> str:
    """The shortest SSH user name that names this service for this user."""
    return ssh_login_prefix(user, project) + service_name


def ssh_login_prefix(user: User, project: Project) -> str:
    """"<project>." or, when the user has another project of that slug, "<org>.<project>."."""
    others = Project.objects.active().filter(slug=project.slug, organization__memberships__user=user).exclude(
        pk=project.pk)
    return f"{project.organization.slug}.{project.slug}." if others.exists() else f"{project.slug}."
