"""The tenant boundary over every WebSocket route (paas/routing.py): the anonymous, outsider, viewer and member
personas open each route through the real ASGI application (origin check, session cookie, URL router) with the
victim organization's identifiers, and with their own organization's. A socket naming the victim must be refused;
a socket that is accepted (one's own organization) must never deliver an event published to the victim.

ADDING A ROUTE: classify it in WS_ROUTES (and teach WS_ARGUMENTS any new URL argument); an unclassified route
fails this test. The HTTP routes are covered by test_isolation_matrix.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from clusters.services import cluster_group
from lib.realtime import apublish, org_group
from paas import routing
from paas.asgi import application
from paas.tests.isolation_world import World, build_world, route_template

TENANT = "tenant"  # an organization's live events: only its members may listen
OPERATOR = "operator"  # staff only
AGENT = "agent"  # cluster agents with a cluster token; no browser session opens it
SHELL = "shell"  # a shell in a tenant's container: only its members who may deploy; it joins no event group
STREAM = "stream"  # a tenant's live logs: its members and viewers; it joins no event group

# Route pattern (as in paas/routing.py) -> classification.
WS_ROUTES: dict[str, str] = {
    "ws/o/<slug:org_slug>/events/": TENANT,
    "ws/clusters/<slug:slug>/": OPERATOR,
    "agent/ws": AGENT,
    "ws/o/<slug:org_slug>/projects/<slug:project_slug>/services/<str:name>/terminal/": SHELL,
    "ws/o/<slug:org_slug>/projects/<slug:project_slug>/services/<str:name>/exec/": SHELL,
    "ws/o/<slug:org_slug>/projects/<slug:project_slug>/logs/": STREAM,
    "ws/o/<slug:org_slug>/projects/<slug:project_slug>/services/<str:service>/logs/": STREAM,
}

# URL argument -> (the organization whose slug goes in, the world) -> value.
WS_ARGUMENTS = {
    "org_slug": lambda org, world: org.slug,
    "slug": lambda org, world: world.cluster.slug,
    "project_slug": lambda org, world: (world.victim if org == world.victim.org else world.acme).project.slug,
    "name": lambda org, world: (world.victim if org == world.victim.org else world.acme).service.name,
    "service": lambda org, world: (world.victim if org == world.victim.org else world.acme).service.name,
}

pytestmark = pytest.mark.django_db(transaction=True)  # consumers read the database from their own threads


@dataclass(frozen=True)
class WsRoute:
    pattern: str
    template: str
    arguments: tuple[str, ...]


ALL_WS_ROUTES = [WsRoute(str(p.pattern), *route_template(p.pattern))
                 for p in [*routing.browser_websocket_urlpatterns, *routing.agent_websocket_urlpatterns]]


def test_every_websocket_route_is_classified():
    missing = [r.pattern for r in ALL_WS_ROUTES if r.pattern not in WS_ROUTES]
    assert not missing, f"Classify these WebSocket routes in WS_ROUTES in {__name__}: {missing}"
    unknown = {a for r in ALL_WS_ROUTES for a in r.arguments} - set(WS_ARGUMENTS)
    assert not unknown, f"Teach WS_ARGUMENTS in {__name__} these URL arguments: {sorted(unknown)}"


@pytest.fixture
def world() -> World:
    return build_world()


def session_cookie(user: Any) -> bytes:
    if user is None:
        return b""
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def victim_event_reaches(ws: WebsocketCommunicator, world: World) -> bool:
    for group in (org_group(world.victim.org.pk), cluster_group(world.cluster.pk)):
        await apublish(group, "release.progress", {"project": world.victim.project.slug, "marker": "qxvictim"})
    # Only the victim's event counts: one's own socket may carry one's own events meanwhile.
    while not await ws.receive_nothing(timeout=0.3):
        if "qxvictim" in await ws.receive_from():
            return True
    return False


def api_token_header(user: Any) -> bytes:
    from accounts.services import create_api_token

    return b"Bearer " + (create_api_token(user, "cli")[1].encode() if user is not None else b"paas_not-a-token")


@pytest.mark.parametrize("auth", ["session", "api_token"])
@pytest.mark.parametrize("route", ALL_WS_ROUTES, ids=[r.pattern for r in ALL_WS_ROUTES])
async def test_no_persona_listens_across_the_tenant_boundary(route: WsRoute, auth: str, world: World):
    personas = {"anonymous": None, "outsider": world.outsider, "viewer": world.viewer, "member": world.member}
    problems = []
    for persona, user in personas.items():
        if auth == "session":  # a browser
            headers = [(b"origin", b"http://testserver"), (b"host", b"testserver"),
                       (b"cookie", await database_sync_to_async(session_cookie)(user))]
        else:  # the CLI: no Origin, a personal API token (anonymous: an invalid one)
            headers = [(b"host", b"testserver"),
                       (b"authorization", await database_sync_to_async(api_token_header)(user))]
        home = world.home_org(user)
        for variant, org in [("foreign", world.victim.org), ("own", home)]:
            if org is None or (variant == "own" and "org_slug" not in route.arguments):
                continue
            path = "/" + route.template.format(**{a: WS_ARGUMENTS[a](org, world) for a in route.arguments})
            ws = WebsocketCommunicator(application, path, headers=headers)
            connected, _ = await ws.connect(timeout=5)
            if persona == "member" and variant == "own" and WS_ROUTES[route.pattern] == TENANT:
                # the control: a member hears their own organization
                assert connected, f"member could not open {path}"
                await apublish(org_group(org.pk), "release.progress", {"project": "shop"})
                assert (await ws.receive_json_from(timeout=5))["data"] == {"project": "shop"}
            if connected:
                if variant == "foreign":
                    problems.append(f"{persona} opened {path} ({WS_ROUTES[route.pattern]} route of the victim)")
                # A shell or log stream of one's own (here refused at once: no agent) says why in its first frame,
                # not an event: it joins no event group.
                if WS_ROUTES[route.pattern] not in (SHELL, STREAM) and await victim_event_reaches(ws, world):
                    problems.append(f"{persona} on {path} received the victim's event")
                await ws.disconnect()
    assert not problems, "\n".join(problems)
