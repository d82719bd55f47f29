from django.urls import path

from audit import api, views

urlpatterns = [
    path("o/<slug:org_slug>/audit/", views.audit_log, name="audit_log"),
    path("o/<slug:org_slug>/audit/events.csv", views.audit_csv, name="audit_csv"),
]

api_urlpatterns = [
    path("organizations/<slug:org_slug>/audit-events/", api.AuditEventListView.as_view(), name="api_audit_events"),
]
