"""Project pages: list/create, the project page (services, releases, editor, variables), release diff,
deploy/redeploy/rollback/delete. Thin: parse, reach objects through projects.access, call services."""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict

import yaml
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.access import get_organization_for_user
from accounts.models import Organization
from clusters.access import clusters_for_organization, get_cluster_for_org
from lib.pagination import page_of, search
from projects import deletion, domains, dumps, kubeaccess, logs, manifests, releases, services, terminal, wake
from projects.access import (
    get_deleted_project_for_user,
    get_domain_for_user,
    get_kube_access_for_user,
    get_project_for_user,
    get_release_for_user,
    get_service_for_user,
    get_variable_for_user,
)
from projects.models import Project, Release

RECENT_RELEASES = 30  # on the project page; the rest on the releases page

STARTER_COMPOSE = """services:
  web:
    image: nginx:1.27
    ports:
      - "8080:80"
"""


def _error(request: HttpRequest, exc: ValidationError) -> None:
    messages.error(request, " ".join(exc.messages))


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "") or request.content_type == "application/json"


@login_required
def project_list(request: HttpRequest, org_slug: str) -> HttpResponse:
    org, membership = get_organization_for_user(request.user, org_slug, "view")
    clusters = list(clusters_for_organization(org))
    if request.method == "POST":
        org, membership = get_organization_for_user(request.user, org_slug, "deploy")
        slug = request.POST.get("cluster", "")
        cluster = get_cluster_for_org(org, slug) if slug else (clusters[0] if clusters else None)
        if cluster is None:
            messages.error(request, "No cluster is open to this organization yet; ask an operator to register one.")
        else:
            try:
                project = services.create_project(
                    org, request.user, request.POST.get("name", ""), cluster,
                    allow_internet_egress=bool(request.POST.get("allow_internet_egress")),
                    wants_database=bool(request.POST.get("wants_database")),
                    wants_bucket=bool(request.POST.get("wants_bucket")), compose_text=STARTER_COMPOSE)
            except ValidationError as exc:
                _error(request, exc)
            else:
                return redirect("project_detail", org.slug, project.slug)
    can_restore = membership.can("restore_project")
    return render(request, "projects/project_list.html", {
        "org": org, "membership": membership, "clusters": clusters, "can_deploy": membership.can("deploy"),
        "deleted_projects": deletion.recently_deleted(org) if can_restore else [], **_project_page(request, org)})


