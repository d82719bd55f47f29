"""Owner references and garbage collection, finalizers, namespace termination."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubesim.testing import KubeSim
from kubesim.tests.helpers import configmap, status_body


@pytest.fixture
def core(kube_api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


def _owned(owner: client.V1ConfigMap, name: str) -> dict:
    body = configmap(name)
    body["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name,
                                            "uid": owner.metadata.uid}]
    return body


def test_it_garbage_collects_dependents(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """Deleting an owner deletes objects whose ownerReferences point at its uid (background GC)."""
    owner = core.create_namespaced_config_map("default", configmap("owner"))
    core.create_namespaced_config_map("default", _owned(owner, "child"))
    core.delete_namespaced_config_map("owner", "default")
    kubesim.wait_for(lambda: kubesim.get("ConfigMap", "default", "child") is None, 2)


def test_it_orphans_dependents_when_asked(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """propagationPolicy=Orphan keeps dependents and strips the owner reference."""
    owner = core.create_namespaced_config_map("default", configmap("owner"))
    core.create_namespaced_config_map("default", _owned(owner, "child"))
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Orphan")
    child = core.read_namespaced_config_map("child", "default")
    assert not child.metadata.owner_references


def test_it_deletes_dependents_first_in_foreground(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """Foreground: the owner gets deletionTimestamp + foregroundDeletion finalizer, dependents go, then it."""
    owner = core.create_namespaced_config_map("default", configmap("owner"))
    core.create_namespaced_config_map("default", _owned(owner, "child"))
    core.delete_namespaced_config_map("owner", "default", propagation_policy="Foreground")
    kubesim.wait_for(lambda: kubesim.get("ConfigMap", "default", "owner") is None, 2)
    assert kubesim.get("ConfigMap", "default", "child") is None


def test_it_holds_objects_with_finalizers(core: client.CoreV1Api) -> None:
    """With finalizers, DELETE sets deletionTimestamp; removing the last finalizer removes the object."""
    body = configmap("held")
    body["metadata"]["finalizers"] = ["example.com/cleanup"]
    core.create_namespaced_config_map("default", body)
    core.delete_namespaced_config_map("held", "default")
    held = core.read_namespaced_config_map("held", "default")
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", "default", {"metadata": {"finalizers": None}},
                                     _content_type="application/merge-patch+json")
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("held", "default")
    assert exc.value.status == 404


def test_it_terminates_namespaces_with_their_contents(kubesim: KubeSim, core: client.CoreV1Api) -> None:
    """Deleting a namespace: phase Terminating, no new objects (403), contents removed, then the namespace."""
    core.create_namespace({"metadata": {"name": "tenant"}})
    core.create_namespaced_config_map("tenant", configmap("a"))
    body = configmap("held")
    body["metadata"]["finalizers"] = ["example.com/x"]
    core.create_namespaced_config_map("tenant", body)
    ns = core.delete_namespace("tenant")  # the apiserver answers with the Namespace, now Terminating
    assert ns["status"]["phase"] == "Terminating" and ns["metadata"]["deletionTimestamp"]
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("tenant", configmap("late"))
    assert exc.value.status == 403 and status_body(exc.value)["reason"] == "Forbidden"
    kubesim.wait_for(lambda: kubesim.get("ConfigMap", "tenant", "a") is None, 2)
    assert core.read_namespace("tenant").status.phase == "Terminating"  # held by the finalizer
    core.patch_namespaced_config_map("held", "tenant", {"metadata": {"finalizers": None}},
                                     _content_type="application/merge-patch+json")
    kubesim.wait_for(lambda: kubesim.get("Namespace", None, "tenant") is None, 2)


def test_it_cascades_deployment_deletion_to_pods(kubesim: KubeSim, kube_api: client.ApiClient) -> None:
    """Deployment -> ReplicaSet -> Pods are linked by ownerReferences and collected together."""
    from kubesim.tests.helpers import deployment

    apps = client.AppsV1Api(kube_api)
    apps.create_namespaced_deployment("default", deployment(replicas=2))
    kubesim.wait_for(lambda: len(kubesim.list("Pod", "default")) == 2, 3)
    apps.delete_namespaced_deployment("web", "default")
    kubesim.wait_for(lambda: not kubesim.list("Pod", "default") and not kubesim.list("ReplicaSet", "default"), 3)
