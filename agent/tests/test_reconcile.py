"""apply_project / delete_project against kubesim over HTTP with the official client."""

from __future__ import annotations

import copy

import pytest

from agent import reconcile
from agent.k8s import NAMESPACE, KubeError

NS = "acme-web"
LABELS = {"paas.dev/organization": "acme", "paas.dev/project": "web"}


def deployment(name: str, image: str = "nginx:1.27", replicas: int = 1) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "main", "image": image}]}}},
    }


def service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}


def config(name: str, value: str = "1") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"value": value}}


def actions(result: dict) -> dict[str, str]:
    return {f"{r['kind']}/{r['name']}": r["action"] for r in result["results"]}


def test_it_creates_the_namespace_and_every_object(kube, kubesim):
    result = reconcile.apply_project(kube, NS, LABELS, 1, [deployment("web"), service("web"), config("settings")])
    assert actions(result) == {"Deployment/web": "created", "Service/web": "created", "ConfigMap/settings": "created"}
    namespace = kubesim.get("Namespace", None, NS)
    assert namespace["metadata"]["labels"]["paas.dev/project"] == "web"
    assert namespace["metadata"]["annotations"][reconcile.REVISION_ANNOTATION] == "1"
    stored = kubesim.get("Deployment", NS, "web")
    assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "paas"
    assert any(m["manager"] == "paas-agent" for m in stored["metadata"]["managedFields"])


def test_it_is_idempotent_for_the_same_revision(kube, kubesim):
    objects = [deployment("web"), service("web")]
    reconcile.apply_project(kube, NS, LABELS, 1, objects)
    before = {k: kubesim.get(k, NS, "web")["metadata"]["resourceVersion"] for k in ("Deployment", "Service")}
    ns_before = kubesim.get("Namespace", None, NS)["metadata"]["resourceVersion"]
    again = reconcile.apply_project(kube, NS, LABELS, 1, copy.deepcopy(objects))
    assert set(actions(again).values()) == {"unchanged"}
    after = {k: kubesim.get(k, NS, "web")["metadata"]["resourceVersion"] for k in ("Deployment", "Service")}
    assert after == before
    assert kubesim.get("Namespace", None, NS)["metadata"]["resourceVersion"] == ns_before


def test_it_updates_changed_objects_and_prunes_removed_ones(kube, kubesim):
    reconcile.apply_project(kube, NS, LABELS, 1, [deployment("web"), deployment("worker"), config("settings")])
    result = reconcile.apply_project(kube, NS, LABELS, 2, [deployment("web", image="nginx:1.28"), config("settings")])
    assert actions(result) == {"Deployment/web": "configured", "ConfigMap/settings": "unchanged",
                               "Deployment/worker": "pruned"}
    image = kubesim.get("Deployment", NS, "web")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "nginx:1.28"
    assert kubesim.get("Deployment", NS, "worker") is None


def test_it_leaves_objects_without_the_project_labels_alone(kube, kubesim):
    reconcile.apply_project(kube, NS, LABELS, 1, [config("settings")])
    # Someone else's object in the same namespace (no project labels): never pruned.
    kube.request("POST", f"/api/v1/namespaces/{NS}/configmaps", body=config("hand-made"))
    reconcile.apply_project(kube, NS, LABELS, 2, [])
    assert kubesim.get("ConfigMap", NS, "hand-made") is not None
    assert kubesim.get("ConfigMap", NS, "settings") is None


def test_it_refuses_an_older_revision(kube, kubesim):
    reconcile.apply_project(kube, NS, LABELS, 5, [config("settings", "five")])
    with pytest.raises(reconcile.StaleRevision, match="older than the applied revision 5"):
        reconcile.apply_project(kube, NS, LABELS, 4, [config("settings", "four")])
    assert kubesim.get("ConfigMap", NS, "settings")["data"]["value"] == "five"


def test_it_reports_the_apiservers_message_for_a_bad_object(kube):
    bad = config("Not_A_Valid_Name")
    result = reconcile.apply_project(kube, NS, LABELS, 1, [bad, config("fine")])
    by_name = {r["name"]: r for r in result["results"]}
    assert by_name["fine"]["action"] == "created"
    assert by_name["Not_A_Valid_Name"]["action"] == "failed"
    assert "Not_A_Valid_Name" in by_name["Not_A_Valid_Name"]["message"]


def test_it_refuses_kinds_a_project_may_not_hold(kube, kubesim):
    cluster_role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "x"},
                    "rules": []}
    result = reconcile.apply_project(kube, NS, LABELS, 1, [cluster_role])
    assert result["results"][0]["action"] == "failed"
    assert kubesim.get("ClusterRole", None, "x") is None


def test_it_deletes_a_project_and_everything_in_it(kube, kubesim):
    reconcile.apply_project(kube, NS, LABELS, 1, [deployment("web")])
    assert reconcile.delete_project(kube, NS) == {"namespace": NS, "deleted": True}
    kubesim.wait_for(lambda: kubesim.get("Namespace", None, NS) is None)
    assert kubesim.get("Deployment", NS, "web") is None
    assert reconcile.delete_project(kube, NS)["deleted"] is False


def test_it_refuses_to_delete_a_namespace_it_does_not_manage(kube, kubesim):
    with pytest.raises(reconcile.NotManaged):
        reconcile.delete_project(kube, "kube-system")
    assert kube.get(NAMESPACE, "kube-system") is not None


def test_kube_errors_carry_the_status_message(kube):
    with pytest.raises(KubeError) as exc:
        kube.request("GET", "/api/v1/namespaces/nope/configmaps/missing")
    assert exc.value.status == 404


def test_it_applies_a_role_before_the_binding_that_needs_it(kube, kubesim):
    """As the agent's ServiceAccount (no `bind`), a RoleBinding is only accepted once its Role exists."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "reader"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}
    result = reconcile.apply_project(kube, NS, LABELS, 1, [binding, *(config(f"c{i}") for i in range(8)), role])
    assert actions(result) == {"RoleBinding/reader": "created", "Role/reader": "created",
                               **{f"ConfigMap/c{i}": "created" for i in range(8)}}
