"""REST endpoints for the caller and their organizations."""

from __future__ import annotations

from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import get_membership
from accounts.models import Membership, Organization


class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()


class OrganizationSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()

    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "personal", "created_at", "role"]

    def get_role(self, org: Organization) -> str:
        return self.context["roles"].get(org.pk, "")


class MeView(APIView):
    serializer_class = UserSerializer

    def get(self, request):
        return Response(UserSerializer(request.user).data)


class OrganizationListView(generics.ListAPIView):
    serializer_class = OrganizationSerializer

    def get_queryset(self):
        return Organization.objects.for_user(self.request.user).order_by("name")

    def get_serializer_context(self):
        roles = dict(Membership.objects.filter(user=self.request.user).values_list("organization_id", "role"))
        return {**super().get_serializer_context(), "roles": roles}


class OrganizationDetailView(APIView):
    serializer_class = OrganizationSerializer

    def get(self, request, org_slug: str):
        membership = get_membership(request.user, org_slug)
        data = OrganizationSerializer(membership.organization, context={"roles": {
            membership.organization_id: membership.role}}).data
        return Response(data)


