"""Rules of the projects app without a cluster: validation, secrets at rest, supersession, suspension."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from billing import signals as billing_signals
from billing.ledger import get_account
from billing.models import BillingAccount
from clusters import sealing
from clusters.models import DesiredProject
from projects import manifests, pipeline, releases, services, suspension
from projects.models import Release, ReleaseStatus, Variable

pytestmark = pytest.mark.django_db

API = "/api/v1/organizations/acme/projects/shop/"


def test_it_reports_compose_problems_with_their_line_and_column(client, personas, project):
    client.force_login(personas.member)
    bad = "services:\n  web:\n    image: nginx\n    privileged: true\n"
    result = client.post(API + "validate/", {"compose": bad}, content_type="application/json").json()
    assert result["ok"] is False
    assert result["problems"][0]["line"] == 4 and "privileged" in result["problems"][0]["message"]
    page = client.post("/o/acme/projects/shop/validate/", json.dumps({"compose": bad}),
                       content_type="application/json").json()
    assert page["problems"] == result["problems"]
    refused = client.post(API + "releases/", {"compose": bad}, content_type="application/json")
    assert refused.status_code == 400 and refused.json()["problems"][0]["line"] == 4
    assert not Release.objects.exists()


def test_it_keeps_secret_values_write_only_and_encrypted(client, personas, project):
    client.force_login(personas.member)
    created = client.post(API + "variables/", {"name": "DB_PASSWORD", "value": "hunter2-hunter2", "secret": True},
                          content_type="application/json")
    assert created.status_code == 201 and created.json()["value"] is None
    listed = client.get(API + "variables/").json()["results"]
    assert listed == [{"id": created.json()["id"], "name": "DB_PASSWORD", "service": "", "secret": True,
                       "value": None}]
    assert b"hunter2" not in client.get("/o/acme/projects/shop/").content
    stored = Variable.objects.get(name="DB_PASSWORD")
    assert "hunter2" not in stored.encrypted_value + stored.value
    assert stored.plain_value() == "hunter2-hunter2"


def test_it_seals_secret_objects_for_the_agent_and_redacts_them_for_humans():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"K": "v4lue"}}
    sealed, redacted = sealing.seal_objects([secret])
    assert "v4lue" not in json.dumps(sealed) + json.dumps(redacted)
    assert redacted[0]["data"]["K"].startswith("redacted:sha256:")
    opened = sealing.unseal_objects(sealed)[0]
    assert opened["data"] == {"K": "djRsdWU="} and "annotations" not in opened["metadata"]


def test_a_newer_release_supersedes_one_still_in_flight(personas, project):
    first = releases.deploy(project, personas.owner)
    second = releases.deploy(project, personas.member)
    first.refresh_from_db()
    assert (first.status, second.status, second.revision) == ("superseded", "pending", 2)
    assert pipeline.run_release(first.pk) == "not pending"  # its task, running late, does nothing


def test_a_release_is_rendered_when_it_is_created_and_a_refused_file_changes_nothing(personas, project):
    first = releases.deploy(project, personas.owner)
    assert {"Deployment", "Service", "Ingress"} <= {o["kind"] for o in first.manifests}
    assert first.sealed_manifests and all(o["metadata"]["labels"].get("paas.dev/revision") == "1"
                                          for o in first.manifests if o["kind"] == "Deployment")
    privileged = project.compose_text.replace("    image: nginx:1.27\n",
                                              "    image: nginx:1.27\n    privileged: true\n")
    with pytest.raises(releases.DeployError) as refused:
        releases.deploy(project, personas.owner, privileged)
    assert refused.value.code == "invalid_compose" and refused.value.problems[0]["line"] == 4
    first.refresh_from_db()
    project.refresh_from_db()
    assert (Release.objects.count(), first.status) == (1, "pending")  # nothing superseded, nothing created
    assert "privileged" not in project.compose_text


def _live_release(project, user) -> Release:
    release = releases.deploy(project, user)
    Release.objects.filter(pk=release.pk).update(status=ReleaseStatus.DEPLOYING)
    release.refresh_from_db()
    pipeline.Run(release).render()
    Release.objects.filter(pk=release.pk).update(status=ReleaseStatus.LIVE)
    suspension.reapply_live(project, lambda objects: objects)
    return release


def replicas(project) -> dict[str, int | None]:
    """Replicas each Deployment is applied with (None: not sent, Sablier owns them)."""
    desired = DesiredProject.objects.get(namespace=project.namespace)
    return {o["metadata"]["name"]: o["spec"].get("replicas") for o in desired.manifests if o["kind"] == "Deployment"}


def test_it_scales_every_service_to_zero_while_the_organization_is_suspended(personas, project):
    _live_release(project, personas.owner)
    # The public web and api sleep when idle (Sablier owns their replicas); the worker keeps its compose replicas.
    assert replicas(project) == {"web": None, "api": None, "worker": 1}
    billing_signals.organization_suspended.send(sender=None, organization=personas.org, record=None)
    project.refresh_from_db()
    assert project.suspended and replicas(project) == {"web": 0, "api": 0, "worker": 0}
    billing_signals.organization_resumed.send(sender=None, organization=personas.org, record=None)
    project.refresh_from_db()
    # Resumed: the sleepers stay asleep until a request (no Sablier session would put them back to sleep).
    assert not project.suspended and replicas(project) == {"web": 0, "api": 0, "worker": 1}
    # The next deploy's revision comes after the suspension's and the resumption's desired revisions.
    desired = DesiredProject.objects.get(namespace=project.namespace).revision
    assert desired >= 3  # the release, the suspension, the resumption
    assert releases.deploy(project, personas.owner).revision == desired + 1


def test_it_refuses_to_deploy_for_a_suspended_organization(client, personas, project):
    get_account(personas.org)  # made on first use
    BillingAccount.objects.filter(organization=personas.org).update(suspended_at=timezone.now())
    client.force_login(personas.owner)
    response = client.post(API + "releases/", {}, content_type="application/json")
    assert response.status_code == 409 and "out of credits" in response.json()["detail"]
    assert not Release.objects.exists()


def test_it_shows_a_diff_between_releases_with_secret_values_hashed(client, personas, project):
    services.set_variable(project, "TOKEN", "first-secret", secret=True)
    _live_release(project, personas.owner)
    services.set_variable(project, "TOKEN", "second-secret", secret=True)
    second = releases.deploy(project, personas.owner, project.compose_text.replace("nginx:1.27", "nginx:1.28"))
    Release.objects.filter(pk=second.pk).update(status=ReleaseStatus.DEPLOYING)
    second.refresh_from_db()
    pipeline.Run(second).render()
    client.force_login(personas.member)
    page = client.get(f"/o/acme/projects/shop/releases/{second.revision}/").content.decode()
    assert "+        image: nginx:1.28" in page and "-        image: nginx:1.27" in page
    assert "redacted:sha256:" in page and "first-secret" not in page and "second-secret" not in page


def test_the_organizations_plan_limits_projects_and_shapes_the_quota(personas, project, cluster):
    from django.core.exceptions import ValidationError

    plan = get_account(personas.org).plan
    plan.max_projects, plan.quota_pods, plan.max_services = 2, 7, 3
    plan.save()
    services.create_project(personas.org, personas.owner, "Second", cluster)
    with pytest.raises(ValidationError, match="allows 2 projects"):
        services.create_project(personas.org, personas.owner, "Third", cluster)

    from projects.compose import render_project

    result = render_project("services:\n  web:\n    image: nginx\n", manifests.render_context(project, 1, {}))
    quota = next(o for o in result.objects if o["kind"] == "ResourceQuota")
    assert quota["spec"]["hard"]["pods"] == "7"
    too_many = "services:\n" + "".join(f"  s{i}:\n    image: nginx\n" for i in range(4))
    assert manifests.validate(project, too_many)["ok"] is False


def test_members_choose_which_services_are_public(client, personas, viewer, project):
    from projects.compose import render_project
    from projects.models import Service

    Service.objects.create(project=project, name="web", image="nginx:1.27", exposure="public")
    url = API + "services/web/exposure/"
    client.force_login(viewer)
    assert client.put(url, {"exposure": "private"}, content_type="application/json").status_code == 403
    client.force_login(personas.outsider)
    assert client.put(url, {"exposure": "private"}, content_type="application/json").status_code == 404
    client.force_login(personas.member)
    bad = client.put(url, {"exposure": "everyone"}, content_type="application/json")
    assert bad.status_code == 400 and "exposure" in bad.json()
    assert client.put(url, {"exposure": "private"}, content_type="application/json").json()["exposure_override"] \
        == "private"

    objects = render_project(project.compose_text, manifests.render_context(project, 1, {})).objects
    assert not [o for o in objects if o["kind"] == "Ingress" and o["metadata"]["name"] == "web"]
    page = client.post("/o/acme/projects/shop/services/web/exposure/", {"exposure": ""}, follow=True)
    assert b"press Redeploy" in page.content
    objects = render_project(project.compose_text, manifests.render_context(project, 1, {})).objects
    assert [o for o in objects if o["kind"] == "Ingress"]
