from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from accounts.models import Membership
from billing.models import BillingAccount


def billing_status(request: HttpRequest) -> dict:
    """The balance of the organization in the URL, for the org home card and the in-app banner.

    The banner: owners and admins see low balance and zero; every member sees a suspension.
    """
    user = getattr(request, "user", None)
    match = getattr(request, "resolver_match", None)
    slug = match.kwargs.get("org_slug") if match else None
    if not slug or user is None or not user.is_authenticated:
        return {}
    membership = Membership.objects.filter(user=user, organization__slug=slug).first()
    if membership is None:
        return {}
    account = BillingAccount.objects.filter(organization_id=membership.organization_id).first()
    if account is None:
        return {}
    banner = None
    if account.is_suspended:
        banner = "suspended"
    elif membership.can("view_billing") and account.balance <= 0:
        banner = "zero"
    elif membership.can("view_billing") and account.balance <= settings.BILLING_LOW_BALANCE_THRESHOLD:
        banner = "low"
    return {
        "billing_account": account,
        "billing_banner": banner,
        "billing_low_threshold": settings.BILLING_LOW_BALANCE_THRESHOLD,
    }
