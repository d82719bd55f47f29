"""One helper to publish live events to browsers, from views, Celery tasks and consumers, and the base
class of every browser socket whose access can be lost while it is open.

Groups are per tenant or per resource, so another tenant's events never reach a socket.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.http import Http404

# Close code of a socket refused at connect, or closed because its user lost access while it was open.
CLOSE_NO_ACCESS = 4403


def org_group(org_id: int) -> str:
    return f"org_{org_id}"


def user_group(user_id: int) -> str:
    """Every browser socket of one user, whatever it shows: where "access changed" notices go."""
    return f"user_{user_id}"


def publish(group: str, event: str, data: dict[str, Any]) -> None:
    """Send {"event": event, "data": data} to every socket in `group` (sync callers)."""
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(group, {"type": "live.event", "event": event, "data": data})


async def apublish(group: str, event: str, data: dict[str, Any]) -> None:
    layer = get_channel_layer()
    await layer.group_send(group, {"type": "live.event", "event": event, "data": data})


def access_changed(user_id: int) -> None:
    """Tell every open socket of this user to re-check its access, once the current transaction commits
    (a rolled-back removal changes nothing; a committed one is visible to the re-check)."""

    def send() -> None:
        async_to_sync(get_channel_layer().group_send)(user_group(user_id), {"type": "access.changed"})

    transaction.on_commit(send, robust=True)


class AccessCheckedConsumer(AsyncJsonWebsocketConsumer):
    """A browser socket that shows a tenant's data (events, logs, a terminal ...).

    Subclasses implement `authorize()`: the groups the socket joins, found through the model's access
    function, or None when the user may not have it. It runs at connect and again each time the user's
    access changes (membership removed, role changed, account deactivated: `access_changed`); a socket
    whose user lost access is closed at once with CLOSE_NO_ACCESS.
    """

    def authorize(self) -> list[str] | None:
        raise NotImplementedError

    async def connect(self) -> None:
        groups = await database_sync_to_async(self.authorize)()
        if groups is None:
            await self.close(code=CLOSE_NO_ACCESS)  # before accept: the browser sees a refused socket
            return
        user = self.scope["user"]
        self.joined = [*groups, user_group(user.pk)]
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def access_changed(self, message: dict[str, Any]) -> None:
        if not await database_sync_to_async(self._still_authorized)():
            await self.access_lost()
            await self.close(code=CLOSE_NO_ACCESS, reason="access lost")

    async def access_lost(self) -> None:
        """Say why before closing, where the socket's protocol has a way: a page must not depend on the close
        code alone reaching the browser (a dropped connection and a refused reconnect both read as 1006)."""

    def _still_authorized(self) -> bool:
        user = self.scope["user"]
        try:
            user.refresh_from_db()  # the copy loaded at connect is stale: staff or active may have changed
        except ObjectDoesNotExist:
            return False
        token = self.scope.get("api_token")  # a socket opened with an API token lives as long as the token
        if token is not None and not type(token).objects.active().filter(pk=token.pk).exists():
            return False
        return user.is_active and self.authorize() is not None

    async def live_event(self, message: dict[str, Any]) -> None:
        await self.send_json({"event": message["event"], "data": message["data"]})


class GroupEventsConsumer(AccessCheckedConsumer):
    """A page's live events: the socket joins the one group `group()` names and relays its events.

    `group()` reaches the object through its model's access function, which raises Http404 for a user who
    may not see it (missing and foreign alike), so the socket is refused, or closed once access is lost.
    """

    def group(self) -> str:
        raise NotImplementedError

    def authorize(self) -> list[str] | None:
        try:
            return [self.group()]
        except Http404:
            return None

    async def access_lost(self) -> None:
        await self.send_json({"event": "access.lost", "data": {}})
