"""Append-only: no ORM path changes or removes an event, and the admin offers no way to either."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db import transaction

from accounts.models import User
from audit import services as audit
from audit.models import AppendOnlyError, AuditEvent


@pytest.fixture
def event(personas):
    return audit.record(audit.Action.MEMBER_ADDED, actor=personas.owner, organization=personas.org,
                        target=personas.member, details={"role": "member"}, ip="192.0.2.1")


def test_it_refuses_to_change_or_delete_an_event_through_the_orm(event):
    event.action = audit.Action.LOGIN
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(actor_label="mallory@example.com")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AppendOnlyError), transaction.atomic():
        AuditEvent.objects.bulk_update([event], ["action"])
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.action, stored.actor_label) == ("member.added", "alice@example.com")


def test_it_keeps_who_did_it_after_the_user_is_deleted(event, personas):
    User.objects.filter(pk=personas.owner.pk).delete()
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor is None and stored.actor_label == "alice@example.com"
    assert stored.organization == personas.org and stored.organization_label == "acme"
    assert stored.target_label == "bob@example.com" and str(stored.ip_address) == "192.0.2.1"


def test_the_admin_shows_events_to_operators_and_cannot_add_change_or_delete(client, operator, event):
    model_admin = admin.site._registry[AuditEvent]
    client.force_login(operator)
    page = client.get("/admin/audit/auditevent/")
    assert page.status_code == 200 and b"alice@example.com" in page.content
    assert b"delete_selected" not in page.content
    assert client.get("/admin/audit/auditevent/", {"q": "bob"}).status_code == 200
    assert client.get("/admin/audit/auditevent/", {"action__exact": "member.added"}).status_code == 200
    detail = client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"actor_label": "x"}).status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    request = client.get("/admin/").wsgi_request
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, event)
    assert not model_admin.has_delete_permission(request, event)
    assert AuditEvent.objects.get(pk=event.pk).actor_label == "alice@example.com"
