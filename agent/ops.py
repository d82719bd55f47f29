"""What an operation sees of the tunnel: the handler signatures, the error that answers, and a stream.

The tunnel runs operations by name and knows nothing of Kubernetes; the operations (handlers, infra,
logs, shell) are written against these and never import the tunnel, so the agent's layers go one way
only: tunnel -> handlers -> reconcile/observe/data -> k8s (import-linter checks it; pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

OpHandler = Callable[[dict[str, Any]], Awaitable[Any]]
StreamHandler = Callable[["Stream", dict[str, Any]], Awaitable[None]]


class OpError(Exception):
    """Raised by an operation to answer with a specific protocol error code (protocol.ERROR_CODES)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Stream(Protocol):
    """One multiplexed byte stream with credit-based flow control (agent.tunnel.Stream is the real one)."""

    id: int
    closed: bool

    @property
    def credit(self) -> int:
        """Bytes the peer is ready to take now: a sender that must not block (logs) drops when this is 0."""
        ...

    async def send(self, data: bytes) -> None: ...

    async def writable(self) -> None:
        """Wait until the peer grants credit (or the stream closes)."""

    async def recv(self) -> bytes | None:
        """The next chunk from the peer, or None once the peer closed the stream."""

    async def close(self, reason: str = "") -> None: ...
