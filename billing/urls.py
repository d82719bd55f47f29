from django.urls import path

from billing import api, views

urlpatterns = [
    path("o/<slug:org_slug>/billing/", views.billing, name="billing"),
    path("o/<slug:org_slug>/billing/ledger.csv", views.ledger_csv, name="billing_ledger_csv"),
    path("o/<slug:org_slug>/billing/usage.csv", views.usage_csv, name="billing_usage_csv"),
]

api_urlpatterns = [
    path("organizations/<slug:org_slug>/billing/balance/", api.BalanceView.as_view(), name="api_billing_balance"),
    path("organizations/<slug:org_slug>/billing/ledger/", api.LedgerView.as_view(), name="api_billing_ledger"),
    path("organizations/<slug:org_slug>/billing/usage/", api.UsageView.as_view(), name="api_billing_usage"),
    path("organizations/<slug:org_slug>/billing/usage/projects/", api.ProjectCostView.as_view(),
         name="api_billing_usage_projects"),
    path("organizations/<slug:org_slug>/billing/usage/services/", api.ServiceCostView.as_view(),
         name="api_billing_usage_services"),
    path("organizations/<slug:org_slug>/billing/usage/daily/", api.DailyProjectCostView.as_view(),
         name="api_billing_usage_daily"),
]
