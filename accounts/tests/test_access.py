"""Three personas against every organization-scoped URL: owner, member, outsider.

The sweep walks the URL configuration, so views added later are covered automatically: an
outsider must get 404 for every URL under /o/<slug>/ and /api/v1/organizations/<slug>/, by
GET and by POST, and never see the organization's name.
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver


def org_scoped_urls() -> list[str]:
    found: list[str] = []

    def walk(patterns, prefix: str) -> None:
        for p in patterns:
            route = prefix + str(p.pattern)
            if isinstance(p, URLResolver):
                walk(p.url_patterns, route)
            elif isinstance(p, URLPattern) and "<slug:org_slug>" in route:
                url = route.replace("<slug:org_slug>", "acme").lstrip("^").rstrip("$")
                found.append("/" + re.sub(r"<(?:(?:int|slug|str|uuid|path):)?\w+>", "1", url))

    walk(get_resolver().url_patterns, "")
    return sorted(set(found))


URLS = org_scoped_urls()


def test_the_sweep_finds_the_organization_pages():
    assert "/o/acme/" in URLS and "/o/acme/members/" in URLS and "/api/v1/organizations/acme/" in URLS


@pytest.mark.django_db
@pytest.mark.parametrize("url", URLS)
def test_it_answers_404_to_outsiders_everywhere(client, personas, url):
    client.force_login(personas.outsider)
    for method in (client.get, client.post):
        response = method(url)
        assert response.status_code in (404, 405), f"{method.__name__.upper()} {url} -> {response.status_code}"
        assert b"Acme" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("url", URLS)
def test_it_never_serves_organization_pages_to_anonymous_visitors(client, personas, url):
    response = client.get(url)
    assert response.status_code in (302, 401, 403, 404, 405)
    assert b"Acme" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "owner", "member"),
    [
        ("/o/acme/", 200, 200),
        ("/o/acme/members/", 200, 200),
        ("/o/acme/settings/", 200, 403),
        ("/api/v1/organizations/acme/", 200, 200),
    ],
)
def test_it_gives_owners_and_members_what_their_role_allows(client, personas, url, owner, member):
    client.force_login(personas.owner)
    assert client.get(url).status_code == owner
    client.force_login(personas.member)
    assert client.get(url).status_code == member


@pytest.mark.django_db
def test_it_shows_the_invite_form_only_to_those_who_may_invite(client, personas):
    client.force_login(personas.owner)
    assert b"Send invitation" in client.get("/o/acme/members/").content
    client.force_login(personas.member)
    page = client.get("/o/acme/members/").content
    assert b"Send invitation" not in page and b"alice@example.com" in page


@pytest.mark.django_db
def test_it_lists_only_my_organizations_in_the_switcher(client, personas):
    client.force_login(personas.member)
    page = client.get("/o/acme/").content
    assert b"Acme" in page and b"Charlie Corp" not in page
