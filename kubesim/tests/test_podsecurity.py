"""Pod Security admission from namespace labels, checked with the official client over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubesim import podsecurity
from kubesim.testing import KubeSim
from kubesim.tests.helpers import deployment, pod, raw, status_body

RESTRICTED_SC = {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                 "seccompProfile": {"type": "RuntimeDefault"}}


def _namespace(core: client.CoreV1Api, name: str, **labels: str) -> None:
    core.create_namespace({"metadata": {"name": name, "labels": {
        f"pod-security.kubernetes.io/{k.replace('_', '-')}": v for k, v in labels.items()}}})


def _pod(name: str = "p", container: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body = pod(name, containers=["c"])
    body["spec"]["containers"][0].update(container or {})
    body["spec"].update(spec)
    return body


def _warnings(headers: dict[str, str]) -> str:
    return headers.get("Warning", "")


@pytest.fixture
def core(kube_api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


def test_it_refuses_pods_that_violate_enforce_with_the_apiservers_message(core: client.CoreV1Api) -> None:
    """A restricted namespace refuses a plain pod: 403, every violated check named as kube-apiserver names it."""
    _namespace(core, "locked", enforce="restricted")
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("locked", _pod("x"))
    body = status_body(exc.value)
    assert exc.value.status == 403 and body["reason"] == "Forbidden"
    assert body["details"] == {"name": "x", "kind": "pods"}
    assert body["message"] == (
        'pods "x" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
        '(container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
        '(container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or '
        'container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must '
        'set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')
    assert core.list_namespaced_pod("locked").items == []
    created = core.create_namespaced_pod("locked", _pod("ok", {"securityContext": RESTRICTED_SC}))
    assert created.metadata.name == "ok"


def test_it_checks_the_baseline_rules(core: client.CoreV1Api) -> None:
    """Each baseline rule refuses what the Pod Security Standards forbid, and allows what they allow."""
    _namespace(core, "base", enforce="baseline", enforce_version="v1.35")
    refused = {
        "privileged (container \"c\" must not set securityContext.privileged=true)":
            _pod(container={"securityContext": {"privileged": True}}),
        "host namespaces (hostNetwork=true, hostPID=true)": _pod(hostNetwork=True, hostPID=True),
        'non-default capabilities (container "c" must not include "NET_ADMIN", "SYS_ADMIN" in '
        'securityContext.capabilities.add)':
            _pod(container={"securityContext": {"capabilities": {"add": ["SYS_ADMIN", "CHOWN", "NET_ADMIN"]}}}),
        'hostPath volumes (volume "h")': _pod(volumes=[{"name": "h", "hostPath": {"path": "/"}}]),
        'hostPort (container "c" uses hostPort 8080)': _pod(container={"ports": [{"containerPort": 80,
                                                                                   "hostPort": 8080}]}),
        'forbidden AppArmor profile (pod must not set AppArmor profile type to "Unconfined")':
            _pod(securityContext={"appArmorProfile": {"type": "Unconfined"}}),
        'seLinuxOptions (container "c" set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not '
        'be set)': _pod(container={"securityContext": {"seLinuxOptions": {"type": "spc_t", "user": "root"}}}),
        'procMount (container "c" must not set securityContext.procMount to "Unmasked")':
            _pod(container={"securityContext": {"procMount": "Unmasked"}}),
        'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")':
            _pod(securityContext={"seccompProfile": {"type": "Unconfined"}}),
        "forbidden sysctls (kernel.msgmax)":
            _pod(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"},
                                              {"name": "net.ipv4.tcp_syncookies", "value": "1"}]}),
        'hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)':
            _pod(securityContext={"windowsOptions": {"hostProcess": True}}),
        'probe or lifecycle host (container "c" uses probe or lifecycle host "10.0.0.1")':
            _pod(container={"livenessProbe": {"httpGet": {"port": 80, "host": "10.0.0.1"}}}),
    }
    for i, (detail, body) in enumerate(refused.items()):
        body["metadata"]["name"] = f"bad-{i}"
        status, answer, _ = raw(core.api_client, "POST", "/api/v1/namespaces/base/pods", body)
        assert (status, answer["message"]) == \
            (403, f'pods "bad-{i}" is forbidden: violates PodSecurity "baseline:v1.35": {detail}')
    # Allowed by baseline: default capabilities, RuntimeDefault seccomp, root, safe sysctls, emptyDir.
    core.create_namespaced_pod("base", _pod("fine", {"securityContext": {
        "capabilities": {"add": ["CHOWN", "NET_BIND_SERVICE"]}, "runAsUser": 0}},
        securityContext={"seccompProfile": {"type": "RuntimeDefault"},
                         "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}]},
        volumes=[{"name": "scratch", "emptyDir": {}}]))


def test_it_checks_the_restricted_rules() -> None:
    """Restricted adds volume types, runAsUser=0, NET_BIND_SERVICE-only adds; the evaluator orders as upstream."""
    spec = {"containers": [{"name": "c", "image": "x", "securityContext": {
        **RESTRICTED_SC, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "CHOWN"]}, "runAsUser": 0}}],
        "volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}}, {"name": "c", "configMap": {"name": "x"}},
                    {"name": "h", "hostPath": {"path": "/"}}]}
    results = podsecurity.evaluate(podsecurity.LevelVersion("restricted", None), {}, spec)
    assert podsecurity.describe(results) == (
        'unrestricted capabilities (container "c" must not include "CHOWN" in securityContext.capabilities.add), '
        'restricted volume types (volumes "n", "h" use restricted volume types "hostPath", "nfs"), '
        'runAsUser=0 (container "c" must not set runAsUser=0)')
    assert podsecurity.evaluate(podsecurity.LevelVersion("baseline", None), {}, spec) == \
        [("hostPath volumes", 'volume "h"')]
    # Versions pin the rules: runAsUser=0 is only checked from v1.23, hostProbes from v1.34.
    assert "runAsUser=0" not in podsecurity.describe(
        podsecurity.evaluate(podsecurity.LevelVersion("restricted", 22), {}, spec))
    spec["containers"][0]["securityContext"]["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    spec["containers"][0]["securityContext"]["runAsUser"] = 1000
    spec["volumes"] = [{"name": "c", "configMap": {"name": "x"}}, {"name": "p", "persistentVolumeClaim": {
        "claimName": "data"}}]
    assert podsecurity.evaluate(podsecurity.LevelVersion("restricted", None), {}, spec) == []


def test_it_warns_on_workloads_and_pods_without_refusing_workloads(kubesim: KubeSim, kube_api: client.ApiClient,
                                                                    core: client.CoreV1Api) -> None:
    """enforce refuses Pods only; a Deployment is accepted with a 299 Warning (warn defaults to enforce)."""
    _namespace(core, "base", enforce="baseline", warn="restricted")
    bad = deployment("priv")
    bad["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    status, _, headers = raw(kube_api, "POST", "/apis/apps/v1/namespaces/base/deployments", bad)
    assert status == 201
    assert _warnings(headers).startswith('299 - "would violate PodSecurity \\"restricted:latest\\": privileged '
                                         '(container \\"priv\\" must not set securityContext.privileged=true)')
    # A pod that passes baseline but not restricted is created with a warning.
    status, _, headers = raw(kube_api, "POST", "/api/v1/namespaces/base/pods", _pod("rooty"))
    assert status == 201 and "would violate PodSecurity \\\"restricted:latest\\\"" in _warnings(headers)
    # Only enforce set: warn follows it, so the workload still hears about the baseline violation.
    _namespace(core, "only-enforce", enforce="baseline")
    status, _, headers = raw(kube_api, "POST", "/apis/apps/v1/namespaces/only-enforce/deployments", bad)
    assert status == 201 and 'PodSecurity \\"baseline:latest\\": privileged' in _warnings(headers)
    status, _, headers = raw(kube_api, "POST", "/apis/apps/v1/namespaces/default/deployments", bad)
    assert status == 201 and "Warning" not in headers


def test_a_refused_pod_shows_as_failed_create_on_the_replicaset_and_deployment(
        kubesim: KubeSim, kube_api: client.ApiClient, core: client.CoreV1Api) -> None:
    """The ReplicaSet controller records FailedCreate with the reason and the ReplicaFailure condition."""
    _namespace(core, "base", enforce="baseline")
    bad = deployment("priv", replicas=1)
    bad["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    client.AppsV1Api(kube_api).create_namespaced_deployment("base", bad)

    def failed() -> list[Any]:
        return [e for e in core.list_namespaced_event("base").items if e.reason == "FailedCreate"]

    events = kubesim.wait_for(failed)
    assert events[0].type == "Warning" and events[0].involved_object.kind == "ReplicaSet"
    assert events[0].message.startswith('Error creating: pods "priv-')
    assert events[0].message.endswith('is forbidden: violates PodSecurity "baseline:latest": privileged '
                                      '(container "priv" must not set securityContext.privileged=true)')
    rs = kubesim.wait_for(lambda: next((c for r in kubesim.list("ReplicaSet", "base")
                                        for c in (r.get("status") or {}).get("conditions") or []), None))
    assert (rs["type"], rs["status"], rs["reason"]) == ("ReplicaFailure", "True", "FailedCreate")
    cond = kubesim.wait_for(lambda: next((c for c in (kubesim.get("Deployment", "base", "priv").get("status") or {})
                                          .get("conditions") or [] if c["type"] == "ReplicaFailure"), None))
    assert cond["reason"] == "FailedCreate" and "violates PodSecurity" in cond["message"]
    assert core.list_namespaced_pod("base").items == []
    # Relaxing the namespace lets the controller's retry succeed and clears the condition.
    core.patch_namespace("base", {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "privileged"}}})
    kubesim.wait_for(lambda: core.list_namespaced_pod("base").items, timeout=15)
    kubesim.wait_for(lambda: not any(c["type"] == "ReplicaFailure" for r in kubesim.list("ReplicaSet", "base")
                                     for c in (r.get("status") or {}).get("conditions") or []), timeout=15)


def test_jobs_record_failed_create_too(kubesim: KubeSim, kube_api: client.ApiClient, core: client.CoreV1Api) -> None:
    _namespace(core, "base", enforce="baseline")
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "hostNetwork": True, "containers": [{"name": "c", "image": "busybox"}]}}}}
    client.BatchV1Api(kube_api).create_namespaced_job("base", job)
    event = kubesim.wait_for(lambda: next((e for e in core.list_namespaced_event("base").items
                                           if e.reason == "FailedCreate"), None))
    assert event.involved_object.kind == "Job" and "host namespaces (hostNetwork=true)" in event.message


def test_it_validates_the_labels_and_warns_about_existing_pods(kube_api: client.ApiClient,
                                                               core: client.CoreV1Api) -> None:
    """Bad level or version labels are 422; tightening enforce lists the existing pods that would now fail."""
    with pytest.raises(ApiException) as exc:
        _namespace(core, "typo", enforce="strict")
    assert exc.value.status == 422
    assert status_body(exc.value)["message"] == (
        'Namespace "typo" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: '
        '"strict": must be one of privileged, baseline, restricted')
    with pytest.raises(ApiException) as exc:
        _namespace(core, "typo", enforce="baseline", enforce_version="1.30")
    assert 'must be "latest" or "v1.x"' in status_body(exc.value)["message"]

    _namespace(core, "open")
    for name in ("a", "b"):
        core.create_namespaced_pod("open", _pod(name))
    core.create_namespaced_pod("open", _pod("c", hostNetwork=True))
    patch = {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    status, _, headers = raw(kube_api, "PATCH", "/api/v1/namespaces/open", patch,
                             content_type="application/merge-patch+json")
    assert status == 200
    warning = _warnings(headers)
    assert 'existing pods in namespace \\"open\\" violate the new PodSecurity enforce level ' \
           '\\"restricted:latest\\"' in warning
    assert '"a (and 1 other pod): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot ' \
           '!= true, seccompProfile"' in warning
    assert '"c: host namespaces, allowPrivilegeEscalation != false' in warning
    assert len(core.list_namespaced_pod("open").items) == 3  # existing pods are never evicted


def test_pod_updates_are_checked_only_when_an_image_changes(core: client.CoreV1Api) -> None:
    _namespace(core, "open")
    core.create_namespaced_pod("open", _pod("p"))
    core.patch_namespace("open", {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    core.patch_namespaced_pod("p", "open", {"metadata": {"labels": {"touched": "yes"}}})
    with pytest.raises(ApiException) as exc:
        core.patch_namespaced_pod("p", "open", {"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}})
    assert exc.value.status == 403 and "violates PodSecurity" in status_body(exc.value)["message"]
    assert core.read_namespaced_pod("p", "open").spec.containers[0].image == "busybox:1.36"


def test_it_reads_policies_like_the_admission_plugin() -> None:
    """Invalid levels fail closed for enforce and open for warn; warn follows a stricter enforce unless set."""
    policy = podsecurity.policy_of({"pod-security.kubernetes.io/enforce": "bogus"})
    assert str(policy.enforce) == "restricted:latest" and str(policy.warn) == "privileged:latest"
    policy = podsecurity.policy_of({"pod-security.kubernetes.io/enforce": "baseline",
                                    "pod-security.kubernetes.io/enforce-version": "v1.30",
                                    "pod-security.kubernetes.io/warn": "bogus"})
    assert str(policy.warn) == "privileged:latest" and len(policy.errors) == 1
    policy = podsecurity.policy_of({"pod-security.kubernetes.io/enforce": "baseline",
                                    "pod-security.kubernetes.io/enforce-version": "v1.30"})
    assert str(policy.warn) == "baseline:v1.30" and str(policy.audit) == "privileged:latest"


def test_versions_select_the_checks_of_their_release() -> None:
    """Windows pods skip the Linux-only restricted checks from v1.25; before v1.19 seccomp was annotations."""
    windows = {"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": True},
               "containers": [{"name": "c", "image": "x"}]}
    restricted = podsecurity.LevelVersion("restricted", None)
    assert podsecurity.evaluate(restricted, {}, windows) == []
    assert [r for r, _ in podsecurity.evaluate(podsecurity.LevelVersion("restricted", 24), {}, windows)] == \
        ["allowPrivilegeEscalation != false", "unrestricted capabilities", "seccompProfile"]
    annotated = {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}
    spec = {"containers": [{"name": "c", "image": "x"}]}
    assert podsecurity.evaluate(podsecurity.LevelVersion("baseline", 18), annotated, spec) == [
        ("seccompProfile", 'forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined"')]
    assert podsecurity.evaluate(podsecurity.LevelVersion("baseline", None), annotated, spec) == []
