"""Scale to zero end to end without a browser: daphne, Celery, the agent process, and kubesim with its HTTP edge
(Traefik's routing) and Sablier stand-in. Requests go over real HTTP to the edge with the service's host."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import kubernetes
import pytest

from agent.k8s import FIELD_MANAGER
from kubesim.testing import KubeSim
from kubesim.tests.edge_helpers import Reply, fetch
from paas.testing.plane import poll
from projects import releases, services, suspension, wake
from projects.compose import sleep as S
from projects.models import Service
from projects.tests.test_projects_deploy import finished

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

NS = "tenant-acme-shop"
COMPOSE = """services:
  web:
    image: nginx:1.27
    ports:
      - "8080:80"
  worker:
    image: ghcr.io/acme/worker:1.0
"""


@pytest.fixture(scope="module")
def _kubesim_server() -> Iterator[KubeSim]:
    # Overrides the plugin's server: this module's cluster has the edge and Sablier, expiring sessions quickly.
    sim = KubeSim(controllers=True, preload_crds=True, edge=True, sablier=True, sablier_expiry_interval=0.1)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def sleepy(monkeypatch, _kubesim_server, settings):
    # The agent process reads AGENT_SABLIER_URL; it must be set before `connected` starts it.
    monkeypatch.setenv("AGENT_SABLIER_URL", _kubesim_server.sablier_url)
    settings.PROJECTS_MIN_IDLE_TIMEOUT = 1


def get(sim: KubeSim, service: Service) -> Reply:
    return fetch(sim.edge_url + "/", service.public_host, timeout=30)


def status_no_redirect(sim: KubeSim, service: Service) -> tuple[int, str]:
    """(status, Location) of a request to the edge, without following a redirect."""
    connection = http.client.HTTPConnection(urlsplit(sim.edge_url).netloc, timeout=30)
    try:
        connection.request("GET", "/", headers={"Host": service.public_host})
        response = connection.getresponse()
        return response.status, response.getheader("Location") or ""
    finally:
        connection.close()


def replicas(sim: KubeSim, name: str) -> int | None:
    return ((sim.get("deployments", NS, name) or {}).get("spec") or {}).get("replicas")


def status(service: Service) -> str:
    service.refresh_from_db()
    return service.status


def asleep(sim: KubeSim, service: Service, timeout: float = 20) -> None:
    poll(lambda: replicas(sim, service.name) == 0 and status(service) == "sleeping", timeout,
         f"{service.name} asleep")


def short_idle(project, seconds: int = 1, name: str = "web") -> None:
    """The service's row before its first deploy, with a short idle timeout (the settings survive deploys)."""
    Service.objects.create(project=project, name=name, idle_timeout=seconds)


def test_a_service_sleeps_wakes_on_a_request_and_a_redeploy_leaves_its_replicas_to_sablier(
        sleepy, connected, kubesim, personas, project):
    short_idle(project)
    first = finished(releases.deploy(project, personas.owner, COMPOSE))
    assert first.status == "live", first.error
    web, worker = project.services.get(name="web"), project.services.get(name="worker")
    assert web.sleeps and web.idle_timeout == 1 and not worker.sleeps
    assert worker.sleep_blocker() == "it has no public URL, so no request could wake it"
    deployment = kubesim.get("deployments", NS, "web")
    assert deployment["metadata"]["labels"][S.ENABLE] == "true"
    applied = [f for f in deployment["metadata"]["managedFields"] if f["manager"] == FIELD_MANAGER]
    assert applied and all("f:replicas" not in f["fieldsV1"].get("f:spec", {}) for f in applied), \
        "the agent never owns a sleeper's replicas"

    # Nobody visits: the deploy's idle clock (a Sablier session) runs out and Sablier scales it down.
    asleep(kubesim, web)
    assert replicas(kubesim, "worker") == 1, "a worker stays at its compose replicas"

    # A new release to a sleeping service updates its template without waking it.
    second = finished(releases.deploy(project, personas.owner, COMPOSE.replace("nginx:1.27", "nginx:1.28")))
    assert second.status == "live", second.error
    assert "web is asleep: updated without waking" in second.steps["rollout"]["message"]
    deployment = kubesim.get("deployments", NS, "web")
    assert deployment["spec"]["replicas"] == 0
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"

    # A browser's first request gets Sablier's starting page, then the pod's own page.
    reply = get(kubesim, web)
    assert reply.headers.get("X-Sablier-Session-Status") == "not-ready" and "web" in reply.text
    served = poll(lambda: (r := get(kubesim, web)).status == 200 and "nginx:1.28" in r.text and r, 20,
                  "the pod's page")
    assert served.headers.get("X-Sablier-Session-Status") is None
    poll(lambda: status(web) == "running", 10, "web running on the project page")

    # Idle again: Sablier puts it back to sleep; "Wake now" goes through Sablier and returns once ready.
    asleep(kubesim, web)
    assert wake.wake_service(web) == {"woken": True, "ready": True, "message": "web is awake."}
    assert replicas(kubesim, "web") == 1
    asleep(kubesim, web)


