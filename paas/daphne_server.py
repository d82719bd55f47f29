"""daphne, with less memory per idle WebSocket: `python -m paas.daphne_server` takes daphne's arguments.

One process holds thousands of idle agent sockets (goal: 5,000 under 150 MB; bench/tunnel_bench.py),
so a few kilobytes that daphne keeps per socket for nothing add up. Three things, by subclassing only:

- the application's input queue: asyncio.Queue holds four deques and an Event (~3 KB); daphne only
  calls put_nowait() and the application awaits get(), one message at a time;
- the HTTP channel that read the upgrade request stays registered as the socket's producer, keeping
  itself, the request, its headers and buffers (~3 KB) for the life of the WebSocket;
- autobahn copies its 29 options from the factory into every protocol's __dict__ (~2 KB per socket).
"""

from __future__ import annotations

import asyncio
import sys
from functools import partial

from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol


class Inbox:
    """What daphne uses of asyncio.Queue: put_nowait() from the protocol, get() as the app's receive."""

    __slots__ = ("items", "waiter")

    def __init__(self) -> None:
        self.items: list = []
        self.waiter: asyncio.Future | None = None

    def put_nowait(self, item) -> None:
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self):
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.items.pop(0)


class LeanWebSocketProtocol(WebSocketProtocol):
    def __getattr__(self, name: str):
        # Only for names not found on the instance: autobahn copies an option into the instance unless
        # hasattr() finds it, so its options are read from the (shared) factory instead.
        if name in WebSocketProtocol.CONFIG_ATTRS and "factory" in self.__dict__:
            return getattr(self.factory, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def connectionMade(self) -> None:
        # The HTTP channel that read the upgrade request is still the transport's producer; nothing else
        # refers to it, and it keeps the request, its headers and buffers as long as the socket lives.
        producer = getattr(self.transport, "producer", None)
        if producer is not None and producer is not self:
            self.transport.unregisterProducer()
        super().connectionMade()


class LeanServer(Server):
    def create_application(self, protocol, scope):
        # daphne's own (4.2), with an Inbox in place of asyncio.Queue
        assert "application_instance" not in self.connections[protocol]
        inbox = Inbox()
        scope.setdefault("asgi", {"version": "3.0"})
        instance = self.application(scope=scope, receive=inbox.get, send=partial(self.handle_reply, protocol))
        if protocol not in self.connections:
            return None
        task = asyncio.ensure_future(instance, loop=asyncio.get_event_loop())
        self.connections[protocol]["application_instance"] = task
        return inbox

    @property
    def ws_factory(self):
        return self.__dict__["ws_factory"]

    @ws_factory.setter
    def ws_factory(self, factory) -> None:  # Server.run() builds the factory itself
        factory.protocol = LeanWebSocketProtocol
        self.__dict__["ws_factory"] = factory


class LeanCommandLineInterface(CommandLineInterface):
    server_class = LeanServer


if __name__ == "__main__":
    sys.exit(LeanCommandLineInterface.entrypoint())
