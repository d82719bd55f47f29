"""Hostile names: no organization or project name reaches a platform namespace or another tenant's host."""

from __future__ import annotations

import re

import pytest
from django.db import IntegrityError, transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from accounts.services import create_organization
from agent import charts, infra
from clusters import manifest
from clusters import services as cluster_services
from projects import manifests, releases, services
from projects.compose import RenderContext, namespace_for
from projects.compose.convert import public_host
from projects.compose.labels import TENANT_NAMESPACE_PREFIX
from projects.models import Service
from projects.releases import DeployError

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
WEB = "services:\n  web:\n    image: nginx:1.27\n    ports: ['8080:80']\n"
# Every namespace the platform and Kubernetes use today (the agent's, data, charts', Traefik's...).
PLATFORM_NAMESPACES = {
    *infra.RESERVED, manifest.NAMESPACE, charts.HELM_NAMESPACE, charts.DATA_NAMESPACE,
    *(pin.target_namespace for pin in (charts.CNPG, charts.SABLIER, charts.GARAGE)),
    RenderContext("o", "p").traefik_namespace, RenderContext("o", "p").dns_namespace, "cert-manager",
}
HOSTILE = [("Paas", "Data"), ("Paas", "System"), ("Kube", "System"), ("Kube", "Public"), ("Kube", "Node Lease"),
           ("Cnpg", "System"), ("Cert", "Manager"), ("Sablier", "System"), ("Default", "x"), ("kube", "-system")]


def test_no_platform_namespace_carries_the_tenant_prefix() -> None:
    assert PLATFORM_NAMESPACES >= {"default", "kube-system", "paas-data", "paas-system", "cnpg-system"}
    assert not [ns for ns in PLATFORM_NAMESPACES if ns.startswith(TENANT_NAMESPACE_PREFIX)]


@pytest.mark.django_db
@pytest.mark.parametrize(("org_name", "project_name"), HOSTILE)
def test_hostile_names_never_get_a_platform_namespace(personas, org_name: str, project_name: str) -> None:
    cluster = cluster_services.create_cluster("Falkenstein", "apps.example.com")
    org = create_organization(personas.owner, org_name)
    project = services.create_project(org, personas.owner, project_name, cluster)
    assert project.namespace.startswith(TENANT_NAMESPACE_PREFIX)
    assert project.namespace not in PLATFORM_NAMESPACES
    assert project.namespace == f"tenant-{org.slug}-{project.slug}"  # and still readable


@settings(max_examples=300, deadline=None)
@given(org=st.text(max_size=60), project=st.text(max_size=60))
def test_any_names_give_a_tenant_prefixed_dns_label(org: str, project: str) -> None:
    namespace = namespace_for(org, project)
    assert DNS_LABEL.match(namespace), namespace
    assert namespace.startswith(TENANT_NAMESPACE_PREFIX)
    assert namespace != "default" and not namespace.startswith("kube-")
    assert namespace not in PLATFORM_NAMESPACES


def test_long_names_are_truncated_with_a_hash_and_keep_the_prefix() -> None:
    long = namespace_for("a" * 40, "b" * 40)
    assert len(long) == 63 and long.startswith("tenant-aaaa")
    assert long != namespace_for("a" * 40, "b" * 41)


# --- public hosts ------------------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9-]{0,38}[a-z0-9]", fullmatch=True).filter(lambda s: "--" not in s)


@settings(max_examples=300, deadline=None)
@given(a=st.tuples(names, names, names), b=st.tuples(names, names, names))
def test_public_hosts_of_different_triples_differ_and_stay_valid(a, b) -> None:
    def host(triple: tuple[str, str, str]) -> str:
        org, project, service = triple
        return public_host(service, RenderContext(org, project, base_domain="apps.example.com"))

    label = host(a).removesuffix(".apps.example.com")
    assert DNS_LABEL.match(label) and "--" not in label  # no reserved "ab--" form for certificate authorities
    assert (host(a) == host(b)) == (a == b)


@settings(max_examples=100, deadline=None)
@given(service=names, x=names, y=names, z=names)
def test_hosts_differ_wherever_the_hyphen_between_project_and_org_falls(service, x, y, z) -> None:
    one = public_host(service, RenderContext(z, f"{x}-{y}"))  # project "x-y" of org "z"
    other = public_host(service, RenderContext(f"{y}-{z}", x))  # project "x" of org "y-z"
    assert one != other


def test_names_that_join_alike_get_different_hosts() -> None:
    mine = public_host("web", RenderContext("acme", "my-shop", base_domain="apps.example.com"))
    theirs = public_host("web", RenderContext("shop-acme", "my", base_domain="apps.example.com"))
    assert mine != theirs
    assert mine.startswith("web-my-shop-acme-") and theirs.startswith("web-my-shop-acme-")  # readable


@pytest.fixture
def cluster(db):
    return cluster_services.create_cluster("Falkenstein", "apps.example.com", simulated=True, slug="fsn")


@pytest.fixture
def shops(personas, cluster):
    """Acme's "my-shop" and the organization "Shop Acme"'s "my": their names join into the same words."""
    acme = services.create_project(personas.org, personas.owner, "my-shop", cluster, compose_text=WEB)
    shop_acme = create_organization(personas.owner, "Shop Acme")
    return acme, services.create_project(shop_acme, personas.owner, "my", cluster, compose_text=WEB)


def deployed_host(project) -> str:
    """What the deploy pipeline's render step stores for the project's web service."""
    release = project.releases.create(revision=1, compose_text=project.compose_text)
    objects, _ = manifests.render_release(project, release)
    releases.sync_services(project, objects)
    return project.services.get(name="web").public_host


@pytest.mark.django_db
def test_the_acme_collision_gives_two_hosts_and_the_editor_shows_the_deployed_one(shops) -> None:
    acme, shop_acme = shops
    previews = [manifests.validate(p, WEB)["services"][0]["public_host"] for p in shops]
    assert previews[0] != previews[1]
    assert [deployed_host(acme), deployed_host(shop_acme)] == previews


@pytest.mark.django_db
def test_the_database_refuses_one_public_host_twice_on_a_cluster(shops, personas) -> None:
    acme, shop_acme = shops
    host = deployed_host(acme)
    with pytest.raises(IntegrityError), transaction.atomic():
        Service.objects.create(project=shop_acme, name="web", public_host=host)
    # On another cluster the same host is another Traefik's business.
    elsewhere = cluster_services.create_cluster("Helsinki", "apps.example.com", simulated=True, slug="hel")
    other = services.create_project(personas.org, personas.owner, "Other", elsewhere)
    Service.objects.create(project=other, name="web", public_host=host)
    # Empty hosts (private services) are not hosts at all.
    Service.objects.create(project=shop_acme, name="worker")
    Service.objects.create(project=acme, name="worker")


@pytest.mark.django_db
def test_a_release_whose_host_is_taken_fails_with_a_message_and_changes_nothing(shops) -> None:
    acme, shop_acme = shops
    objects, _ = manifests.render_release(acme, acme.releases.create(revision=1, compose_text=WEB))
    releases.sync_services(acme, objects)
    # As if the other project's render had produced acme's host (a hash collision: the database's backstop).
    with pytest.raises(DeployError, match=r"public host web-my-shop-acme-\w+\.apps\.example\.com of service 'web' "
                                          "is already used by another project") as taken:
        releases.sync_services(shop_acme, objects)
    assert taken.value.code == "host_taken"
    assert not shop_acme.services.exists()
