from django.urls import path

from clusters.consumers import AgentConsumer, ClusterLiveConsumer

agent_websocket_urlpatterns = [
    path("agent/ws", AgentConsumer.as_asgi()),
]

browser_websocket_urlpatterns = [
    path("ws/clusters/<slug:slug>/", ClusterLiveConsumer.as_asgi()),
]
