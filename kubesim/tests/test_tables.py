"""Server-side Table output (what `kubectl get` asks for) and the OpenAPI v3 schemas `kubectl explain` reads."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from kubesim.tables import human_duration
from kubesim.testing import KubeSim
from kubesim.tests.helpers import deployment

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def _get(api: client.ApiClient, path: str, accept: str = TABLE, query: list[tuple[str, str]] | None = None
         ) -> dict[str, Any]:
    resp = api.call_api(*api.param_serialize("GET", path, query_params=query or [], header_params={"Accept": accept},
                                             auth_settings=["BearerToken"]))
    resp.read()
    assert resp.status == 200, resp.data
    return json.loads(resp.data)


def _rows(table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = [c["name"] for c in table["columnDefinitions"]]
    return {r["cells"][names.index("Name")]: dict(zip(names, r["cells"], strict=True)) for r in table["rows"]}


def test_it_prints_pods_and_deployments_with_kubectl_columns(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    """Pods: NAME READY STATUS RESTARTS AGE (+ wide IP NODE ...); Deployments: NAME READY UP-TO-DATE AVAILABLE AGE."""
    client.AppsV1Api(kube_api).create_namespaced_deployment("default", deployment(replicas=2))
    kubesim.wait_for(lambda: (kubesim.get("Deployment", "default", "web").get("status") or {})
                     .get("readyReplicas") == 2)
    pods = _get(kube_api, "/api/v1/namespaces/default/pods")
    assert pods["kind"] == "Table" and pods["apiVersion"] == "meta.k8s.io/v1"
    assert [(c["name"], c["priority"]) for c in pods["columnDefinitions"]] == [
        ("Name", 0), ("Ready", 0), ("Status", 0), ("Restarts", 0), ("Age", 0), ("IP", 1), ("Node", 1),
        ("Nominated Node", 1), ("Readiness Gates", 1)]
    row = next(iter(_rows(pods).values()))
    assert (row["Ready"], row["Status"], row["Restarts"]) == ("1/1", "Running", 0)
    assert row["IP"].startswith("10.42.") and row["Node"].startswith("kubesim-node-")
    assert pods["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    deployments = _get(kube_api, "/apis/apps/v1/namespaces/default/deployments")
    assert [c["name"] for c in deployments["columnDefinitions"] if c["priority"] == 0] == \
        ["Name", "Ready", "Up-to-date", "Available", "Age"]
    web = _rows(deployments)["web"]
    assert (web["Ready"], web["Up-to-date"], web["Available"], web["Images"], web["Selector"]) == \
        ("2/2", 2, 2, "nginx:1.27", "app=web")
    one = _get(kube_api, "/apis/apps/v1/namespaces/default/deployments/web", query=[("includeObject", "Object")])
    assert len(one["rows"]) == 1 and one["rows"][0]["object"]["spec"]["replicas"] == 2
    # Without the Table media type the list is a plain DeploymentList.
    assert _get(kube_api, "/apis/apps/v1/namespaces/default/deployments", "application/json")["kind"] == \
        "DeploymentList"


def test_it_prints_the_other_kinds_with_their_columns(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_service("default", {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}})
    core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "stringData": {"a": "1", "b": "2"}})
    core.create_namespaced_persistent_volume_claim("default", {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    svc = _rows(_get(kube_api, "/api/v1/namespaces/default/services"))["web"]
    assert (svc["Type"], svc["External-IP"], svc["Port(s)"], svc["Selector"]) == \
        ("ClusterIP", "<none>", "80/TCP,53/UDP", "app=web")
    assert _rows(_get(kube_api, "/api/v1/namespaces/default/secrets"))["s"]["Data"] == 2
    assert _rows(_get(kube_api, "/api/v1/namespaces"))["default"]["Status"] == "Active"
    node = _rows(_get(kube_api, "/api/v1/nodes"))["kubesim-node-0"]
    assert (node["Status"], node["Roles"], node["Internal-IP"]) == ("Ready", "control-plane", "172.18.0.2")
    assert _rows(_get(kube_api, "/api/v1/namespaces/default/configmaps"))["kube-root-ca.crt"]["Data"] == 1
    assert _rows(_get(kube_api, "/api/v1/namespaces/default/serviceaccounts"))["default"]["Secrets"] == 0
    pvc = kubesim.wait_for(lambda: (r := _rows(_get(kube_api, "/api/v1/namespaces/default/persistentvolumeclaims"))
                                    ["data"])["Status"] == "Bound" and r)
    assert pvc["Capacity"] == "1Gi" and pvc["Access Modes"] == "RWO"
    events = _get(kube_api, "/api/v1/namespaces/default/events")
    assert [c["name"] for c in events["columnDefinitions"]] == ["Last Seen", "Type", "Reason", "Object", "Subobject",
                                                                "Source", "Message", "First Seen", "Count", "Name"]
    client.RbacAuthorizationV1Api(kube_api).create_namespaced_role_binding("default", {
        "metadata": {"name": "rb"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]})
    binding = _rows(_get(kube_api, "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings"))["rb"]
    assert (binding["Role"], binding["ServiceAccounts"]) == ("ClusterRole/view", "default/default")


def test_it_prints_custom_resources_with_their_printer_columns(kube_api: client.ApiClient) -> None:
    """A CRD's additionalPrinterColumns, evaluated on each object (CloudNativePG's Cluster here)."""
    custom = client.CustomObjectsApi(kube_api)
    custom.create_namespaced_custom_object("postgresql.cnpg.io", "v1", "default", "clusters", {
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "pg"},
        "spec": {"instances": 3, "storage": {"size": "1Gi"}}})
    table = _get(kube_api, "/apis/postgresql.cnpg.io/v1/namespaces/default/clusters")
    assert [c["name"] for c in table["columnDefinitions"]][:5] == ["Name", "Age", "Instances", "Ready", "Status"]
    instances = table["columnDefinitions"][2]
    assert (instances["type"], instances["description"]) == ("integer", "Number of instances")
    row = _rows(table)["pg"]
    assert row["Instances"] is None and row["Age"].endswith("s")


def test_it_words_ages_as_kubectl_does() -> None:
    assert [human_duration(s) for s in (5, 119, 150, 3600, 5 * 3600 + 60, 30 * 3600, 3 * 86400 + 3600,
                                        40 * 86400, 800 * 86400)] == \
        ["5s", "119s", "2m30s", "60m", "5h1m", "30h", "3d1h", "40d", "2y70d"]


def test_openapi_v3_carries_the_schemas_and_group_version_kinds(kube_api: client.ApiClient) -> None:
    index = _get(kube_api, "/openapi/v3", "application/json")
    assert "apis/apps/v1" in index["paths"]
    doc = _get(kube_api, "/openapi/v3/apis/apps/v1", "application/json")
    schemas = doc["components"]["schemas"]
    deployment_schema = schemas["io.k8s.api.apps.v1.Deployment"]
    assert deployment_schema["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    replicas = schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"]
    assert replicas["type"] == "integer" and "Number of desired pods" in replicas["description"]
    # Every $ref resolves inside the document.
    refs = {m for m in json.dumps(doc).split('"$ref": "')[1:] for m in [m.split('"')[0]]}
    assert refs and all(r.removeprefix("#/components/schemas/") in schemas for r in refs)
    helm = _get(kube_api, "/openapi/v3/apis/helm.cattle.io/v1", "application/json")["components"]["schemas"]
    assert any(s.get("x-kubernetes-group-version-kind") == [{"group": "helm.cattle.io", "version": "v1",
                                                             "kind": "HelmChart"}] for s in helm.values())
