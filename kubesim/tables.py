"""Server-side printing: the meta.k8s.io/v1 Table `kubectl get` asks for, with kube-apiserver's columns per kind.

Columns follow the apiserver's printers (`pkg/printers/internalversion`); priority 1 columns are the ones
`kubectl get -o wide` adds. Custom resources use their CRD's additionalPrinterColumns.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubesim.resources import ResourceType

Obj = dict[str, Any]
Column = tuple[str, str, int]  # (name, type, priority)
Printer = tuple[list[Column], Callable[[Obj], list[Any]]]

_DESCRIPTIONS = {"Name": "Name must be unique within a namespace. Is required when creating resources, although "
                         "some resources may allow a client to request the generation of an appropriate name "
                         "automatically. Name is primarily intended for creation idempotence and configuration "
                         "definition. Cannot be updated.",
                 "Age": "CreationTimestamp is a timestamp representing the server time when this object was created."}


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration, which `kubectl get` shows as AGE."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // 24 // 365, hours // 24 % 365
    if years < 8:
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{years}y"


def _since(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    then = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return human_duration((datetime.now(UTC) - then).total_seconds())


def _age(o: Obj) -> str:
    return _since(o["metadata"].get("creationTimestamp"))


def _st(o: Obj) -> dict[str, Any]:
    return o.get("status") or {}


def _sp(o: Obj) -> dict[str, Any]:
    return o.get("spec") or {}


def _none(v: Any) -> Any:
    return "<none>" if v in (None, "", []) else v


def _selector(sel: dict[str, Any] | None) -> str:
    if not sel:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op, vals = e.get("operator"), ",".join(e.get("values") or [])
        parts.append({"In": f"{e['key']} in ({vals})", "NotIn": f"{e['key']} notin ({vals})",
                      "Exists": e["key"], "DoesNotExist": f"!{e['key']}"}.get(op, e["key"]))
    return ",".join(parts) or "<none>"


def _map_selector(sel: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((sel or {}).items())) or "<none>"


def _template_spec(o: Obj) -> dict[str, Any]:
    return ((_sp(o).get("template") or {}).get("spec")) or {}


def _containers_images(spec: dict[str, Any]) -> list[str]:
    cs = spec.get("containers") or []
    return [",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)]


# --- per kind ------------------------------------------------------------------------------------


def _pod_row(o: Obj) -> list[Any]:
    st, spec = _st(o), _sp(o)
    statuses = st.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    reason = st.get("reason") or st.get("phase") or "Unknown"
    restarts = 0
    last_restart = None
    for cs in statuses:
        restarts += cs.get("restartCount", 0)
        finished = ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        if finished and (last_restart is None or finished > last_restart):
            last_restart = finished
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif (state.get("terminated") or {}).get("reason"):
            reason = state["terminated"]["reason"]
    if o["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    restart_cell = f"{restarts} ({_since(last_restart)} ago)" if restarts and last_restart else restarts
    gates = spec.get("readinessGates") or []
    return [o["metadata"]["name"], f"{ready}/{len(spec.get('containers') or [])}", reason, restart_cell, _age(o),
            _none(st.get("podIP")), _none(spec.get("nodeName")), _none(st.get("nominatedNodeName")),
            f"0/{len(gates)}" if gates else "<none>"]


def _deployment_row(o: Obj) -> list[Any]:
    st = _st(o)
    return [o["metadata"]["name"], f"{st.get('readyReplicas', 0)}/{_sp(o).get('replicas', 0)}",
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0), _age(o),
            *_containers_images(_template_spec(o)), _selector(_sp(o).get("selector"))]


def _replicaset_row(o: Obj) -> list[Any]:
    st = _st(o)
    return [o["metadata"]["name"], _sp(o).get("replicas", 0), st.get("replicas", 0), st.get("readyReplicas", 0),
            _age(o), *_containers_images(_template_spec(o)), _selector(_sp(o).get("selector"))]


def _statefulset_row(o: Obj) -> list[Any]:
    return [o["metadata"]["name"], f"{_st(o).get('readyReplicas', 0)}/{_sp(o).get('replicas', 0)}", _age(o),
            *_containers_images(_template_spec(o))]


def _daemonset_row(o: Obj) -> list[Any]:
    st = _st(o)
    return [o["metadata"]["name"], st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0),
            st.get("numberReady", 0), st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
            _map_selector(_template_spec(o).get("nodeSelector")), _age(o), *_containers_images(_template_spec(o)),
            _selector(_sp(o).get("selector"))]


def _job_status(o: Obj) -> str:
    conds = {c["type"]: c["status"] for c in _st(o).get("conditions") or []}
    for ctype, shown in (("Complete", "Complete"), ("Failed", "Failed"), ("FailureTarget", "FailureTarget"),
                         ("SuccessCriteriaMet", "SuccessCriteriaMet"), ("Suspended", "Suspended")):
        if conds.get(ctype) == "True":
            return shown
    return "Running"


def _job_row(o: Obj) -> list[Any]:
    st, spec = _st(o), _sp(o)
    completions = f"{st.get('succeeded', 0)}/{spec['completions']}" if spec.get("completions") is not None \
        else f"{st.get('succeeded', 0)}/1 of {spec.get('parallelism', 1)}"
    duration = ""
    if st.get("startTime"):
        start = datetime.strptime(st["startTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        end = datetime.strptime(st["completionTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) \
            if st.get("completionTime") else datetime.now(UTC)
        duration = human_duration((end - start).total_seconds())
    return [o["metadata"]["name"], _job_status(o), completions, duration, _age(o),
            *_containers_images(_template_spec(o)), _selector(spec.get("selector"))]


def _cronjob_row(o: Obj) -> list[Any]:
    spec, st = _sp(o), _st(o)
    tpl = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec") or {}
    return [o["metadata"]["name"], spec.get("schedule", ""), _none(spec.get("timeZone")),
            "True" if spec.get("suspend") else "False", len(st.get("active") or []),
            _since(st["lastScheduleTime"]) if st.get("lastScheduleTime") else "<none>", _age(o),
            *_containers_images(tpl), "<none>"]


def _service_row(o: Obj) -> list[Any]:
    spec = _sp(o)
    stype = spec.get("type", "ClusterIP")
    ingress = ((_st(o).get("loadBalancer") or {}).get("ingress")) or []
    external = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress) or \
        (",".join(spec.get("externalIPs") or []) or ("<pending>" if stype == "LoadBalancer" else "<none>"))
    if stype == "ExternalName":
        external = spec.get("externalName", "<none>")
    ports = ",".join(f"{p['port']}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
                     for p in spec.get("ports") or []) or "<none>"
    return [o["metadata"]["name"], stype, _none(spec.get("clusterIP")), external, ports, _age(o),
            _map_selector(spec.get("selector"))]


def _node_row(o: Obj) -> list[Any]:
    st = _st(o)
    ready = next((c for c in st.get("conditions") or [] if c.get("type") == "Ready"), None)
    status = "Ready" if ready and ready.get("status") == "True" else "NotReady"
    if _sp(o).get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in o["metadata"].get("labels") or {}
                   if k.startswith("node-role.kubernetes.io/"))
    addresses = {a["type"]: a["address"] for a in st.get("addresses") or []}
    info = st.get("nodeInfo") or {}
    return [o["metadata"]["name"], status, ",".join(roles) or "<none>", _age(o), info.get("kubeletVersion", ""),
            addresses.get("InternalIP", "<none>"), addresses.get("ExternalIP", "<none>"), info.get("osImage", ""),
            info.get("kernelVersion", ""), info.get("containerRuntimeVersion", "")]


def _ingress_row(o: Obj) -> list[Any]:
    spec = _sp(o)
    hosts = ",".join(r["host"] for r in spec.get("rules") or [] if r.get("host")) or "*"
    ingress = ((_st(o).get("loadBalancer") or {}).get("ingress")) or []
    address = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress)
    ports = "80, 443" if spec.get("tls") else "80"
    return [o["metadata"]["name"], _none(spec.get("ingressClassName")), hosts, address, ports, _age(o)]


def _event_row(o: Obj) -> list[Any]:
    inv = o.get("involvedObject") or {}
    src = o.get("source") or {}
    last = o.get("lastTimestamp") or o.get("eventTime") or o["metadata"].get("creationTimestamp")
    return [_since(last), o.get("type", ""), o.get("reason", ""),
            f"{inv.get('kind', '').lower()}/{inv.get('name', '')}", inv.get("fieldPath", ""),
            ", ".join(v for v in (src.get("component"), src.get("host")) if v), o.get("message", ""),
            _since(o.get("firstTimestamp") or last), o.get("count", 1), o["metadata"]["name"]]


def _binding_row(o: Obj) -> list[Any]:
    ref, subjects = o.get("roleRef") or {}, o.get("subjects") or []

    def names(kind: str) -> str:
        return ", ".join(f"{s['namespace']}/{s['name']}" if kind == "ServiceAccount" and s.get("namespace")
                         else s.get("name", "") for s in subjects if s.get("kind") == kind)
    return [o["metadata"]["name"], f"{ref.get('kind', '')}/{ref.get('name', '')}", _age(o), names("User"),
            names("Group"), names("ServiceAccount")]


def _pdb_row(o: Obj) -> list[Any]:
    spec = _sp(o)
    return [o["metadata"]["name"], str(spec.get("minAvailable", "N/A")), str(spec.get("maxUnavailable", "N/A")),
            _st(o).get("disruptionsAllowed", 0), _age(o)]


def _pvc_row(o: Obj) -> list[Any]:
    spec, st = _sp(o), _st(o)
    modes = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}
    bound = st.get("phase") == "Bound"
    return [o["metadata"]["name"], st.get("phase", "Pending"), spec.get("volumeName", ""),
            (st.get("capacity") or {}).get("storage", "") if bound else "",
            ",".join(modes.get(m, m) for m in st.get("accessModes") or []) if bound else "",
            spec.get("storageClassName", "<unset>"), _none(spec.get("volumeAttributesClassName")) if bound else
            "<unset>", _age(o), spec.get("volumeMode", "Filesystem")]


def _name_only(extra: Callable[[Obj], list[Any]]) -> Callable[[Obj], list[Any]]:
    return lambda o: [o["metadata"]["name"], *extra(o), _age(o)]


S, N = "string", "integer"
_WORKLOAD_WIDE: list[Column] = [("Containers", S, 1), ("Images", S, 1), ("Selector", S, 1)]
_BINDING: list[Column] = [("Name", S, 0), ("Role", S, 0), ("Age", S, 0), ("Users", S, 1), ("Groups", S, 1),
                          ("ServiceAccounts", S, 1)]
_CREATED: list[Column] = [("Name", S, 0), ("Created At", "date", 0)]

PRINTERS: dict[str, Printer] = {
    "Pod": ([("Name", S, 0), ("Ready", S, 0), ("Status", S, 0), ("Restarts", S, 0), ("Age", S, 0), ("IP", S, 1),
             ("Node", S, 1), ("Nominated Node", S, 1), ("Readiness Gates", S, 1)], _pod_row),
    "Deployment": ([("Name", S, 0), ("Ready", S, 0), ("Up-to-date", S, 0), ("Available", S, 0), ("Age", S, 0),
                    *_WORKLOAD_WIDE], _deployment_row),
    "ReplicaSet": ([("Name", S, 0), ("Desired", N, 0), ("Current", N, 0), ("Ready", N, 0), ("Age", S, 0),
                    *_WORKLOAD_WIDE], _replicaset_row),
    "StatefulSet": ([("Name", S, 0), ("Ready", S, 0), ("Age", S, 0), ("Containers", S, 1), ("Images", S, 1)],
                    _statefulset_row),
    "DaemonSet": ([("Name", S, 0), ("Desired", N, 0), ("Current", N, 0), ("Ready", N, 0), ("Up-to-date", N, 0),
                   ("Available", N, 0), ("Node Selector", S, 0), ("Age", S, 0), *_WORKLOAD_WIDE], _daemonset_row),
    "Job": ([("Name", S, 0), ("Status", S, 0), ("Completions", S, 0), ("Duration", S, 0), ("Age", S, 0),
             *_WORKLOAD_WIDE], _job_row),
    "CronJob": ([("Name", S, 0), ("Schedule", S, 0), ("Timezone", S, 0), ("Suspend", "boolean", 0), ("Active", N, 0),
                 ("Last Schedule", S, 0), ("Age", S, 0), *_WORKLOAD_WIDE], _cronjob_row),
    "Service": ([("Name", S, 0), ("Type", S, 0), ("Cluster-IP", S, 0), ("External-IP", S, 0), ("Port(s)", S, 0),
                 ("Age", S, 0), ("Selector", S, 1)], _service_row),
    "Namespace": ([("Name", S, 0), ("Status", S, 0), ("Age", S, 0)],
                  _name_only(lambda o: [_st(o).get("phase", "Active")])),
    "Node": ([("Name", S, 0), ("Status", S, 0), ("Roles", S, 0), ("Age", S, 0), ("Version", S, 0),
              ("Internal-IP", S, 1), ("External-IP", S, 1), ("OS-Image", S, 1), ("Kernel-Version", S, 1),
              ("Container-Runtime", S, 1)], _node_row),
    "ConfigMap": ([("Name", S, 0), ("Data", S, 0), ("Age", S, 0)],
                  _name_only(lambda o: [len(o.get("data") or {}) + len(o.get("binaryData") or {})])),
    "Secret": ([("Name", S, 0), ("Type", S, 0), ("Data", S, 0), ("Age", S, 0)],
               _name_only(lambda o: [o.get("type", "Opaque"), len(o.get("data") or {})])),
    "ServiceAccount": ([("Name", S, 0), ("Secrets", S, 0), ("Age", S, 0)],
                       _name_only(lambda o: [len(o.get("secrets") or [])])),
    "Ingress": ([("Name", S, 0), ("Class", S, 0), ("Hosts", S, 0), ("Address", S, 0), ("Ports", S, 0),
                 ("Age", S, 0)], _ingress_row),
    "Event": ([("Last Seen", S, 0), ("Type", S, 0), ("Reason", S, 0), ("Object", S, 0), ("Subobject", S, 1),
               ("Source", S, 1), ("Message", S, 0), ("First Seen", S, 1), ("Count", S, 1), ("Name", S, 1)],
              _event_row),
    "NetworkPolicy": ([("Name", S, 0), ("Pod-Selector", S, 0), ("Age", S, 0)],
                      _name_only(lambda o: [_selector(_sp(o).get("podSelector"))])),
    "RoleBinding": (_BINDING, _binding_row),
    "ClusterRoleBinding": (_BINDING, _binding_row),
    "Role": (_CREATED, lambda o: [o["metadata"]["name"], o["metadata"].get("creationTimestamp", "")]),
    "ClusterRole": (_CREATED, lambda o: [o["metadata"]["name"], o["metadata"].get("creationTimestamp", "")]),
    "LimitRange": (_CREATED, lambda o: [o["metadata"]["name"], o["metadata"].get("creationTimestamp", "")]),
    "PodDisruptionBudget": ([("Name", S, 0), ("Min Available", S, 0), ("Max Unavailable", S, 0),
                             ("Allowed Disruptions", N, 0), ("Age", S, 0)], _pdb_row),
    "IngressClass": ([("Name", S, 0), ("Controller", S, 0), ("Parameters", S, 0), ("Age", S, 0)],
                     _name_only(lambda o: [_sp(o).get("controller", ""), _none(_sp(o).get("parameters"))])),
    "PersistentVolumeClaim": ([("Name", S, 0), ("Status", S, 0), ("Volume", S, 0), ("Capacity", S, 0),
                               ("Access Modes", S, 0), ("StorageClass", S, 0), ("VolumeAttributesClass", S, 0),
                               ("Age", S, 0), ("VolumeMode", S, 1)], _pvc_row),
}


def _jsonpath(obj: Obj, path: str) -> Any:
    """The simple `.a.b[0].c` paths CRDs use in additionalPrinterColumns."""
    node: Any = obj
    for part in path.strip().lstrip(".").replace("[", ".").replace("]", "").split("."):
        if not part:
            continue
        if isinstance(node, list) and part.isdigit():
            node = node[int(part)] if int(part) < len(node) else None
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            node = None
        if node is None:
            return None
    return node


def _definition(name: str, ctype: str, priority: int, description: str | None = None, fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": ctype, "format": "name" if name == "Name" else fmt,
            "description": description or _DESCRIPTIONS.get(name, name), "priority": priority}


def _crd_printer(rt: ResourceType) -> tuple[list[dict[str, Any]], Callable[[Obj], list[Any]]]:
    specs = rt.printer_columns or [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    definitions = [_definition("Name", S, 0)] + [
        _definition(c["name"], c.get("type", "string"), c.get("priority", 0), c.get("description"),
                    c.get("format", "")) for c in specs]

    def row(o: Obj) -> list[Any]:
        cells: list[Any] = [o["metadata"]["name"]]
        for c in specs:
            value = _jsonpath(o, c.get("jsonPath", ""))
            if c.get("type") == "date" and isinstance(value, str):
                value = _since(value)
            elif isinstance(value, dict | list):
                value = json.dumps(value, separators=(",", ":"))
            cells.append(value)
        return cells
    return definitions, row


def table(rt: ResourceType, items: list[Obj], meta: dict[str, Any], include: str = "Metadata") -> dict[str, Any]:
    """The meta.k8s.io/v1 Table of `items`; `include` is the request's includeObject (None, Metadata, Object)."""
    if not rt.builtin:
        definitions, row = _crd_printer(rt)
    else:
        cols, row = PRINTERS.get(rt.kind) or ([("Name", S, 0), ("Age", S, 0)],
                                              lambda o: [o["metadata"]["name"], _age(o)])
        definitions = [_definition(*c) for c in cols]
    rows = []
    for o in items:
        r: dict[str, Any] = {"cells": row(o)}
        if include == "Object":
            r["object"] = {"apiVersion": rt.api_version, "kind": rt.kind, **o}
        elif include != "None":
            r["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}
        rows.append(r)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": definitions,
            "rows": rows}
