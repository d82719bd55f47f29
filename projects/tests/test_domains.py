"""Custom domains: names refused or normalised, DNS ownership proved against a real local DNS server (dnslib),
one claim per host name across tenants, routing and TLS in the rendered objects (valid against kubesim's
schemas and CRDs), the API and the project page for the personas."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from clusters.models import BootstrapComponent, ComponentState, ObservedProject
from kubesim.schema import validate_object
from projects import domains, manifests, releases
from projects import services as project_services
from projects.compose import sleep as S
from projects.compose import tls as T
from projects.models import CustomDomain, Release, Service

pytestmark = pytest.mark.django_db

WEB_HOST = "web-shop.apps.example.com"
API = "/api/v1/organizations/acme/projects/shop/services/web/domains/"


@pytest.fixture
def zone(local_dns, settings):
    """The run's DNS server (root conftest), which every domain check asks; emptied after each test."""
    settings.DNS_VERIFY_TIMEOUT = 3
    return local_dns


@pytest.fixture
def web(project):
    return Service.objects.create(project=project, name="web", image="nginx:1.27", exposure="public",
                                  public_host=WEB_HOST)


@pytest.fixture
def other_web(personas, cluster):
    other = project_services.create_project(personas.outsider_org, personas.outsider, "Shop", cluster)
    return Service.objects.create(project=other, name="web", image="nginx:1.27", exposure="public",
                                  public_host="web-shop-charlie.apps.example.com")


# --- names ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "stored"), [
    ("WWW.Example.COM.", "www.example.com"),
    ("  shop.example.org ", "shop.example.org"),
    ("bücher.example", "xn--bcher-kva.example"),
])
def test_it_stores_host_names_lowercase_in_idna_form(cluster, raw, stored):
    assert domains.normalise_hostname(raw) == stored


@pytest.mark.parametrize(("raw", "says"), [
    ("*.example.com", "Wildcard domains are not supported"),
    ("203.0.113.7", "is an IP address"),
    ("https://www.example.com/", "enter only the host"),
    ("www.example.com:8443", "enter only the host"),
    ("localhost", "is not a valid domain name"),
    ("-bad-.example.com", "is not a valid domain name"),
    ("apps.example.com", "under the platform's domain apps.example.com"),
    ("evil.web-shop.apps.example.com", "under the platform's domain apps.example.com"),
])
def test_it_refuses_names_that_are_not_a_customers_domain(cluster, raw, says):
    with pytest.raises(ValidationError) as refused:
        domains.normalise_hostname(raw)
    assert says in refused.value.messages[0]


def test_a_private_service_cannot_take_a_domain(project):
    private = Service.objects.create(project=project, name="worker", image="busybox")
    with pytest.raises(ValidationError, match="worker has no public URL"):
        domains.add_domain(private, "www.example.com")


# --- DNS verification against a real DNS server ------------------------------------------------------------


def test_a_txt_record_with_the_token_verifies_the_domain(zone, web):
    domain = domains.add_domain(web, "www.example.com")
    zone.add("_paas-challenge.www.example.com", "TXT", domain.token)
    result = domains.verify_domain(domain)
    domain.refresh_from_db()
    assert result.ok and domain.verified and domain.verified_at is not None
    assert domain.message == "TXT record _paas-challenge.www.example.com found"


def test_a_cname_to_the_services_platform_host_verifies_the_domain(zone, web):
    domain = domains.add_domain(web, "shop.example.net")
    zone.add("shop.example.net", "CNAME", WEB_HOST + ".")
    assert domains.verify_domain(domain).ok
    domain.refresh_from_db()
    assert domain.verified and domain.message == f"shop.example.net is a CNAME to {WEB_HOST}"


def test_a_missing_record_is_refused_with_the_records_to_create(zone, web):
    domain = domains.add_domain(web, "www.example.com")
    result = domains.verify_domain(domain)
    domain.refresh_from_db()
    assert not result.ok and not domain.verified
    assert result.message == (
        "Not verified: _paas-challenge.www.example.com does not exist; www.example.com does not exist. "
        f"Create a TXT record _paas-challenge.www.example.com with the value {domain.token}, or a CNAME record "
        f"www.example.com pointing to {WEB_HOST}.")
    assert domain.message == result.message


