"""Defaulting and kind-specific checks the apiserver applies on top of the OpenAPI schema."""

from __future__ import annotations

import base64
from typing import Any

from kubesim.netpol import policy_causes, policy_types
from kubesim.selectors import label_selector_matches

Cause = dict[str, str]


def _pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    if "serviceAccountName" in spec:
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(c, dict):
            continue
        image = str(c.get("image", ""))
        tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
        c.setdefault("imagePullPolicy", "IfNotPresent" if tagged and not image.endswith(":latest") else "Always")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})
        for p in c.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")


def _template(obj: dict[str, Any]) -> None:
    tpl = (obj.get("spec") or {}).get("template")
    if isinstance(tpl, dict):
        tpl.setdefault("metadata", {})
        if isinstance(tpl.get("spec"), dict):
            _pod_spec(tpl["spec"])


# What a fresh object's `status` serialises to: Go omits empty fields except those without omitempty.
_INITIAL_STATUS: dict[tuple[str, str], dict[str, Any]] = {
    ("apps/v1", "Deployment"): {}, ("batch/v1", "Job"): {}, ("batch/v1", "CronJob"): {},
    ("v1", "ResourceQuota"): {}, ("apps/v1", "ReplicaSet"): {"replicas": 0},
    ("apps/v1", "StatefulSet"): {"replicas": 0, "availableReplicas": 0},
    ("apps/v1", "DaemonSet"): {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                               "numberReady": 0},
    ("networking.k8s.io/v1", "Ingress"): {"loadBalancer": {}},
    ("policy/v1", "PodDisruptionBudget"): {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                                           "expectedPods": 0},
}


def apply_defaults(obj: dict[str, Any]) -> None:
    kind = obj.get("kind")
    spec = obj.get("spec")
    initial = _INITIAL_STATUS.get((str(obj.get("apiVersion")), str(kind)))
    if initial is not None:
        obj.setdefault("status", dict(initial))
    if kind == "Pod" and isinstance(spec, dict):
        _pod_spec(spec)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("tolerations", [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300}])
        obj.setdefault("status", {}).setdefault("phase", "Pending")
        obj["status"].setdefault("qosClass", "BestEffort")
    elif kind == "Deployment" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        spec.setdefault("strategy", {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        _template(obj)
    elif kind in ("ReplicaSet", "DaemonSet") and isinstance(spec, dict):
        if kind == "ReplicaSet":
            spec.setdefault("replicas", 1)
        _template(obj)
    elif kind == "StatefulSet" and isinstance(spec, dict):
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
        _template(obj)
    elif kind == "Job" and isinstance(spec, dict):
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        _template(obj)
    elif kind == "CronJob" and isinstance(spec, dict):
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        jt = spec.get("jobTemplate")
        if isinstance(jt, dict) and isinstance(jt.get("spec"), dict):
            _template(jt)
    elif kind == "Service" and isinstance(spec, dict):
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                if "port" in p:
                    p.setdefault("targetPort", p["port"])
        obj.setdefault("status", {}).setdefault("loadBalancer", {})
    elif kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            # The apiserver folds stringData into data (base64) and never stores stringData.
            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
    elif kind == "NetworkPolicy" and isinstance(spec, dict):
        spec["policyTypes"] = policy_types(spec)
        for rule in (spec.get("ingress") or []) + (spec.get("egress") or []):
            for p in (rule.get("ports") or []) if isinstance(rule, dict) else []:
                if isinstance(p, dict):
                    p.setdefault("protocol", "TCP")
    elif kind == "PersistentVolumeClaim" and isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")
        obj.setdefault("status", {}).setdefault("phase", "Pending")


def _cause(reason: str, field: str, message: str) -> Cause:
    return {"reason": reason, "message": message, "field": field}


def kind_causes(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    """A few apiserver validations beyond the schema that manifests commonly trip over."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    causes: list[Cause] = []
    if kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet") and isinstance(spec, dict):
        selector = spec.get("selector")
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if isinstance(selector, dict):
            if not selector.get("matchLabels") and not selector.get("matchExpressions"):
                causes.append(_cause("FieldValueInvalid", "spec.selector",
                                     "Invalid value: {}: empty selector is invalid for deployment"))
            elif not label_selector_matches(selector, labels):
                causes.append(_cause("FieldValueInvalid", "spec.template.metadata.labels",
                                     f"Invalid value: {labels}: `selector` does not match template `labels`"))
        if old is not None and kind != "ReplicaSet" and (old.get("spec") or {}).get("selector") != selector:
            causes.append(_cause("FieldValueInvalid", "spec.selector",
                                 f"Invalid value: {selector}: field is immutable"))
    if kind == "Job" and isinstance(spec, dict):
        policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if policy not in ("OnFailure", "Never"):
            causes.append(_cause("FieldValueRequired", "spec.template.spec.restartPolicy",
                                 'Required value: valid values: "OnFailure", "Never"'))
    if kind == "Service" and isinstance(spec, dict) and old is not None:
        old_ip = (old.get("spec") or {}).get("clusterIP")
        if spec.get("clusterIP") not in (None, "", old_ip):
            causes.append(_cause("FieldValueInvalid", "spec.clusterIPs[0]",
                                 f"Invalid value: []string{{\"{spec.get('clusterIP')}\"}}: may not change once set"))
    if kind == "NetworkPolicy" and isinstance(spec, dict):
        causes += policy_causes(spec)
    if kind in ("Pod", "Deployment", "StatefulSet", "ReplicaSet", "Job", "DaemonSet"):
        pod_spec = spec if kind == "Pod" else (spec.get("template") or {}).get("spec") or {}
        prefix = "spec" if kind == "Pod" else "spec.template.spec"
        names = [c.get("name") for c in pod_spec.get("containers") or [] if isinstance(c, dict)]
        for i, n in enumerate(names):
            if n is not None and names.index(n) != i:
                causes.append(_cause("FieldValueDuplicate", f"{prefix}.containers[{i}].name",
                                     f'Duplicate value: "{n}"'))
        if isinstance(pod_spec, dict) and "containers" in pod_spec and not pod_spec.get("containers"):
            causes.append(_cause("FieldValueRequired", f"{prefix}.containers", "Required value"))
    return causes
