"""REST: the organization's audit log, read-only, for owners and admins."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import generics, serializers

from accounts.access import get_organization_for_user
from audit.forms import AuditFilterForm
from audit.models import Action, AuditEvent
from lib.filters import DATE_RANGE, filtered


class TargetSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="What was acted on: project, user, variable, cluster, ...")
    id = serializers.CharField()
    label = serializers.CharField(help_text="Its name at the time.")


class AuditEventSerializer(serializers.ModelSerializer):
    time = serializers.DateTimeField(source="created_at")
    actor = serializers.CharField(source="actor_label", help_text="E-mail of who did it; empty for the system.")
    target = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = ["id", "time", "action", "actor", "ip_address", "target", "details"]

    @extend_schema_field(TargetSerializer(allow_null=True))
    def get_target(self, event: AuditEvent) -> dict[str, str] | None:
        if not event.target_type:
            return None
        return {"type": event.target_type, "id": event.target_id, "label": event.target_label}


@extend_schema_view(get=extend_schema(parameters=[
    OpenApiParameter("action", str, enum=Action.values, description="Only events of this action."),
    OpenApiParameter("actor", str, description="Part of the actor's e-mail."), *DATE_RANGE,
]))
class AuditEventListView(generics.ListAPIView):
    """The organization's audit events, newest first: ?action=member.removed&actor=alice&since=2026-01-01"""

    serializer_class = AuditEventSerializer

    def get_queryset(self):
        org, _ = get_organization_for_user(self.request.user, self.kwargs["org_slug"], "view_audit")
        return filtered(AuditFilterForm, self.request, AuditEvent.objects.filter(organization=org))