def test_a_wrong_token_or_a_cname_elsewhere_is_refused_naming_what_was_found(zone, web):
    domain = domains.add_domain(web, "www.example.com")
    zone.add("_paas-challenge.www.example.com", "TXT", "someone-elses-token")
    zone.add("www.example.com", "CNAME", "elsewhere.example.org.")
    result = domains.verify_domain(domain)
    assert not result.ok
    assert "_paas-challenge.www.example.com has TXT 'someone-elses-token', not the token" in result.message
    assert f"www.example.com is a CNAME to elsewhere.example.org, not to {WEB_HOST}" in result.message
    assert f"with the value {domain.token}" in result.message


def test_a_verified_domain_whose_record_goes_is_marked_and_kept_until_the_claim_expires(zone, web, other_web):
    domain = domains.add_domain(web, "www.example.com")
    zone.add("www.example.com", "CNAME", WEB_HOST)
    domains.verify_domain(domain)
    zone.clear("www.example.com")
    assert domains.reverify_all() == 1
    domain.refresh_from_db()
    assert domain.verified and domain.failing_since is not None and "does not exist" in domain.message
    with pytest.raises(ValidationError, match="www.example.com is already claimed by another project"):
        domains.add_domain(other_web, "www.example.com")
    CustomDomain.objects.filter(pk=domain.pk).update(failing_since=timezone.now() - timedelta(days=8))
    taken = domains.add_domain(other_web, "www.example.com")
    assert taken.service == other_web and not taken.verified
    assert not CustomDomain.objects.filter(pk=domain.pk).exists()


# --- one claim per host name, across tenants ----------------------------------------------------------------


def test_a_host_name_claimed_by_one_tenant_is_refused_to_another(zone, web, other_web):
    domains.add_domain(web, "www.example.com")
    with pytest.raises(ValidationError) as refused:
        domains.add_domain(other_web, "WWW.example.com.")
    assert refused.value.messages == ["www.example.com is already claimed by another project."]
    assert CustomDomain.objects.get(hostname="www.example.com").service == web


def test_the_database_refuses_a_second_claim_of_a_host_name(web, other_web):
    CustomDomain.objects.create(service=web, hostname="www.example.com", token="a")
    with pytest.raises(IntegrityError), transaction.atomic():
        CustomDomain.objects.create(service=other_web, hostname="www.example.com", token="b")


def test_an_unverified_claim_can_be_taken_over_once_it_expired(web, other_web, settings):
    settings.DOMAINS_CLAIM_EXPIRY_DAYS = 7
    squat = domains.add_domain(web, "www.example.com")
    CustomDomain.objects.filter(pk=squat.pk).update(created_at=timezone.now() - timedelta(days=6))
    with pytest.raises(ValidationError, match="already claimed by another project"):
        domains.add_domain(other_web, "www.example.com")
    CustomDomain.objects.filter(pk=squat.pk).update(created_at=timezone.now() - timedelta(days=8))
    assert domains.add_domain(other_web, "www.example.com").service == other_web


# --- routing and TLS in the rendered objects --------------------------------------------------------------


def render(project) -> list[dict]:
    release = Release(project=project, revision=1, compose_text=project.compose_text, variables={})
    objects, _ = manifests.render_release(project, release)
    return objects


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def platform_host(objects: list[dict], service: str) -> str:
    return next(o for o in by_kind(objects, "Ingress") if o["metadata"]["name"] == service)["spec"]["rules"][0]["host"]


def tls_ready(cluster, settings) -> None:
    settings.PAAS_BOOTSTRAP = {**settings.PAAS_BOOTSTRAP, "acme_email": "ops@example.com"}
    BootstrapComponent.objects.create(cluster=cluster, name="tls", state=ComponentState.READY)


