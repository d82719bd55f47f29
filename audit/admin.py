from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Operators read everything; nobody adds, changes or deletes (the model refuses it as well)."""

    list_display = ["created_at", "action", "actor_label", "organization_label", "ip_address", "target_type",
                    "target_label"]
    list_filter = ["action", "created_at", "target_type"]
    search_fields = ["actor_label", "organization_label", "target_label", "ip_address"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
