from django.urls import path

from accounts import api, views

urlpatterns = [
    path("", views.home, name="home"),
    path("o/new/", views.organization_create, name="organization_create"),
    path("o/<slug:org_slug>/", views.org_home, name="org_home"),
    path("o/<slug:org_slug>/settings/", views.org_settings, name="org_settings"),
    path("o/<slug:org_slug>/members/", views.members, name="members"),
    path("o/<slug:org_slug>/members/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("o/<slug:org_slug>/members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path(
        "o/<slug:org_slug>/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("invitations/<str:token>/", views.invitation, name="invitation"),
    path("settings/ssh-keys/", views.ssh_keys, name="ssh_keys"),
    path("settings/ssh-keys/<int:key_id>/delete/", views.ssh_key_delete, name="ssh_key_delete"),
    path("settings/api-tokens/", views.api_tokens, name="api_tokens"),
    path("settings/api-tokens/<int:token_id>/revoke/", views.api_token_revoke, name="api_token_revoke"),
]

api_urlpatterns = [
    path("me/", api.MeView.as_view(), name="api_me"),
    path("organizations/", api.OrganizationListView.as_view(), name="api_organizations"),
    path("organizations/<slug:org_slug>/", api.OrganizationDetailView.as_view(), name="api_organization"),
]
