"""Merge patch, JSON patch and strategic merge patch, as the apiserver applies them."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubesim.tests.helpers import configmap, deployment, status_body


@pytest.fixture
def apps(kube_api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(kube_api)


def _web(apps: client.AppsV1Api) -> None:
    d = deployment()
    c = d["spec"]["template"]["spec"]["containers"][0]
    c.update(ports=[{"containerPort": 80, "name": "http"}], env=[{"name": "A", "value": "1"}],
             volumeMounts=[{"name": "data", "mountPath": "/data"}])
    d["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox:1.36"})
    d["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    apps.create_namespaced_deployment("default", d)


def test_it_merges_lists_by_key_in_strategic_merge_patch(apps: client.AppsV1Api) -> None:
    """SMP merges containers by name, and env, ports, volumes by their merge keys, keeping the others."""
    _web(apps)
    d = apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"spec": {
        "containers": [{"name": "web", "image": "nginx:1.28", "env": [{"name": "B", "value": "2"}],
                        "ports": [{"containerPort": 8080, "name": "alt"}]}],
        "volumes": [{"name": "cache", "emptyDir": {}}]}}}})
    spec = d.spec.template.spec
    assert [c.name for c in spec.containers] == ["web", "sidecar"]
    web = spec.containers[0]
    assert web.image == "nginx:1.28"
    assert [(e.name, e.value) for e in web.env] == [("A", "1"), ("B", "2")]
    assert sorted(p.container_port for p in web.ports) == [80, 8080]
    assert [v.name for v in spec.volumes] == ["data", "cache"]


def test_it_deletes_list_items_with_patch_directives(apps: client.AppsV1Api) -> None:
    """SMP `$patch: delete` removes one keyed item; a null value removes a field."""
    _web(apps)
    d = apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"spec": {
        "containers": [{"name": "sidecar", "$patch": "delete"}]}}, "revisionHistoryLimit": None}})
    assert [c.name for c in d.spec.template.spec.containers] == ["web"]
    assert d.spec.revision_history_limit == 10  # removed, then defaulted again


def test_it_replaces_lists_in_json_merge_patch(kube_api: client.ApiClient, apps: client.AppsV1Api) -> None:
    """application/merge-patch+json (RFC 7386) replaces lists wholesale and deletes keys set to null."""
    _web(apps)
    d = apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"spec": {
        "containers": [{"name": "only", "image": "nginx:1"}]}}}}, _content_type="application/merge-patch+json")
    assert [c.name for c in d.spec.template.spec.containers] == ["only"]
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_config_map("default", configmap("c", data={"a": "1", "b": "2"}))
    cm = core.patch_namespaced_config_map("c", "default", {"data": {"a": None}},
                                          _content_type="application/merge-patch+json")
    assert cm.data == {"b": "2"}


def test_it_applies_json_patch_operations(kube_api: client.ApiClient) -> None:
    """application/json-patch+json (RFC 6902): add/replace/remove/test; a failed test is 422."""
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_config_map("default", configmap("c", data={"a": "1"}))
    cm = core.patch_namespaced_config_map("c", "default", [
        {"op": "add", "path": "/data/b", "value": "2"}, {"op": "replace", "path": "/data/a", "value": "9"},
        {"op": "add", "path": "/metadata/labels/example.com~1tier", "value": "web"}])
    assert cm.data == {"a": "9", "b": "2"} and cm.metadata.labels == {"example.com/tier": "web"}
    cm = core.patch_namespaced_config_map("c", "default", [{"op": "remove", "path": "/data/b"}])
    assert cm.data == {"a": "9"}
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_config_map("c", "default", [{"op": "test", "path": "/data/a", "value": "0"}])
    assert exc.value.status == 422


def test_it_refuses_strategic_merge_patch_on_custom_resources(kube_api: client.ApiClient) -> None:
    """Custom resources have no patch strategies: SMP answers 415 UnsupportedMediaType."""
    co = client.CustomObjectsApi(kube_api)
    co.create_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", {
        "apiVersion": "helm.cattle.io/v1", "kind": "HelmChart", "metadata": {"name": "x",
                                                                              "annotations": {"a": "b"}},
        "spec": {"chart": "c", "createNamespace": True, "targetNamespace": "x"}})
    with pytest.raises(ApiException) as exc:
        co.patch_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", "x",
                                          {"spec": {"chart": "d"}},
                                          _content_type="application/strategic-merge-patch+json")
    assert exc.value.status == 415 and status_body(exc.value)["reason"] == "UnsupportedMediaType"
    merged = co.patch_namespaced_custom_object("helm.cattle.io", "v1", "kube-system", "helmcharts", "x",
                                               {"spec": {"chart": "d"}})
    assert merged["spec"]["chart"] == "d" and merged["spec"]["createNamespace"] is True
