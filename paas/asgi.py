"""ASGI entry point: HTTP through Django, WebSockets through Channels.

Browser sockets are origin-checked and session-authenticated. Agents are not browsers
(no Origin header, no session): their sockets authenticate with a cluster token inside
the consumer, so they are routed around the browser stack by path prefix. The same browser
routes opened with a personal API token (`Authorization: Bearer`, the CLI) authenticate with it
instead of the session (accounts/ws_auth.py). The kubectl proxy (projects/kubeproxy.py, docs/kubectl.md) takes
its own prefix, for HTTP and WebSockets alike: kubectl is no browser and authenticates with its kubeconfig's token.

The routing functions here are plain functions that return the chosen application's coroutine:
an `async def` router would stay suspended, with its frame and scope, for the whole life of every
socket, and thousands of idle agents each hold one (see bench/tunnel_bench.py).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "paas.settings")
django_asgi_app = get_asgi_application()  # loads the app registry before consumers import models

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from accounts.ws_auth import APITokenWebSocketAuth, bearer_token  # noqa: E402
from paas.routing import AGENT_PREFIX, agent_websocket_urlpatterns, browser_websocket_urlpatterns  # noqa: E402
from projects import kubeproxy  # noqa: E402
from projects.kubeaccess import PROXY_PREFIX  # noqa: E402

browser_sockets = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(browser_websocket_urlpatterns)))
token_sockets = APITokenWebSocketAuth(URLRouter(browser_websocket_urlpatterns))


def agent_sockets(scope, receive, send):
    """URLRouter for the agents' plain (argument-less) routes, without a coroutine of its own."""
    path = scope["path"].removeprefix("/")
    for route in agent_websocket_urlpatterns:
        if route.pattern.match(path):
            consumer = route.callback.consumer_class(**route.callback.consumer_initkwargs)
            return consumer(scope, receive, send)
    raise ValueError(f"No route found for path {path!r}.")


def websocket_app(scope, receive, send):
    if scope["path"].startswith(AGENT_PREFIX):
        return agent_sockets(scope, receive, send)
    app = browser_sockets if bearer_token(scope) is None else token_sockets
    return app(scope, receive, send)


def application(scope, receive, send):
    if scope["type"] in ("http", "websocket") and scope["path"].startswith(PROXY_PREFIX):
        return kubeproxy.application(scope, receive, send)
    if scope["type"] == "websocket":
        return websocket_app(scope, receive, send)
    if scope["type"] == "http":
        return django_asgi_app(scope, receive, send)
    raise ValueError(f"No application configured for scope type {scope['type']!r}")


application._asgi_single_callable = True  # a plain function, so servers would take it for ASGI 2 (double callable)
