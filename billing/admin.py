"""Operators' billing screens: plans, accounts, the read-only ledger with a form to add grants,
manual top-ups, refunds and adjustments (reason required), and read-only usage and suspensions."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from billing import ledger
from billing.forms import OperatorEntryForm
from billing.models import (
    BalanceNotification,
    BillingAccount,
    CreditEntry,
    EntryKind,
    Plan,
    SuspensionRecord,
    UsageRecord,
)
from billing.money import format_credits
from billing.providers import get_provider


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_default", "price_vcpu_second", "price_memory_gib_second",
                    "price_volume_gib_month", "max_projects", "quota_cpu_millicores", "quota_memory_mib"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (None, {"fields": ["name", "slug", "is_default"]}),
        ("Prices (microcredits; 1 credit = 1,000,000)", {"fields": [
            "price_vcpu_second", "price_memory_gib_second", "price_volume_gib_month", "price_database_gib_month",
            "price_bucket_gib_month",
        ]}),
        ("Limits", {"fields": [
            "max_projects", "max_services", "max_replicas", "quota_cpu_millicores", "quota_memory_mib",
            "quota_pods", "quota_storage_gib", "quota_volumes", "max_container_cpu_millicores",
            "max_container_memory_mib",
        ]}),
        ("Container defaults", {"fields": [
            "default_cpu_request_millicores", "default_cpu_limit_millicores", "default_memory_request_mib",
            "default_memory_limit_mib", "default_volume_gib",
        ]}),
    ]


@admin.register(BillingAccount)
class BillingAccountAdmin(admin.ModelAdmin):
    list_display = ["organization", "plan", "balance_credits", "notice_level", "grace_until", "suspended_at"]
    list_filter = ["plan", "notice_level", ("suspended_at", admin.EmptyFieldListFilter)]
    search_fields = ["organization__name", "organization__slug"]
    fields = ["organization", "plan", "balance_credits", "notice_level", "grace_minutes", "grace_until",
              "suspended_at", "created_at", "updated_at"]
    readonly_fields = ["organization", "balance_credits", "notice_level", "suspended_at", "created_at", "updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created with the organization

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="balance (credits)", ordering="balance")
    def balance_credits(self, account: BillingAccount) -> str:
        return format_credits(account.balance)


@admin.register(CreditEntry)
class CreditEntryAdmin(admin.ModelAdmin):
    """Entries are never changed or deleted; operators add new ones (a correction is an entry)."""

    list_display = ["created_at", "organization", "kind", "amount_credits", "balance_after_credits", "reference",
                    "created_by_email"]
    list_filter = ["kind", "created_at"]
    search_fields = ["organization__name", "organization__slug", "reference", "reason", "idempotency_key"]
    date_hierarchy = "created_at"
    list_select_related = ["organization"]
    form = OperatorEntryForm
    autocomplete_fields = ["organization"]
    readonly_fields = ["organization", "kind", "amount", "balance_after", "reference", "reason", "created_by",
                       "created_by_email", "created_at", "idempotency_key"]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return ["organization", "kind", "credits", "reference", "reason", "idempotency_key"]
        return self.readonly_fields

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        if obj is not None:
            kwargs["form"] = admin.ModelAdmin.form
        return super().get_form(request, obj, change, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="amount (credits)", ordering="amount")
    def amount_credits(self, entry: CreditEntry) -> str:
        return format_credits(entry.amount, sign=True)

    @admin.display(description="balance after", ordering="balance_after")
    def balance_after_credits(self, entry: CreditEntry) -> str:
        return format_credits(entry.balance_after)

    def save_model(self, request: HttpRequest, obj: CreditEntry, form: OperatorEntryForm, change: bool) -> None:
        if change:
            raise PermissionDenied("Ledger entries cannot be changed; add a correcting entry.")
        data = form.cleaned_data
        if data["kind"] == EntryKind.TOP_UP:
            result = get_provider("manual").top_up(
                data["organization"], data["credits"], payment_id=data["idempotency_key"], actor=request.user,
                reference=data["reference"], reason=data["reason"],
            )
        else:
            result = ledger.record_entry(
                data["organization"], amount=data["credits"], kind=data["kind"],
                idempotency_key=data["idempotency_key"], reference=data["reference"], reason=data["reason"],
                created_by=request.user,
            )
        if not result.created:
            messages.info(request, "This form was submitted before; the entry was recorded once.")
        # Hand the stored entry back to the admin for its log entry and redirect.
        obj.pk = result.entry.pk
        obj._state.adding = False
        obj.__dict__.update({k: v for k, v in result.entry.__dict__.items() if k != "_state"})


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = ["window_start", "organization", "cluster_key", "project_key", "service", "replica_seconds",
                    "cpu_millicores", "memory_mib", "database_bytes", "bucket_bytes", "cost_millicredits", "charged_at"]
    list_filter = ["cluster_key", ("charged_at", admin.EmptyFieldListFilter)]
    search_fields = ["organization__slug", "project_key", "service", "charge_key"]
    date_hierarchy = "window_start"
    list_select_related = ["organization"]


@admin.register(SuspensionRecord)
class SuspensionRecordAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "action", "balance", "reason", "created_by"]
    list_filter = ["action"]
    search_fields = ["organization__name", "organization__slug"]


@admin.register(BalanceNotification)
class BalanceNotificationAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "kind", "balance", "sent_at", "recipients"]
    list_filter = ["kind", ("sent_at", admin.EmptyFieldListFilter)]
    search_fields = ["organization__name", "organization__slug"]