@login_required
def project_detail(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    project, membership = get_project_for_user(request.user, org_slug, project_slug, "view")
    releases = list(project.releases.select_related("created_by", "rollback_of")[:RECENT_RELEASES + 1])
    more_releases = len(releases) > RECENT_RELEASES  # one more than shown: no count query
    releases = releases[:RECENT_RELEASES]
    for release in releases:
        release.project = project
    return render(request, "projects/project_detail.html", {
        "org": project.organization, "project": project, "membership": membership,
        "services": project.services.all(), "releases": releases, "latest": releases[0] if releases else None,
        "more_releases": more_releases,
        "variables": project.variables.all(), "can_deploy": membership.can("deploy"),
        "domains": _domain_rows(project),
        "kube_accesses": project.kube_accesses.active().filter(user=request.user),
        "kube_identity": kubeaccess.identity_for(membership),
        "can_delete": membership.can("manage_organization"), "compose_json": json.dumps(project.compose_text),
        "can_dump": membership.can(dumps.DUMP_PERMISSION), "restore_max_bytes": settings.DATABASE_RESTORE_MAX_BYTES})


@login_required
def release_list(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    """Every release of the project, newest first, a page at a time; the search box takes a revision
    ("12" or "r12"), a status, a kind or part of the deployer's e-mail."""
    project, membership = get_project_for_user(request.user, org_slug, project_slug, "view")
    releases, q = search(request, project.releases.all(), "status", "kind", "created_by__email")
    if q.lower().removeprefix("r").isdigit():
        releases = project.releases.filter(revision=int(q.lower().removeprefix("r")))
    page = page_of(request, releases.select_related("created_by", "rollback_of").defer("manifests"))
    for release in page:
        release.project = project
    return render(request, "projects/release_list.html", {
        "org": project.organization, "project": project, "membership": membership, "page": page, "q": q,
        "latest": project.latest_release(), "can_deploy": membership.can("deploy")})


@login_required
def project_logs(request: HttpRequest, org_slug: str, project_slug: str, name: str | None = None) -> HttpResponse:
    """The live log view of one service, or of every service of the project (viewers may read logs)."""
    if name is None:
        project, membership = get_project_for_user(request.user, org_slug, project_slug, "view")
        service = None
    else:
        service, membership = get_service_for_user(request.user, org_slug, project_slug, name, "view")
        project = service.project
    return render(request, "projects/logs.html", {
        "org": project.organization, "project": project, "service": service, "membership": membership,
        "services": project.services.all(), "sleeping": logs.sleeping_services(project)})


@login_required
@require_POST
def validate(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, org_slug, project_slug, "view")
    if request.content_type == "application/json":
        text = (json.loads(request.body or b"{}") or {}).get("compose", "")
    else:
        text = request.POST.get("compose", "")
    return JsonResponse(manifests.validate(project, text))


@login_required
@require_POST
def deploy(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, org_slug, project_slug, "deploy")
    compose = request.POST.get("compose")
    try:
        release = releases.deploy(project, request.user, compose)
    except ValidationError as exc:
        if _wants_json(request):
            return JsonResponse({"detail": " ".join(exc.messages), "problems": getattr(exc, "problems", [])},
                                status=400)
        _error(request, exc)
        return redirect("project_detail", org_slug, project_slug)
    if _wants_json(request):
        return JsonResponse(release.as_dict(), status=202)
    messages.success(request, f"Revision {release.revision} is deploying.")
    return redirect("project_detail", org_slug, project_slug)


@login_required
@require_POST
def redeploy(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, org_slug, project_slug, "deploy")
    try:
        release = releases.redeploy(project, request.user)
        messages.success(request, f"Revision {release.revision} is deploying.")
    except ValidationError as exc:
        _error(request, exc)
    return redirect("project_detail", org_slug, project_slug)


@login_required
@require_POST
def rollback(request: HttpRequest, org_slug: str, project_slug: str, revision: int) -> HttpResponse:
    target, _ = get_release_for_user(request.user, org_slug, project_slug, revision, "deploy")
    try:
        release = releases.rollback(target.project, request.user, target)
        messages.success(request, f"Rolling back to revision {target.revision} as revision {release.revision}.")
    except ValidationError as exc:
        _error(request, exc)
    return redirect("project_detail", org_slug, project_slug)


def manifests_text(release: Release | None) -> list[str]:
    if release is None:
        return []
    return yaml.safe_dump_all(release.manifests, sort_keys=True, default_flow_style=False).splitlines(keepends=True)


@login_required
def release_detail(request: HttpRequest, org_slug: str, project_slug: str, revision: int) -> HttpResponse:
    release, membership = get_release_for_user(request.user, org_slug, project_slug, revision, "view")
    project = release.project
    against_rev = request.GET.get("against", "")
    against = (project.releases.filter(revision=int(against_rev)).first() if against_rev.isdigit()
               else project.releases.filter(revision__lt=release.revision).order_by("-revision").first())
    diff = list(difflib.unified_diff(
        manifests_text(against), manifests_text(release),
        fromfile=f"revision {against.revision}" if against else "(nothing)", tofile=f"revision {release.revision}"))
    return render(request, "projects/release_detail.html", {
        "org": project.organization, "project": project, "release": release, "against": against,
        "diff": diff, "membership": membership, "can_deploy": membership.can("deploy"),
        "is_latest": not project.releases.filter(revision__gt=release.revision).exists(),
        "others": project.releases.exclude(pk=release.pk).values_list("revision", flat=True)})


@login_required
def service_terminal(request: HttpRequest, org_slug: str, project_slug: str, name: str) -> HttpResponse:
    """The xterm.js page; the shell itself runs over projects.consumers.TerminalConsumer."""
    service, membership = get_service_for_user(request.user, org_slug, project_slug, name, "deploy")
    target = terminal.Target(request.user, service.project, service)
    pods, problem = [], ""
    try:
        pods = terminal.service_pods_sync(target)
    except terminal.ShellRefused as exc:
        problem = exc.message
    running = [pod for pod in pods if pod["phase"] == "Running" and not pod["deleting"]]
    return render(request, "projects/terminal.html", {
        "org": service.project.organization, "project": service.project, "service": service,
        "membership": membership, "problem": problem, "idle_timeout": settings.TERMINAL_IDLE_TIMEOUT,
        "pods": running, "wakes": not running and terminal.may_be_asleep(target)})


@login_required
@require_POST
def variables(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    project, _ = get_project_for_user(request.user, org_slug, project_slug, "deploy")
    try:
        services.set_variable(project, request.POST.get("name", ""), request.POST.get("value", ""),
                              service=request.POST.get("service", "").strip(),
                              secret=bool(request.POST.get("secret")), actor=request.user)
        messages.success(request, "Saved. Deploy (or redeploy) to apply it.")
    except ValidationError as exc:
        _error(request, exc)
    return redirect(f"{project_url(project)}#variables")


@login_required
@require_POST
def variable_delete(request: HttpRequest, org_slug: str, project_slug: str, variable_id: int) -> HttpResponse:
    variable, _ = get_variable_for_user(request.user, org_slug, project_slug, variable_id, "deploy")
    services.delete_variable(variable, actor=request.user)
    return redirect(f"{project_url(variable.project)}#variables")


@login_required
@require_POST
def kubectl_create(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    """A new kubectl credential of the signed-in member, answered as the kubeconfig file (its only copy)."""
    project, _ = get_project_for_user(request.user, org_slug, project_slug, "view")
    try:
        _, raw = kubeaccess.create_access(request.user, project, request.POST.get("name", ""))
    except ValidationError as exc:
        _error(request, exc)
        return redirect(f"{project_url(project)}#kubectl")
    response = HttpResponse(kubeaccess.kubeconfig(project, raw, request.user), content_type="application/yaml")
    response["Content-Disposition"] = f'attachment; filename="{project.organization.slug}-{project.slug}.kubeconfig"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def kubectl_revoke(request: HttpRequest, org_slug: str, project_slug: str, access_id: int) -> HttpResponse:
    access = get_kube_access_for_user(request.user, org_slug, project_slug, access_id)
    kubeaccess.revoke_access(access, request.user)
    messages.success(request, f"kubectl credential {access.name} is revoked.")
    return redirect(f"{project_url(access.project)}#kubectl")


@login_required
def project_delete(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    project, membership = get_project_for_user(request.user, org_slug, project_slug, "manage_organization")
    if request.method == "POST":
        try:
            deletion.delete_project(project, request.user, request.POST.get("confirm", ""))
        except ValidationError as exc:
            _error(request, exc)
        else:
            messages.success(request, f"{project.name} is deleted; its data is kept until "
                             f"{project.purge_after:%Y-%m-%d %H:%M} UTC, then removed. Until then an owner can "
                             "restore it under Recently deleted.")
            return redirect("project_list", org_slug)
    return render(request, "projects/project_delete.html", {"org": project.organization, "project": project,
                                                            "membership": membership})


@login_required
@require_POST
def project_restore(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    project, _ = get_deleted_project_for_user(request.user, org_slug, project_slug)
    try:
        release = deletion.restore_project(project, request.user)
    except ValidationError as exc:
        _error(request, exc)
        return redirect("project_list", org_slug)
    messages.success(request, f"{project.name} is back with its database and bucket"
                     + (f"; revision {release.revision} redeploys its live release." if release else "."))
    return redirect("project_detail", org_slug, project_slug)


def project_url(project: Project) -> str:
    from django.urls import reverse

    return reverse("project_detail", args=[project.organization.slug, project.slug])


@login_required
@require_POST
def reveal_data_credentials(request: HttpRequest, org_slug: str, project_slug: str, service: str) -> HttpResponse:
    """The project's database or bucket credentials, read from the cluster now; stored and logged nowhere."""
    project, _ = get_project_for_user(request.user, org_slug, project_slug, "deploy")
    wanted = {"database": project.wants_database, "bucket": project.wants_bucket}
    if not wanted.get(service):
        raise Http404("This project has no such data service")
    values = services.reveal_credentials(project, service, actor=request.user)
    if values is None:
        response = JsonResponse({"error": f"The {service} credentials cannot be read right now: the cluster's agent "
                                          "is offline, or the first deploy has not provisioned it yet."}, status=503)
    else:
        response = JsonResponse({"values": values})
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def service_exposure(request: HttpRequest, org_slug: str, project_slug: str, name: str) -> HttpResponse:
    service, _ = get_service_for_user(request.user, org_slug, project_slug, name, "deploy")
    try:
        services.set_exposure(service, request.POST.get("exposure", ""))
    except ValidationError as exc:
        _error(request, exc)
    else:
        messages.success(request, f"{service.name} will be {service.exposure_override or 'as the compose file says'} "
                                  "from the next deploy; press Redeploy to apply it now.")
    return redirect("project_detail", org_slug, project_slug)


def _seconds(raw: str, unit: int, what: str) -> int | None:
    """A positive whole number of `unit` seconds from a form field ("" = unchanged)."""
    if not raw.strip():
        return None
    try:
        return int(raw) * unit
    except ValueError:
        raise ValidationError(f"The {what} must be a whole number, not {raw!r}.") from None


@login_required
@require_POST
def service_sleep(request: HttpRequest, org_slug: str, project_slug: str, name: str) -> HttpResponse:
    service, _ = get_service_for_user(request.user, org_slug, project_slug, name, "deploy")
    try:
        services.set_sleep(service, enabled=request.POST.get("enabled") == "on",
                           idle_timeout=_seconds(request.POST.get("idle_minutes", ""), 60, "idle timeout"),
                           strategy=request.POST.get("strategy") or None,
                           blocking_timeout=_seconds(request.POST.get("blocking_timeout", ""), 1, "blocking timeout"))
    except ValidationError as exc:
        _error(request, exc)
    else:
        messages.success(request, f"{service.name}'s sleep settings apply from the next deploy; press Redeploy "
                                  "to apply them now.")
    return redirect("project_detail", org_slug, project_slug)


def _domain_rows(project: Project) -> list[dict]:
    certificates = domains.observed_certificates(project)
    rows = []
    for service in project.services.prefetch_related("domains"):  # one query for all services' domains
        for domain in service.domains.all():
            domain.service = service
            rows.append(domains.domain_dict(domain, certificates))
    return rows


@login_required
@require_POST
def domain_add(request: HttpRequest, org_slug: str, project_slug: str, name: str) -> HttpResponse:
    service, _ = get_service_for_user(request.user, org_slug, project_slug, name, "deploy")
    try:
        domain = domains.add_domain(service, request.POST.get("hostname", ""), actor=request.user)
    except ValidationError as exc:
        _error(request, exc)
    else:
        messages.success(request, f"{domain.hostname} added to {service.name}: create one of the DNS records shown, "
                                  "then press Verify.")
    return redirect("project_detail", org_slug, project_slug)


@login_required
@require_POST
def domain_verify(request: HttpRequest, org_slug: str, project_slug: str, name: str, domain_id: int) -> HttpResponse:
    domain, _ = get_domain_for_user(request.user, org_slug, project_slug, name, domain_id, "deploy")
    result = domains.verify_domain(domain, actor=request.user)
    if result.ok:
        messages.success(request, f"{domain.hostname} is verified ({result.message}); a redeploy routes it.")
    else:
        messages.error(request, result.message)
    return redirect("project_detail", org_slug, project_slug)


@login_required
@require_POST
def domain_delete(request: HttpRequest, org_slug: str, project_slug: str, name: str, domain_id: int) -> HttpResponse:
    domain, _ = get_domain_for_user(request.user, org_slug, project_slug, name, domain_id, "deploy")
    domains.delete_domain(domain, actor=request.user)
    messages.success(request, f"{domain.hostname} removed.")
    return redirect("project_detail", org_slug, project_slug)


@login_required
@require_POST
def service_wake(request: HttpRequest, org_slug: str, project_slug: str, name: str) -> HttpResponse:
    # Waking is harmless (the service would wake on its next request anyway): members may, viewers may not.
    service, _ = get_service_for_user(request.user, org_slug, project_slug, name, "deploy")
    try:
        result = wake.wake_service(service)
    except ValidationError as exc:
        _error(request, exc)
    else:
        messages.success(request, result["message"])
    return redirect("project_detail", org_slug, project_slug)


def project_suspended(request: HttpRequest, uid: str) -> HttpResponse:
    """Public page a suspended project's URLs redirect to (the edge sends them here instead of waking anything)."""
    project = Project.objects.select_related("organization").filter(uid=uid, suspended=True).first()
    if project is None:
        raise Http404("No suspended project here")
    return render(request, "projects/suspended.html", {"project": project, "org": project.organization},
                  status=503)


@login_required
def project_rows(request: HttpRequest, org_slug: str) -> HttpResponse:
    """The project list's rows (the same page and search), re-fetched by the page on live events."""
    org, _ = get_organization_for_user(request.user, org_slug, "view")
    return render(request, "projects/_project_rows.html", {"org": org, **_project_page(request, org)})


def _project_page(request: HttpRequest, org: Organization) -> dict:
    """One page of the organization's projects, searched by name or slug, in a constant number of queries."""
    projects, q = search(request, Project.objects.active().filter(organization=org), "name", "slug")
    page = page_of(request, projects.select_related("cluster").prefetch_related("services").with_latest_release())
    return {"page": page, "projects": page.object_list, "q": q}


@login_required
def service_rows(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    """The services table's rows, re-fetched by the page when the agent reports a change."""
    project, membership = get_project_for_user(request.user, org_slug, project_slug, "view")
    return render(request, "projects/_service_rows.html", {
        "org": project.organization, "project": project, "services": project.services.all(),
        "can_deploy": membership.can("deploy")})


# --- Database dump and restore (owners and admins; projects.dumps) -----------------------------------------


async def _project_for_dump(request: HttpRequest, org_slug: str, project_slug: str) -> Project:
    user = await request.auser()
    project, _ = await sync_to_async(get_project_for_user)(user, org_slug, project_slug, dumps.DUMP_PERMISSION)
    return project


@login_required
@require_GET
async def database_dump(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    """The project's database as a pg_dump custom-format file, streamed as pg_dump writes it."""
    project = await _project_for_dump(request, org_slug, project_slug)
    try:
        chunks = await dumps.start_dump(project, await request.auser())
    except dumps.DumpError as exc:
        if exc.status == 404:
            raise Http404(exc.message) from None
        messages.error(request, exc.message)
        return redirect(f"{project_url(project)}#database")
    return dumps.download_response(project, chunks)


@login_required
@require_POST
async def database_restore(request: HttpRequest, org_slug: str, project_slug: str) -> HttpResponse:
    """Restore an uploaded dump into the project's database; answers JSON to the page's script, else redirects."""
    project = await _project_for_dump(request, org_slug, project_slug)
    upload = await sync_to_async(request.FILES.get)("file")
    try:
        dumps.check_upload(upload.size if upload else None)
        result = await dumps.restore(project, await request.auser(), upload.chunks(), upload.size)
    except dumps.DumpError as exc:
        if exc.status == 404:
            raise Http404(exc.message) from None
        if _wants_json(request):
            return JsonResponse({"ok": False, "error": exc.message}, status=exc.status)
        messages.error(request, exc.message)
        return redirect(f"{project_url(project)}#database")
    if _wants_json(request):
        return JsonResponse(asdict(result), status=200)
    if result.ok:
        messages.success(request, f"Restored {result.bytes} bytes into the database.")
    else:
        messages.error(request, f"The restore failed and changed nothing: {result.messages}")
    return redirect(f"{project_url(project)}#database")
