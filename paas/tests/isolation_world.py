"""Two tenants for the isolation tests: the attackers' home organization and a victim full of marked data.

Acme (owner alice, member bob, viewer victor) and Charlie Corp (outsider charlie) are the attackers' own
organizations. "Qxvictim Holdings" belongs to none of them and holds one object of every kind a tenant owns,
each carrying a marker string (`World.markers`) that must never appear in an attacker's response.
`victim_rows()` and `org_rows()` snapshot everything a tenant owns, found by following foreign keys, so a
new tenant-owned model is covered without being listed here.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import asyncssh
from django.apps import apps
from django.db import models
from django.urls.resolvers import RoutePattern

from accounts.models import Membership, Organization, Role, User
from projects.models import Project

COMPOSE = """services:
  {web}:
    image: {image}
    ports:
      - "8080:80"
    environment:
      GREETING: hello
"""

# Platform rows a tenant must not change either (they have no foreign key to a tenant).
PLATFORM_MODELS = ("clusters.Cluster", "billing.Plan")
# A tenant's rows that name it only by its project's namespace.
NAMESPACE_MODELS = ("clusters.DesiredProject", "clusters.ObservedProject")


@dataclass
class Tenant:
    org: Organization
    users: list[User]
    project: Any
    release: Any
    service: Any
    variable: Any
    domain: Any  # a custom domain claim of its web service
    invitation: Any
    membership: Membership  # a membership an attacker would like to change or remove
    ssh_key: Any
    api_token: Any
    kube_access: Any = None  # the owner's kubectl credential on the project


@dataclass
class World:
    owner: User
    member: User
    viewer: User
    outsider: User
    acme: Tenant
    outsider_org: Organization
    victim: Tenant
    cluster: Any  # open to every organization
    private_cluster: Any  # open to the victim only
    markers: list[str] = field(default_factory=list)

    def home_org(self, user: User | None) -> Organization | None:
        if user is None:
            return None
        return self.outsider_org if user == self.outsider else self.acme.org


def _tenant(owner: User, org: Organization, *, project_name: str, web: str, image: str, var: tuple[str, str],
            secret: tuple[str, str], invitee: str, key_comment: str, token_name: str, cluster: Any) -> Tenant:
    from accounts import services as accounts
    from projects import domains, kubeaccess, manifests, releases
    from projects import services as projects

    project = projects.create_project(org, owner, project_name, cluster,
                                      compose_text=COMPOSE.format(web=web, image=image))
    variable = projects.set_variable(project, *var)
    projects.set_variable(project, *secret, secret=True)
    release = releases.deploy(project, owner)  # its pipeline task would run after commit; render it here instead
    release.manifests, _ = manifests.render_release(project, release)
    release.save(update_fields=["manifests"])
    releases.sync_services(project, release.manifests)
    domain = domains.add_domain(project.services.get(name=web), f"www.{project.slug}.example.org")
    membership = Membership.objects.get(user=owner, organization=org)
    invitation = accounts.invite(membership, invitee).invitation
    key_text = asyncssh.generate_private_key("ssh-ed25519", comment=key_comment).export_public_key("openssh")
    ssh_key = accounts.add_ssh_key(owner, key_comment, key_text.decode().strip())
    api_token, _ = accounts.create_api_token(owner, token_name)
    kube_access, _ = kubeaccess.create_access(owner, project, f"{token_name}-kubectl")
    return Tenant(org=org, users=[owner], project=project, release=release, service=project.services.get(name=web),
                  variable=variable, domain=domain, invitation=invitation, membership=membership, ssh_key=ssh_key,
                  api_token=api_token, kube_access=kube_access)


def build_world() -> World:
    from accounts.services import create_organization
    from billing.ledger import record_entry
    from billing.usage import record_usage
    from clusters import services as cluster_services
    from conftest import make_personas, make_user, make_viewer

    p = make_personas()
    viewer = make_viewer(p.org)
    cluster = cluster_services.create_cluster("Falkenstein", "apps.example.com", simulated=True, slug="fsn")
    acme = _tenant(p.owner, p.org, project_name="Shop", web="web", image="nginx:1.27", var=("GREETING", "hi"),
                   secret=("TOKEN", "acme-secret"), invitee="new@example.com", key_comment="alice-laptop",
                   token_name="alice-ci", cluster=cluster)
    acme.users += [p.member, viewer]
    # In their own organization the viewer and member aim at a plain member's membership (the owner's is
    # guarded twice: only owners touch owners, and the last owner stays).
    dave = make_user("dave@example.com")
    acme.membership = Membership.objects.create(user=dave, organization=p.org, role=Role.MEMBER)

    vera = make_user("vera@qxvictim.example")
    victim_org = create_organization(vera, "Qxvictim Holdings")
    victim = _tenant(vera, victim_org, project_name="Zebra Plans Qx", web="qxweb", image="ghcr.io/qxvictim/app:1",
                     var=("QX_VICTIM_VAR", "qx-victim-value-7731"),
                     secret=("QX_VICTIM_SECRET", "qx-victim-secret-9925"),
                     invitee="someone@qxinvite.example", key_comment="qxvictim-laptop", token_name="qxvictim-token",
                     cluster=cluster)
    private_cluster = cluster_services.create_cluster("Qxprivate Metal", "qxprivate.example", simulated=True,
                                                      slug="qxprivate", all_organizations=False,
                                                      organizations=[victim_org])
    victim_member = make_user("vmember@qxvictim.example")
    Membership.objects.create(user=victim_member, organization=victim_org, role=Role.MEMBER)
    victim.users.append(victim_member)
    record_entry(victim_org, amount=123_456, kind="top_up", idempotency_key="qxvictim-topup",
                 reason="qxvictim-credit-reason", reference="qxvictim-invoice-42")
    record_usage(victim_org, {"cluster": cluster.slug, "namespace": victim.project.namespace, "service": "qxweb",
                              "window_start": "2026-01-05T10:00:00Z", "window_seconds": 60, "replicas": 1,
                              "cpu_millicores": 250, "memory_mib": 256, "storage_gib": 0})

    markers = ["Qxvictim Holdings", "Zebra Plans Qx", "qxvictim/app", "QX_VICTIM_VAR", "qx-victim-value-7731",
               "QX_VICTIM_SECRET", "qx-victim-secret-9925", "qxvictim.example", "qxinvite.example",
               "qxvictim-laptop", "qxvictim-token", "qxvictim-credit-reason", "qxvictim-invoice-42",
               "Qxprivate Metal", "qxprivate.example", victim.project.namespace, victim.ssh_key.fingerprint,
               victim.api_token.prefix]
    return World(owner=p.owner, member=p.member, viewer=viewer, outsider=p.outsider, acme=acme,
                 outsider_org=p.outsider_org, victim=victim, cluster=cluster, private_cluster=private_cluster,
                 markers=markers)


# --- Routes ----------------------------------------------------------------------------------------


def route_template(pattern: Any) -> tuple[str, tuple[str, ...]]:
    """A Django URL pattern as a format string and its arguments: ("o/{org_slug}/members/", ("org_slug",))."""
    if isinstance(pattern, RoutePattern):
        text = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(pattern))
    else:
        text = str(pattern).lstrip("^").rstrip("$").replace("\\Z", "")
        text = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", text)
        text = text.replace("\\.", ".").replace("\\-", "-").replace("\\/", "/")
    return text, tuple(re.findall(r"\{(\w+)\}", text))


# --- Snapshots ------------------------------------------------------------------------------------


@cache
def _path_to(model: type[models.Model], target: type[models.Model], depth: int = 3) -> str | None:
    """The shortest lookup (e.g. "release__project__organization") from model to target along foreign keys."""
    if model is target:
        return "pk"
    queue: deque[tuple[type[models.Model], str, int]] = deque([(model, "", 0)])
    while queue:
        current, prefix, level = queue.popleft()
        for f in current._meta.get_fields():
            if not (f.is_relation and (f.many_to_one or f.one_to_one) and f.concrete):
                continue
            lookup = f"{prefix}{f.name}"
            if f.related_model is target:
                return lookup
            if level + 1 < depth:
                queue.append((f.related_model, lookup + "__", level + 1))
    return None


def _owned_by(model: type[models.Model], org: Organization, users: list[User] | None) -> models.QuerySet | None:
    """The rows of `model` that belong to this organization (or, for per-user models, to these users)."""
    path = _path_to(model, Organization)
    if path is not None:
        return model._base_manager.filter(**{path: org.pk})
    if users is not None and (path := _path_to(model, User)) is not None:
        return model._base_manager.filter(**{f"{path}__in": [u.pk for u in users]})
    return None


def _rows(queryset: models.QuerySet) -> list[tuple]:
    return list(queryset.order_by("pk").values_list())


def org_rows(org: Organization, users: list[User] | None = None,
             labels: set[str] | None = None) -> dict[str, list[tuple]]:
    """Every row this tenant owns, by model label: org-scoped rows, and the users' own rows when given
    (only the models named in `labels`, when given)."""
    snapshot = {}
    for model in apps.get_models(include_auto_created=True):
        if labels is not None and model._meta.label not in labels:
            continue
        queryset = _owned_by(model, org, users)
        if queryset is not None:
            snapshot[model._meta.label] = _rows(queryset)
    return snapshot


def victim_rows(world: World) -> dict[str, list[tuple]]:
    snapshot = org_rows(world.victim.org, world.victim.users)
    for label in PLATFORM_MODELS:
        snapshot[label] = _rows(apps.get_model(label)._base_manager.all())
    for label in NAMESPACE_MODELS:
        snapshot[label] = _rows(apps.get_model(label)._base_manager.filter(namespace=world.victim.project.namespace))
    # Nobody else's project may land on the victim's private cluster.
    snapshot["projects on the victim's cluster"] = _rows(Project._base_manager.filter(cluster=world.private_cluster))
    return snapshot


def changed(before: dict[str, list[tuple]], after: dict[str, list[tuple]]) -> list[str]:
    return [label for label in sorted(set(before) | set(after)) if before.get(label) != after.get(label)]
