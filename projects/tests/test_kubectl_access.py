"""kubectl credentials on the project page (docs/kubectl.md): who may make, see and revoke them, what the
kubeconfig holds, and whom a credential resolves to as roles and memberships change."""

from __future__ import annotations

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.test import Client

from accounts.models import Membership, Role, hash_token
from audit.models import Action, AuditEvent
from projects import kubeaccess
from projects.models import KubeAccess


def download(user, project, name: str = "laptop"):
    client = Client()
    client.force_login(user)
    return client.post(f"/o/{project.organization.slug}/projects/{project.slug}/kubectl/", {"name": name})


@pytest.mark.django_db
def test_a_member_downloads_a_kubeconfig_for_the_projects_namespace_and_only_a_hash_is_kept(personas, project,
                                                                                            settings):
    settings.SITE_URL = "https://paas.example.com"
    response = download(personas.member, project)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="acme-shop.kubeconfig"'
    assert response["Cache-Control"] == "no-store"
    config = yaml.safe_load(response.content)
    (cluster,) = config["clusters"]
    assert cluster["cluster"] == {"server": f"https://paas.example.com/kube/{project.uid}"}
    (context,) = config["contexts"]
    assert context["context"]["namespace"] == project.namespace
    assert config["current-context"] == context["name"]
    token = config["users"][0]["user"]["token"]
    access = KubeAccess.objects.get(user=personas.member, project=project)
    assert access.token_hash == hash_token(token) and token not in str(KubeAccess.objects.values_list())
    assert access.name == "laptop" and token.startswith(access.prefix)
    event = AuditEvent.objects.get(action=Action.KUBE_ACCESS_CREATED)
    assert event.actor == personas.member and token not in str(event.details)
    target = kubeaccess.resolve(token, str(project.uid))
    assert (target.identity, target.namespace, target.user_id) == ("deployer", project.namespace, personas.member.pk)


@pytest.mark.django_db
def test_a_viewer_gets_a_viewer_credential_and_an_outsider_gets_nothing(personas, project, viewer):
    config = yaml.safe_load(download(viewer, project).content)
    assert kubeaccess.resolve(config["users"][0]["user"]["token"], str(project.uid)).identity == "viewer"
    assert download(personas.outsider, project).status_code == 404
    assert not KubeAccess.objects.filter(user=personas.outsider).exists()


@pytest.mark.django_db
def test_a_credential_works_only_at_its_own_projects_url_and_until_revoked(personas, project, cluster):
    from projects import services

    other = services.create_project(personas.org, personas.owner, "Other", cluster, compose_text="")
    access, token = kubeaccess.create_access(personas.member, project, "laptop")
    assert kubeaccess.resolve(token, str(other.uid)) is None
    assert kubeaccess.resolve(token + "x", str(project.uid)) is None
    assert kubeaccess.resolve("not-a-token", str(project.uid)) is None
    kubeaccess.revoke_access(access, personas.member)
    assert kubeaccess.resolve(token, str(project.uid)) is None
    assert AuditEvent.objects.filter(action=Action.KUBE_ACCESS_REVOKED, actor=personas.member).count() == 1


@pytest.mark.django_db
def test_the_role_of_the_moment_decides_and_leaving_revokes_for_good(personas, project):
    access, token = kubeaccess.create_access(personas.member, project, "laptop")
    membership = Membership.objects.get(user=personas.member, organization=personas.org)
    membership.role = Role.VIEWER
    membership.save()
    assert kubeaccess.resolve(token, str(project.uid)).identity == "viewer"
    membership.delete()
    assert kubeaccess.resolve(token, str(project.uid)) is None
    Membership.objects.create(user=personas.member, organization=personas.org, role=Role.MEMBER)
    assert kubeaccess.resolve(token, str(project.uid)) is None  # a new membership brings no old kubeconfig back
    access.refresh_from_db()
    assert access.revoked_at is not None


@pytest.mark.django_db
def test_members_revoke_only_their_own_credentials(personas, project, viewer):
    mine, _ = kubeaccess.create_access(personas.member, project, "laptop")
    theirs, _ = kubeaccess.create_access(personas.owner, project, "ci")
    url = f"/o/acme/projects/{project.slug}/kubectl/{{}}/revoke/"
    for user in (personas.member, viewer, personas.outsider):
        client = Client()
        client.force_login(user)
        assert client.post(url.format(theirs.pk)).status_code == 404
    client = Client()
    client.force_login(personas.member)
    page = client.get(f"/o/acme/projects/{project.slug}/")
    assert b"laptop" in page.content and b"ci</td>" not in page.content
    assert client.post(url.format(mine.pk)).status_code == 302
    assert list(KubeAccess.objects.active()) == [theirs]


@pytest.mark.django_db
def test_a_credential_needs_a_name_and_a_member_has_at_most_ten(personas, project):
    with pytest.raises(ValidationError, match="Give the credential a name"):
        kubeaccess.create_access(personas.member, project, "  ")
    for n in range(kubeaccess.MAX_ACTIVE_PER_MEMBER):
        kubeaccess.create_access(personas.member, project, f"machine {n}")
    with pytest.raises(ValidationError, match="revoke one first"):
        kubeaccess.create_access(personas.member, project, "one more")
    response = download(personas.member, project)
    assert response.status_code == 302 and response["Location"].endswith("#kubectl")