def test_a_sablier_scale_survives_a_redeploy(sleepy, connected, kubesim, kube_api, personas, project):
    assert finished(releases.deploy(project, personas.owner, COMPOSE)).status == "live"
    # Scale the way Sablier does: the scale subresource, its own field manager.
    kubernetes.client.AppsV1Api(kube_api).patch_namespaced_deployment_scale(
        "web", NS, {"spec": {"replicas": 0}}, field_manager="sablier")
    kubesim.wait_for(lambda: replicas(kubesim, "web") == 0)
    again = finished(releases.redeploy(project, personas.owner))
    assert again.status == "live", again.error
    time.sleep(0.5)  # the agent's observe loop and any late apply
    assert replicas(kubesim, "web") == 0


def test_a_service_that_cannot_start_gets_an_error_page_not_a_hang(sleepy, connected, kubesim, personas, project):
    crashing = COMPOSE.replace("nginx:1.27", "ghcr.io/acme/web:crash")
    release = finished(releases.deploy(project, personas.owner, crashing))
    assert release.status == "failed" and release.error_code == "crash_loop"
    web = project.services.get(name="web")
    # A browser: Sablier's page names the failure instead of refreshing forever.
    reply = poll(lambda: (r := get(kubesim, web)) and "CrashLoopBackOff" in r.text and r, 20, "the error page")
    assert reply.headers.get("X-Sablier-Session-Status") == "not-ready"
    # An API client with the blocking strategy: an error at once, not after the timeout.
    services.set_sleep(web, strategy="blocking", blocking_timeout=120)
    assert finished(releases.redeploy(project, personas.owner)).status == "failed"
    started = time.monotonic()
    reply = poll(lambda: (r := get(kubesim, web)).status == 500 and r, 20, "the blocking error")
    assert "Instance cannot start" in reply.text and "CrashLoopBackOff" in reply.text
    assert time.monotonic() - started < 20


def test_a_suspended_project_shows_the_suspended_page_and_cannot_wake(sleepy, connected, kubesim, client, personas,
                                                                       project):
    assert finished(releases.deploy(project, personas.owner, COMPOSE)).status == "live"
    web = project.services.get(name="web")
    assert suspension.suspend_organization(personas.org) == 1
    page = suspension.suspended_page_url(project)
    poll(lambda: status_no_redirect(kubesim, web)[0] == 302, 20, "the suspended redirect")
    assert status_no_redirect(kubesim, web) == (302, page)
    deployment = kubesim.get("deployments", NS, "web")
    assert deployment["spec"]["replicas"] == 0 and S.ENABLE not in deployment["metadata"]["labels"]
    assert kubesim.get("deployments", NS, "worker")["spec"]["replicas"] == 0
    time.sleep(0.5)
    assert replicas(kubesim, "web") == 0, "the request woke nothing"
    with pytest.raises(wake.WakeError, match="suspended"):
        wake.wake_service(project.services.get(name="web"))
    shown = client.get(page.removeprefix("http://127.0.0.1:8000"))
    assert shown.status_code == 503
    assert b"Shop is suspended" in shown.content and b"/o/acme/billing/" in shown.content

    assert suspension.resume_organization(personas.org) == 1
    poll(lambda: S.ENABLE in kubesim.get("deployments", NS, "web")["metadata"]["labels"], 20, "sleeping restored")
    assert replicas(kubesim, "web") == 0 and replicas(kubesim, "worker") == 1, "web asleep, worker back"
    poll(lambda: "Hello from web-" in get(kubesim, web).text, 20, "a request wakes it through Sablier")
    # A later release leaves the replicas to Sablier: the awake service is not put back to sleep by it.
    assert finished(releases.redeploy(project, personas.owner)).status == "live"
    assert replicas(kubesim, "web") == 1
