"""The only ways to reach clusters from views, API views and consumers.

Tenants see clusters open to their organization; operators (staff) see all. Both answer 404
for a missing cluster and for one the caller may not use, so nobody can probe for slugs.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from accounts.models import Organization, User
from clusters.models import Cluster


def clusters_for_organization(org: Organization) -> QuerySet[Cluster]:
    return Cluster.objects.for_organization(org)


def get_cluster_for_org(org: Organization, slug: str) -> Cluster:
    cluster = clusters_for_organization(org).filter(slug=slug).first()
    if cluster is None:
        raise Http404("No such cluster")
    return cluster


def get_cluster_for_operator(user: User, slug: str) -> Cluster:
    if not (user.is_authenticated and user.is_staff):
        raise Http404("No such cluster")
    cluster = Cluster.objects.filter(slug=slug).first()
    if cluster is None:
        raise Http404("No such cluster")
    return cluster


def require_operator(user: User) -> None:
    if not (user.is_authenticated and user.is_staff):
        raise Http404("Not found")
