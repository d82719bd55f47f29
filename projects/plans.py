"""An organization's billing plan as the compose converter's PlanLimits (ResourceQuota, LimitRange inputs).

The arrow runs from projects to billing: billing keeps the plan's numbers (integers, set in Django admin) and
knows nothing of compose; projects reads them and turns them into Kubernetes quantities here.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from accounts.models import Organization
from billing.ledger import get_account
from billing.models import Plan
from projects.compose import PlanLimits
from projects.compose.quantities import cpu_quantity, memory_quantity

MIB = 2**20


def limits_for(plan: Plan) -> PlanLimits:
    """The plan's limits. Only fields PlanLimits declares are passed, so the converter can grow fields without
    breaking this; max_projects is enforced by projects.services, not the converter, and is not part of it."""
    values: dict[str, Any] = {
        "max_replicas": plan.max_replicas,
        "max_services": plan.max_services,
        "default_cpu_request": cpu_quantity(plan.default_cpu_request_millicores),
        "default_cpu_limit": cpu_quantity(plan.default_cpu_limit_millicores),
        "default_memory_request": memory_quantity(plan.default_memory_request_mib * MIB),
        "default_memory_limit": memory_quantity(plan.default_memory_limit_mib * MIB),
        "default_volume_size": f"{plan.default_volume_gib}Gi",
        "max_container_cpu": cpu_quantity(plan.max_container_cpu_millicores),
        "max_container_memory": memory_quantity(plan.max_container_memory_mib * MIB),
        "quota_cpu": cpu_quantity(plan.quota_cpu_millicores),
        "quota_memory": memory_quantity(plan.quota_memory_mib * MIB),
        "quota_pods": plan.quota_pods,
        "quota_storage": f"{plan.quota_storage_gib}Gi",
        "quota_volumes": plan.quota_volumes,
    }
    known = {f.name for f in fields(PlanLimits)}
    return PlanLimits(**{k: v for k, v in values.items() if k in known})


def plan_limits(organization: Organization) -> PlanLimits:
    """The organization's plan as PlanLimits."""
    return limits_for(get_account(organization).plan)
