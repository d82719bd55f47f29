"""Operators' cluster pages (staff only, 404 for anyone else) and the agent install manifest."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from clusters import infrastructure, manifest, services
from clusters.access import get_cluster_for_operator, require_operator
from clusters.forms import ClusterForm
from clusters.models import Cluster
from lib.pagination import page_of, search


def install_context(cluster: Cluster, secret: str) -> dict:
    url = f"{settings.SITE_URL}{reverse('cluster_agent_manifest', args=[cluster.pk])}?secret={secret}"
    return {"cluster": cluster, "install_url": url, "install_command": f"kubectl apply -f '{url}'",
            "ttl_minutes": 30}


@login_required
def cluster_list(request: HttpRequest) -> HttpResponse:
    require_operator(request.user)
    # An operator with many regions finds one by name, slug or base domain; 50 a page.
    clusters, q = search(request, Cluster.objects.prefetch_related("organizations"), "name", "slug", "base_domain")
    return render(request, "clusters/list.html", {"clusters": page_of(request, clusters), "q": q})


@login_required
def cluster_create(request: HttpRequest) -> HttpResponse:
    require_operator(request.user)
    form = ClusterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        cluster = services.create_cluster(data["name"], data["base_domain"], data["ssh_endpoint"],
                                          all_organizations=data["all_organizations"],
                                          organizations=list(data["organizations"]))
        secret = services.issue_install_secret(cluster)
        # Rendered, not redirected: the install secret is shown on this response only.
        return render(request, "clusters/install.html", install_context(cluster, secret))
    return render(request, "clusters/form.html", {"form": form})


@login_required
def cluster_detail(request: HttpRequest, slug: str) -> HttpResponse:
    cluster = get_cluster_for_operator(request.user, slug)
    # A cluster may hold thousands of projects: a page of them (their manifests stay in the database), found by
    # namespace, and what the agent observed of those.
    desired, q = search(request, cluster.desired_projects.defer("manifests"), "namespace")
    desired = page_of(request, desired)
    return render(request, "clusters/detail.html", {
        "cluster": cluster,
        "events": cluster.events.all()[:30],
        "desired": desired, "q": q,
        "observed": cluster.observed_projects.filter(namespace__in=[d.namespace for d in desired]),
        "components": infrastructure.components_for(cluster),
    })


@login_required
def cluster_edit(request: HttpRequest, slug: str) -> HttpResponse:
    cluster = get_cluster_for_operator(request.user, slug)
    form = ClusterForm(request.POST or None, instance=cluster)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Cluster updated.")
        return redirect("cluster_detail", slug=cluster.slug)
    return render(request, "clusters/form.html", {"form": form, "cluster": cluster})


@login_required
@require_POST
def cluster_install(request: HttpRequest, slug: str) -> HttpResponse:
    cluster = get_cluster_for_operator(request.user, slug)
    return render(request, "clusters/install.html", install_context(cluster, services.issue_install_secret(cluster)))


@login_required
@require_POST
def cluster_bootstrap(request: HttpRequest, slug: str) -> HttpResponse:
    cluster = get_cluster_for_operator(request.user, slug)
    if not cluster.is_connected:
        messages.error(request, "The agent is not connected: the bootstrap runs by itself when it connects.")
        return redirect("cluster_detail", slug=cluster.slug)
    infrastructure.request_bootstrap(cluster, requested_by=request.user.email)
    messages.success(request, "Bootstrap requested; progress appears below as it happens.")
    return redirect("cluster_detail", slug=cluster.slug)


@login_required
@require_POST
def cluster_rotate_token(request: HttpRequest, slug: str) -> HttpResponse:
    cluster = get_cluster_for_operator(request.user, slug)
    token = services.issue_token(cluster, actor=request.user)
    cluster.refresh_from_db()
    return render(request, "clusters/token.html", {"cluster": cluster, "token": token,
                                                   "grace_minutes": settings.AGENT_TOKEN_GRACE_MINUTES})


@login_required
@require_POST
def cluster_revoke_token(request: HttpRequest, slug: str) -> HttpResponse:
    cluster = get_cluster_for_operator(request.user, slug)
    services.revoke_token(cluster, actor=request.user)
    messages.warning(request, "Agent token revoked; the agent was disconnected.")
    return redirect("cluster_detail", slug=cluster.slug)


@require_GET
def agent_manifest(request: HttpRequest, cluster_id: int) -> HttpResponse:
    """Fetched by kubectl on the cluster: authenticated by the single-use install secret in the URL."""
    redeemed = services.redeem_install_secret(cluster_id, request.GET.get("secret", ""))
    if redeemed is None:
        raise Http404("This install link is not valid (expired or already used). Make a new one.")
    cluster, token = redeemed
    text = manifest.render(cluster, token, manifest.agent_server_url(settings.SITE_URL))
    response = HttpResponse(text, content_type="application/yaml")
    response["Cache-Control"] = "no-store"
    return response
