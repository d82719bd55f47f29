"""Every action is recorded by the service that performs it, with actor, organization, target and IP, and
never with a secret value in it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import RequestFactory, override_settings
from django.utils import timezone

from accounts import services as accounts
from accounts.models import Membership, Role
from audit import services as audit
from audit.models import Action, AuditEvent
from clusters import services as clusters
from conftest import make_user
from projects import deletion, releases
from projects import services as projects
from projects.models import Release


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def everything_stored() -> str:
    return json.dumps(list(AuditEvent.objects.values()), default=str)


def last(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).latest("id")


def test_membership_and_invitation_services_record_who_did_what_to_whom(personas):
    owner = Membership.objects.get(user=personas.owner, organization=personas.org)
    bob = Membership.objects.get(user=personas.member, organization=personas.org)
    accounts.change_role(owner, bob, Role.ADMIN)
    accounts.change_role(owner, bob, Role.ADMIN)  # no change, no event
    event = last(Action.MEMBER_ROLE_CHANGED)
    assert AuditEvent.objects.filter(action=Action.MEMBER_ROLE_CHANGED).count() == 1
    assert (event.actor, event.organization, event.target_type, event.target_label) == (
        personas.owner, personas.org, "user", "bob@example.com")
    assert event.details == {"from": "member", "to": "admin"}

    issued = accounts.invite(owner, "erin@example.com", Role.VIEWER)
    assert last(Action.INVITATION_SENT).details == {"email": "erin@example.com", "role": "viewer"}
    erin = make_user("erin@example.com")
    accounts.accept_invitation(erin, issued.url.rstrip("/").rsplit("/", 1)[1])
    accepted, added = last(Action.INVITATION_ACCEPTED), last(Action.MEMBER_ADDED)
    assert accepted.actor == erin and accepted.organization == personas.org
    assert added.target_label == "erin@example.com" and added.details == {"role": "viewer",
                                                                          "invited_by": "alice@example.com"}
    other = accounts.invite(owner, "frank@example.com")
    accounts.revoke_invitation(owner, other.invitation)
    accounts.revoke_invitation(owner, other.invitation)  # already revoked: nothing new
    assert AuditEvent.objects.filter(action=Action.INVITATION_REVOKED, target_id=str(other.invitation.pk)).count() == 1

    accounts.remove_member(owner, bob)
    removed = last(Action.MEMBER_REMOVED)
    assert (removed.actor, removed.target_label, removed.details) == (
        personas.owner, "bob@example.com", {"role": "admin", "left": False})
    assert issued.url.rsplit("/", 2)[-2] not in everything_stored()  # the invitation's token is not in the log


def test_a_refused_change_records_nothing(personas):
    bob = Membership.objects.get(user=personas.member, organization=personas.org)
    owner = Membership.objects.get(user=personas.owner, organization=personas.org)
    before = AuditEvent.objects.count()
    with pytest.raises(Exception, match="Only owners and admins"):
        accounts.change_role(bob, owner, Role.VIEWER)
    with pytest.raises(Exception, match="last owner"):
        accounts.remove_member(owner, owner)
    assert AuditEvent.objects.count() == before


def test_key_and_token_services_record_user_level_events_without_the_secret(personas):
    from accounts.tests.test_ssh_keys import public_key

    key = accounts.add_ssh_key(personas.owner, "laptop", public_key())
    accounts.remove_ssh_key(personas.owner, key)
    token, raw = accounts.create_api_token(personas.owner, "ci", timezone.now() + timedelta(days=30))
    accounts.revoke_api_token(token)
    accounts.revoke_api_token(token)
    assert actions()[-4:] == ["ssh_key.added", "ssh_key.removed", "api_token.created", "api_token.revoked"]
    added = last(Action.SSH_KEY_ADDED)
    assert added.organization is None and added.details["fingerprint"] == key.fingerprint
    assert last(Action.API_TOKEN_CREATED).target_label == f"ci ({token.prefix}…)"
    assert raw not in everything_stored() and raw[12:] not in everything_stored()


def test_project_services_record_variables_by_name_deploys_rollbacks_and_deletion(personas, project):
    projects.set_variable(project, "GREETING", "hello there", actor=personas.member)
    projects.set_variable(project, "STRIPE_KEY", "sk_live_do-not-log-me", secret=True, service="web",
                          actor=personas.member)
    projects.set_variable(project, "STRIPE_KEY", "sk_live_rotated-value", secret=True, service="web",
                          actor=personas.member)
    secret = project.variables.get(name="STRIPE_KEY")
    projects.delete_variable(secret, actor=personas.owner)
    projects.delete_variable(project.variables.get(name="GREETING"), actor=personas.owner)
    assert actions()[-5:] == ["variable.set", "secret.set", "secret.set", "secret.unset", "variable.unset"]
    assert last(Action.SECRET_SET).details == {"name": "STRIPE_KEY", "service": "web", "created": False}
    stored = everything_stored()
    assert "sk_live" not in stored and "hello there" not in stored

    first = releases.deploy(project, personas.member)
    Release.objects.filter(pk=first.pk).update(sealed_manifests=[{"kind": "ConfigMap"}])
    releases.redeploy(project, personas.member)
    rolled = releases.rollback(project, personas.owner, Release.objects.get(pk=first.pk))
    deployed = AuditEvent.objects.filter(action=Action.PROJECT_DEPLOYED).order_by("id")
    assert [e.details for e in deployed] == [{"revision": 1, "kind": "deploy"}, {"revision": 2, "kind": "redeploy"}]
    back = last(Action.PROJECT_ROLLED_BACK)
    assert back.details == {"revision": rolled.revision, "kind": "rollback", "to_revision": 1}
    assert (back.actor, back.organization, back.target_label) == (personas.owner, personas.org, "acme/shop")

    deletion.delete_project(project, personas.owner, "shop")
    deleted = last(Action.PROJECT_DELETED)
    assert deleted.target_id == str(project.pk) and deleted.details["namespace"] == project.namespace


def test_no_event_when_the_credentials_could_not_be_read(personas, project):
    project.wants_database = True
    assert projects.reveal_credentials(project, "database", actor=personas.member) is None  # agent offline
    assert not AuditEvent.objects.filter(action=Action.CREDENTIAL_REVEALED).exists()


def test_cluster_token_services_record_issue_rotation_and_revocation(operator, cluster):
    raw = clusters.issue_token(cluster)
    rotated = clusters.issue_token(cluster, actor=operator)
    clusters.revoke_token(cluster, actor=operator)
    assert actions()[-3:] == ["cluster.token_issued", "cluster.token_rotated", "cluster.token_revoked"]
    assert last(Action.CLUSTER_TOKEN_ISSUED).actor is None  # the install link's redemption: no person
    event = last(Action.CLUSTER_TOKEN_ROTATED)
    assert (event.actor_label, event.organization, event.target_type) == ("ops@example.com", None, "cluster")
    stored = everything_stored()
    assert raw.split(".")[1] not in stored and rotated.split(".")[1] not in stored


def test_sessions_are_recorded_with_pod_duration_and_bytes(personas, project):
    for action in (Action.TERMINAL_SESSION, Action.SSH_SESSION):
        audit.record_session(action, actor=personas.member, organization=personas.org, target=project,
                             pod="web-5d9f-abcde", container="web", duration_seconds=12.3456, bytes_in=42,
                             bytes_out=4096, exit_status=0, ip="2001:db8::1")
    event = last(Action.SSH_SESSION)
    assert event.details == {"pod": "web-5d9f-abcde", "container": "web", "duration_seconds": 12.346,
                             "bytes_in": 42, "bytes_out": 4096, "exit_status": 0}
    assert event.ip_address == "2001:db8::1"
    with pytest.raises(ValueError, match="not a session action"):
        audit.record_session(Action.LOGIN, actor=personas.member, organization=personas.org, target=project,
                             pod="p", duration_seconds=1, bytes_in=0, bytes_out=0)


@pytest.mark.parametrize("details", [{"value": "x"}, {"password": "x"}, {"new": {"api_token": "x"}},
                                     {"SECRET": "x"}])


def test_it_refuses_details_that_would_carry_a_secret(personas, details):
    with pytest.raises(ValueError, match="never carry secrets"):
        audit.record(Action.VARIABLE_SET, actor=personas.owner, details=details)
    assert not AuditEvent.objects.filter(action=Action.VARIABLE_SET).exists()


def test_the_ip_is_the_client_address_and_a_forwarded_one_only_behind_a_trusted_proxy(personas):
    request = RequestFactory().get("/", REMOTE_ADDR="198.51.100.9", HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert audit.record(Action.LOGIN, actor=personas.owner, request=request).ip_address == "198.51.100.9"
    with override_settings(ALLAUTH_TRUSTED_PROXY_COUNT=1):
        assert audit.record(Action.LOGIN, actor=personas.owner, request=request).ip_address == "203.0.113.5"
    assert audit.record(Action.LOGIN, actor=personas.owner, ip="not-an-ip").ip_address is None
    assert audit.ip_from_scope({"client": ("192.0.2.44", 51234)}) == "192.0.2.44"
    assert audit.ip_from_scope({"client": None}) is None


def test_every_action_is_recorded_by_some_test_of_this_module():
    """A new Action needs a hook and a test; this list is what the module exercises."""
    covered = {
        "member.role_changed", "invitation.sent", "invitation.accepted", "member.added", "invitation.revoked",
        "member.removed", "ssh_key.added", "ssh_key.removed", "api_token.created", "api_token.revoked",
        "variable.set", "secret.set", "secret.unset", "variable.unset", "project.deployed", "project.rolled_back",
        "project.deleted", "cluster.token_issued", "cluster.token_rotated", "cluster.token_revoked",
        "terminal.session", "ssh.session",
        # test_pages.py (through allauth and the org pages): the signals and the remaining creations
        "auth.login", "auth.login_failed", "auth.mfa_changed", "auth.password_changed", "organization.created",
        "project.created",
        # projects/tests/test_projects_data.py (needs an agent that answers)
        "credential.revealed",
        # projects/tests/test_database_dumps.py (a dump and restores of a real database through the agent)
        "database.dumped", "database.restored",
        # projects/tests/test_projects_restore.py (restoring a deleted project)
        "project.restored",
        # projects/tests/test_domains.py (the API test records all three with their actors)
        "domain.added", "domain.verified", "domain.removed",
        # projects/tests/test_kubectl_access.py (creating and revoking a kubeconfig)
        "kube_access.created", "kube_access.revoked",
    }
    assert covered == set(Action.values)
