"""WebSockets opened with a personal API token (`Authorization: Bearer paas_...`): the `paas` CLI and scripts.

Browsers cannot set an Authorization header on a WebSocket, so such a socket never carries an ambient
credential a foreign page could borrow: it needs no Origin check (the CLI sends no Origin) and the session
cookie is ignored. The user comes from the token alone; the consumers then apply their usual access gates.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from accounts.services import authenticate_api_token

# Close code of a socket whose API token is not valid, expired or revoked (refused before accept).
CLOSE_BAD_TOKEN = 4401


def bearer_token(scope: dict[str, Any]) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, "" for a malformed one, None without one."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            parts = value.decode("latin-1").split()
            if parts and parts[0].lower() == "bearer":
                return parts[1] if len(parts) == 2 else ""
    return None


class APITokenWebSocketAuth:
    """ASGI middleware: scope["user"] (and scope["api_token"]) from the bearer token, or the socket is refused."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        raw = bearer_token(scope)
        token = await database_sync_to_async(authenticate_api_token)(raw) if raw else None
        if token is None:
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": CLOSE_BAD_TOKEN})
            return None
        return await self.inner({**scope, "user": token.user, "api_token": token}, receive, send)
