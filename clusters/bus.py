"""The tunnel's messages between control-plane processes: one inbox per process and event loop.

Whatever other processes must reach registers under a key in its process's inbox: an agent's live
session (in the daphne process holding the socket), a caller waiting for an RPC reply, a stream's
reader. Its address is "<inbox channel>#<key>"; `post(address, message)` reaches its handler.

The inbox is one channel of the pub/sub channel layer (settings.CHANNEL_LAYERS["tunnel"]):
- one subscription per process, not a channel per socket or per call, so thousands of idle agents
  cost no subscriptions or receive tasks, and a call costs no channel set-up;
- Redis pub/sub delivers a message in one round trip, where the default (list-based) layer takes
  several to send and several more to receive. Pub/sub keeps nothing for absent listeners; callers
  and consumers already handle a message that reaches nobody (see clusters.rpc: acknowledgements).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import get_channel_layer

log = logging.getLogger("clusters.bus")

TUNNEL_LAYER = "tunnel"

Handler = Callable[[dict[str, Any]], Awaitable[None] | None]


def split_address(address: str) -> tuple[str, str]:
    channel, _, key = address.rpartition("#")
    return channel, key


async def post(address: str, message: dict[str, Any]) -> None:
    """Deliver `message` to whatever is registered at `address`, in whichever process it lives."""
    channel, key = split_address(address)
    await get_channel_layer(TUNNEL_LAYER).send(channel, {**message, "to": key})


class Inbox:
    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.handlers: dict[str, Handler] = {}
        self._keys = itertools.count(1)
        self.task: asyncio.Task | None = None

    def register(self, handler: Handler, key: str | None = None) -> str:
        """Route messages for `key` (a fresh one when omitted) to `handler`; returns the address."""
        key = key or f"k{next(self._keys)}"
        self.handlers[key] = handler
        return f"{self.channel}#{key}"

    def unregister(self, address: str) -> None:
        self.handlers.pop(split_address(address)[1], None)

    async def run(self) -> None:
        layer = get_channel_layer(TUNNEL_LAYER)
        while True:
            try:
                message = await layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away for a moment: the registered sockets and callers are unaffected
                log.exception("inbox %s could not read; retrying", self.channel)
                await asyncio.sleep(1)
                continue
            handler = self.handlers.get(message.pop("to", ""))
            try:
                if handler is None:
                    await undeliverable(message)
                elif inspect.isawaitable(result := handler(message)):
                    await result
            except Exception:  # one bad message must not stop the inbox
                log.exception("handling %s failed", message.get("type"))


async def undeliverable(message: dict[str, Any]) -> None:
    """Answer a request whose addressee is gone, so its sender need not wait for a timeout."""
    if message.get("type") == "agent.rpc" and message.get("reply_to"):
        await post(message["reply_to"], {"type": "rpc.error", "code": "offline", "delivered": False,
                                         "message": "the agent's session has ended"})
    elif message.get("type") == "agent.stream.open" and message.get("owner"):
        await post(message["owner"], {"type": "stream.closed", "id": None, "reason": "the agent's session has ended"})


_inboxes: dict[asyncio.AbstractEventLoop, asyncio.Task[Inbox]] = {}


async def inbox() -> Inbox:
    """The running event loop's inbox, opened on first use (daphne's loop, the sync callers' loop, a test's)."""
    loop = asyncio.get_running_loop()
    opening = _inboxes.get(loop)
    if opening is None or (opening.done() and opening.exception() is not None):
        for closed in [other for other in _inboxes if other.is_closed()]:  # loops of finished asyncio.run()s
            del _inboxes[closed]
        opening = _inboxes[loop] = loop.create_task(_open())
    return await asyncio.shield(opening)


async def _open() -> Inbox:
    layer = get_channel_layer(TUNNEL_LAYER)
    box = Inbox(await layer.new_channel("inbox."))
    # Wait until our own message comes back: then the subscription is live, and nothing sent to an
    # address handed out from now on can be missed.
    ready = asyncio.get_running_loop().create_future()
    box.register(lambda message: ready.done() or ready.set_result(True), key="ready")
    box.task = asyncio.get_running_loop().create_task(box.run())
    for _ in range(25):
        await post(f"{box.channel}#ready", {"type": "ready"})
        try:
            await asyncio.wait_for(asyncio.shield(ready), 0.2)
        except TimeoutError:
            continue
        box.unregister(f"{box.channel}#ready")
        return box
    box.task.cancel()
    raise ConnectionError(f"the tunnel channel layer delivers nothing to {box.channel}: is Redis reachable?")
