"""apply_project / delete_project against kubesim over HTTP with the official client."""

from __future__ import annotations

import copy

import pytest

from agent import reconcile
from agent.k8s import NAMESPACE, KubeError
from agent.protocol import PROJECT_UID_LABEL

NS = "tenant-acme-web"
LABELS = {"paas.dev/organization": "acme", "paas.dev/project": "web",
          PROJECT_UID_LABEL: "9f0c1c2e-5a57-4c1e-8a43-0d3f7b1f6a01"}
# Another tenant's project: its own uid.
OTHER = {"paas.dev/organization": "umbrella", "paas.dev/project": "web",
         PROJECT_UID_LABEL: "0b5e2d0a-13a4-4f6e-9c3b-7e4d1c2b9a10"}


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
    assert reconcile.delete_project(kube, NS, LABELS) == {"namespace": NS, "deleted": True}
    kubesim.wait_for(lambda: kubesim.get("Namespace", None, NS) is None)
    assert kubesim.get("Deployment", NS, "web") is None
    assert reconcile.delete_project(kube, NS, LABELS)["deleted"] is False


def test_it_refuses_to_delete_a_namespace_it_does_not_manage(kube, kubesim):
    with pytest.raises(reconcile.NotOwned, match="kube-system exists and is not owned by project acme/web"):
        reconcile.delete_project(kube, "kube-system", LABELS)
    assert kube.get(NAMESPACE, "kube-system") is not None


def test_kube_errors_carry_the_status_message(kube):
    with pytest.raises(KubeError) as exc:
        kube.request("GET", "/api/v1/namespaces/nope/configmaps/missing")
    assert exc.value.status == 404


# --- namespace ownership -----------------------------------------------------------------------


def make_namespace(kube, name: str, labels: dict[str, str] | None = None) -> None:
    kube.request("POST", "/api/v1/namespaces", body={"metadata": {"name": name, "labels": labels or {}}})


def namespace_labels(kubesim, name: str) -> dict[str, str]:
    return kubesim.get("Namespace", None, name)["metadata"].get("labels") or {}


def platform_data_namespace(kube) -> None:
    """Like paas-data after an older agent applied an org "Paas"/project "Data" into it."""
    legacy = {"app.kubernetes.io/managed-by": "paas", "paas.dev/organization": "acme", "paas.dev/project": "web"}
    make_namespace(kube, "paas-data", legacy)
    kube.request("POST", "/api/v1/namespaces/paas-data/secrets", body={
        "metadata": {"name": "paas-postgres-superuser"}, "stringData": {"password": "s3cret"}})
    kube.request("POST", "/api/v1/namespaces/paas-data/configmaps", body={
        "metadata": {"name": "tenant-leftover", "labels": legacy}, "data": {"value": "1"}})


def test_it_marks_the_namespace_it_creates_with_the_projects_uid(kube, kubesim):
    result = reconcile.apply_project(kube, NS, LABELS, 1, [config("settings")])
    assert actions(result) == {"ConfigMap/settings": "created"}
    assert namespace_labels(kubesim, NS)[PROJECT_UID_LABEL] == LABELS[PROJECT_UID_LABEL]
    # The uid is the namespace's mark only: objects keep the labels they always had.
    assert PROJECT_UID_LABEL not in kubesim.get("ConfigMap", NS, "settings")["metadata"]["labels"]


def test_it_refuses_a_platform_namespace_even_with_the_projects_labels_on_it(kube, kubesim):
    platform_data_namespace(kube)
    before = kubesim.get("Namespace", None, "paas-data")["metadata"]["resourceVersion"]
    with pytest.raises(reconcile.NotOwned, match="paas-data exists and is not owned by project acme/web "
                                                 r"\(it holds Secret/paas-postgres-superuser"):
        reconcile.apply_project(kube, "paas-data", LABELS, 1, [deployment("web")])
    with pytest.raises(reconcile.NotOwned):
        reconcile.apply_project(kube, "paas-data", LABELS, 2, [])  # would prune tenant-leftover
    with pytest.raises(reconcile.NotOwned):
        reconcile.delete_project(kube, "paas-data", LABELS)
    # Nothing changed: no object added, none pruned, the namespace untouched and still there.
    assert kubesim.get("Namespace", None, "paas-data")["metadata"]["resourceVersion"] == before
    assert kubesim.get("Deployment", "paas-data", "web") is None
    assert kubesim.get("ConfigMap", "paas-data", "tenant-leftover") is not None
    assert kubesim.get("Secret", "paas-data", "paas-postgres-superuser") is not None


