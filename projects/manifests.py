"""A release's Kubernetes objects: the render context, the editor's validation, rendering, variables' Secrets.

Pure reads of the project (no writes): projects.releases renders a release once, when it is created.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from agent.protocol import ACME_CLUSTER_ISSUER, BUCKET_SECRET, DATABASE_SECRET
from projects.compose import ComposeRefusal, RenderContext, RenderResult, SleepSettings, labels, render_project
from projects.compose import validate_compose as _validate_compose
from projects.compose.tls import secure_routes
from projects.domains import routed_hosts
from projects.models import Project, Release
from projects.plans import plan_limits
from projects.services import data_ops_available, interpolation_variables

# Where the project's own secrets and service variables are delivered (referenced with envFrom).
PROJECT_SECRET = "paas-env"  # noqa: S105
WORKLOAD_KINDS = ("Deployment", "Job")


def sleep_settings(project: Project) -> dict[str, SleepSettings]:
    """What the renderer needs; services not deployed yet get the defaults (sleep after 15 minutes)."""
    return {s.name: SleepSettings(enabled=s.sleep_enabled, idle_timeout=s.idle_timeout, strategy=s.sleep_strategy,
                                  blocking_timeout=s.blocking_timeout) for s in project.services.all()}


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
    result = render_project(release.compose_text, render_context(project, release.revision, release.variables))
    objects = _inject_variables(project, copy.deepcopy(result.objects))
    # Verified custom domains, and TLS once the cluster can issue certificates (docs/domains.md).
    issuer = ACME_CLUSTER_ISSUER if project.cluster.tls_ready() else None
    return secure_routes(objects, routed_hosts(project), issuer), result


def relabel(objects: list[dict[str, Any]], revision: int) -> list[dict[str, Any]]:
    """A stored release's objects as a new revision (rollback): only the revision label changes."""
    out = copy.deepcopy(objects)
    for obj in out:
        meta_labels = obj.setdefault("metadata", {}).setdefault("labels", {})
        if labels.REVISION in meta_labels:
            meta_labels[labels.REVISION] = str(revision)
    return out


def deployment_names(objects: list[dict[str, Any]]) -> set[str]:
    return {((o["metadata"].get("labels") or {}).get(labels.SERVICE) or o["metadata"]["name"])
            for o in objects if o.get("kind") == "Deployment" and o["spec"].get("replicas", 1) != 0}


def workload_images(objects: list[dict[str, Any]]) -> dict[str, str]:
    images = {}
    for o in objects:
        if o.get("kind") in WORKLOAD_KINDS:
            name = (o["metadata"].get("labels") or {}).get(labels.SERVICE) or o["metadata"]["name"]
            images[name] = (o["spec"]["template"]["spec"].get("containers") or [{}])[0].get("image", "")
    return images
