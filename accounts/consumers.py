"""Live events for one organization, pushed to browsers (deploy progress, cluster status...)."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.http import Http404

from accounts.access import get_membership
from paas.realtime import org_group


class OrganizationEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        org_id = await self._organization_id()
        if org_id is None:
            await self.close(code=4403)  # before accept: the browser sees a refused socket
            return
        self.group = org_group(org_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def live_event(self, message: dict) -> None:
        await self.send_json({"event": message["event"], "data": message["data"]})

    @database_sync_to_async
    def _organization_id(self) -> int | None:
        try:
            return get_membership(self.scope["user"], self.scope["url_route"]["kwargs"]["org_slug"]).organization_id
        except Http404:
            return None
