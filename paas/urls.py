from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from accounts.urls import api_urlpatterns as accounts_api
from audit.urls import api_urlpatterns as audit_api
from billing.urls import api_urlpatterns as billing_api
from clusters.urls import api_urlpatterns as clusters_api
from projects.urls import api_urlpatterns as projects_api
from sshgateway.urls import api_urlpatterns as sshgateway_api

admin.site.site_header = "PaaS operations"
admin.site.site_title = "PaaS admin"

api_v1 = [
    *accounts_api,
    *billing_api,
    *clusters_api,
    *projects_api,
    *audit_api,
    *sshgateway_api,
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("", include("accounts.urls")),
    path("", include("billing.urls")),
    path("", include("clusters.urls")),
    path("", include("projects.urls")),
    path("", include("audit.urls")),
    path("", include("ops.urls")),
]
