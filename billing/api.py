"""REST endpoints, scoped to one organization: balance (every member), ledger, usage records and usage cost
summaries per project, per service and per project and day (owners and admins). Amounts are integer
millicredits; `*_credits` fields repeat them as text for people."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.functions import TruncDate
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import reports
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
                  "cpu_millicores", "memory_mib", "volume_gib", "database_gib", "bucket_gib", "database_bytes",
                  "bucket_bytes", "cost_millicredits", "charged"]

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


class CostSummarySerializer(serializers.Serializer):
    """A summary row: its group fields, then the cost split by what was used (whole millicredits of each exact
    sum, so the parts may add up to a millicredit or so less than the total)."""

    windows = serializers.IntegerField(help_text="Usage records (service windows) summed.")
    replica_seconds = serializers.IntegerField(help_text="Seconds replicas ran, summed.")
    compute_millicredits = serializers.IntegerField(help_text="CPU and memory of running replicas.")
    volume_millicredits = serializers.IntegerField(help_text="Volume storage.")
    database_millicredits = serializers.IntegerField(help_text="The managed database, by its size in bytes.")
    bucket_millicredits = serializers.IntegerField(help_text="The bucket, by its size in bytes.")
    cost_millicredits = serializers.IntegerField(help_text="Everything.")
    cost_credits = serializers.CharField()

    group: tuple[tuple[str, str], ...] = ()  # (field in the response, key in the row)

    def to_representation(self, row: dict[str, Any]) -> dict[str, Any]:
        parts = reports.in_millicredits(row)
        return {**{name: row[key] for name, key in self.group}, "windows": row["windows"],
                "replica_seconds": int(row["replica_seconds"] or 0), **parts,
                "cost_credits": format_credits(parts["cost_millicredits"])}


class ProjectCostSerializer(CostSummarySerializer):
    project = serializers.CharField(help_text="Project key (namespace).")
    group = (("project", "project_key"),)


class ServiceCostSerializer(CostSummarySerializer):
    project = serializers.CharField(help_text="Project key (namespace).")
    service = serializers.CharField(help_text='Compose service; "" for the project\'s database and bucket.',
                                    allow_blank=True)
    group = (("project", "project_key"), ("service", "service"))


class DailyProjectCostSerializer(CostSummarySerializer):
    day = serializers.DateField(help_text="UTC day of the windows.")
    project = serializers.CharField(help_text="Project key (namespace).")
    group = (("day", "day"), ("project", "project_key"))


USAGE_FILTERS = [
    OpenApiParameter("project", str, description="Project key (namespace)."),
    OpenApiParameter("service", str, description="Service name."), *DATE_RANGE,
]


class CostSummaryView(generics.ListAPIView):
    group: tuple[str, ...] = ()

    def records(self):
        account, _ = get_account_for_user(self.request.user, self.kwargs["org_slug"], "view_billing")
        return filtered(UsageFilterForm, self.request, UsageRecord.objects.filter(organization=account.organization))

    def get_queryset(self):
        return reports.cost_summary(self.records(), *self.group)


@extend_schema_view(get=extend_schema(parameters=USAGE_FILTERS, responses=ProjectCostSerializer(many=True)))
class ProjectCostView(CostSummaryView):
    """Cost per project, split into compute, volumes, database and bucket: ?since=2026-01-01&until=2026-01-31"""

    serializer_class = ProjectCostSerializer
    group = ("project_key",)


@extend_schema_view(get=extend_schema(parameters=USAGE_FILTERS, responses=ServiceCostSerializer(many=True)))
class ServiceCostView(CostSummaryView):
    """Cost per project and service (service "" is the project's database and bucket): ?project=<namespace>"""

    serializer_class = ServiceCostSerializer
    group = ("project_key", "service")


@extend_schema_view(get=extend_schema(parameters=USAGE_FILTERS, responses=DailyProjectCostSerializer(many=True)))
class DailyProjectCostView(CostSummaryView):
    """Cost per UTC day and project, oldest day first (the billing page's chart)."""

    serializer_class = DailyProjectCostSerializer
    group = ("day", "project_key")

    def get_queryset(self):
        return reports.cost_summary(self.records().annotate(day=TruncDate("window_start")), *self.group)
