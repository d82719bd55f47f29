"""Members' kubectl access to their project's namespace (docs/kubectl.md): credentials, kubeconfigs, and who a
relayed request acts as.

A credential (`KubeAccess`) is a token whose SHA-256 is stored, bound to one member and one project. Every
request through the proxy (projects/kubeproxy.py) resolves it again: the token must be unrevoked, the user
active, the project reachable through `get_project_for_user`, and the member's role of the moment picks the
identity the agent impersonates: `deployer` (may deploy: reads plus exec, attach, port-forward) or `viewer`.
Nobody else can be named: the identities are protocol.KUBE_ACCOUNTS.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from accounts.models import Membership, User, hash_token
from audit.services import Action, record
from projects.access import get_project_for_user
from projects.models import KubeAccess, Project

PROXY_PREFIX = "/kube/"  # the proxy's URLs: PROXY_PREFIX + <project uid> + a Kubernetes API path
TOKEN_PREFIX = "pkc_"  # noqa: S105 (a recognisable prefix, not a secret)
MAX_ACTIVE_PER_MEMBER = 10
_LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per credential


@dataclass(frozen=True)
class KubeTarget:
    """What one relayed request acts on and as whom."""

    access_id: int
    user_id: int
    cluster_id: int
    namespace: str
    labels: dict[str, str]
    identity: str  # a key of protocol.KUBE_ACCOUNTS

    def payload(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "labels": self.labels, "identity": self.identity}


def identity_for(membership: Membership) -> str:
    return "deployer" if membership.can("deploy") else "viewer"


def create_access(user: User, project: Project, name: str) -> tuple[KubeAccess, str]:
    """A new credential for `user` on `project` (reached through the access function by the caller); the raw
    token is returned once, inside the kubeconfig the caller hands out."""
    name = name.strip()
    if not name:
        raise ValidationError("Give the credential a name, e.g. the machine it is for.")
    if len(name) > 100:
        raise ValidationError("The name is longer than 100 characters.")
    with transaction.atomic():
        active = KubeAccess.objects.active().select_for_update().filter(project=project, user=user)
        if len(active) >= MAX_ACTIVE_PER_MEMBER:
            raise ValidationError(f"You already have {MAX_ACTIVE_PER_MEMBER} kubectl credentials for this project; "
                                  "revoke one first.")
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        access = KubeAccess.objects.create(project=project, user=user, name=name, prefix=raw[:10],
                                           token_hash=hash_token(raw))
        record(Action.KUBE_ACCESS_CREATED, actor=user, organization=project.organization, target=project,
               details={"name": name, "prefix": access.prefix})
    return access, raw


def revoke_access(access: KubeAccess, actor: User) -> None:
    """Revoke now: the next request is refused, and open watches and exec sessions are closed at their next
    re-check (projects.kubeproxy.ACCESS_RECHECK_SECONDS)."""
    with transaction.atomic():
        if KubeAccess.objects.filter(pk=access.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()) != 1:
            return
        record(Action.KUBE_ACCESS_REVOKED, actor=actor, organization=access.project.organization,
               target=access.project, details={"name": access.name, "prefix": access.prefix})


def revoke_for_membership(user_id: int, organization_id: int) -> int:
    """A member who leaves loses every credential of that organization's projects for good (a later membership
    must not bring old kubeconfigs back). Open streams close at their next re-check."""
    return KubeAccess.objects.active().filter(user_id=user_id, project__organization_id=organization_id).update(
        revoked_at=timezone.now())


def server_url(project: Project) -> str:
    return f"{settings.SITE_URL}{PROXY_PREFIX}{project.uid}"


def kubeconfig(project: Project, raw_token: str, user: User) -> str:
    """A kubeconfig for plain kubectl: the control plane's proxy for this project, its namespace preset."""
    name = f"{project.organization.slug}-{project.slug}"
    cluster: dict[str, Any] = {"server": server_url(project)}
    if settings.KUBECTL_CA_FILE:  # a control plane whose certificate kubectl would not trust by itself
        cluster["certificate-authority-data"] = base64.b64encode(Path(settings.KUBECTL_CA_FILE).read_bytes()).decode()
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": f"{user.email}@{name}", "user": {"token": raw_token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{user.email}@{name}",
                                                "namespace": project.namespace}}],
        "current-context": name,
    }, sort_keys=False)


def _target(access: KubeAccess) -> KubeTarget | None:
    user, project = access.user, access.project
    if not user.is_active:
        return None
    try:
        project, membership = get_project_for_user(user, project.organization.slug, project.slug, "view")
    except (Http404, PermissionDenied):
        return None
    return KubeTarget(access_id=access.pk, user_id=user.pk, cluster_id=project.cluster_id,
                      namespace=project.namespace, labels=project.labels, identity=identity_for(membership))


def resolve(raw_token: str, project_uid: str) -> KubeTarget | None:
    """The target of a request bearing `raw_token` at the proxy URL of project `project_uid`, or None (unknown,
    revoked, another project's, or a user who may no longer see the project)."""
    if not raw_token.startswith(TOKEN_PREFIX):
        return None
    access = (KubeAccess.objects.active().select_related("user", "project__organization")
              .filter(token_hash=hash_token(raw_token)).first())
    if access is None or str(access.project.uid) != project_uid:
        return None
    target = _target(access)
    now = timezone.now()
    if target is not None and (access.last_used_at is None or now - access.last_used_at > _LAST_USED_EVERY):
        KubeAccess.objects.filter(pk=access.pk).update(last_used_at=now)
    return target


def still_valid(target: KubeTarget) -> bool:
    """Is an open stream's target still what its credential resolves to now? (No if the credential was revoked,
    the member left or lost the project, or the role changed the identity.)"""
    access = KubeAccess.objects.active().select_related("user", "project__organization").filter(
        pk=target.access_id).first()
    return access is not None and _target(access) == target
