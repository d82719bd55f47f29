"""Writes about projects: create, settings, exposure and sleep settings, variables and secrets, credentials.

Releases are in projects.releases (deploy, redeploy, rollback) and projects.pipeline (one Celery task per
release); rendering in projects.manifests; live status in projects.status; deletion in projects.deletion;
suspension in projects.suspension; waking a sleeping service in projects.wake.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from accounts.models import Organization, User
from agent import protocol
from audit import services as audit
from billing import ledger
from clusters import data
from clusters.models import Cluster
from projects.compose import namespace_for
from projects.models import BLOCKING_TIMEOUT_MAX, IDLE_TIMEOUT_MAX, Exposure, Project, Service, SleepStrategy, Variable

log = logging.getLogger(__name__)


def _unique_namespace(org: Organization, slug: str, cluster: Cluster) -> str:
    namespace = namespace_for(org.slug, slug)
    if not Project.objects.filter(cluster=cluster, namespace=namespace).exists():
        return namespace
    # namespace_for collides across organizations (a-b/c vs a/b-c): disambiguate with the org's id.
    # The cut keeps the tenant prefix; the (cluster, namespace) constraint refuses whatever still collides.
    suffix = hashlib.sha256(f"{org.pk}/{slug}".encode()).hexdigest()[:8]
    return f"{namespace[: 62 - len(suffix)].rstrip('-')}-{suffix}"


def create_project(org: Organization, user: User | None, name: str, cluster: Cluster, *, slug: str = "",
                   allow_internet_egress: bool = False, wants_database: bool = False, wants_bucket: bool = False,
                   compose_text: str = "") -> Project:
    name = name.strip()
    if not name:
        raise ValidationError("A project needs a name.")
    slug = slugify(slug or name)[:40].strip("-")
    if not slug or not slug[0].isalpha():
        raise ValidationError("The project's name must start with a letter.")
    if Project.objects.filter(organization=org, slug=slug).exists():
        raise ValidationError(f"{org.name} already has a project called {slug!r} (or one being deleted).")
    try:
        with transaction.atomic():
            # Under the billing account's row lock, so two concurrent creations cannot both pass the limit.
            plan = ledger.plan_for_update(org)
            active = Project.objects.filter(organization=org, deleted_at__isnull=True).count()
            if active >= plan.max_projects:
                raise ValidationError(
                    f"The {plan.name} plan allows {plan.max_projects} projects and {org.name} has {active}; "
                    "delete a project or ask an operator for a larger plan.", code="plan_limit")
            project = Project.objects.create(
                organization=org, name=name, slug=slug, cluster=cluster,
                namespace=_unique_namespace(org, slug, cluster), allow_internet_egress=allow_internet_egress,
                wants_database=wants_database, wants_bucket=wants_bucket, compose_text=compose_text,
                created_by=user)
            audit.record(audit.Action.PROJECT_CREATED, actor=user, organization=org, target=project)
            return project
    except IntegrityError:
        raise ValidationError("That project name was taken a moment ago; pick another.") from None


def update_settings(project: Project, **fields: Any) -> Project:
    allowed = {"allow_internet_egress", "wants_database", "wants_bucket", "compose_text"}
    for key, value in fields.items():
        if key in allowed:
            setattr(project, key, value)
    project.save(update_fields=[k for k in fields if k in allowed])
    return project


def set_exposure(service: Service, exposure: str) -> Service:
    if exposure not in ("", *Exposure.values):
        raise ValidationError("Exposure is public, private or empty (follow the compose file).")
    service.exposure_override = exposure
    service.save(update_fields=["exposure_override"])
    return service


def set_sleep(service: Service, *, enabled: bool | None = None, idle_timeout: int | None = None,
              strategy: str | None = None, blocking_timeout: int | None = None) -> Service:
    """Change a service's scale-to-zero settings (applied by the next deploy); all checked before any is saved."""
    minimum = settings.PROJECTS_MIN_IDLE_TIMEOUT
    problems = []
    if idle_timeout is not None and not minimum <= idle_timeout <= IDLE_TIMEOUT_MAX:
        problems.append(f"The idle timeout must be between {minimum // 60 or minimum} "
                        f"{'minute' if minimum >= 60 else 'seconds'} and 24 hours ({minimum} to {IDLE_TIMEOUT_MAX} "
                        f"seconds); {idle_timeout} is not.")
    if strategy is not None and strategy not in SleepStrategy.values:
        problems.append(f"The strategy is dynamic or blocking, not {strategy!r}.")
    if blocking_timeout is not None and not 1 <= blocking_timeout <= BLOCKING_TIMEOUT_MAX:
        problems.append(f"The blocking timeout must be between 1 and {BLOCKING_TIMEOUT_MAX} seconds.")
    if enabled and service.sleep_blocker():
        problems.append(f"{service.name} cannot sleep: {service.sleep_blocker()}.")
    if problems:
        raise ValidationError(" ".join(problems), code="invalid_sleep_settings")
    for field, value in (("sleep_enabled", enabled), ("idle_timeout", idle_timeout), ("sleep_strategy", strategy),
                         ("blocking_timeout", blocking_timeout)):
        if value is not None:
            setattr(service, field, value)
    service.save(update_fields=["sleep_enabled", "idle_timeout", "sleep_strategy", "blocking_timeout"])
    return service


@transaction.atomic
def set_variable(project: Project, name: str, value: str, *, service: str = "", secret: bool = False,
                 actor: User | None = None) -> Variable:
    name = name.strip()
    if not name or not (name[0].isalpha() or name[0] == "_") or not all(c.isalnum() or c == "_" for c in name):
        raise ValidationError("A variable name has letters, digits and underscores and does not start with a digit.")
    variable = Variable.objects.filter(project=project, service=service, name=name).first() or Variable(
        project=project, service=service, name=name)
    created = variable.pk is None
    variable.is_secret = secret
    variable.set_value(value)
    variable.save()
    audit.record(audit.Action.SECRET_SET if secret else audit.Action.VARIABLE_SET, actor=actor,
                 organization=project.organization, target=variable,
                 details={"name": name, "service": service, "created": created})
    log.info("variable %s set on %s (secret=%s)", name, project, secret)  # never the value
    return variable


@transaction.atomic
def delete_variable(variable: Variable, *, actor: User | None = None) -> None:
    audit.record(audit.Action.SECRET_UNSET if variable.is_secret else audit.Action.VARIABLE_UNSET, actor=actor,
                 organization=variable.project.organization, target=variable,
                 details={"name": variable.name, "service": variable.service})
    variable.delete()


def interpolation_variables(project: Project) -> dict[str, str]:
    """Project-wide, non-secret variables: the compose file's `${VAR}` values (like its .env)."""
    return dict(project.variables.filter(service="", is_secret=False).values_list("name", "value"))


def data_ops_available(cluster: Cluster) -> dict[str, bool]:
    ops = set((cluster.capabilities or {}).get("ops") or [])
    return {"database": protocol.OP_ENSURE_DATABASE in ops, "bucket": protocol.OP_ENSURE_BUCKET in ops}


def reveal_credentials(project: Project, service: str, *, actor: User) -> dict[str, str] | None:
    """The data service's credentials, read live from the cluster (stored nowhere); each reveal is audited."""
    values = data.reveal_credentials(project.cluster, project.namespace, service)
    if values is not None:
        audit.record(audit.Action.CREDENTIAL_REVEALED, actor=actor, organization=project.organization,
                     target=project, details={"service": service, "names": sorted(values)})
    return values
