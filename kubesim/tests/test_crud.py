"""Create/get/list/replace/delete, selectors, metadata and error bodies, through the official client."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubesim.testing import KubeSim
from kubesim.tests.helpers import configmap, deployment, pod, raw, status_body


@pytest.fixture
def core(kube_api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


def test_it_answers_201_with_the_stored_object_on_create(core: client.CoreV1Api) -> None:
    """POST returns 201 Created and the object as stored: uid, resourceVersion, creationTimestamp, namespace."""
    cm, status, _headers = core.create_namespaced_config_map_with_http_info("default", configmap("a", data={"k": "v"}))
    assert status == 201
    assert cm.metadata.uid and cm.metadata.resource_version and cm.metadata.creation_timestamp
    assert cm.metadata.namespace == "default"  # filled from the URL


def test_it_keeps_one_increasing_resource_version(core: client.CoreV1Api) -> None:
    """resourceVersion comes from one counter across kinds; every write raises it."""
    a = core.create_namespaced_config_map("default", configmap("a"))
    b = core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "stringData": {"x": "y"}})
    a2 = core.patch_namespaced_config_map("a", "default", {"data": {"k": "2"}})
    assert int(a.metadata.resource_version) < int(b.metadata.resource_version) < int(a2.metadata.resource_version)


def test_it_folds_secret_string_data_into_data(core: client.CoreV1Api) -> None:
    """Secrets: stringData is written into data (base64) and never stored, type defaults to Opaque."""
    s = core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "stringData": {"x": "y"}})
    assert s.data == {"x": "eQ=="} and s.string_data is None and s.type == "Opaque"


def test_it_generates_names(core: client.CoreV1Api) -> None:
    """metadata.generateName gets a 5-character random suffix when name is empty."""
    cm = core.create_namespaced_config_map("default", {"metadata": {"generateName": "job-"}})
    assert cm.metadata.name.startswith("job-") and len(cm.metadata.name) == 9


def test_it_answers_already_exists(core: client.CoreV1Api) -> None:
    """A second create of the same name is 409 AlreadyExists with details naming the resource."""
    core.create_namespaced_config_map("default", configmap("a"))
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", configmap("a"))
    body = status_body(exc.value)
    assert exc.value.status == 409 and body["reason"] == "AlreadyExists"
    assert body["kind"] == "Status" and body["status"] == "Failure" and body["code"] == 409
    assert body["details"] == {"name": "a", "kind": "configmaps"}
    assert body["message"] == 'configmaps "a" already exists'


def test_it_answers_not_found_with_group_qualified_message(kube_api: client.ApiClient) -> None:
    """GET of a missing object is 404 NotFound, `deployments.apps "x" not found`."""
    with pytest.raises(ApiException) as exc:
        client.AppsV1Api(kube_api).read_namespaced_deployment("x", "default")
    body = status_body(exc.value)
    assert exc.value.status == 404 and body["reason"] == "NotFound"
    assert body["message"] == 'deployments.apps "x" not found'
    assert body["details"] == {"name": "x", "group": "apps", "kind": "deployments"}


def test_it_rejects_objects_in_a_missing_namespace(core: client.CoreV1Api) -> None:
    """Creating in a namespace that does not exist is 404 `namespaces "nope" not found`."""
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("nope", configmap("a"))
    assert exc.value.status == 404 and status_body(exc.value)["message"] == 'namespaces "nope" not found'


def test_it_rejects_a_stale_resource_version_on_replace(core: client.CoreV1Api) -> None:
    """PUT with an old metadata.resourceVersion is 409 Conflict (optimistic concurrency)."""
    cm = core.create_namespaced_config_map("default", configmap("a"))
    cm.data = {"k": "1"}
    core.replace_namespaced_config_map("a", "default", cm)
    cm.data = {"k": "2"}
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("a", "default", cm)
    body = status_body(exc.value)
    assert exc.value.status == 409 and body["reason"] == "Conflict"
    assert "the object has been modified" in body["message"]


def test_it_replaces_without_resource_version_unconditionally(core: client.CoreV1Api) -> None:
    """PUT without resourceVersion is an unconditional update; uid and creationTimestamp are kept."""
    cm = core.create_namespaced_config_map("default", configmap("a"))
    new = core.replace_namespaced_config_map("a", "default", configmap("a", data={"k": "v"}))
    assert new.data == {"k": "v"} and new.metadata.uid == cm.metadata.uid
    assert new.metadata.creation_timestamp == cm.metadata.creation_timestamp


def test_it_filters_lists_by_label_selector(core: client.CoreV1Api) -> None:
    """labelSelector: equality (=, ==, !=), set-based in/notin, exists and !exists."""
    for name, labels in (("a", {"tier": "web", "env": "prod"}), ("b", {"tier": "db", "env": "dev"}),
                         ("c", {"tier": "cache"})):
        core.create_namespaced_config_map("default", configmap(name, labels))

    def names(sel: str) -> list[str]:
        return sorted(c.metadata.name for c in core.list_namespaced_config_map("default", label_selector=sel).items
                      if c.metadata.name != "kube-root-ca.crt")

    assert names("tier=web") == ["a"]
    assert names("tier==db") == ["b"]
    assert names("tier!=web") == ["b", "c"]
    assert names("tier in (web, db)") == ["a", "b"]
    assert names("tier notin (web,db)") == ["c"]
    assert names("env") == ["a", "b"]
    assert names("!env") == ["c"]
    assert names("tier in (web,db),env=dev") == ["b"]


def test_it_filters_lists_by_field_selector(core: client.CoreV1Api) -> None:
    """fieldSelector on metadata.name, metadata.namespace and (pods) status.phase; unknown fields are 400."""
    core.create_namespaced_config_map("default", configmap("a"))
    core.create_namespaced_config_map("kube-system", configmap("a"))
    core.create_namespaced_config_map("default", configmap("b"))
    found = core.list_config_map_for_all_namespaces(field_selector="metadata.name=a,metadata.namespace=default")
    assert [(c.metadata.namespace, c.metadata.name) for c in found.items] == [("default", "a")]
    assert [c.metadata.name for c in core.list_namespaced_config_map(
        "default", field_selector="metadata.name!=a").items] == ["b", "kube-root-ca.crt"]
    core.create_namespaced_pod("default", pod("p"))
    assert core.list_namespaced_pod("default", field_selector="status.phase=Failed").items == []
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_config_map("default", field_selector="data.k=v")
    assert exc.value.status == 400 and status_body(exc.value)["reason"] == "BadRequest"


def test_it_paginates_with_limit_and_continue(core: client.CoreV1Api) -> None:
    """limit/continue chunk a list, with remainingItemCount on each page but the last."""
    for i in range(5):
        core.create_namespaced_config_map("default", configmap(f"c{i}"))
    page = core.list_namespaced_config_map("default", limit=2)
    seen = [c.metadata.name for c in page.items]
    assert page.metadata.remaining_item_count == 4
    while page.metadata._continue:
        page = core.list_namespaced_config_map("default", limit=2, _continue=page.metadata._continue)
        seen += [c.metadata.name for c in page.items]
    assert seen == [f"c{i}" for i in range(5)] + ["kube-root-ca.crt"]


def test_it_bumps_generation_on_spec_changes_only(kube_api: client.ApiClient) -> None:
    """metadata.generation starts at 1 and increases on spec changes, not on metadata-only changes."""
    apps = client.AppsV1Api(kube_api)
    d = apps.create_namespaced_deployment("default", deployment())
    assert d.metadata.generation == 1
    d = apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "y"}}})
    assert d.metadata.generation == 1
    d = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 5}})
    assert d.metadata.generation == 2


def test_it_applies_defaults_like_the_apiserver(kube_api: client.ApiClient) -> None:
    """Defaulting: Deployment strategy/revisionHistoryLimit, Service ClusterIP + targetPort, Namespace label."""
    d = client.AppsV1Api(kube_api).create_namespaced_deployment("default", deployment(replicas=None))
    assert d.spec.replicas == 1 and d.spec.strategy.type == "RollingUpdate" and d.spec.revision_history_limit == 10
    c = d.spec.template.spec.containers[0]
    assert c.image_pull_policy == "IfNotPresent" and c.termination_message_path == "/dev/termination-log"
    core = client.CoreV1Api(kube_api)
    svc = core.create_namespaced_service("default", {"metadata": {"name": "web"},
                                                     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    assert svc.spec.type == "ClusterIP" and svc.spec.cluster_ip.startswith("10.43.")
    assert svc.spec.ports[0].target_port == 80 and svc.spec.ports[0].protocol == "TCP"
    ns = core.create_namespace({"metadata": {"name": "fresh"}})
    assert ns.metadata.labels["kubernetes.io/metadata.name"] == "fresh" and ns.status.phase == "Active"


def test_it_deletes_and_deletes_collections(core: client.CoreV1Api) -> None:
    """DELETE removes one object; DELETE on the collection removes those matching the selector."""
    for name, tier in (("a", "x"), ("b", "x"), ("c", "y")):
        core.create_namespaced_config_map("default", configmap(name, {"tier": tier}))
    core.delete_namespaced_config_map("c", "default")
    core.delete_collection_namespaced_config_map("default", label_selector="tier=x")
    # Only what every namespace gets from the controllers is left.
    assert [c.metadata.name for c in core.list_namespaced_config_map("default").items] == ["kube-root-ca.crt"]


def test_it_answers_method_not_allowed(kube_api: client.ApiClient) -> None:
    """A verb a resource path does not support is 405 MethodNotAllowed with a Status body."""
    with pytest.raises(ApiException) as exc:
        _raise_for(kube_api, "PUT", "/api/v1/namespaces/default/configmaps")
    assert exc.value.status == 405 and status_body(exc.value)["reason"] == "MethodNotAllowed"


def _raise_for(api: client.ApiClient, method: str, path: str) -> None:
    resp = api.call_api(*api.param_serialize(method, path, body={}, auth_settings=["BearerToken"]))
    resp.read()
    api.response_deserialize(resp, {})


def test_it_gives_every_namespace_its_default_service_account_and_root_ca(kubesim: KubeSim,
                                                                          core: client.CoreV1Api) -> None:
    """As the serviceaccount and root-ca-publisher controllers do: `default` SA and `kube-root-ca.crt`."""
    core.create_namespace({"metadata": {"name": "fresh"}})
    kubesim.wait_for(lambda: kubesim.get("ServiceAccount", "fresh", "default"), 2)
    kubesim.wait_for(lambda: kubesim.get("ConfigMap", "fresh", "kube-root-ca.crt"), 2)
    assert core.read_namespaced_service_account("default", "kube-system").metadata.name == "default"


def test_it_serves_cluster_scoped_kinds(kube_api: client.ApiClient) -> None:
    """Cluster-scoped kinds (Node, ClusterRole, IngressClass) have no namespace; nodes exist from the start."""
    nodes = client.CoreV1Api(kube_api).list_node().items
    assert any(n.metadata.labels.get("ingress-ready") == "true" for n in nodes)
    rbac = client.RbacAuthorizationV1Api(kube_api)
    role = rbac.create_cluster_role({"metadata": {"name": "sablier"}, "rules": [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch", "patch"]}]})
    assert role.metadata.namespace is None
    net = client.NetworkingV1Api(kube_api)
    net.create_ingress_class({"metadata": {"name": "traefik"}, "spec": {"controller": "traefik.io/ingress-controller"}})
    assert net.read_ingress_class("traefik").spec.controller == "traefik.io/ingress-controller"


def test_it_serves_every_builtin_kind_the_product_uses(kube_api: client.ApiClient) -> None:
    """Each built-in kind in the product's manifests round-trips through create and get."""
    core, rbac = client.CoreV1Api(kube_api), client.RbacAuthorizationV1Api(kube_api)
    core.create_namespaced_service_account("default", {"metadata": {"name": "sa"}})
    core.create_namespaced_persistent_volume_claim("default", {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    core.create_namespaced_resource_quota("default", {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "20"}}})
    core.create_namespaced_limit_range("default", {"metadata": {"name": "l"}, "spec": {"limits": [
        {"type": "Container", "default": {"cpu": "500m"}}]}})
    rbac.create_namespaced_role("default", {"metadata": {"name": "r"}, "rules": []})
    rbac.create_namespaced_role_binding("default", {"metadata": {"name": "rb"}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}, "subjects": [
        {"kind": "ServiceAccount", "name": "sa", "namespace": "default"}]})
    client.PolicyV1Api(kube_api).create_namespaced_pod_disruption_budget("default", {
        "metadata": {"name": "pdb"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    client.NetworkingV1Api(kube_api).create_namespaced_network_policy("default", {
        "metadata": {"name": "deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}})
    client.BatchV1Api(kube_api).create_namespaced_cron_job("default", {"metadata": {"name": "cj"}, "spec": {
        "schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}})
    assert core.read_namespaced_resource_quota("q", "default").spec.hard == {"pods": "20"}
    assert rbac.read_namespaced_role_binding("rb", "default").role_ref.name == "r"


def test_fresh_objects_come_back_with_the_status_the_apiserver_gives(kube_api: client.ApiClient) -> None:
    """Go serialises an empty status struct as {} (or with its non-omitempty counters), never leaves it out."""
    template = deployment()["spec"]
    objects = {
        "/apis/apps/v1/namespaces/default/deployments": (deployment("d"), {}),
        "/apis/batch/v1/namespaces/default/jobs": ({"metadata": {"name": "j"}, "spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}, {}),
        "/apis/batch/v1/namespaces/default/cronjobs": ({"metadata": {"name": "cj"}, "spec": {
            "schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}}, {}),
        "/apis/apps/v1/namespaces/default/replicasets": ({"metadata": {"name": "rs"}, "spec": template},
                                                         {"replicas": 0}),
        "/apis/apps/v1/namespaces/default/statefulsets": ({"metadata": {"name": "s"}, "spec": {
            **template, "serviceName": "s"}}, {"replicas": 0, "availableReplicas": 0}),
        "/apis/apps/v1/namespaces/default/daemonsets": ({"metadata": {"name": "ds"}, "spec": template}, {
            "currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0, "numberReady": 0}),
        "/apis/networking.k8s.io/v1/namespaces/default/ingresses": ({"metadata": {"name": "i"}, "spec": {
            "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}}, {"loadBalancer": {}}),
        "/apis/policy/v1/namespaces/default/poddisruptionbudgets": ({"metadata": {"name": "pdb"}, "spec": {
            "minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}, {
            "disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}),
        "/api/v1/namespaces/default/resourcequotas": ({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2"}}},
                                                      {}),
        "/api/v1/namespaces/default/services": ({"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}},
                                                {"loadBalancer": {}}),
        "/api/v1/namespaces/default/persistentvolumeclaims": ({"metadata": {"name": "pvc"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}, {"phase": "Pending"}),
        "/api/v1/namespaces/default/pods": (pod("p"), {"phase": "Pending", "qosClass": "BestEffort"}),
    }
    for path, (body, want) in objects.items():
        status, created, _ = raw(kube_api, "POST", path, body)
        assert status == 201, created
        assert created["status"] == want, path
        assert created["metadata"]["creationTimestamp"].endswith("Z") and created["metadata"]["managedFields"]