def test_only_verified_domains_are_routed_and_without_tls_only_over_http(zone, project):
    objects = render(project)
    web = Service.objects.create(project=project, name="web", exposure="public",
                                 public_host=platform_host(objects, "web"))
    verified = domains.add_domain(web, "www.example.com")
    domains.add_domain(web, "pending.example.com")
    zone.add("_paas-challenge.www.example.com", "TXT", verified.token)
    domains.verify_domain(verified)
    objects = render(project)
    ingress = next(o for o in by_kind(objects, "Ingress") if o["metadata"]["name"] == "web")
    assert [r["host"] for r in ingress["spec"]["rules"]] == [web.public_host, "www.example.com"]
    assert ingress["spec"]["rules"][1]["http"] == ingress["spec"]["rules"][0]["http"]
    assert "tls" not in ingress["spec"] and by_kind(objects, "Certificate") == []
    assert all(validate_object(o) == [] for o in objects)


def test_with_tls_each_service_gets_a_certificate_https_and_a_redirect_and_keeps_sleeping(zone, project, settings):
    tls_ready(project.cluster, settings)
    web = Service.objects.create(project=project, name="web", exposure="public",
                                 public_host=platform_host(render(project), "web"))
    domain = domains.add_domain(web, "www.example.com")
    zone.add("www.example.com", "CNAME", web.public_host)
    domains.verify_domain(domain)
    objects = render(project)
    ns = project.namespace

    certificate = next(o for o in by_kind(objects, "Certificate") if o["metadata"]["name"] == "web")
    assert certificate["spec"] == {"secretName": T.tls_secret("web"), "dnsNames": [web.public_host, "www.example.com"],
                                   "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer",
                                                 "name": "paas-acme"}}
    secure = next(o for o in by_kind(objects, "Ingress") if o["metadata"]["name"] == "web")
    assert secure["spec"]["tls"] == [{"hosts": [web.public_host, "www.example.com"],
                                      "secretName": T.tls_secret("web")}]
    annotations = secure["metadata"]["annotations"]
    assert annotations[T.ENTRYPOINTS] == "websecure" and annotations[T.ROUTER_TLS] == "true"
    # The Sablier middleware still guards the HTTPS route, so a sleeping service wakes on an HTTPS request.
    assert annotations[S.MIDDLEWARES] == S.middleware_ref(ns, S.middleware_name("web"))
    plain = next(o for o in by_kind(objects, "Ingress") if o["metadata"]["name"] == T.redirect_ingress_name("web"))
    assert plain["metadata"]["annotations"] == {T.ENTRYPOINTS: "web",
                                                S.MIDDLEWARES: f"{ns}-tohttps@kubernetescrd"}
    assert [r["host"] for r in plain["spec"]["rules"]] == [web.public_host, "www.example.com"]
    redirect = next(o for o in by_kind(objects, "Middleware") if o["metadata"]["name"] == "tohttps")
    assert redirect["spec"] == {"redirectScheme": {"scheme": "https", "permanent": True}}
    assert [(o["kind"], validate_object(o)) for o in objects if validate_object(o)] == []


def test_urls_are_https_only_for_a_release_that_set_up_tls(project, settings):
    releases.sync_services(project, render(project))
    assert project.services.get(name="web").url.startswith("http://")
    tls_ready(project.cluster, settings)
    releases.sync_services(project, render(project))
    assert project.services.get(name="web").url.startswith("https://")


def test_a_suspended_project_sends_both_entrypoints_to_the_suspended_page(project, settings):
    tls_ready(project.cluster, settings)
    objects = S.suspended(render(project), "http://cp.example/suspended/x/")
    ingresses = by_kind(objects, "Ingress")
    assert len(ingresses) == 4  # web and api, each on websecure and on web
    assert {i["metadata"]["annotations"][S.MIDDLEWARES] for i in ingresses} == {
        S.middleware_ref(project.namespace, S.SUSPENDED_MIDDLEWARE)}


# --- certificate state, API and page -------------------------------------------------------------------------


def observe_certificate(project, **cert) -> None:
    ObservedProject.objects.update_or_create(cluster=project.cluster, namespace=project.namespace,
                                             defaults={"state": {"certificates": {"web": cert}}})


