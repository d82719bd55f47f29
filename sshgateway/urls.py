from django.urls import path

from sshgateway import api

api_urlpatterns = [
    path("ssh/", api.SSHGatewayView.as_view(), name="api_ssh_gateway"),
]
