"""REST: where the SSH gateway listens, for clients that build the `ssh` command."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from sshgateway.hostkey import host_key_fingerprint


class SSHGatewaySerializer(serializers.Serializer):
    host = serializers.CharField()
    port = serializers.IntegerField()
    host_key_fingerprint = serializers.CharField(help_text="SHA256:..., as OpenSSH prints it on first connection.")
    login = serializers.CharField(help_text="The user name's form: <organization>.<project>.<service>.")


class SSHGatewayView(APIView):
    """Where the SSH gateway listens, for clients that build the `ssh` command (the CLI's `paas ssh`)."""

    serializer_class = SSHGatewaySerializer

    @extend_schema(responses=SSHGatewaySerializer)
    def get(self, request):
        return Response({"host": settings.SSH_PUBLIC_HOST, "port": settings.SSH_PUBLIC_PORT,
                         "host_key_fingerprint": host_key_fingerprint(),
                         "login": "<organization>.<project>.<service>"})
