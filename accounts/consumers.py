"""Live events for one organization, pushed to browsers (deploy progress, cluster status...)."""

from __future__ import annotations

from accounts.access import get_membership
from lib.realtime import GroupEventsConsumer, org_group


class OrganizationEventsConsumer(GroupEventsConsumer):
    def group(self) -> str:
        membership = get_membership(self.scope["user"], self.scope["url_route"]["kwargs"]["org_slug"])
        return org_group(membership.organization_id)
