from django.contrib import admin

from projects.models import Project, Release, Service, Variable


class ServiceInline(admin.TabularInline):
    model = Service
    extra = 0
    fields = ["name", "kind", "image", "exposure", "public_host", "status", "replicas", "ready_replicas"]
    readonly_fields = fields


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "cluster", "namespace", "suspended", "created_at", "deleted_at"]
    list_filter = ["cluster", "suspended", "allow_internet_egress", "wants_database", "wants_bucket"]
    search_fields = ["name", "slug", "namespace", "organization__name", "organization__slug"]
    autocomplete_fields = ["organization"]
    # The uid is the namespace's ownership mark (paas.dev/project-uid); docs/projects.md, "Names".
    readonly_fields = ["uid", "namespace", "created_at", "created_by"]
    inlines = [ServiceInline]


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "kind", "image", "exposure", "status", "ready_replicas", "replicas"]
    list_filter = ["kind", "exposure", "status"]
    search_fields = ["name", "image", "public_host", "project__slug", "project__organization__slug"]


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    list_display = ["project", "revision", "kind", "status", "error_code", "created_by", "created_at", "finished_at"]
    list_filter = ["status", "kind", "error_code"]
    search_fields = ["project__slug", "project__organization__slug", "error"]
    # sealed_manifests holds encrypted Secret data: not shown.
    exclude = ["sealed_manifests"]
    readonly_fields = ["project", "revision", "kind", "rollback_of", "compose_text", "variables", "manifests",
                       "warnings", "steps", "created_by", "created_at", "started_at", "finished_at"]


@admin.register(Variable)
class VariableAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "service", "is_secret", "updated_at"]
    list_filter = ["is_secret"]
    search_fields = ["name", "project__slug", "project__organization__slug"]
    # Secret values are write-only, here too.
    exclude = ["encrypted_value"]
    readonly_fields = ["project", "service", "name", "is_secret", "value"]
