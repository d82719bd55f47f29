"""REST endpoints, scoped to one organization: balance (every member), ledger and usage (owners and
admins). Amounts are integer millicredits; `*_credits` fields repeat them as text for people."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.access import get_account_for_user
from billing.forms import LedgerFilterForm, UsageFilterForm
from billing.models import CreditEntry, EntryKind, UsageRecord
from billing.money import format_credits
from lib.filters import DATE_RANGE, filtered


class BalanceSerializer(serializers.Serializer):
    organization = serializers.SlugField()
    balance = serializers.IntegerField(help_text="Millicredits.")
    balance_credits = serializers.CharField()
    low_balance = serializers.BooleanField()
    suspended = serializers.BooleanField()
    suspended_at = serializers.DateTimeField(allow_null=True)
    grace_until = serializers.DateTimeField(allow_null=True, help_text="Suspension time while at zero.")
    plan = serializers.CharField()


class BalanceView(APIView):
    serializer_class = BalanceSerializer

    def get(self, request, org_slug: str):
        account, _ = get_account_for_user(request.user, org_slug)
        org = account.organization
        data = {
            "organization": org.slug,
            "balance": account.balance,
            "balance_credits": format_credits(account.balance),
            "low_balance": account.balance <= settings.BILLING_LOW_BALANCE_THRESHOLD,
            "suspended": account.is_suspended,
            "suspended_at": account.suspended_at,
            "grace_until": account.grace_until,
            "plan": account.plan.slug,
        }
        return Response(BalanceSerializer(data).data)


class CreditEntrySerializer(serializers.ModelSerializer):
    amount_credits = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by_email")

    class Meta:
        model = CreditEntry
        fields = ["id", "created_at", "kind", "amount", "amount_credits", "balance_after", "reference", "reason",
                  "created_by", "idempotency_key"]

    def get_amount_credits(self, entry: CreditEntry) -> str:
        return format_credits(entry.amount)


class UsageRecordSerializer(serializers.ModelSerializer):
    cluster = serializers.CharField(source="cluster_key")
    project = serializers.CharField(source="project_key")
    cost_millicredits = serializers.IntegerField(read_only=True, help_text="Whole millicredits of the exact cost.")
    charged = serializers.SerializerMethodField()

    class Meta:
        model = UsageRecord
        fields = ["id", "cluster", "project", "service", "window_start", "window_seconds", "replica_seconds",
                  "cpu_millicores", "memory_mib", "volume_gib", "database_gib", "bucket_gib", "cost_millicredits",
                  "charged"]

    def get_charged(self, record: UsageRecord) -> bool:
        return record.charged_at is not None


@extend_schema_view(get=extend_schema(parameters=[
    OpenApiParameter("kind", str, enum=EntryKind.values, description="Only entries of this kind."),
    OpenApiParameter("q", str, description="Part of the reference, reason or author's e-mail."), *DATE_RANGE,
]))
class LedgerView(generics.ListAPIView):
    """The ledger, newest first: ?kind=top_up&since=2026-01-01&until=2026-01-31"""

    serializer_class = CreditEntrySerializer

    def get_queryset(self):
        account, _ = get_account_for_user(self.request.user, self.kwargs["org_slug"], "view_billing")
        org = account.organization
        return filtered(LedgerFilterForm, self.request, CreditEntry.objects.filter(organization=org).order_by("-id"))


@extend_schema_view(get=extend_schema(parameters=[
    OpenApiParameter("project", str, description="Project key (namespace)."),
    OpenApiParameter("service", str, description="Service name."), *DATE_RANGE,
]))
class UsageView(generics.ListAPIView):
    """Usage records, newest window first: ?project=<namespace>&service=web&since=2026-01-01"""

    serializer_class = UsageRecordSerializer

    def get_queryset(self):
        account, _ = get_account_for_user(self.request.user, self.kwargs["org_slug"], "view_billing")
        org = account.organization
        qs = UsageRecord.objects.filter(organization=org).order_by("-window_start", "id")
        return filtered(UsageFilterForm, self.request, qs)
