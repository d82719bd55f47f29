import pytest

from billing.models import Plan
from projects.compose import PlanLimits
from projects.plans import limits_for, plan_limits


@pytest.mark.django_db
def test_plan_limits_feed_the_compose_converter():
    assert limits_for(Plan.objects.get_default()) == PlanLimits()
    small = Plan(name="Small", slug="small", max_replicas=1, quota_cpu_millicores=1500, quota_memory_mib=1536,
                 default_cpu_request_millicores=100, max_container_memory_mib=2048, quota_storage_gib=5)
    limits = limits_for(small)
    assert (limits.max_replicas, limits.quota_cpu, limits.quota_memory, limits.default_cpu_request,
            limits.max_container_memory, limits.quota_storage) == (1, "1500m", "1536Mi", "100m", "2Gi", "5Gi")


@pytest.mark.django_db
def test_an_organization_gets_the_limits_of_its_own_plan(personas):
    from billing.ledger import get_account

    account = get_account(personas.org)
    account.plan = Plan.objects.create(name="Tiny", slug="tiny", max_services=2, quota_memory_mib=512)
    account.save(update_fields=["plan"])
    assert (plan_limits(personas.org).max_services, plan_limits(personas.org).quota_memory) == (2, "512Mi")
