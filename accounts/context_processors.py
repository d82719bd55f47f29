from __future__ import annotations

from django.http import HttpRequest

from accounts.models import Membership


def organizations(request: HttpRequest) -> dict:
    """The user's organizations for the header switcher, and the one in the URL if any."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    memberships = list(Membership.objects.filter(user=user).select_related("organization"))
    slug = (getattr(request, "resolver_match", None) and request.resolver_match.kwargs.get("org_slug")) or None
    current = next((m for m in memberships if m.organization.slug == slug), None)
    return {"my_memberships": memberships, "current_membership": current,
            "current_org": current.organization if current else None}
