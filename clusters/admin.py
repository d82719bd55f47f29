from django.contrib import admin

from clusters.models import BootstrapComponent, Cluster, ClusterEvent, DesiredProject, ObservedProject


class ClusterEventInline(admin.TabularInline):
    model = ClusterEvent
    extra = 0
    can_delete = False
    readonly_fields = ["created_at", "kind", "message"]
    ordering = ["-created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "status", "simulated", "last_seen", "agent_version", "kubernetes_version",
                    "base_domain", "all_organizations"]
    list_filter = ["status", "simulated", "all_organizations"]
    search_fields = ["name", "slug", "base_domain"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["organizations"]
    readonly_fields = ["status", "last_seen", "agent_version", "kubernetes_version", "nodes", "capabilities",
                       "components", "session_id", "channel_name", "connected_at", "token_hash", "token_created_at",
                       "previous_token_hash", "previous_token_valid_until", "install_secret_hash",
                       "install_secret_expires_at", "created_at"]
    inlines = [ClusterEventInline]


@admin.register(ClusterEvent)
class ClusterEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "cluster", "kind", "message"]
    list_filter = ["kind", "cluster"]
    search_fields = ["cluster__name", "message"]


@admin.register(DesiredProject)
class DesiredProjectAdmin(admin.ModelAdmin):
    list_display = ["namespace", "cluster", "revision", "applied_revision", "updated_at", "last_error"]
    list_filter = ["cluster"]
    search_fields = ["namespace", "cluster__name"]


@admin.register(ObservedProject)
class ObservedProjectAdmin(admin.ModelAdmin):
    list_display = ["namespace", "cluster", "updated_at"]
    list_filter = ["cluster"]
    search_fields = ["namespace", "cluster__name"]


@admin.register(BootstrapComponent)
class BootstrapComponentAdmin(admin.ModelAdmin):
    list_display = ["cluster", "name", "state", "attempt", "updated_at", "reason"]
    list_filter = ["state", "name", "cluster"]
    search_fields = ["cluster__name", "cluster__slug", "name", "reason"]
    readonly_fields = ["cluster", "name", "state", "reason", "logs", "attempt", "version", "updated_at"]
