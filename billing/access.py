"""The only way billing's views, API views and context processor reach an organization's money.

Through accounts' membership gate: Http404 for someone who is not a member (missing and foreign
organizations alike), PermissionDenied (403) for a member whose role lacks the permission.
"view" (every member) shows the balance; "view_billing" (owners and admins) the ledger, usage and exports.
"""

from __future__ import annotations

from accounts.access import get_organization_for_user
from accounts.models import Membership, User
from billing.ledger import get_account
from billing.models import BillingAccount


def get_account_for_user(user: User, org_slug: str, permission: str = "view") -> tuple[BillingAccount, Membership]:
    """(the organization's billing account, the user's membership); `account.organization` is loaded."""
    organization, membership = get_organization_for_user(user, org_slug, permission)
    account = get_account(organization)
    account.organization = organization  # the same row, already loaded: no second query
    return account, membership
