"""Server-side apply: creation, field ownership, removal, conflicts and force."""

from __future__ import annotations

import json

import pytest
import yaml
from kubernetes import client, dynamic
from kubernetes.client.exceptions import ApiException

from kubesim.tests.helpers import deployment, status_body

APPLY = "application/apply-patch+yaml"


@pytest.fixture
def apps(kube_api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(kube_api)


def _apply(apps: client.AppsV1Api, body: dict, manager: str = "paas-agent", **kw: object) -> client.V1Deployment:
    return apps.patch_namespaced_deployment(body["metadata"]["name"], "default", body, field_manager=manager,
                                            _content_type=APPLY, **kw)


def _managers(obj: client.V1Deployment) -> dict[str, dict]:
    return {(m.manager, m.operation): m.fields_v1 for m in obj.metadata.managed_fields}


def test_it_creates_a_missing_object_with_managed_fields(apps: client.AppsV1Api) -> None:
    """Apply to a missing object creates it (201) and records the manager's fields in managedFields."""
    d, status, _ = apps.patch_namespaced_deployment_with_http_info("web", "default", deployment(),
                                                                    field_manager="paas-agent", _content_type=APPLY)
    assert status == 201 and d.metadata.uid
    owned = _managers(d)[("paas-agent", "Apply")]
    assert "f:replicas" in owned["f:spec"]
    assert 'k:{"name":"web"}' in owned["f:spec"]["f:template"]["f:spec"]["f:containers"]


def test_it_requires_a_field_manager(apps: client.AppsV1Api) -> None:
    """Apply without fieldManager is 400 BadRequest."""
    with pytest.raises(ApiException) as exc:
        apps.patch_namespaced_deployment("web", "default", deployment(), _content_type=APPLY)
    assert exc.value.status == 400 and status_body(exc.value)["reason"] == "BadRequest"


def test_it_keeps_fields_another_manager_set(apps: client.AppsV1Api) -> None:
    """A Deployment applied without replicas keeps the count someone else set through the scale subresource."""
    _apply(apps, deployment(replicas=None))
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
    d = _apply(apps, deployment(replicas=None, image="nginx:1.28"))
    assert d.spec.replicas == 4 and d.spec.template.spec.containers[0].image == "nginx:1.28"


def test_it_hands_replicas_to_the_scaler_and_keeps_them(apps: client.AppsV1Api) -> None:
    """Scaling takes ownership of spec.replicas; the applier's later config without replicas leaves them."""
    _apply(apps, deployment(replicas=2))
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 0}})
    d = _apply(apps, deployment(replicas=None))
    assert d.spec.replicas == 0


def test_it_removes_fields_the_manager_dropped(apps: client.AppsV1Api) -> None:
    """Fields a manager applied before and now omits are removed when no other manager owns them."""
    body = deployment()
    body["metadata"]["labels"] = {"keep": "1", "drop": "1"}
    body["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"},
                                                               {"name": "B", "value": "2"}]
    _apply(apps, body)
    body["metadata"]["labels"] = {"keep": "1"}
    body["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    d = _apply(apps, body)
    assert d.metadata.labels == {"keep": "1"}
    assert [e.name for e in d.spec.template.spec.containers[0].env] == ["A"]


def test_it_keeps_dropped_fields_that_another_manager_also_owns(apps: client.AppsV1Api) -> None:
    """A dropped field that another applier also set to the same value survives (shared ownership)."""
    body = deployment()
    body["metadata"]["labels"] = {"shared": "1"}
    _apply(apps, body, manager="a")
    _apply(apps, {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "web", "labels": {"shared": "1"}}}, manager="b")
    body["metadata"]["labels"] = {}
    d = _apply(apps, body, manager="a")
    assert d.metadata.labels == {"shared": "1"}


def test_it_reports_conflicts_with_other_managers(apps: client.AppsV1Api) -> None:
    """Changing a field another manager owns is 409 Conflict naming manager and field, unless force=true."""
    _apply(apps, deployment(replicas=2), manager="a")
    with pytest.raises(ApiException) as exc:
        _apply(apps, deployment(replicas=3), manager="b")
    body = status_body(exc.value)
    assert exc.value.status == 409 and body["reason"] == "Conflict"
    assert body["details"]["causes"] == [{"reason": "FieldManagerConflict", "message": 'conflict with "a" using '
                                          "apps/v1", "field": ".spec.replicas"}]
    assert body["message"].startswith("Apply failed with 1 conflict")
    d = _apply(apps, deployment(replicas=3), manager="b", force=True)
    assert d.spec.replicas == 3
    a_fields = _managers(d)[("a", "Apply")]["f:spec"]
    assert "f:replicas" not in a_fields  # force moved ownership to b


def test_it_conflicts_with_update_managers_too(apps: client.AppsV1Api) -> None:
    """A field last written by a plain update (e.g. kubectl scale) conflicts with a different applied value."""
    _apply(apps, deployment(replicas=2))
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 5}}, field_manager="kubectl-edit")
    with pytest.raises(ApiException) as exc:
        _apply(apps, deployment(replicas=2))
    assert exc.value.status == 409


def test_it_accepts_yaml_bodies(kube_api: client.ApiClient) -> None:
    """The apply body may be YAML (application/apply-patch+yaml is YAML, JSON being a subset)."""
    body = yaml.safe_dump(deployment(name="yml"))
    resp = kube_api.call_api(*kube_api.param_serialize(
        "PATCH", "/apis/apps/v1/namespaces/default/deployments/yml", query_params=[("fieldManager", "t")],
        header_params={"Content-Type": APPLY, "Accept": "application/json"}, body=body,
        auth_settings=["BearerToken"]))
    resp.read()
    assert resp.status == 201 and json.loads(resp.data)["metadata"]["name"] == "yml"


def test_it_works_with_dynamic_server_side_apply(kube_api: client.ApiClient) -> None:
    """dynamic.DynamicClient.server_side_apply creates, then updates, custom and built-in objects."""
    dyn = dynamic.DynamicClient(kube_api)
    charts = dyn.resources.get(api_version="helm.cattle.io/v1", kind="HelmChart")
    body = {"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart",
            "metadata": {"name": "cnpg", "namespace": "kube-system"},
            "spec": {"repo": "https://cloudnative-pg.github.io/charts", "chart": "cloudnative-pg",
                     "targetNamespace": "cnpg-system", "createNamespace": True}}
    charts.server_side_apply(body=body, namespace="kube-system", field_manager="agent")
    body["spec"]["version"] = "0.23.0"
    obj = charts.server_side_apply(body=body, namespace="kube-system", field_manager="agent")
    assert obj.spec.version == "0.23.0"
    assert [m.manager for m in obj.metadata.managedFields if m.operation == "Apply"] == ["agent"]
