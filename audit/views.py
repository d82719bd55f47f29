"""The organization's audit log for owners and admins ("view_audit"): a filtered, paginated page and the
same rows as CSV. Members and viewers get 403, anyone else 404 (accounts.access)."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import get_organization_for_user
from audit.forms import AuditFilterForm
from audit.models import AuditEvent
from lib.exports import csv_response

PAGE_SIZE = 50


@login_required
def audit_log(request: HttpRequest, org_slug: str) -> HttpResponse:
    org, membership = get_organization_for_user(request.user, org_slug, "view_audit")
    form = AuditFilterForm(request.GET or None)
    valid = not form.is_bound or form.is_valid()
    events = form.filter(AuditEvent.objects.filter(organization=org)) if valid else AuditEvent.objects.none()
    return render(request, "audit/log.html", {
        "org": org, "membership": membership, "filter_form": form,
        "page": Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))})


@login_required
def audit_csv(request: HttpRequest, org_slug: str) -> HttpResponse:
    org, _ = get_organization_for_user(request.user, org_slug, "view_audit")
    form = AuditFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        # All rows under a filter the user thinks applied would be worse than no file.
        return HttpResponse("The filter is not valid: " + "; ".join(
            f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()),
            status=400, content_type="text/plain; charset=utf-8")
    events = form.filter(AuditEvent.objects.filter(organization=org))
    rows = (
        [e.pk, e.created_at.isoformat(), e.action, e.actor_label, e.ip_address or "", e.target_type, e.target_id,
         e.target_label, json.dumps(e.details, sort_keys=True, default=str)]
        for e in events.order_by("created_at", "id").iterator(chunk_size=2000)
    )
    header = ["id", "time", "action", "actor", "ip_address", "target_type", "target_id", "target", "details"]
    return csv_response(f"{org.slug}-audit.csv", header, rows)
