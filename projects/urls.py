from django.urls import path

from projects import api, views

P = "o/<slug:org_slug>/projects/<slug:project_slug>/"

urlpatterns = [
    path("o/<slug:org_slug>/projects/", views.project_list, name="project_list"),
    path(P, views.project_detail, name="project_detail"),
    path(P + "validate/", views.validate, name="project_validate"),
    path(P + "deploy/", views.deploy, name="project_deploy"),
    path(P + "redeploy/", views.redeploy, name="project_redeploy"),
    path(P + "delete/", views.project_delete, name="project_delete"),
    path(P + "services/", views.service_rows, name="project_service_rows"),
    path(P + "logs/", views.project_logs, name="project_logs"),
    path(P + "services/<str:name>/logs/", views.project_logs, name="service_logs"),
    path(P + "services/<str:name>/exposure/", views.service_exposure, name="project_service_exposure"),
    path(P + "services/<str:name>/terminal/", views.service_terminal, name="project_service_terminal"),
    path(P + "services/<str:name>/sleep/", views.service_sleep, name="project_service_sleep"),
    path(P + "services/<str:name>/wake/", views.service_wake, name="project_service_wake"),
    path("o/<slug:org_slug>/project-rows/", views.project_rows, name="project_rows"),
    path("o/<slug:org_slug>/deleted-projects/<slug:project_slug>/restore/", views.project_restore,
         name="project_restore"),
    path("suspended/<uuid:uid>/", views.project_suspended, name="project_suspended"),
    path(P + "services/<str:name>/domains/", views.domain_add, name="project_domain_add"),
    path(P + "services/<str:name>/domains/<int:domain_id>/verify/", views.domain_verify, name="project_domain_verify"),
    path(P + "services/<str:name>/domains/<int:domain_id>/delete/", views.domain_delete, name="project_domain_delete"),
    path(P + "variables/", views.variables, name="project_variables"),
    path(P + "variables/<int:variable_id>/delete/", views.variable_delete, name="project_variable_delete"),
    path(P + "releases/", views.release_list, name="release_list"),
    path(P + "releases/<int:revision>/", views.release_detail, name="release_detail"),
    path(P + "releases/<int:revision>/rollback/", views.rollback, name="release_rollback"),
    path(P + "kubectl/", views.kubectl_create, name="project_kubectl_create"),
    path(P + "kubectl/<int:access_id>/revoke/", views.kubectl_revoke, name="project_kubectl_revoke"),
    path(P + "data/<str:service>/reveal/", views.reveal_data_credentials, name="project_data_reveal"),
    path(P + "database/dump/", views.database_dump, name="project_database_dump"),
    path(P + "database/restore/", views.database_restore, name="project_database_restore"),
]

A = "organizations/<slug:org_slug>/projects/"
AP = A + "<slug:project_slug>/"

api_urlpatterns = [
    path(A, api.ProjectListView.as_view(), name="api_projects"),
    path("organizations/<slug:org_slug>/deleted-projects/", api.DeletedProjectListView.as_view(),
         name="api_deleted_projects"),
    path("organizations/<slug:org_slug>/deleted-projects/<slug:project_slug>/restore/", api.RestoreView.as_view(),
         name="api_project_restore"),
    path(AP, api.ProjectDetailView.as_view(), name="api_project"),
    path(AP + "validate/", api.ValidateView.as_view(), name="api_project_validate"),
    path(AP + "releases/", api.ReleaseListView.as_view(), name="api_releases"),
    path(AP + "releases/<int:revision>/", api.ReleaseDetailView.as_view(), name="api_release"),
    path(AP + "releases/<int:revision>/rollback/", api.RollbackView.as_view(), name="api_release_rollback"),
    path(AP + "logs/", api.LogsView.as_view(), name="api_project_logs"),
    path(AP + "services/<str:name>/logs/", api.LogsView.as_view(), name="api_service_logs"),
    path(AP + "services/<str:name>/exposure/", api.ServiceExposureView.as_view(), name="api_service_exposure"),
    path(AP + "services/<str:name>/sleep/", api.ServiceSleepView.as_view(), name="api_service_sleep"),
    path(AP + "services/<str:name>/wake/", api.ServiceWakeView.as_view(), name="api_service_wake"),
    path(AP + "services/<str:name>/domains/", api.DomainListView.as_view(), name="api_service_domains"),
    path(AP + "services/<str:name>/domains/<int:domain_id>/", api.DomainDetailView.as_view(),
         name="api_service_domain"),
    path(AP + "services/<str:name>/domains/<int:domain_id>/verify/", api.DomainVerifyView.as_view(),
         name="api_service_domain_verify"),
    path(AP + "variables/", api.VariableListView.as_view(), name="api_variables"),
    path(AP + "variables/<int:variable_id>/", api.VariableDetailView.as_view(), name="api_variable"),
    path(AP + "database/dump/", api.DatabaseDumpView.as_view(), name="api_database_dump"),
    path(AP + "database/restore/", api.DatabaseRestoreView.as_view(), name="api_database_restore"),
]
