"""Small builders shared by kubesim's tests."""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException


def deployment(name: str = "web", replicas: int | None = 2, image: str = "nginx:1.27",
               labels: dict[str, str] | None = None) -> dict[str, Any]:
    labels = labels or {"app": name}
    spec: dict[str, Any] = {"selector": {"matchLabels": labels},
                            "template": {"metadata": {"labels": labels},
                                         "spec": {"containers": [{"name": name, "image": image}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def pod(name: str = "p", image: str = "busybox:1.36", containers: list[str] | None = None,
        labels: dict[str, str] | None = None) -> dict[str, Any]:
    names = containers or ["main"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [{"name": n, "image": image} for n in names]}}


def configmap(name: str, labels: dict[str, str] | None = None, data: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}},
            "data": data or {}}


def status_body(exc: ApiException) -> dict[str, Any]:
    return json.loads(exc.body)


def raw(api: ApiClient, method: str, path: str, body: Any = None, query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json") -> tuple[int, Any, dict[str, str]]:
    """A request through the official ApiClient that skips the typed models' client-side checks.

    The 37.x client validates bodies with pydantic, so invalid objects (the point of validation
    tests) must go through the untyped call path, as the dynamic client's do.
    """
    resp = api.call_api(*api.param_serialize(method, path, body=body, query_params=query or [],
                                             header_params={"Content-Type": content_type,
                                                            "Accept": "application/json"},
                                             auth_settings=["BearerToken"]))
    resp.read()
    try:
        data = json.loads(resp.data) if resp.data else None
    except ValueError:
        data = resp.data.decode()
    return resp.status, data, dict(resp.getheaders())
