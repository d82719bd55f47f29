"""Every list page and API list makes as many database queries for 30 rows as for 3 (no query per row), and
shows the rows it lists. A list that grows with a tenant's use is paginated, so 1,000 rows cost what 50 do."""

from __future__ import annotations

import importlib
import itertools
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation, Membership, Role, SSHKey
from accounts.services import create_api_token, create_organization
from audit import services as audit
from audit.models import Action
from billing.models import CreditEntry, EntryKind, UsageRecord
from clusters import services as cluster_services
from clusters.models import ClusterEvent, EventKind
from conftest import make_user
from projects import services as project_services
from projects.models import CustomDomain, Project, Release, Service, Variable

COMPOSE = """services:
  web:
    image: nginx:1.27
    ports:
      - "8080:80"
"""


@dataclass
class World:
    owner: object
    operator: object
    org: object
    cluster: object
    project: object
    numbers: dict[str, itertools.count] = field(default_factory=lambda: defaultdict(lambda: itertools.count(1)))

    def add(self, kind: str, n: int) -> str | tuple[str, ...]:
        """Add `n` rows of `kind`; the text the list shows for the last one (one of several, where a page and the
        API show it differently)."""
        for _ in range(n):
            marker = ADD[kind](self, next(self.numbers[kind]))
        return marker


def _project(w: World, i: int) -> str:
    project = Project.objects.create(organization=w.org, name=f"Listed {i}", slug=f"listed-{i}", cluster=w.cluster,
                                     namespace=f"tenant-listed-{i}", created_by=w.owner)
    for name in ("web", "api"):  # what the list shows of each: its services and its latest release
        Service.objects.create(project=project, cluster=w.cluster, name=name, status="running")
    for revision in (1, 2):
        Release.objects.create(project=project, revision=revision, compose_text=COMPOSE, created_by=w.owner)
    return f"Listed {i}"


def _service(w: World, i: int) -> str:
    Service.objects.create(project=w.project, cluster=w.cluster, name=f"svc{i}", image=f"ghcr.io/acme/svc{i}:1",
                           status="running", public_host=f"svc{i}-shop-acme.apps.example.com")
    return f"svc{i}"


def _release(w: World, i: int) -> str:
    previous = w.project.releases.order_by("-revision").first()
    revision = (previous.revision if previous else 0) + 1
    Release.objects.create(project=w.project, revision=revision, compose_text=COMPOSE, created_by=w.owner,
                           rollback_of=previous, kind="rollback" if previous else "deploy", sealed_manifests=[{}])
    return f">r{revision}<", f'"revision":{revision},'  # page, API


def _variable(w: World, i: int) -> str:
    Variable.objects.create(project=w.project, name=f"VAR_{i}", value=f"value-{i}", service="web" if i % 2 else "")
    return f"VAR_{i}"


def _ledger(w: World, i: int) -> str:
    CreditEntry.objects.create(organization=w.org, amount=1000, kind=EntryKind.TOP_UP, reference=f"invoice-{i}",
                               created_by=w.owner, created_by_email=w.owner.email, idempotency_key=str(uuid.uuid4()),
                               balance_after=1000 * i)
    return f"invoice-{i}"


def _usage(w: World, i: int) -> str:
    UsageRecord.objects.create(organization=w.org, cluster_key="fsn", project_key=w.project.namespace,
                               service=f"svc{i}", window_start=timezone.now() - timedelta(hours=i), window_seconds=3600,
                               replica_seconds=3600, cpu_millicores=50, memory_mib=64, cost_fine=1)
    return f"svc{i}"


def _usage_project(w: World, i: int) -> str:
    # A project's database and bucket (service ""), one project each: the per-project and per-day summaries grow.
    UsageRecord.objects.create(organization=w.org, cluster_key="fsn", project_key=f"tenant-metered-{i}", service="",
                               window_start=timezone.now() - timedelta(hours=i), window_seconds=3600,
                               replica_seconds=0, cpu_millicores=0, memory_mib=0, database_bytes=10**9,
                               cost_fine=5, database_fine=5)
    return f"tenant-metered-{i}<", f'"tenant-metered-{i}"'  # page, API


def _audit(w: World, i: int) -> str:
    audit.record(Action.VARIABLE_SET, actor=w.owner, organization=w.org, target=w.project, details={"name": f"V{i}"})
    return f"name=V{i}", f'"name":"V{i}"'  # page, API


def _member(w: World, i: int) -> str:
    Membership.objects.create(user=make_user(f"member{i}@example.com"), organization=w.org, role=Role.MEMBER)
    return f"member{i}@example.com"


