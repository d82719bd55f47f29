"""422 Invalid with field causes, unknown-field handling, and the public validate_object()."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubesim.schema import KUBERNETES_VERSION, validate_object
from kubesim.tests.helpers import configmap, deployment, raw, status_body

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def _invalid(fn: Callable[..., object], *args: object, **kw: object) -> dict:
    with pytest.raises(ApiException) as exc:
        fn(*args, **kw)
    assert exc.value.status == 422, exc.value.body
    body = status_body(exc.value)
    assert body["reason"] == "Invalid" and body["kind"] == "Status" and body["status"] == "Failure"
    return body


def _raw_invalid(api: client.ApiClient, path: str, body: dict) -> dict:
    status, data, _ = raw(api, "POST", path, body)
    assert status == 422, data
    assert data["reason"] == "Invalid" and data["kind"] == "Status" and data["status"] == "Failure"
    return data


def test_it_rejects_names_that_are_not_dns_subdomains(kube_api: client.ApiClient) -> None:
    """Most kinds need an RFC 1123 subdomain name: 422 with cause field metadata.name."""
    body = _invalid(client.CoreV1Api(kube_api).create_namespaced_config_map, "default", configmap("Bad_Name"))
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    assert body["message"].startswith('ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"')


def test_it_needs_dns_labels_for_namespaces_and_services(kube_api: client.ApiClient) -> None:
    """Namespaces need RFC 1123 labels (no dots); Services need DNS-1035 labels (start with a letter)."""
    core = client.CoreV1Api(kube_api)
    _invalid(core.create_namespace, {"metadata": {"name": "a.b"}})
    body = _invalid(core.create_namespaced_service, "default", {"metadata": {"name": "1web"},
                                                                "spec": {"ports": [{"port": 80}]}})
    assert "DNS-1035" in body["details"]["causes"][0]["message"]
    core.create_namespaced_config_map("default", configmap("a.b"))  # a subdomain is fine for a ConfigMap


def test_it_validates_label_keys_and_values(kube_api: client.ApiClient) -> None:
    """Label values must be <= 63 chars of [A-Za-z0-9_.-]; keys may have a DNS prefix."""
    core = client.CoreV1Api(kube_api)
    body = _invalid(core.create_namespaced_config_map, "default", configmap("a", labels={"app": "has space"}))
    assert body["details"]["causes"][0]["field"] == "metadata.labels"
    _invalid(core.create_namespaced_config_map, "default", configmap("a", labels={"-bad/key": "v"}))
    _invalid(core.create_namespaced_config_map, "default", configmap("a", labels={"k": "x" * 64}))
    core.create_namespaced_config_map("default", configmap("a", labels={"app.kubernetes.io/name": "web"}))


def test_it_reports_required_fields_and_types_with_paths(kube_api: client.ApiClient) -> None:
    """Schema validation (official OpenAPI for the pinned version): required fields and types, with paths."""
    bad = deployment()
    del bad["spec"]["template"]["spec"]["containers"][0]["name"]
    bad["spec"]["replicas"] = "three"
    body = _raw_invalid(kube_api, DEPLOYMENTS, bad)
    causes = {c["field"]: c["reason"] for c in body["details"]["causes"]}
    assert causes["spec.template.spec.containers[0].name"] == "FieldValueRequired"
    assert causes["spec.replicas"] == "FieldValueTypeInvalid"
    assert body["details"]["group"] == "apps" and body["details"]["kind"] == "Deployment"


def test_it_rejects_a_selector_that_does_not_match_the_template(kube_api: client.ApiClient) -> None:
    """Deployment: `selector` does not match template `labels` is 422, as in apps validation."""
    bad = deployment()
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    body = _raw_invalid(kube_api, DEPLOYMENTS, bad)
    assert body["details"]["causes"][0]["field"] == "spec.template.metadata.labels"


def test_it_warns_about_unknown_fields_by_default(kube_api: client.ApiClient) -> None:
    """Default fieldValidation (Warn): unknown fields are dropped and reported in a Warning header."""
    body = configmap("a")
    body["spec"] = {"oops": 1}
    status, cm, headers = raw(kube_api, "POST", "/api/v1/namespaces/default/configmaps", body)
    assert status == 201 and 'unknown field \\"spec\\"' in headers["Warning"] and "spec" not in cm
    assert headers["Warning"].startswith("299 - ")


def test_it_rejects_unknown_fields_when_strict(kube_api: client.ApiClient) -> None:
    """fieldValidation=Strict turns unknown fields into 400 BadRequest `strict decoding error`."""
    bad = deployment()
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    status, body, _ = raw(kube_api, "POST", DEPLOYMENTS, bad, query=[("fieldValidation", "Strict")])
    assert status == 400 and body["reason"] == "BadRequest"
    assert 'strict decoding error: unknown field "spec.template.spec.containers[0].imagePullPolicyy"' in \
        body["message"]


def test_it_enforces_crd_schemas(kube_api: client.ApiClient) -> None:
    """Custom objects are checked against their CRD's openAPIV3Schema: types, required fields (CNPG Database)."""
    co = client.CustomObjectsApi(kube_api)
    with pytest.raises(ApiException) as exc:
        co.create_namespaced_custom_object("postgresql.cnpg.io", "v1", "default", "databases", {
            "apiVersion": "postgresql.cnpg.io/v1", "kind": "Database", "metadata": {"name": "p"},
            "spec": {"name": 5, "owner": "app"}})
    assert exc.value.status == 422
    fields = {c["field"] for c in status_body(exc.value)["details"]["causes"]}
    assert {"spec.name", "spec.cluster"} <= fields
    with pytest.raises(ApiException) as exc:
        co.create_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", {
            "apiVersion": "helm.cattle.io/v1", "kind": "HelmChart", "metadata": {"name": "x"},
            "spec": {"chart": "c", "bogus": True}}, field_validation="Strict")
    assert exc.value.status == 400 and 'unknown field "spec.bogus"' in status_body(exc.value)["message"]


