"""Receivers of other apps' signals: observed state from clusters, suspension/resumption from billing, and a
member leaving an organization (their kubectl credentials there are revoked)."""

from __future__ import annotations

import logging

from django.db.models.signals import post_delete
from django.dispatch import receiver

from accounts.models import Membership
from billing.signals import organization_resumed, organization_suspended
from clusters.signals import observed_changed
from projects import kubeaccess, status, suspension

log = logging.getLogger(__name__)


@receiver(observed_changed, dispatch_uid="projects.observed")
def fold_observed_state(sender, cluster_id: int, namespace: str, state, **kwargs) -> None:
    status.fold_observed_state(cluster_id, namespace, state)


@receiver(organization_suspended, dispatch_uid="projects.suspend")
def scale_organization_to_zero(sender, organization, **kwargs) -> None:
    count = suspension.suspend_organization(organization)
    log.info("organization %s suspended: %d project(s) scaled to zero", organization.slug, count)


@receiver(organization_resumed, dispatch_uid="projects.resume")
def restore_organization(sender, organization, **kwargs) -> None:
    count = suspension.resume_organization(organization)
    log.info("organization %s resumed: %d project(s) restored", organization.slug, count)


@receiver(post_delete, sender=Membership, dispatch_uid="projects.membership_deleted_revokes_kubectl")
def revoke_kubectl_of_former_member(sender, instance: Membership, **kwargs) -> None:
    count = kubeaccess.revoke_for_membership(instance.user_id, instance.organization_id)
    if count:
        log.info("member left: revoked %d kubectl credential(s) user=%s organization=%s", count,
                 instance.user_id, instance.organization_id)
