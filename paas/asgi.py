"""ASGI entry point: HTTP through Django, WebSockets through Channels.

Browser sockets are origin-checked and session-authenticated. Agents are not browsers
(no Origin header, no session): their sockets authenticate with a cluster token inside
the consumer, so they are routed around the browser stack by path prefix.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas.settings")
django_asgi_app = get_asgi_application()  # loads the app registry before consumers import models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from paas.routing import AGENT_PREFIX, agent_websocket_urlpatterns, browser_websocket_urlpatterns  # noqa: E402

browser_sockets = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(browser_websocket_urlpatterns)))
agent_sockets = URLRouter(agent_websocket_urlpatterns)


async def websocket_app(scope, receive, send):
    app = agent_sockets if scope["path"].startswith(AGENT_PREFIX) else browser_sockets
    return await app(scope, receive, send)


application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket_app})
