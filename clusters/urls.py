from django.urls import path

from clusters import api, views

urlpatterns = [
    path("clusters/", views.cluster_list, name="cluster_list"),
    path("clusters/new/", views.cluster_create, name="cluster_create"),
    path("clusters/<int:cluster_id>/agent.yaml", views.agent_manifest, name="cluster_agent_manifest"),
    path("clusters/<slug:slug>/", views.cluster_detail, name="cluster_detail"),
    path("clusters/<slug:slug>/edit/", views.cluster_edit, name="cluster_edit"),
    path("clusters/<slug:slug>/install/", views.cluster_install, name="cluster_install"),
    path("clusters/<slug:slug>/bootstrap/", views.cluster_bootstrap, name="cluster_bootstrap"),
    path("clusters/<slug:slug>/token/rotate/", views.cluster_rotate_token, name="cluster_rotate_token"),
    path("clusters/<slug:slug>/token/revoke/", views.cluster_revoke_token, name="cluster_revoke_token"),
]

api_urlpatterns = [
    path("clusters/", api.ClusterListView.as_view(), name="api_clusters"),
    path("clusters/<slug:slug>/", api.ClusterDetailView.as_view(), name="api_cluster"),
    path("clusters/<slug:slug>/install/", api.ClusterInstallView.as_view(), name="api_cluster_install"),
]
