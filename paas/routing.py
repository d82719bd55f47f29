"""All WebSocket routes, in one place. Apps contribute their own lists."""

from django.urls import path

from accounts.consumers import OrganizationEventsConsumer
from clusters import routing as clusters_routing
from projects.consumers import TerminalConsumer

# Paths under this prefix are for cluster agents (token auth, no browser session).
AGENT_PREFIX = "/agent/"

agent_websocket_urlpatterns: list = [
    *clusters_routing.agent_websocket_urlpatterns,
]

browser_websocket_urlpatterns: list = [
    path("ws/o/<slug:org_slug>/events/", OrganizationEventsConsumer.as_asgi()),
    *clusters_routing.browser_websocket_urlpatterns,
    path("ws/o/<slug:org_slug>/projects/<slug:project_slug>/services/<str:name>/terminal/",
         TerminalConsumer.as_asgi()),
]
