"""Owners' database dump and restore: who may (owners and admins; never members, viewers or other tenants), bad
input refused before anything runs, and the real round trip through daphne, the agent process, kubesim running
pg_dump / pg_restore and this machine's PostgreSQL."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest
import requests
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.models import Membership, Role
from accounts.services import create_api_token
from audit.models import AuditEvent
from lib.realtime import org_group
from projects.models import Project

DUMP = "/o/{org}/projects/{project}/database/dump/"
RESTORE = "/o/{org}/projects/{project}/database/restore/"
API_DUMP = "/api/v1/organizations/{org}/projects/{project}/database/dump/"
API_RESTORE = "/api/v1/organizations/{org}/projects/{project}/database/restore/"


def urls(project: Project, org: str | None = None) -> dict[str, str]:
    values = {"org": org or project.organization.slug, "project": project.slug}
    return {name: template.format(**values) for name, template in
            (("dump", DUMP), ("restore", RESTORE), ("api_dump", API_DUMP), ("api_restore", API_RESTORE))}


@pytest.fixture
def shop(project) -> Project:
    project.wants_database = True
    project.save(update_fields=["wants_database"])
    return project


def upload(content: bytes = b"PGDMP...") -> dict[str, SimpleUploadedFile]:
    return {"file": SimpleUploadedFile("shop.dump", content, content_type="application/octet-stream")}


@pytest.mark.django_db
def test_members_and_viewers_are_refused_and_other_tenants_see_nothing(client, personas, viewer, shop):
    paths = urls(shop)
    for user, status in ((personas.member, 403), (viewer, 403), (personas.outsider, 404)):
        client.force_login(user)
        assert client.get(paths["dump"]).status_code == status
        assert client.post(paths["restore"], upload()).status_code == status
        token = create_api_token(user, "cli")[1]
        api = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
        assert api.get(paths["api_dump"]).status_code == status
        assert api.post(paths["api_restore"], upload()).status_code == status
    # The outsider's own organization with the victim's project: as missing as any other.
    client.force_login(personas.outsider)
    swapped = urls(shop, org=personas.outsider_org.slug)
    assert client.get(swapped["dump"]).status_code == 404
    assert client.post(swapped["restore"], upload()).status_code == 404
    assert not AuditEvent.objects.filter(action__startswith="database.").exists()


@pytest.mark.django_db
def test_anonymous_requests_go_to_the_login_page(client, shop):
    paths = urls(shop)
    assert client.get(paths["dump"])["Location"].startswith("/accounts/login/")
    assert client.post(paths["restore"], upload())["Location"].startswith("/accounts/login/")
    assert Client().get(paths["api_dump"]).status_code in (401, 403) and \
        Client().get(paths["api_dump"]).json()["detail"]


@pytest.mark.django_db
def test_a_project_without_a_database_has_nothing_to_dump(client, personas, project):
    client.force_login(personas.owner)
    assert client.get(urls(project)["dump"]).status_code == 404
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_api_token(personas.owner, 'cli')[1]}")
    assert api.get(urls(project)["api_dump"]).json()["detail"] == "This project has no database."


@pytest.mark.django_db
def test_an_upload_too_large_or_missing_is_refused_before_the_cluster_is_asked(client, personas, shop, settings):
    settings.DATABASE_RESTORE_MAX_BYTES = 1024
    api = Client(HTTP_AUTHORIZATION=f"Bearer {create_api_token(personas.owner, 'cli')[1]}")
    response = api.post(urls(shop)["api_restore"], upload(b"x" * 1025))
    assert response.status_code == 413
    assert response.json()["detail"] == ("The file is 1025 bytes; restores take at most 1024 bytes "
                                         "(DATABASE_RESTORE_MAX_BYTES).")
    client.force_login(personas.owner)
    response = client.post(urls(shop)["restore"], {}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400 and response.json()["error"].startswith("Choose a dump file")
    assert not AuditEvent.objects.filter(action__startswith="database.").exists()


@pytest.mark.django_db(transaction=True)  # the stream's database_sync_to_async closes the thread's connection
def test_admins_may_and_the_page_offers_it_to_them_only(client, personas, shop, viewer):
    admin = Membership.objects.get(user=personas.member, organization=personas.org)
    client.force_login(personas.member)
    page = client.get(f"/o/{shop.organization.slug}/projects/{shop.slug}/").content.decode()
    assert "Download a dump" not in page
    admin.role = Role.ADMIN
    admin.save(update_fields=["role"])
    page = client.get(f"/o/{shop.organization.slug}/projects/{shop.slug}/").content.decode()
    assert "Download a dump" in page and urls(shop)["dump"] in page
    # No agent is connected: a clear answer instead of a truncated file.
    response = client.get(urls(shop)["dump"])
    assert response.status_code == 302 and response["Location"].endswith("#database")
    assert "agent is not reachable" in client.get(response["Location"]).content.decode()


# --- The real round trip ------------------------------------------------------------------------------------


def session_cookie(user) -> str:
    browser = Client()
    browser.force_login(user)
    return f"sessionid={browser.cookies['sessionid'].value}"


async def _collect_while(org_id: int, action):
    """Run `action` in a thread while listening to the organization's live events; (its result, the events)."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(org_group(org_id), channel)
    result = await asyncio.to_thread(action)
    events = []
    while not events or events[-1]["data"]["state"] not in ("done", "failed"):
        message = await asyncio.wait_for(layer.receive(channel), 10)
        if message.get("event") == "database.transfer":
            events.append(message)
    await layer.group_discard(org_group(org_id), channel)
    return result, [e["data"] for e in events]


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_an_owner_dumps_and_restores_the_real_database_through_daphne_and_the_agent(tenant_database, personas):
    t = tenant_database
    with t.connect() as conn:
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, item text)")
        conn.execute("INSERT INTO orders SELECT n, 'item ' || n || ' ' || (SELECT string_agg(md5(random()::text "
                     "|| g || n), '') FROM generate_series(1, 8) g) FROM generate_series(1, 3000) n")
        before = conn.execute("SELECT md5(string_agg(item, ',' ORDER BY id)) FROM orders").fetchone()

    # The page's download link, as the owner's browser follows it, served by daphne.
    paths = urls(t.project)
    request = urllib.request.Request(  # noqa: S310 (our daphne)
        t.url + paths["dump"], headers={"Cookie": session_cookie(personas.owner)})

    def download() -> tuple[int, str, bytes]:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 (our daphne)
            return response.status, response.headers["Content-Disposition"], response.read()

    (status, disposition, dump), events = async_to_sync(_collect_while)(t.project.organization_id, download)
    assert status == 200 and disposition.startswith(f'attachment; filename="acme-{t.project.slug}-')
    assert dump.startswith(b"PGDMP") and len(dump) > 300_000  # more than the tunnel's window: flow control ran
    assert events[0]["state"] == "starting" and events[-1] == {
        "project": t.project.slug, "kind": "dump", "state": "done", "bytes": len(dump), "total": None}
    assert AuditEvent.objects.filter(action="database.dumped", actor=personas.owner).count() == 1

    with t.connect() as conn:
        conn.execute("DELETE FROM orders WHERE id > 10")
        conn.execute("UPDATE orders SET item = 'changed'")

    # A file that is no dump: pg_restore's reason, and nothing changed.
    cookie = session_cookie(personas.owner)
    session = requests.Session()
    page = session.get(t.url + f"/o/acme/projects/{t.project.slug}/", headers={"Cookie": cookie})
    csrf = session.cookies.get("csrftoken") or page.text.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    answer = session.post(t.url + paths["restore"], files={"file": ("x.dump", b"not a dump at all")},
                          headers={"Cookie": f"{cookie}; csrftoken={csrf}", "X-CSRFToken": csrf,
                                   "Accept": "application/json", "Referer": t.url + "/"}, timeout=120)
    assert answer.status_code == 200, answer.text
    assert answer.json()["ok"] is False
    assert "input file does not appear to be a valid archive" in answer.json()["messages"]
    with t.connect() as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (10,)

    # The REST API with the owner's token: the real dump goes back in, through the same stream the other way.
    token = create_api_token(personas.owner, "cli")[1]

    def restore() -> requests.Response:
        return requests.post(t.url + paths["api_restore"], files={"file": ("shop.dump", dump)},
                             headers={"Authorization": f"Bearer {token}"}, timeout=120)

    answer, events = async_to_sync(_collect_while)(t.project.organization_id, restore)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"ok": True, "bytes": len(dump), "exit_code": 0, "messages": ""}
    assert events[-1] == {"project": t.project.slug, "kind": "restore", "state": "done", "bytes": len(dump),
                          "total": len(dump)}
    with t.connect() as conn:
        assert conn.execute("SELECT md5(string_agg(item, ',' ORDER BY id)) FROM orders").fetchone() == before
    restored = AuditEvent.objects.filter(action="database.restored").order_by("pk")
    assert [e.details["ok"] for e in restored] == [False, True]

    # Another organization's owner, through daphne, gets nothing.
    outsider = urllib.request.Request(  # noqa: S310 (our daphne)
        t.url + paths["dump"], headers={"Cookie": session_cookie(personas.outsider)})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(outsider, timeout=30)  # noqa: S310
    assert refused.value.code == 404
