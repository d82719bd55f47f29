"""Probes and metrics for operators: /healthz (alive), /readyz (dependencies answer), /metrics (Prometheus)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from ops import checks, metrics
from ops.access import may_scrape

NOT_PUBLIC = ("Metrics are not public: send 'Authorization: Bearer <METRICS_TOKEN>' or scrape from an address "
              "in METRICS_ALLOWED_NETWORKS.\n")


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    results = checks.run_all()
    ready = all(result["ok"] for result in results.values())
    if not may_scrape(request):  # a failure's detail may name hosts: only operators see it
        results = {name: {"ok": result["ok"]} for name, result in results.items()}
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": results}, status=200 if ready else 503)


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not may_scrape(request):
        return HttpResponse(NOT_PUBLIC, status=403, content_type="text/plain")
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
