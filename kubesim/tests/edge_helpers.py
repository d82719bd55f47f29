"""Objects and requests shared by the edge and Sablier tests: real HTTP to the edge, the official client for objects."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from kubesim.testing import KubeSim

NS = "default"
MIDDLEWARE = ("traefik.io", "v1alpha1", "middlewares")


def deploy(api: client.ApiClient, name: str, *, replicas: int = 1, image: str = "nginx:1.27", port: int = 8080,
           group: str | None = None, revision: str = "3", target_port: int | None = None) -> None:
    """A Deployment (Sablier-enabled when `group` is set) and its Service."""
    labels = {"app": name}
    # The revision labels the Deployment only, as the product does (a release must not restart every pod).
    meta_labels = {**labels, "paas.dev/revision": revision}
    if group:
        meta_labels.update({"sablier.enable": "true", "sablier.group": group})
    client.AppsV1Api(api).create_namespaced_deployment(NS, {
        "metadata": {"name": name, "labels": meta_labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": port}]}]}}}})
    client.CoreV1Api(api).create_namespaced_service(NS, {
        "metadata": {"name": name},
        "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": target_port or port}]}})


def ingress(api: client.ApiClient, name: str, host: str, paths: list[tuple[str, str, str]], *,
            middlewares: str = "", ingress_class: str | None = "traefik") -> None:
    """paths: (path, pathType, service)."""
    annotations = {"traefik.ingress.kubernetes.io/router.middlewares": middlewares} if middlewares else {}
    spec: dict[str, Any] = {"rules": [{"host": host, "http": {"paths": [
        {"path": p, "pathType": t, "backend": {"service": {"name": s, "port": {"number": 80}}}}
        for p, t, s in paths]}}]}
    if ingress_class:
        spec["ingressClassName"] = ingress_class
    client.NetworkingV1Api(api).create_namespaced_ingress(NS, {
        "metadata": {"name": name, "annotations": annotations}, "spec": spec})


def sablier_middleware(api: client.ApiClient, name: str, group: str, *, strategy: str = "dynamic",
                       session: str = "1m", **options: Any) -> str:
    """A Middleware with the Sablier plugin config, as the product generates it; returns its annotation reference."""
    config = {"sablierUrl": "http://sablier.sablier-system.svc.cluster.local:10000", "group": group,
              "sessionDuration": session, strategy: options or ({"timeout": "10s"} if strategy == "blocking" else {
                  "displayName": "My app", "refreshFrequency": "1s"})}
    client.CustomObjectsApi(api).create_namespaced_custom_object(*MIDDLEWARE[:2], NS, MIDDLEWARE[2], {
        "apiVersion": "traefik.io/v1alpha1", "kind": "Middleware", "metadata": {"name": name},
        "spec": {"plugin": {"sablier": config}}})
    return f"{NS}-{name}@kubernetescrd"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str


def fetch(url: str, host: str | None = None, timeout: float = 30) -> Reply:
    """GET over real HTTP; error statuses are replies too."""
    req = urllib.request.Request(url, headers={"Host": host} if host else {})  # noqa: S310 - http to localhost
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - a local test server
            return Reply(resp.status, dict(resp.headers), resp.read().decode())
    except urllib.error.HTTPError as err:
        return Reply(err.code, dict(err.headers), err.read().decode())


def get(sim: KubeSim, host: str, path: str = "/") -> Reply:
    """A request to the edge for `host` (the Host header, as a browser resolving *.localhost sends it)."""
    return fetch(sim.edge_url + path, host)


def ready(sim: KubeSim, name: str) -> bool:
    d = sim.get("Deployment", NS, name) or {}
    want = d.get("spec", {}).get("replicas")
    return bool(want) and d.get("status", {}).get("readyReplicas") == want
