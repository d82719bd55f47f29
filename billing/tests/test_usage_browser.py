"""In Chromium: the billing page draws the cost per project per day as stacked bars (Chart.js) and lists the cost
per service with its database and bucket parts; a chosen period redraws both."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from billing import usage
from billing.models import Plan
from billing.money import GIB
from billing.tests.conftest import iso, recent_window, report
from conftest import logged_in_page

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def acme(personas):
    plan = Plan.objects.get_default()
    plan.price_database_gib_month = plan.price_bucket_gib_month = 2_592_000_000  # 1 millicredit per GiB-second
    plan.save()
    start = recent_window()
    usage.record_usage(personas.org, report(window_start=iso(start), replicas=1))
    usage.record_usage(personas.org, report(window_start=iso(start), namespace="acme-blog", service=usage.PROJECT_DATA,
                                            replicas=0, cpu_millicores=0, memory_mib=0, database_bytes=GIB,
                                            bucket_bytes=GIB // 2))
    usage.record_usage(personas.org, report(window_start=iso(start - timedelta(days=3)), replicas=1))
    return personas.org


def chart_data(page) -> dict:
    return page.evaluate("""() => {
        const chart = Chart.getChart(document.getElementById('usage-chart'));
        return {stacked: chart.options.scales.x.stacked && chart.options.scales.y.stacked,
                labels: chart.data.labels,
                datasets: chart.data.datasets.map(d => ({label: d.label, total: d.data.reduce((a, b) => a + b, 0)}))};
    }""")


def test_the_owner_sees_cost_per_project_per_day_and_per_service(personas, acme, daphne_server, browser,
                                                                monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs a loop in this thread
    page = logged_in_page(browser, daphne_server, personas.owner)
    page.goto(f"{daphne_server}/o/{acme.slug}/billing/")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('usage-chart'))")
    drawn = chart_data(page)
    assert drawn["stacked"] and len(drawn["labels"]) == 30
    # The blog's database (1 GiB x 60 s) and bucket (0.5 GiB x 60 s): 90 millicredits; the shop: 2 x 1.32.
    assert drawn["datasets"] == [{"label": "acme-blog", "total": 90}, {"label": "acme-shop", "total": 2}]
    blog = page.get_by_test_id("service-cost-row").filter(has_text="acme-blog")
    expect(blog).to_contain_text("database and bucket")
    expect(blog.locator("td")).to_have_text(["acme-blog", "database and bucket", "1", "0.000", "0.000", "0.060",
                                             "0.030", "0.090"])

    # Only the last two days: the shop's older window leaves the chart and the tables.
    since = (recent_window() - timedelta(days=1)).date().isoformat()
    page.fill("#id_usage-since", since)
    page.get_by_test_id("usage-period").get_by_role("button", name="Show").click()
    page.wait_for_url(f"**usage-since={since}**")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('usage-chart'))")
    drawn = chart_data(page)
    assert drawn["labels"][0] == since and drawn["datasets"][1] == {"label": "acme-shop", "total": 1}
    expect(page.get_by_test_id("project-cost-row")).to_have_count(2)
