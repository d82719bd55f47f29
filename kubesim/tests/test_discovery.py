"""Discovery endpoints, as clients that discover (dynamic client, kubectl) use them."""

from __future__ import annotations

import json

from kubernetes import client, dynamic

from kubesim.schema import KUBERNETES_VERSION
from kubesim.testing import KubeSim


def _get(api: client.ApiClient, path: str) -> dict:
    resp = api.call_api(*api.param_serialize("GET", path, auth_settings=["BearerToken"]))
    resp.read()
    return json.loads(resp.data)


def test_it_serves_version_matching_the_pinned_schema(kube_api: client.ApiClient) -> None:
    """GET /version answers the server's major/minor/gitVersion (here the pinned K3s-like version)."""
    info = client.VersionApi(kube_api).get_code()
    assert info.git_version.startswith(f"v{KUBERNETES_VERSION}")
    assert (info.major, info.minor) == tuple(KUBERNETES_VERSION.split(".")[:2])


def test_it_lists_core_and_group_versions(kube_api: client.ApiClient) -> None:
    """/api lists v1; /apis lists every group with its versions and preferred version."""
    assert client.CoreApi(kube_api).get_api_versions().versions == ["v1"]
    groups = {g.name: g for g in client.ApisApi(kube_api).get_api_versions().groups}
    for name in ("apps", "batch", "networking.k8s.io", "rbac.authorization.k8s.io", "policy",
                 "apiextensions.k8s.io", "helm.cattle.io", "traefik.io"):
        assert name in groups, name
    assert groups["apps"].preferred_version.group_version == "apps/v1"


def test_it_describes_resources_with_namespaced_flag_verbs_and_kind(kube_api: client.ApiClient) -> None:
    """/api/v1 and /apis/<g>/<v> are APIResourceLists with name, namespaced, kind, verbs, subresources."""
    core = {r.name: r for r in client.CoreV1Api(kube_api).get_api_resources().resources}
    assert core["pods"].namespaced and core["pods"].kind == "Pod" and "watch" in core["pods"].verbs
    assert not core["namespaces"].namespaced and not core["nodes"].namespaced
    assert {"pods/log", "pods/exec", "pods/status", "services", "secrets", "events", "limitranges"} <= set(core)
    apps = {r.name: r for r in client.AppsV1Api(kube_api).get_api_resources().resources}
    assert apps["deployments/scale"].kind == "Scale" and apps["deployments"].short_names == ["deploy"]


def test_it_accepts_trailing_slashes(kube_api: client.ApiClient) -> None:
    """The apiserver's discovery and resource paths answer with or without a trailing slash."""
    assert _get(kube_api, "/apis/apps/v1/")["groupVersion"] == "apps/v1"
    assert _get(kube_api, "/api/v1/namespaces/")["kind"] == "NamespaceList"


def test_it_serves_crd_kinds_in_discovery(kube_api: client.ApiClient) -> None:
    """An installed CRD's group/version lists its resource, as the apiextensions apiserver does."""
    doc = _get(kube_api, "/apis/helm.cattle.io/v1")
    kinds = {r["name"]: r for r in doc["resources"]}
    assert kinds["helmcharts"]["kind"] == "HelmChart" and kinds["helmcharts"]["namespaced"]
    assert "helmcharts/status" in kinds and kinds["helmcharts"]["shortNames"] == ["hc"]


def test_it_works_with_the_dynamic_client(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    """dynamic.DynamicClient discovers resources and drives CRUD through them."""
    dyn = dynamic.DynamicClient(kube_api)
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    cms.create(body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}},
               namespace="default")
    assert cms.get(name="c", namespace="default").data.a == "1"
    charts = dyn.resources.get(api_version="helm.cattle.io/v1", kind="HelmChart")
    assert charts.namespaced