def test_it_refuses_kubernetes_namespaces(kube, kubesim):
    for name in ("kube-system", "default"):
        with pytest.raises(reconcile.NotOwned, match=f"{name} exists and is not owned .*a Kubernetes namespace"):
            reconcile.apply_project(kube, name, LABELS, 1, [config("settings")])
        assert kubesim.get("ConfigMap", name, "settings") is None
        assert PROJECT_UID_LABEL not in namespace_labels(kubesim, name)


def test_it_refuses_a_namespace_nobody_marked_for_the_project(kube, kubesim):
    make_namespace(kube, "sablier-system")
    with pytest.raises(reconcile.NotOwned, match="it was not created for this project"):
        reconcile.apply_project(kube, "sablier-system", LABELS, 1, [config("settings")])
    assert kubesim.get("ConfigMap", "sablier-system", "settings") is None


def test_it_refuses_another_projects_namespace_for_apply_prune_and_delete(kube, kubesim):
    reconcile.apply_project(kube, NS, OTHER, 3, [deployment("web"), config("settings")])
    before = kubesim.get("Namespace", None, NS)["metadata"]["resourceVersion"]
    same_names = {**LABELS, "paas.dev/organization": "umbrella"}  # even with the other's org/project labels
    for labels in (LABELS, same_names):
        with pytest.raises(reconcile.NotOwned, match=f"namespace {NS} belongs to another project"):
            reconcile.apply_project(kube, NS, labels, 4, [config("settings", "mine")])
        with pytest.raises(reconcile.NotOwned):
            reconcile.apply_project(kube, NS, labels, 4, [])
        with pytest.raises(reconcile.NotOwned):
            reconcile.delete_project(kube, NS, labels)
    assert kubesim.get("Namespace", None, NS)["metadata"]["resourceVersion"] == before
    assert kubesim.get("ConfigMap", NS, "settings")["data"]["value"] == "1"
    assert kubesim.get("Deployment", NS, "web") is not None


def test_it_adopts_a_namespace_made_for_the_project_before_ownership_marks(kube, kubesim):
    # What an agent without ownership marks left behind: the namespace and objects with the project's labels.
    legacy = {**{k: v for k, v in LABELS.items() if k != PROJECT_UID_LABEL}, "app.kubernetes.io/managed-by": "paas"}
    make_namespace(kube, "acme-web", legacy)
    for name in ("settings", "old"):
        kube.request("POST", "/api/v1/namespaces/acme-web/configmaps",
                     body={**config(name), "metadata": {"name": name, "labels": legacy}})
    # The data services' credentials carry no project labels; they are the platform's, for the project.
    kube.request("POST", "/api/v1/namespaces/acme-web/secrets", body={"metadata": {"name": "paas-database", "labels": {
        "app.kubernetes.io/managed-by": "paas", "paas.dev/data-service": "database"}}, "stringData": {"PGUSER": "u"}})
    result = reconcile.apply_project(kube, "acme-web", LABELS, 2, [config("settings", "2")])
    assert actions(result) == {"ConfigMap/settings": "configured", "ConfigMap/old": "pruned"}
    assert namespace_labels(kubesim, "acme-web")[PROJECT_UID_LABEL] == LABELS[PROJECT_UID_LABEL]
    # Adopted once, it is the project's: another project can no longer take it.
    with pytest.raises(reconcile.NotOwned, match="belongs to another project"):
        reconcile.apply_project(kube, "acme-web", {**OTHER, **legacy}, 3, [])


def test_it_does_not_adopt_a_legacy_namespace_holding_someone_elses_objects(kube, kubesim):
    legacy = {k: v for k, v in LABELS.items() if k != PROJECT_UID_LABEL}
    make_namespace(kube, "acme-web", {**legacy, "app.kubernetes.io/managed-by": "paas"})
    kube.request("POST", "/api/v1/namespaces/acme-web/configmaps", body=config("hand-made"))
    with pytest.raises(reconcile.NotOwned, match="it holds ConfigMap/hand-made"):
        reconcile.apply_project(kube, "acme-web", LABELS, 1, [])
    assert kubesim.get("ConfigMap", "acme-web", "hand-made") is not None
    assert PROJECT_UID_LABEL not in namespace_labels(kubesim, "acme-web")


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