def _invitation(w: World, i: int) -> str:
    Invitation.objects.create(organization=w.org, email=f"invited{i}@example.com", token_hash=uuid.uuid4().hex,
                              invited_by=w.owner)
    return f"invited{i}@example.com"


def _ssh_key(w: World, i: int) -> str:
    SSHKey.objects.create(user=w.owner, name=f"laptop {i}", key_type="ssh-ed25519", public_key="ssh-ed25519 AAAA",
                          fingerprint=f"SHA256:{uuid.uuid4().hex}")
    return f"laptop {i}"


def _api_token(w: World, i: int) -> str:
    create_api_token(w.owner, f"script {i}")
    return f"script {i}"


def _cluster(w: World, i: int) -> str:
    cluster = cluster_services.create_cluster(f"Region {i}", f"r{i}.example.com", all_organizations=i % 2 == 0,
                                              organizations=[w.org], slug=f"region-{i}")
    ClusterEvent.objects.create(cluster=cluster, kind=EventKind.CONNECTED)
    return f"Region {i}"


def _cluster_event(w: World, i: int) -> str:
    ClusterEvent.objects.create(cluster=w.cluster, kind=EventKind.REJECTED, message=f"refused #{i}")
    return f"refused #{i}"


def _desired(w: World, i: int) -> str:
    namespace = f"tenant-grown-{i}"
    cluster_services.set_desired_project(w.cluster, namespace, {}, 1, [{"kind": "ConfigMap"}] * 50, push=False)
    cluster_services.record_observed(w.cluster.pk, namespace, {"deployments": {
        f"web{i}": {"ready": 1, "replicas": 1, "rollout": "complete"}}})
    return namespace, f"web{i} 1/1"


def _deleted_project(w: World, i: int) -> str:
    now = timezone.now()
    Project.objects.create(organization=w.org, name=f"Gone {i}", slug=f"gone-{i}", cluster=w.cluster,
                           namespace=f"tenant-gone-{i}", created_by=w.owner, deleted_at=now,
                           purge_after=now + timedelta(hours=1))
    return f"gone-{i}"


def _domain(w: World, i: int) -> str:
    service, _ = Service.objects.get_or_create(project=w.project, cluster=w.cluster, name="web",
                                               defaults={"status": "running"})
    CustomDomain.objects.create(service=service, hostname=f"www{i}.example.org", token=f"token{i}")
    return f"www{i}.example.org"


def _organization(w: World, i: int) -> str:
    create_organization(w.owner, f"Venture {i}")
    return f"Venture {i}"


ADD: dict[str, Callable[[World, int], str | tuple[str, ...]]] = {
    "projects": _project, "services": _service, "releases": _release, "variables": _variable, "ledger": _ledger,
    "usage": _usage, "usage_projects": _usage_project, "audit": _audit, "members": _member,
    "invitations": _invitation, "ssh_keys": _ssh_key,
    "api_tokens": _api_token, "clusters": _cluster, "cluster_events": _cluster_event, "desired": _desired,
    "organizations": _organization, "deleted_projects": _deleted_project, "domains": _domain,
}

ORG, PROJECT = ("org",), ("org", "project")

# (URL name, its arguments, who asks, what grows). The rows of every kind grow together where a page shows several.
LISTS = [
    ("project_list", ORG, "owner", ["projects", "deleted_projects"]),
    ("project_rows", ORG, "owner", ["projects"]),
    ("project_detail", PROJECT, "owner", ["services", "releases", "variables", "domains"]),
    ("project_service_rows", PROJECT, "owner", ["services"]),
    ("project_logs", PROJECT, "owner", ["services"]),
    ("release_list", PROJECT, "owner", ["releases"]),
    ("members", ORG, "owner", ["members", "invitations"]),
    ("billing", ORG, "owner", ["ledger", "usage", "usage_projects"]),
    ("audit_log", ORG, "owner", ["audit"]),
    ("org_home", ORG, "owner", ["organizations"]),
    ("ssh_keys", (), "owner", ["ssh_keys"]),
    ("api_tokens", (), "owner", ["api_tokens"]),
    ("cluster_list", (), "operator", ["clusters"]),
    ("cluster_detail", ("cluster",), "operator", ["cluster_events", "desired"]),
    ("api_organizations", (), "owner", ["organizations"]),
    ("api_projects", ORG, "owner", ["projects"]),
    ("api_project", PROJECT, "owner", ["services"]),
    ("api_releases", PROJECT, "owner", ["releases"]),
    ("api_variables", PROJECT, "owner", ["variables"]),
    ("api_billing_ledger", ORG, "owner", ["ledger"]),
    ("api_billing_usage", ORG, "owner", ["usage"]),
    ("api_billing_usage_projects", ORG, "owner", ["usage_projects"]),
    ("api_billing_usage_services", ORG, "owner", ["usage"]),
    ("api_billing_usage_daily", ORG, "owner", ["usage_projects"]),
    ("api_audit_events", ORG, "owner", ["audit"]),
    ("api_clusters", (), "operator", ["clusters"]),
    ("api_deleted_projects", ORG, "owner", ["deleted_projects"]),
    ("api_service_domains", PROJECT + ("service",), "owner", ["domains"]),
]


