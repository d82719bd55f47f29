from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest

from billing.access import get_account_for_user


def billing_status(request: HttpRequest) -> dict:
    """The balance of the organization in the URL, for the org home card and the in-app banner.

    The banner: owners and admins see low balance and zero; every member sees a suspension.
    """
    user = getattr(request, "user", None)
    match = getattr(request, "resolver_match", None)
    slug = match.kwargs.get("org_slug") if match else None
    if not slug or user is None or not user.is_authenticated:
        return {}
    try:
        account, membership = get_account_for_user(user, slug)
    except Http404:
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
