"""Operators' REST endpoints (staff only; 404 for everyone else, as on the cluster pages).

Enough for tooling such as bin/e2e-k3s: register a cluster and get its one-time install URL, issue a
new install URL, and read the connection and bootstrap state.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters import infrastructure, services
from clusters.access import get_cluster_for_operator, require_operator
from clusters.models import Cluster
from clusters.views import install_context
from lib.pagination import paginated_response


def cluster_dict(cluster: Cluster) -> dict[str, Any]:
    reported = {c.name: c for c in cluster.bootstrap_components.all()}
    return {
        "name": cluster.name, "slug": cluster.slug, "base_domain": cluster.base_domain,
        "simulated": cluster.simulated, "status": cluster.status, "connected": cluster.is_connected,
        "agent_version": cluster.agent_version, "kubernetes_version": cluster.kubernetes_version,
        "nodes": cluster.nodes,
        # Every component the bootstrap installs, in order; state "unreported" until the agent reports it.
        "infrastructure": [
            {"component": name, "state": reported[name].state, "reason": reported[name].reason} if name in reported
            else {"component": name, "state": "unreported", "reason": ""}
            for name in infrastructure.COMPONENT_ORDER],
    }


def install_dict(cluster: Cluster) -> dict[str, Any]:
    context = install_context(cluster, services.issue_install_secret(cluster))
    return {**cluster_dict(cluster), "install_url": context["install_url"],
            "install_command": context["install_command"], "install_url_ttl_minutes": context["ttl_minutes"]}


class ComponentSerializer(serializers.Serializer):
    component = serializers.CharField()
    state = serializers.CharField(help_text="pending, installing, ready, failed, or unreported")
    reason = serializers.CharField()


class ClusterSerializer(serializers.Serializer):
    """The answer's shape (cluster_dict), for the OpenAPI schema."""

    name = serializers.CharField()
    slug = serializers.SlugField()
    base_domain = serializers.CharField()
    simulated = serializers.BooleanField()
    status = serializers.CharField(help_text="pending, online, degraded or offline")
    connected = serializers.BooleanField()
    agent_version = serializers.CharField()
    kubernetes_version = serializers.CharField()
    nodes = serializers.ListField(child=serializers.DictField())
    infrastructure = ComponentSerializer(many=True)


class InstallSerializer(ClusterSerializer):
    install_url = serializers.URLField(help_text="Single use; `kubectl apply -f` it on the cluster.")
    install_command = serializers.CharField()
    install_url_ttl_minutes = serializers.IntegerField()


class ClusterCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    base_domain = serializers.CharField(max_length=253, help_text="Services get <service>-<project>-<org>.<this>.")
    ssh_endpoint = serializers.CharField(max_length=260, required=False, allow_blank=True, default="")


class ClusterListView(GenericAPIView):
    serializer_class = ClusterCreateSerializer

    @extend_schema(responses=ClusterSerializer(many=True))
    def get(self, request):
        require_operator(request.user)
        clusters = Cluster.objects.prefetch_related("bootstrap_components").order_by("name")
        return paginated_response(self, clusters, cluster_dict)

    @extend_schema(request=ClusterCreateSerializer, responses={201: InstallSerializer})
    def post(self, request):
        """Register a cluster open to every organization; the answer holds its single-use install URL."""
        require_operator(request.user)
        form = ClusterCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        d = form.validated_data
        try:
            cluster = services.create_cluster(d["name"], d["base_domain"], d["ssh_endpoint"])
        except ValidationError as exc:
            return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(install_dict(cluster), status=status.HTTP_201_CREATED)


class ClusterDetailView(APIView):
    serializer_class = ClusterSerializer

    def get(self, request, slug: str):
        return Response(cluster_dict(get_cluster_for_operator(request.user, slug)))


class ClusterInstallView(APIView):
    @extend_schema(request=None, responses=InstallSerializer)
    def post(self, request, slug: str):
        """A new single-use install URL (the previous one stops working)."""
        return Response(install_dict(get_cluster_for_operator(request.user, slug)))
