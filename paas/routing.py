"""All WebSocket routes, in one place. Apps contribute their own lists."""

from django.urls import path

from accounts.consumers import OrganizationEventsConsumer

# Paths under this prefix are for cluster agents (token auth, no browser session).
AGENT_PREFIX = "/agent/"

agent_websocket_urlpatterns: list = []

browser_websocket_urlpatterns: list = [
    path("ws/o/<slug:org_slug>/events/", OrganizationEventsConsumer.as_asgi()),
]
