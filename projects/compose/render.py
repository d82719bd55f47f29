"""Orchestration: parse -> interpolate -> normalize -> policy -> convert -> ordered objects.

All refusals are collected before anything is returned: a refused file yields no objects at all.
"""

from __future__ import annotations

from typing import Any

from .context import RenderContext, RenderResult, ServiceSummary
from .convert import Shared, convert_service, is_job, managed_database
from .interpolate import InterpolationError, interpolate
from .model import Project, Service, parse_project
from .namespace import tenant_objects
from .parse import parse_yaml
from .refusals import check_service, check_top_level, is_official_postgres
from .report import Report

KIND_ORDER = ["ConfigMap", "Secret", "PersistentVolumeClaim", "Service", "Deployment", "Job", "Middleware", "Ingress"]
# Which POSTGRES_* setting of a replaced service becomes which key of the database Secret.
POSTGRES_SETTINGS = {"POSTGRES_USER": "PGUSER", "POSTGRES_PASSWORD": "PGPASSWORD", "POSTGRES_DB": "PGDATABASE"}
_NAME_HINTS = (("PASS", "PGPASSWORD"), ("USER", "PGUSER"), ("DB", "PGDATABASE"), ("NAME", "PGDATABASE"))


def render_project(compose_text: str, ctx: RenderContext) -> RenderResult:
    """Render the complete manifests of one release, or raise ComposeRefusal."""
    return _render(compose_text, ctx, strict_files=True)


def validate_compose(compose_text: str, ctx: RenderContext) -> RenderResult:
    """The same checks for the editor, where referenced files may not be uploaded yet: a missing
    env/secret/config file is a warning here and a refusal in render_project."""
    return _render(compose_text, ctx, strict_files=False)


def _render(compose_text: str, ctx: RenderContext, *, strict_files: bool) -> RenderResult:
    parsed = parse_yaml(compose_text)
    report = Report(parsed)
    try:
        data, missing = interpolate(parsed.data, ctx.variables)
    except InterpolationError as exc:
        report.refuse(getattr(exc, "path", ()), f"interpolation: {exc}")
        report.raise_if_refused()
    for name, path in missing:
        report.warn(path, f"variable {name} is not set; an empty string is used")
    check_top_level(data, report)
    project = parse_project(data, report)
    active = _active_services(project, report)
    if len(active) > ctx.plan.max_services:
        report.refuse(("services",), f"{len(active)} services exceed the plan's limit of {ctx.plan.max_services}")
    for service in active.values():
        check_service(service, project, ctx, report)
    report.raise_if_refused()

    shared = Shared(ctx=ctx, project=project, report=report, strict_files=strict_files)
    replaced = _replaced_postgres(active, ctx, report)
    shared.db_env = _database_env(active, replaced, report)
    for name, service in active.items():
        if name in replaced:
            shared.service_ports[name] = ctx.postgres_port
        elif service.ports or service.expose:
            first = [*service.ports, *service.expose][0]
            shared.service_ports[name] = first.published or first.target
        if is_job(service):
            shared.jobs.add(name)
    summaries: list[ServiceSummary] = []
    for name in sorted(active):
        service = active[name]
        summary = managed_database(service, shared) if name in replaced else convert_service(service, shared)
        if name not in replaced and is_official_postgres(service.image):
            summary = ServiceSummary(**{**summary.__dict__, "managed_db_candidate": True})
        summaries.append(summary)
    report.raise_if_refused()
    objects = tenant_objects(ctx) + sorted(shared.objects.values(), key=_order)
    return RenderResult(objects, report.warnings, report.notes, summaries, ctx.namespace)


def _order(obj: dict[str, Any]) -> tuple[int, str]:
    return KIND_ORDER.index(obj["kind"]), obj["metadata"]["name"]


def _active_services(project: Project, report: Report) -> dict[str, Service]:
    active = {}
    for name, service in project.services.items():
        if service.profiles:
            report.warn(
                ("services", name, "profiles"),
                "services with `profiles` are only started on request in docker compose; it is not deployed",
            )
        else:
            active[name] = service
    if project.services and not active:
        report.refuse(("services",), "every service has `profiles`, so there is nothing to deploy")
    return active


def _replaced_postgres(active: dict[str, Service], ctx: RenderContext, report: Report) -> set[str]:
    replaced = set()
    for name, service in active.items():
        if not is_official_postgres(service.image):
            continue
        path = ("services", name, "image")
        if not ctx.replace_postgres.get(name, True):
            report.note(path, "runs as a container, as chosen, instead of the managed database")
        elif not ctx.database_secret:
            report.note(
                path,
                "can be replaced by the project's managed PostgreSQL database; "
                "until the project has one it runs as a container",
            )
        else:
            replaced.add(name)
            report.note(
                path,
                "replaced by the project's managed PostgreSQL database: the name "
                f"{name!r} points at it and its POSTGRES_* settings map to the injected credentials",
            )
    return replaced


def _database_env(active: dict[str, Service], replaced: set[str], report: Report) -> dict[str, dict[str, str]]:
    """Env vars of other services that repeat a replaced service's POSTGRES_* values -> secret keys."""
    values: dict[str, set[str]] = {}
    for name in replaced:
        for setting, key in POSTGRES_SETTINGS.items():
            value = active[name].environment.get(setting)
            if value:
                values.setdefault(value, set()).add(key)
    mapping: dict[str, dict[str, str]] = {}
    for name, service in active.items():
        if name in replaced:
            continue
        for var, value in service.environment.items():
            keys = values.get(value or "", set())
            hinted = [key for hint, key in _NAME_HINTS if hint in var.upper() and key in keys]
            key = var if var in keys else None  # e.g. PGPASSWORD itself
            key = key or (POSTGRES_SETTINGS.get(var) if POSTGRES_SETTINGS.get(var) in keys else None)
            key = key or (hinted[0] if hinted else (next(iter(keys)) if len(keys) == 1 else None))
            if key:
                mapping.setdefault(name, {})[var] = key
                report.note(
                    ("services", name, "environment", var),
                    f"{var} now comes from the managed database's credentials ({key})",
                )
    return mapping