def test_members_add_verify_and_remove_domains_viewers_read_outsiders_see_nothing(client, personas, viewer, zone, web):
    client.force_login(personas.member)
    added = client.post(API, {"hostname": "www.example.com"}, content_type="application/json")
    assert added.status_code == 201
    body = added.json()
    assert body["status"] == "pending" and body["records"]["cname"] == {"name": "www.example.com", "target": WEB_HOST}
    token = CustomDomain.objects.get().token
    assert body["records"]["txt"] == {"name": "_paas-challenge.www.example.com", "value": token}
    refused = client.post(f"{API}{body['id']}/verify/")
    assert refused.status_code == 200 and refused.json()["verified"] is False
    assert "Create a TXT record _paas-challenge.www.example.com" in refused.json()["message"]

    client.force_login(viewer)
    assert client.get(API).json()["results"][0]["hostname"] == "www.example.com"
    assert client.post(API, {"hostname": "b.example.com"}, content_type="application/json").status_code == 403
    assert client.post(f"{API}{body['id']}/verify/").status_code == 403
    assert client.delete(f"{API}{body['id']}/").status_code == 403

    client.force_login(personas.outsider)
    assert client.get(API).status_code == 404
    assert client.get(f"{API}{body['id']}/").status_code == 404
    assert client.post(f"{API}{body['id']}/verify/").status_code == 404
    assert client.delete(f"{API}{body['id']}/").status_code == 404

    client.force_login(personas.owner)
    zone.add("_paas-challenge.www.example.com", "TXT", token)
    verified = client.post(f"{API}{body['id']}/verify/").json()
    assert verified["verified"] is True and verified["status"] == "verified"
    assert client.delete(f"{API}{body['id']}/").status_code == 204
    assert not CustomDomain.objects.exists()
    logged = AuditEvent.objects.filter(action__startswith="domain.").order_by("pk")
    assert [(e.action, e.actor, e.details["hostname"]) for e in logged] == [
        ("domain.added", personas.member, "www.example.com"), ("domain.verified", personas.owner, "www.example.com"),
        ("domain.removed", personas.owner, "www.example.com")]
    assert not any(token in str(e.details) for e in logged)


def test_the_api_refuses_a_taken_name_with_a_clear_message(client, personas, web, other_web):
    domains.add_domain(other_web, "www.example.com")
    client.force_login(personas.owner)
    answer = client.post(API, {"hostname": "www.example.com"}, content_type="application/json")
    assert answer.status_code == 400
    assert answer.json() == {"detail": "www.example.com is already claimed by another project.",
                             "code": "domain_taken"}


def test_the_project_page_shows_each_domains_certificate_state(client, personas, zone, web):
    web.tls = True
    web.save()
    domain = domains.add_domain(web, "www.example.com")
    pending = domains.add_domain(web, "later.example.com")
    zone.add("www.example.com", "CNAME", WEB_HOST)
    domains.verify_domain(domain)
    client.force_login(personas.member)
    page = "/o/acme/projects/shop/"

    observe_certificate(web.project, ready="False", failed=False, reason="DoesNotExist",
                        message="Issuing certificate as Secret does not exist", dns_names=[WEB_HOST, "www.example.com"])
    html = client.get(page).content.decode()
    assert 'data-testid="domain-certificate">pending<' in html
    assert "Issuing certificate as Secret does not exist" in html
    assert f'TXT _paas-challenge.later.example.com "{pending.token}"' in html

    observe_certificate(web.project, ready="False", failed=True, reason="Failed",
                        message="The certificate request has failed to complete and will be retried: 429 rateLimited",
                        dns_names=[WEB_HOST, "www.example.com"])
    html = client.get(page).content.decode()
    assert 'data-testid="domain-certificate">failed<' in html and "429 rateLimited" in html

    observe_certificate(web.project, ready="True", failed=False, reason="Ready",
                        message="Certificate is up to date and has not expired",
                        dns_names=[WEB_HOST, "www.example.com"])
    html = client.get(page).content.decode()
    assert 'data-testid="domain-certificate">ready<' in html
    assert 'href="https://www.example.com/"' in html