def test_it_prunes_unknown_fields_of_custom_objects(kube_api: client.ApiClient) -> None:
    """Without Strict, unknown fields of custom objects are pruned; preserve-unknown-fields parts are kept."""
    obj = client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
        "helm.cattle.io", "v1", "kube-system", "helmcharts", {
            "apiVersion": "helm.cattle.io/v1", "kind": "HelmChart", "metadata": {"name": "x"},
            "spec": {"chart": "c", "bogus": True, "set": {"a": 1, "b": "x"}}})
    assert "bogus" not in obj["spec"] and obj["spec"]["set"] == {"a": 1, "b": "x"}


def test_validate_object_mirrors_the_apiserver_for_builtins() -> None:
    """validate_object gives the apiserver's causes for built-in kinds (pinned version) and [] when valid."""
    assert KUBERNETES_VERSION == "1.35.0"
    assert validate_object(deployment()) == []
    bad = deployment()
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "x"
    causes = validate_object(bad)
    assert causes == [{"reason": "FieldValueUnknown", "field": "spec.template.spec.containers[0].imagePullPolicyy",
                       "message": 'unknown field "spec.template.spec.containers[0].imagePullPolicyy"'}]
    assert validate_object(bad, strict=False) == []
    assert validate_object({"apiVersion": "v1", "kind": "Nope", "metadata": {"name": "x"}})[0]["field"] == "kind"


def test_validate_object_knows_the_shipped_crds() -> None:
    """validate_object checks HelmChart/Traefik/CNPG objects against the schemas of the CRDs in kubesim/crds."""
    chart = {"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart", "metadata": {"name": "traefik",
                                                                                  "namespace": "kube-system"},
             "spec": {"chart": "traefik", "valuesContent": "a: 1", "failurePolicy": "abort"}}
    assert validate_object(chart) == []
    chart["spec"]["backOffLimit"] = "many"
    assert validate_object(chart)[0]["field"] == "spec.backOffLimit"
    mw = {"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware", "metadata": {"name": "sablier"},
          "spec": {"plugin": {"sablier": {"names": "a,b", "sessionDuration": "1m"}}}}
    assert validate_object(mw) == []
    start = time.perf_counter()
    for _ in range(50):
        validate_object(deployment())
    assert time.perf_counter() - start < 1.0  # schemas are cached; teammates call this per manifest
