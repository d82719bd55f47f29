"""daphne, with less memory per idle WebSocket: `python -m paas.daphne_server` takes daphne's arguments.

One default differs: a WebSocket may take up to 30 s (not daphne's 5) to finish its opening handshake, which
waits for the session lookup and access check. Under load those queue behind page requests, and at 5 s daphne
(autobahn's open-handshake timeout) dropped the connection: a live socket refused instead of opened late
(docs/load.md). `--websocket_connect_timeout N` still sets it.

One process holds thousands of idle agent sockets (goal: 5,000 under 150 MB; bench/tunnel_bench.py),
so a few kilobytes that daphne keeps per socket for nothing add up. Two things, by subclassing only:

- the HTTP channel that read the upgrade request stays registered as the socket's producer, keeping
  itself, the request, its headers and buffers (~3 KB) for the life of the WebSocket;
- autobahn copies its 29 options from the factory into every protocol's __dict__ (~2 KB per socket).
"""

from __future__ import annotations

import sys

from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol


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
    @property
    def ws_factory(self):
        return self.__dict__["ws_factory"]

    @ws_factory.setter
    def ws_factory(self, factory) -> None:  # Server.run() builds the factory itself
        factory.protocol = LeanWebSocketProtocol
        self.__dict__["ws_factory"] = factory


WEBSOCKET_CONNECT_TIMEOUT = 30  # seconds


class LeanCommandLineInterface(CommandLineInterface):
    server_class = LeanServer

    def __init__(self) -> None:
        super().__init__()
        self.parser.set_defaults(websocket_connect_timeout=WEBSOCKET_CONNECT_TIMEOUT)


if __name__ == "__main__":
    sys.exit(LeanCommandLineInterface.entrypoint())
