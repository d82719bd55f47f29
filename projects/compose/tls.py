"""Routing a release's public services on their verified custom domains, and TLS when the cluster has it.

Given the rendered objects, each public service's Ingress (one rule, its platform host) gets one more rule per
verified custom domain, with the same backend. With an issuer (the cluster's TLS is ready, docs/domains.md):

* a cert-manager Certificate per service for all its hosts, issued by the ACME ClusterIssuer (HTTP-01 through
  Traefik), into the Secret the Ingress's `tls` names;
* the Ingress moves to Traefik's `websecure` entrypoint with TLS; it keeps its middlewares (Sablier's, so a
  sleeping service still wakes on an HTTPS request);
* a second Ingress with the same hosts on the `web` entrypoint, through a `redirectScheme` Middleware: HTTP ->
  HTTPS. cert-manager's HTTP-01 solver Ingress (a longer, more specific rule) still wins for its challenge path.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from agent import protocol

from . import labels as L
from .sleep import MIDDLEWARE_API, MIDDLEWARES, middleware_ref

ENTRYPOINTS = "traefik.ingress.kubernetes.io/router.entrypoints"
ROUTER_TLS = "traefik.ingress.kubernetes.io/router.tls"
# No dash in the names (as sleep.py's): `<namespace>-<name>` references stay unambiguous.
REDIRECT_MIDDLEWARE = "tohttps"


def _digest(service: str) -> str:
    return hashlib.sha256(service.encode()).hexdigest()[:16]


def tls_secret(service: str) -> str:
    """The Secret holding a service's certificate (hashed: no compose name can collide with it)."""
    return "tls" + _digest(service)


def redirect_ingress_name(service: str) -> str:
    return "tohttps" + _digest(service)


def secure_routes(objects: Sequence[dict[str, Any]], custom_hosts: Mapping[str, Sequence[str]],
                  issuer: str | None) -> list[dict[str, Any]]:
    """The objects with custom hosts routed and, with `issuer`, TLS and the HTTP -> HTTPS redirect. Pure."""
    out: list[dict[str, Any]] = []
    redirect_added = False
    for original in objects:
        if original.get("kind") != "Ingress":
            out.append(original)
            continue
        ingress = copy.deepcopy(original)
        meta = ingress["metadata"]
        service = (meta.get("labels") or {}).get(L.SERVICE, meta["name"])
        rules = ingress["spec"]["rules"]
        for host in custom_hosts.get(service, ()):
            rules.append({**copy.deepcopy(rules[0]), "host": host})
        if not issuer:
            out.append(ingress)
            continue
        hosts = [rule["host"] for rule in rules]
        namespace = meta["namespace"]
        route_labels = dict(meta.get("labels") or {})
        if not redirect_added:
            out.append({"apiVersion": MIDDLEWARE_API, "kind": "Middleware",
                        "metadata": {"name": REDIRECT_MIDDLEWARE, "namespace": namespace,
                                     "labels": {k: v for k, v in route_labels.items() if k != L.SERVICE}
                                     | {L.COMPONENT: "tls"}},
                        "spec": {"redirectScheme": {"scheme": "https", "permanent": True}}})
            redirect_added = True
        out.append({"apiVersion": protocol.CERTIFICATE_API, "kind": "Certificate",
                    "metadata": {"name": meta["name"], "namespace": namespace,
                                 "labels": route_labels | {L.COMPONENT: "tls"}},
                    "spec": {"secretName": tls_secret(service), "dnsNames": hosts,
                             "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": issuer}}})
        plain = copy.deepcopy(ingress)
        annotations = meta.setdefault("annotations", {})
        annotations.update({ENTRYPOINTS: "websecure", ROUTER_TLS: "true"})
        ingress["spec"]["tls"] = [{"hosts": hosts, "secretName": tls_secret(service)}]
        out.append(ingress)
        plain["metadata"]["name"] = redirect_ingress_name(service)
        plain["metadata"]["annotations"] = {ENTRYPOINTS: "web",
                                            MIDDLEWARES: middleware_ref(namespace, REDIRECT_MIDDLEWARE)}
        out.append(plain)
    return out


def certificate_hosts(objects: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """service -> the host names its Certificate covers (empty when the release has no TLS)."""
    return {(o["metadata"].get("labels") or {}).get(L.SERVICE, o["metadata"]["name"]): list(o["spec"]["dnsNames"])
            for o in objects if o.get("kind") == "Certificate"}
