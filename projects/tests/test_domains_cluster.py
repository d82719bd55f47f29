"""Custom domains end to end: a real DNS server, daphne, a Celery worker, the agent process and kubesim with its
HTTP edge. Verifying a domain redeploys; the agent applies the routes (and, with TLS, the Certificate, validated
against cert-manager's CRDs by kubesim); the edge serves the domain; cert-manager's outcome reaches the page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clusters.models import BootstrapComponent, ComponentState
from kubesim.testing import KubeSim
from kubesim.tests.edge_helpers import fetch
from paas.testing.plane import poll
from projects import domains, releases, services
from projects.compose import tls as T
from projects.models import Release, ReleaseStatus, Service
from projects.tests.test_projects_deploy import finished

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

NS = "tenant-acme-shop"
COMPOSE = """services:
  web:
    image: nginx:1.27
    ports:
      - "8080:80"
"""


@pytest.fixture(scope="module")
def _kubesim_server() -> Iterator[KubeSim]:
    # Overrides the plugin's server: this module's cluster has the HTTP edge.
    sim = KubeSim(controllers=True, preload_crds=True, edge=True)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def zone(local_dns):
    return local_dns


def awake_web(project, owner) -> Service:
    """The first release, then web set not to sleep (no Sablier here), so the edge forwards to its pod."""
    assert finished(releases.deploy(project, owner, COMPOSE)).status == ReleaseStatus.LIVE
    web = project.services.get(name="web")
    services.set_sleep(web, enabled=False)
    return web


def newest_release(project) -> Release:
    return finished(project.releases.order_by("-revision").first(), timeout=60)


def test_a_verified_domain_is_served_by_the_edge_and_an_unverified_one_is_not(connected, kubesim, personas, project,
                                                                              zone):
    web = awake_web(project, personas.owner)
    pending = domains.add_domain(web, "pending.example.com")
    domain = domains.add_domain(web, "www.example.com")
    zone.add("www.example.com", "CNAME", web.public_host)
    assert domains.verify_domain(domain, personas.owner).ok
    release = newest_release(project)
    assert release.status == ReleaseStatus.LIVE and release.revision == 2, release.error
    reply = poll(lambda: (r := fetch(kubesim.edge_url + "/", "www.example.com", timeout=30)).status == 200 and r,
                 30, "www.example.com served")
    assert "nginx:1.27" in reply.text
    assert fetch(kubesim.edge_url + "/", pending.hostname, timeout=30).status == 404
    assert project.services.get(name="web").url == f"http://{web.public_host}/"


def test_with_tls_the_agent_applies_the_certificate_and_its_state_reaches_the_page(connected, kubesim, personas,
                                                                                   project, zone, settings, client):
    settings.PAAS_BOOTSTRAP = {**settings.PAAS_BOOTSTRAP, "acme_email": "ops@example.com"}
    BootstrapComponent.objects.create(cluster=project.cluster, name="tls", state=ComponentState.READY)
    web = awake_web(project, personas.owner)
    domain = domains.add_domain(web, "www.example.com")
    zone.add("_paas-challenge.www.example.com", "TXT", domain.token)
    assert domains.verify_domain(domain, personas.owner).ok
    assert newest_release(project).status == ReleaseStatus.LIVE

    certificate = kubesim.get("Certificate", NS, "web")
    assert certificate["spec"]["dnsNames"] == [web.public_host, "www.example.com"]
    assert kubesim.get("Ingress", NS, "web")["spec"]["tls"][0]["secretName"] == T.tls_secret("web")
    assert kubesim.get("Ingress", NS, T.redirect_ingress_name("web")) is not None
    assert project.services.get(name="web").url == f"https://{web.public_host}/"

    kubesim.set_cert_manager_condition("Certificate", NS, "web", "Issuing", "False", "Failed",
                                       "The certificate request has failed to complete and will be retried")
    domain.refresh_from_db()
    poll(lambda: domains.domain_dict(domain)["certificate"]["state"] == "failed", 30, "failed certificate observed")
    kubesim.set_cert_manager_condition("Certificate", NS, "web", "Issuing", "True", "Issuing", "Renewing")
    kubesim.set_cert_manager_condition("Certificate", NS, "web", "Ready", "True", "Ready",
                                       "Certificate is up to date and has not expired")
    poll(lambda: domains.domain_dict(domain)["certificate"]["state"] == "ready", 30, "ready certificate observed")
    client.force_login(personas.member)
    html = client.get("/o/acme/projects/shop/").content.decode()
    assert 'data-testid="domain-certificate">ready<' in html
    assert 'href="https://www.example.com/"' in html
