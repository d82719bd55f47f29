"""The autoscaling/v1 Scale view of workloads and of custom resources with a scale subresource."""

from __future__ import annotations

from typing import Any

from kubesim.resources import ResourceType
from kubesim.selectors import selector_to_string


def get_dotted(obj: dict[str, Any], path: str) -> Any:
    node: Any = obj
    for p in path.strip(".").split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(p)
    return node


def set_dotted(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    node = obj
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def scale_of(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale view of an object."""
    paths = rt.scale_paths or {}
    meta = obj["metadata"]
    if paths:
        selector = get_dotted(obj, paths["labelSelectorPath"]) if paths.get("labelSelectorPath") else None
        status_replicas = get_dotted(obj, paths.get("statusReplicasPath", ".status.replicas")) or 0
    else:
        sel = (obj.get("spec") or {}).get("selector")
        selector = selector_to_string(sel) if isinstance(sel, dict) else None
        status_replicas = (obj.get("status") or {}).get("replicas", 0)
    status: dict[str, Any] = {"replicas": status_replicas}
    if selector:
        status["selector"] = selector
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": get_dotted(obj, paths.get("specReplicasPath", ".spec.replicas")) or 0},
            "status": status}
