"""Scale to zero with Sablier (specs.md section 3, docs/scale-to-zero.md).

A sleeping-enabled service gets: the Deployment labels Sablier finds it by, no `spec.replicas` (Sablier owns
the field, so a redeploy neither wakes nor sleeps it), a Traefik Middleware with the Sablier plugin, and its
Ingress annotated with that Middleware. Suspension rewrites a release's objects so nothing can wake them.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from agent import protocol

from . import labels as L
from .context import RenderContext, SleepSettings, hashed_label
from .k8s import metadata

ENABLE = protocol.SLEEP_ENABLE_LABEL
GROUP = protocol.SLEEP_GROUP_LABEL
MIDDLEWARES = "traefik.ingress.kubernetes.io/router.middlewares"
MIDDLEWARE_API = "traefik.io/v1alpha1"
# Names without a dash: Traefik's `<namespace>-<name>` reference then splits at the last dash only, so no
# other namespace can produce the same reference (specs.md section 2, pitfalls).
SUSPENDED_MIDDLEWARE = "suspended"


def middleware_name(service: str) -> str:
    return "sleep" + hashlib.sha256(service.encode()).hexdigest()[:16]


def middleware_ref(namespace: str, name: str) -> str:
    return f"{namespace}-{name}@kubernetescrd"


def group(namespace: str, service: str) -> str:
    """Sablier's group of one service: unique on the cluster, a valid label value."""
    return hashed_label(f"{namespace}-{service}", namespace, service)


def duration(seconds: int) -> str:
    """A Go duration string (what the plugin's sessionDuration and timeout take)."""
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def settings_for(ctx: RenderContext, service: str) -> SleepSettings:
    return ctx.sleep.get(service) or SleepSettings()


def make_sleepy(ctx: RenderContext, service: str, deployment: dict[str, Any],
                ingress: dict[str, Any]) -> dict[str, Any]:
    """Label the Deployment for Sablier, hand it its replicas, route the Ingress through the returned Middleware."""
    chosen = settings_for(ctx, service)
    name = group(ctx.namespace, service)
    deployment["metadata"]["labels"].update({ENABLE: "true", GROUP: name})
    deployment["spec"].pop("replicas", None)
    strategy: dict[str, Any] = (
        {"blocking": {"timeout": duration(chosen.blocking_timeout)}} if chosen.strategy == "blocking"
        else {"dynamic": {"displayName": service, "showDetails": True, "refreshFrequency": "2s"}})
    middleware = {
        "apiVersion": MIDDLEWARE_API,
        "kind": "Middleware",
        "metadata": metadata(ctx, middleware_name(service), service=service, component="scale-to-zero"),
        "spec": {"plugin": {"sablier": {"sablierUrl": ctx.sablier_url, "group": name,
                                        "sessionDuration": duration(chosen.idle_timeout), **strategy}}},
    }
    ingress["metadata"].setdefault("annotations", {})[MIDDLEWARES] = middleware_ref(
        ctx.namespace, middleware["metadata"]["name"])
    return middleware


def sleeps(obj: dict[str, Any]) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(ENABLE) == "true"


def suspended(objects: list[dict[str, Any]], page_url: str) -> list[dict[str, Any]]:
    """A release's objects for a suspended project: every Deployment at 0 and out of Sablier's reach, and
    every public route redirected to the control plane's "suspended" page instead of waking anything."""
    out = []
    namespace, route_labels = "", {}
    for original in objects:
        obj = copy.deepcopy(original)
        kind, meta = obj.get("kind"), obj.setdefault("metadata", {})
        if kind == "Middleware" and sleeps_middleware(obj):
            continue
        if kind == "Deployment":
            for key in (ENABLE, GROUP):
                (meta.get("labels") or {}).pop(key, None)
            obj["spec"]["replicas"] = 0
        if kind == "Ingress":
            namespace = meta.get("namespace", "")
            route_labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != L.SERVICE}
            meta.setdefault("annotations", {})[MIDDLEWARES] = middleware_ref(namespace, SUSPENDED_MIDDLEWARE)
        out.append(obj)
    if namespace:
        out.append({
            "apiVersion": MIDDLEWARE_API, "kind": "Middleware",
            "metadata": {"name": SUSPENDED_MIDDLEWARE, "namespace": namespace,
                         "labels": {**route_labels, L.COMPONENT: "suspension"}},
            "spec": {"redirectRegex": {"regex": "^.*$", "replacement": page_url}},
        })
    return out


def resumed(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A release's objects after a suspension: as released, except that sleeping-enabled Deployments stay at
    zero (asleep until a request) instead of starting with no session to put them back to sleep. Sablier's
    first scale takes the field over, so later releases, which omit it, leave it to Sablier."""
    out = copy.deepcopy(objects)
    for obj in out:
        if obj.get("kind") == "Deployment" and sleeps(obj):
            obj["spec"]["replicas"] = 0
    return out


def sleeps_middleware(obj: dict[str, Any]) -> bool:
    return "sablier" in ((obj.get("spec") or {}).get("plugin") or {})
