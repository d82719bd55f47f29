"""Receivers of other apps' signals: observed state from clusters, suspension/resumption from billing."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from billing.signals import organization_resumed, organization_suspended
from clusters.signals import observed_changed
from projects import status, suspension

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
