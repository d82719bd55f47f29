"""The billing page and CSV exports. Every member sees the balance; owners and admins
("view_billing") see burn rate, usage, the ledger and the exports; anyone else gets 404."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from billing import reports
from billing.access import get_account_for_user
from billing.forms import LedgerFilterForm, UsageFilterForm, UsagePeriodForm
from billing.models import CreditEntry, SuspensionRecord, UsageRecord
from billing.money import FINE_PER_MILLICREDIT, format_credits
from lib.exports import csv_response

LEDGER_PAGE_SIZE = 50


@login_required
def billing(request: HttpRequest, org_slug: str) -> HttpResponse:
    account, membership = get_account_for_user(request.user, org_slug)
    org = account.organization
    context: dict = {"org": org, "membership": membership, "account": account,
                     "details": membership.can("view_billing")}
    if context["details"]:
        now = timezone.now()
        burn = reports.burn_rate(org, now)
        left = reports.time_left(account.balance, burn)
        form = LedgerFilterForm(request.GET or None)
        usage_form = UsagePeriodForm(request.GET or None)
        first_day, last_day = usage_form.period(now.date())
        entries = form.filter(CreditEntry.objects.filter(organization=org).select_related("created_by"))
        context.update(
            plan=account.plan,
            burn_per_hour=burn,
            runs_out_at=now + left if left is not None else None,
            usage_form=usage_form,
            usage_period=(first_day, last_day),
            chart=reports.daily_usage(org, first_day, last_day),
            project_costs=reports.project_costs(org, first_day, last_day),
            service_costs=reports.service_costs(org, first_day, last_day),
            filter_form=form,
            page=Paginator(entries, LEDGER_PAGE_SIZE).get_page(request.GET.get("page")),
            suspensions=SuspensionRecord.objects.filter(organization=org)[:10],
        )
    return render(request, "billing/billing.html", context)


@login_required
def ledger_csv(request: HttpRequest, org_slug: str) -> StreamingHttpResponse:
    account, _ = get_account_for_user(request.user, org_slug, "view_billing")
    org = account.organization
    entries = LedgerFilterForm(request.GET or None).filter(CreditEntry.objects.filter(organization=org))
    rows = (
        [e.pk, e.created_at.isoformat(), e.kind, e.amount, format_credits(e.amount), e.balance_after,
         e.reference, e.reason, e.created_by_email, e.idempotency_key]
        for e in entries.order_by("id").iterator(chunk_size=2000)
    )
    header = ["id", "created_at", "kind", "amount_millicredits", "amount_credits", "balance_after_millicredits",
              "reference", "reason", "created_by", "idempotency_key"]
    return csv_response(f"{org.slug}-ledger.csv", header, rows)


@login_required
def usage_csv(request: HttpRequest, org_slug: str) -> StreamingHttpResponse:
    account, _ = get_account_for_user(request.user, org_slug, "view_billing")
    org = account.organization
    records = UsageFilterForm(request.GET or None).filter(UsageRecord.objects.filter(organization=org))
    rows = (
        [r.window_start.isoformat(), r.window_seconds, r.cluster_key, r.project_key, r.service, r.replica_seconds,
         r.cpu_millicores, r.memory_mib, r.volume_gib, r.database_gib, r.bucket_gib, r.database_bytes,
         r.bucket_bytes,
         # Exact cost, for reconciliation; the ledger charges whole millicredits per window.
         f"{Decimal(r.cost_fine) / FINE_PER_MILLICREDIT:.6f}",
         r.charged_at.isoformat() if r.charged_at else "", r.charge_key]
        for r in records.order_by("window_start", "id").iterator(chunk_size=2000)
    )
    header = ["window_start", "window_seconds", "cluster", "project", "service", "replica_seconds",
              "cpu_millicores", "memory_mib", "volume_gib", "database_gib", "bucket_gib", "database_bytes",
              "bucket_bytes", "cost_millicredits",
              "charged_at", "charge_key"]
    return csv_response(f"{org.slug}-usage.csv", header, rows)
