"""What each role may do in an organization, and the last-owner rule."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accounts import services
from accounts.models import Membership, Role
from conftest import make_user


def membership(user, org) -> Membership:
    return Membership.objects.get(user=user, organization=org)


@pytest.mark.django_db
def test_it_lets_owners_and_admins_change_roles_but_not_members(client, personas):
    bob = membership(personas.member, personas.org)
    client.force_login(personas.member)
    response = client.post(f"/o/acme/members/{bob.pk}/role/", {"role": Role.OWNER})
    assert response.status_code == 403
    assert membership(personas.member, personas.org).role == Role.MEMBER

    client.force_login(personas.owner)
    client.post(f"/o/acme/members/{bob.pk}/role/", {"role": Role.ADMIN})
    assert membership(personas.member, personas.org).role == Role.ADMIN


@pytest.mark.django_db
def test_it_keeps_admins_from_creating_or_demoting_owners(personas):
    services.change_role(membership(personas.owner, personas.org), membership(personas.member, personas.org), "admin")
    admin = membership(personas.member, personas.org)
    dave = make_user("dave@example.com")
    dave_m = Membership.objects.create(user=dave, organization=personas.org, role=Role.MEMBER)
    with pytest.raises(PermissionDenied):
        services.change_role(admin, dave_m, Role.OWNER)
    with pytest.raises(PermissionDenied):
        services.change_role(admin, membership(personas.owner, personas.org), Role.MEMBER)
    services.change_role(admin, dave_m, Role.VIEWER)  # admins manage non-owners
    assert Membership.objects.get(pk=dave_m.pk).role == Role.VIEWER


@pytest.mark.django_db
def test_it_refuses_to_demote_or_remove_the_last_owner(client, personas):
    alice = membership(personas.owner, personas.org)
    with pytest.raises(ValidationError, match="last owner"):
        services.change_role(alice, alice, Role.ADMIN)
    client.force_login(personas.owner)
    response = client.post(f"/o/acme/members/{alice.pk}/remove/", follow=True)
    assert b"last owner cannot leave" in response.content
    assert Membership.objects.filter(pk=alice.pk).exists()


@pytest.mark.django_db
def test_it_lets_an_owner_leave_once_there_is_another_owner(client, personas):
    alice = membership(personas.owner, personas.org)
    services.change_role(alice, membership(personas.member, personas.org), Role.OWNER)
    client.force_login(personas.owner)
    response = client.post(f"/o/acme/members/{alice.pk}/remove/")
    assert response.status_code == 302
    assert not Membership.objects.filter(pk=alice.pk).exists()
    assert client.get("/o/acme/").status_code == 404  # gone means gone


@pytest.mark.django_db
def test_it_lets_members_leave_but_not_remove_others(client, personas):
    alice = membership(personas.owner, personas.org)
    bob = membership(personas.member, personas.org)
    client.force_login(personas.member)
    assert client.post(f"/o/acme/members/{alice.pk}/remove/").status_code == 403
    assert client.post(f"/o/acme/members/{bob.pk}/remove/").status_code == 302
    assert not Membership.objects.filter(pk=bob.pk).exists()


@pytest.mark.django_db
def test_it_only_lets_owners_and_admins_rename_the_organization(client, personas):
    client.force_login(personas.member)
    assert client.post("/o/acme/settings/", {"name": "Hijacked"}).status_code == 403
    client.force_login(personas.owner)
    assert client.post("/o/acme/settings/", {"name": "Acme Inc"}).status_code == 302
    personas.org.refresh_from_db()
    assert personas.org.name == "Acme Inc"


@pytest.mark.django_db
def test_it_creates_organizations_with_the_creator_as_owner(client, personas):
    client.force_login(personas.member)
    response = client.post("/o/new/", {"name": "Bob's Side Project"})
    slug = response["Location"].strip("/").split("/")[-1]
    assert membership(personas.member, personas.org.__class__.objects.get(slug=slug)).role == Role.OWNER
    assert slug == "bobs-side-project"


@pytest.mark.django_db
def test_it_never_gives_an_organization_a_reserved_or_duplicate_slug(personas):
    assert services.create_organization(personas.owner, "Acme").slug.startswith("acme-")
    assert services.create_organization(personas.owner, "New").slug == "new-org"