@pytest.fixture
def world(personas) -> World:
    cluster = cluster_services.create_cluster("Falkenstein", "apps.example.com", simulated=True, slug="fsn")
    project = project_services.create_project(personas.org, personas.owner, "Shop", cluster, compose_text=COMPOSE)
    operator = make_user("olga@example.com")
    operator.is_staff = True
    operator.save()
    return World(owner=personas.owner, operator=operator, org=personas.org, cluster=cluster, project=project)


def _fetch(client: Client, url: str) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, f"{url} answered {response.status_code}"
    return len(queries), response.content.decode()


@pytest.mark.parametrize(("name", "args", "who", "grows"), LISTS, ids=[row[0] for row in LISTS])
def test_a_list_costs_the_same_queries_for_3_rows_as_for_30(world, name, args, who, grows):
    values = {"org": world.org.slug, "project": world.project.slug, "cluster": world.cluster.slug, "service": "web"}
    url = reverse(name, args=[values[a] for a in args])
    client = Client()
    client.force_login(getattr(world, who))

    shown = [world.add(kind, 3) for kind in grows]
    few, body = _fetch(client, url)
    assert _all_shown(shown, body)

    shown = [world.add(kind, 27) for kind in grows]
    many, body = _fetch(client, url)
    assert _all_shown(shown, body), "the newest rows are on the first page"
    assert many == few, f"{name}: {few} queries for 3 rows, {many} for 30"


def _all_shown(markers: list[str | tuple[str, ...]], body: str) -> bool:
    return all(any(m in body for m in ((marker,) if isinstance(marker, str) else marker)) for marker in markers)


def test_every_list_route_is_measured():
    """A new list page or API list joins LISTS (or the exemptions below, with the reason)."""
    lists = {name for name, *_ in LISTS}
    not_lists = {
        # Forms, actions, single objects, files and sockets' pages: no rows that grow with use.
        "home", "organization_create", "org_settings", "member_role", "member_remove", "invitation_revoke",
        "invitation", "ssh_key_delete", "api_token_revoke", "cluster_create", "cluster_agent_manifest", "cluster_edit",
        "cluster_install", "cluster_bootstrap", "cluster_rotate_token", "cluster_revoke_token", "project_validate",
        "project_deploy", "project_redeploy", "project_delete", "service_logs", "project_service_exposure",
        "project_service_terminal", "project_service_sleep", "project_service_wake", "project_suspended",
        "project_variables", "project_variable_delete", "release_detail", "release_rollback", "project_data_reveal",
        "api_me", "api_organization", "api_cluster", "api_cluster_install", "api_project_validate", "api_release",
        "api_release_rollback", "api_project_logs", "api_service_logs", "api_service_exposure", "api_service_sleep",
        "api_service_wake", "api_variable", "api_billing_balance", "project_restore", "api_project_restore",
        "project_database_dump", "project_database_restore", "api_database_dump", "api_database_restore",
        "project_domain_add", "project_domain_delete", "project_domain_verify", "api_service_domain",
        "api_service_domain_verify", "project_kubectl_create", "project_kubectl_revoke",
        # CSV exports stream every row in chunks, by design.
        "billing_ledger_csv", "billing_usage_csv", "audit_csv",
    }
    routes = set()
    for app in ("accounts", "audit", "billing", "clusters", "projects"):
        urls = importlib.import_module(f"{app}.urls")
        routes |= {pattern.name for pattern in [*urls.urlpatterns, *urls.api_urlpatterns]}
    assert routes - lists - not_lists == set(), "classify these routes in LISTS or the exemptions"
    assert not_lists - routes == set(), "these exemptions name no route any more"


def test_api_lists_come_in_pages_a_client_follows_by_next(world):
    world.add("projects", 60)
    client = Client()
    client.force_login(world.owner)
    url = reverse("api_projects", args=[world.org.slug])

    first = client.get(url).json()
    assert (first["count"], len(first["results"]), first["previous"]) == (61, 50, None)  # with "Shop"
    second = client.get(first["next"]).json()
    assert second["next"] is None and len(second["results"]) == 11
    names = [p["name"] for p in first["results"] + second["results"]]
    assert len(set(names)) == 61 and "Shop" in names

    assert len(client.get(url, {"page_size": 10}).json()["results"]) == 10
    assert len(client.get(url, {"page_size": 100000}).json()["results"]) == 61  # capped at 200, all fit
    assert client.get(url, {"page": 9}).status_code == 404


