"""Live events for one organization, pushed to browsers (deploy progress, cluster status...)."""

from __future__ import annotations

from django.http import Http404

from accounts.access import get_membership
from paas.realtime import AccessCheckedConsumer, org_group


class OrganizationEventsConsumer(AccessCheckedConsumer):
    def authorize(self) -> list[str] | None:
        try:
            membership = get_membership(self.scope["user"], self.scope["url_route"]["kwargs"]["org_slug"])
        except Http404:
            return None
        return [org_group(membership.organization_id)]

    async def access_lost(self) -> None:
        await self.send_json({"event": "access.lost", "data": {}})
