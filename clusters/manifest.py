"""The install manifest `kubectl apply -f <control plane>/clusters/<id>/agent.yaml?secret=...` fetches.

Built as Python dicts (so tests can validate each object against the Kubernetes schemas) and
rendered as multi-document YAML with the RBAC rules commented one by one.
"""

from __future__ import annotations

from typing import Any

import yaml
from django.conf import settings

from agent.infra import RBAC_RULES as INFRA_RBAC_RULES
from agent.k8s import PROJECT_KINDS
from clusters.models import Cluster

NAMESPACE = "paas-system"
NAME = "paas-agent"
HEALTH_PORT = 8080
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "paas"}
ALL_VERBS_TO_RECONCILE = ["get", "list", "watch", "create", "patch", "delete"]


def _group(api_version: str) -> str:
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def rbac_rules() -> list[tuple[str, dict[str, Any]]]:
    """(why, rule) pairs: only what the agent does today. Later features add their own rules."""
    by_group: dict[str, list[str]] = {}
    for kind in PROJECT_KINDS:
        by_group.setdefault(_group(kind.api_version), []).append(kind.plural)
    rules: list[tuple[str, dict[str, Any]]] = [
        ("Project namespaces: created on first apply (server-side apply = patch, create when missing), "
         "deleted by delete_project, watched for observed state.",
         {"apiGroups": [""], "resources": ["namespaces"], "verbs": ALL_VERBS_TO_RECONCILE}),
        ("Node names, roles, ingress-ready labels and capacity for the handshake.",
         {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}),
        ("Pods and Events are read for observed state (waiting reasons, restarts, warnings).",
         {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["get", "list", "watch"]}),
        ("Container logs: the pod_logs op (a failing pod's last lines) and the logs stream (live logs).",
         {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}),
    ]
    for group, plurals in by_group.items():
        rules.append((
            f"Project objects in API group {group or 'core'!r}: server-side apply (get/create/patch), "
            "pruning (list/delete) and, for Deployments, observed rollout state (watch).",
            {"apiGroups": [group], "resources": sorted(plurals), "verbs": ALL_VERBS_TO_RECONCILE},
        ))
    return rules + INFRA_RBAC_RULES


def objects(cluster: Cluster, token: str, server_url: str, image: str | None = None) -> list[dict[str, Any]]:
    image = image or settings.AGENT_IMAGE
    meta = {"namespace": NAMESPACE, "labels": LABELS}
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": NAMESPACE, "labels": {**LABELS, "pod-security.kubernetes.io/enforce": "restricted"}}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, **meta}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": NAME, "labels": LABELS}, "rules": [rule for _, rule in rbac_rules()]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": NAME, "labels": LABELS},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
         "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": f"{NAME}-token", **meta},
         "stringData": {"token": token}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME, **meta},
         "spec": {
             "replicas": 1,
             # Recreate: never two agents for one cluster (the newer would replace the older anyway).
             "strategy": {"type": "Recreate"},
             "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
             "template": {
                 "metadata": {"labels": LABELS},
                 "spec": {
                     "serviceAccountName": NAME,
                     "terminationGracePeriodSeconds": 30,
                     "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                         "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{
                         "name": "agent",
                         "image": image,
                         "imagePullPolicy": "IfNotPresent",
                         "env": [
                             {"name": "AGENT_SERVER", "value": server_url},
                             {"name": "AGENT_TOKEN_FILE", "value": "/var/run/paas/token"},
                             {"name": "AGENT_HEALTH_PORT", "value": str(HEALTH_PORT)},
                            # Install and keep the shared infrastructure on every connect (agent/bootstrap.py).
                            {"name": "AGENT_BOOTSTRAP", "value": "true"},
                         ],
                         "ports": [{"name": "health", "containerPort": HEALTH_PORT}],
                         "livenessProbe": {"httpGet": {"path": "/healthz", "port": "health"},
                                           "periodSeconds": 20, "failureThreshold": 3},
                         "readinessProbe": {"httpGet": {"path": "/readyz", "port": "health"},
                                            "periodSeconds": 10},
                         "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                       "limits": {"memory": "256Mi"}},
                         "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                             "capabilities": {"drop": ["ALL"]}},
                         "volumeMounts": [{"name": "token", "mountPath": "/var/run/paas", "readOnly": True}],
                     }],
                     "volumes": [{"name": "token", "secret": {"secretName": f"{NAME}-token",
                                                              "defaultMode": 0o400}}],
                 },
             },
         }},
    ]


def render(cluster: Cluster, token: str, server_url: str, image: str | None = None) -> str:
    docs = []
    header = (f"# PaaS agent for cluster {cluster.name!r} ({cluster.slug}).\n"
              "# Contains the agent's token: do not commit or share this file.\n")
    for obj in objects(cluster, token, server_url, image):
        if obj["kind"] == "ClusterRole":
            # Dump the rules one by one so each carries its reason.
            head = yaml.safe_dump({k: v for k, v in obj.items() if k != "rules"}, sort_keys=False)
            body = "rules:\n"
            for why, rule in rbac_rules():
                dumped = yaml.safe_dump([rule], sort_keys=False, default_flow_style=None).rstrip("\n")
                body += f"# {why}\n{dumped}\n"
            docs.append(head + body)
        else:
            docs.append(yaml.safe_dump(obj, sort_keys=False))
    return header + "---\n" + "---\n".join(docs)


def agent_server_url(site_url: str) -> str:
    """The agent's WebSocket endpoint for a control plane at site_url."""
    scheme, rest = site_url.rstrip("/").split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/agent/ws"