def test_the_project_list_pages_and_searches_and_its_live_rows_keep_both(world):
    world.add("projects", 60)
    client = Client()
    client.force_login(world.owner)
    page = reverse("project_list", args=[world.org.slug])

    first = client.get(page).content.decode()
    assert first.count("<tr data-project=") == 50 and "Page 1 of 2" in first and 'rel="next"' in first
    second = client.get(page, {"page": 2}).content.decode()
    assert second.count("<tr data-project=") == 11
    # The live refresh re-fetches the rows of the page the user is on, with the same search.
    assert f'hx-get="{reverse("project_rows", args=[world.org.slug])}?page=2"' in second

    found = client.get(page, {"q": "listed 4"}).content.decode()  # name or slug, any case
    assert sorted(_rows(found)) == ["listed-4", "listed-40", "listed-41", "listed-42", "listed-43", "listed-44",
                                    "listed-45", "listed-46", "listed-47", "listed-48", "listed-49"]
    rows = client.get(reverse("project_rows", args=[world.org.slug]), {"q": "LISTED-5"}).content.decode()
    assert sorted(_rows(rows)) == ["listed-5", *[f"listed-5{d}" for d in range(10)]]
    assert "No project matches “nothing”" in client.get(page, {"q": "nothing"}).content.decode()


def _rows(html: str) -> list[str]:
    return [part.split('"')[1] for part in html.split("<tr data-project=")[1:]]


def test_the_releases_members_and_ledger_pages_search(world):
    world.add("releases", 60)
    world.add("members", 3)
    world.add("ledger", 3)
    client = Client()
    client.force_login(world.owner)
    project_page = client.get(reverse("project_detail", args=[world.org.slug, world.project.slug])).content.decode()
    assert 'data-testid="all-releases"' in project_page and project_page.count("<tr data-revision=") == 30

    releases = reverse("release_list", args=[world.org.slug, world.project.slug])
    assert client.get(releases).content.decode().count("<tr data-revision=") == 50
    assert client.get(releases, {"page": 2}).content.decode().count("<tr data-revision=") == 10
    assert client.get(releases, {"q": "r7"}).content.decode().count('<tr data-revision="7">') == 1
    assert client.get(releases, {"q": "r7"}).content.decode().count("<tr data-revision=") == 1

    members = client.get(reverse("members", args=[world.org.slug]), {"q": "MEMBER2"}).content.decode()
    assert members.count('data-testid="member-row"') == 1 and "member2@example.com" in members

    ledger = client.get(reverse("billing", args=[world.org.slug]), {"q": "invoice-2"}).content.decode()
    assert ledger.count('data-testid="ledger-row"') == 1
    api = client.get(reverse("api_billing_ledger", args=[world.org.slug]), {"q": "INVOICE"}).json()
    assert api["count"] == 3


def test_the_cluster_list_and_a_clusters_projects_page_and_search_for_operators(world):
    world.add("clusters", 60)
    client = Client()
    client.force_login(world.operator)
    clusters = reverse("cluster_list")

    first = client.get(clusters).content.decode()
    assert first.count('data-testid="cluster-row"') == 50 and "Page 1 of 2" in first and 'rel="next"' in first
    assert client.get(clusters, {"page": 2}).content.decode().count('data-testid="cluster-row"') == 11  # + fsn
    found = client.get(clusters, {"q": "region 4"}).content.decode()  # name, slug or base domain, any case
    assert found.count('data-testid="cluster-row"') == 11 and "Region 41" in found and "Region 5<" not in found
    assert client.get(clusters, {"q": "R7.EXAMPLE"}).content.decode().count('data-testid="cluster-row"') == 1
    assert "No cluster matches “nowhere”" in client.get(clusters, {"q": "nowhere"}).content.decode()

    world.add("desired", 60)
    detail = reverse("cluster_detail", args=[world.cluster.slug])
    page = client.get(detail).content.decode()
    assert page.count('<td class="mono">tenant-grown-') == 50 and "Page 1 of 2" in page
    assert page.count('<div data-namespace="tenant-grown-') == 50, "what was observed of the listed projects"
    searched = client.get(detail, {"q": "grown-17"}).content.decode()
    assert searched.count('<td class="mono">tenant-grown-') == 1 and "web17 1/1" in searched
    assert "web18 1/1" not in searched
    assert "No namespace matches “nothing”" in client.get(detail, {"q": "nothing"}).content.decode()
