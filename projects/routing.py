from django.urls import path

from projects.consumers import ExecConsumer, LogConsumer, TerminalConsumer

P = "ws/o/<slug:org_slug>/projects/<slug:project_slug>/"

browser_websocket_urlpatterns = [
    path(P + "logs/", LogConsumer.as_asgi()),
    path(P + "services/<str:service>/logs/", LogConsumer.as_asgi()),
    path(P + "services/<str:name>/terminal/", TerminalConsumer.as_asgi()),
    path(P + "services/<str:name>/exec/", ExecConsumer.as_asgi()),
]
