"""One helper to publish live events to browsers, from views, Celery tasks and consumers.

Groups are per tenant or per resource, so another tenant's events never reach a socket.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


def org_group(org_id: int) -> str:
    return f"org_{org_id}"


def publish(group: str, event: str, data: dict[str, Any]) -> None:
    """Send {"event": event, "data": data} to every socket in `group` (sync callers)."""
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(group, {"type": "live.event", "event": event, "data": data})


async def apublish(group: str, event: str, data: dict[str, Any]) -> None:
    layer = get_channel_layer()
    await layer.group_send(group, {"type": "live.event", "event": event, "data": data})
