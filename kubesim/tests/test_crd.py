"""CustomResourceDefinitions: created through the API, servable at once, status and scale subresources."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubesim.testing import KubeSim

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                                    "statusReplicasPath": ".status.replicas"}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "required": ["size"], "properties": {
                                   "size": {"type": "integer"}, "replicas": {"type": "integer"}}},
                               "status": {"type": "object", "properties": {"replicas": {"type": "integer"},
                                                                            "ready": {"type": "boolean"}}}}}}}]}}


def _widget(name: str = "w", size: object = 1) -> dict:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name},
            "spec": {"size": size, "replicas": 1}}


@pytest.fixture
def co(kube_api: client.ApiClient) -> client.CustomObjectsApi:
    client.ApiextensionsV1Api(kube_api).create_custom_resource_definition(WIDGET_CRD)
    return client.CustomObjectsApi(kube_api)


def test_it_serves_a_crd_kind_as_soon_as_it_is_created(kube_api: client.ApiClient, co: client.CustomObjectsApi) -> None:
    """A CRD created through the API is Established and its kind is servable immediately."""
    crd = client.ApiextensionsV1Api(kube_api).read_custom_resource_definition("widgets.example.com")
    assert {c.type: c.status for c in crd.status.conditions}["Established"] == "True"
    obj = co.create_namespaced_custom_object("example.com", "v1", "default", "widgets", _widget())
    assert obj["metadata"]["uid"] and obj["metadata"]["generation"] == 1
    assert co.get_namespaced_custom_object("example.com", "v1", "default", "widgets", "w")["spec"]["size"] == 1
    assert [i["metadata"]["name"] for i in co.list_namespaced_custom_object(
        "example.com", "v1", "default", "widgets")["items"]] == ["w"]


def test_it_enforces_the_new_crds_schema(co: client.CustomObjectsApi) -> None:
    """The CRD's openAPIV3Schema is enforced for its kind: a wrong type is 422 Invalid."""
    with pytest.raises(ApiException) as exc:
        co.create_namespaced_custom_object("example.com", "v1", "default", "widgets", _widget(size="big"))
    assert exc.value.status == 422


def test_it_separates_status_from_spec_updates(co: client.CustomObjectsApi) -> None:
    """With a status subresource, main-resource writes ignore status and status writes ignore spec."""
    co.create_namespaced_custom_object("example.com", "v1", "default", "widgets", _widget())
    co.patch_namespaced_custom_object_status("example.com", "v1", "default", "widgets", "w",
                                             {"status": {"ready": True}, "spec": {"size": 99}})
    obj = co.patch_namespaced_custom_object("example.com", "v1", "default", "widgets", "w",
                                            {"status": {"ready": False}, "spec": {"size": 2}})
    assert obj["status"] == {"ready": True} and obj["spec"]["size"] == 2
    assert obj["metadata"]["generation"] == 2  # the status write did not bump generation


def test_it_scales_custom_resources_through_the_scale_subresource(co: client.CustomObjectsApi) -> None:
    """The scale subresource maps specReplicasPath/statusReplicasPath to an autoscaling/v1 Scale."""
    co.create_namespaced_custom_object("example.com", "v1", "default", "widgets", _widget())
    scale = co.get_namespaced_custom_object_scale("example.com", "v1", "default", "widgets", "w")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
    co.patch_namespaced_custom_object_scale("example.com", "v1", "default", "widgets", "w",
                                            {"spec": {"replicas": 3}})
    assert co.get_namespaced_custom_object("example.com", "v1", "default", "widgets", "w")["spec"]["replicas"] == 3


def test_it_stops_serving_a_deleted_crd(kubesim: KubeSim, kube_api: client.ApiClient,
                                        co: client.CustomObjectsApi) -> None:
    """Deleting a CRD removes its objects and its endpoints (404)."""
    co.create_namespaced_custom_object("example.com", "v1", "default", "widgets", _widget())
    client.ApiextensionsV1Api(kube_api).delete_custom_resource_definition("widgets.example.com")
    with pytest.raises(ApiException) as exc:
        co.list_namespaced_custom_object("example.com", "v1", "default", "widgets")
    assert exc.value.status == 404


def test_it_preloads_the_shipped_crds(kube_api: client.ApiClient) -> None:
    """With preload_crds, the HelmChart, Traefik and CNPG kinds shipped in kubesim/crds are installed at start."""
    names = {c.metadata.name for c in client.ApiextensionsV1Api(kube_api).list_custom_resource_definition().items}
    assert {"helmcharts.helm.cattle.io", "middlewares.traefik.io", "clusters.postgresql.cnpg.io",
            "databases.postgresql.cnpg.io"} <= names
