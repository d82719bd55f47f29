"""The install manifest `kubectl apply -f <control plane>/clusters/<id>/agent.yaml?secret=...` fetches.

Built as Python dicts (so tests can validate each object against the Kubernetes schemas) and
rendered as multi-document YAML with the RBAC rules (agent.protocol.RBAC_RULES) commented one by one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings

from agent import protocol
from agent.k8s import Kind, Kube
from clusters.models import Cluster

NAMESPACE = protocol.AGENT_NAMESPACE
NAME = "paas-agent"
HEALTH_PORT = 8080
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "paas"}


def objects(cluster: Cluster | None, token: str, server_url: str, image: str | None = None) -> list[dict[str, Any]]:
    image = image or settings.AGENT_IMAGE
    meta = {"namespace": NAMESPACE, "labels": LABELS}
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": NAMESPACE, "labels": {**LABELS, "pod-security.kubernetes.io/enforce": "restricted"}}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, **meta}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": NAME, "labels": LABELS}, "rules": [rule for _, rule in protocol.RBAC_RULES]},
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
            for why, rule in protocol.RBAC_RULES:
                dumped = yaml.safe_dump([rule], sort_keys=False, default_flow_style=None).rstrip("\n")
                body += f"# {why}\n{dumped}\n"
            docs.append(head + body)
        else:
            docs.append(yaml.safe_dump(obj, sort_keys=False))
    return header + "---\n" + "---\n".join(docs)


INSTALL_KINDS = {
    "Namespace": Kind("v1", "Namespace", "namespaces", namespaced=False),
    "ServiceAccount": Kind("v1", "ServiceAccount", "serviceaccounts"),
    "ClusterRole": Kind("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", namespaced=False),
    "ClusterRoleBinding": Kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings",
                               namespaced=False),
    "Secret": Kind("v1", "Secret", "secrets"),
    "Deployment": Kind("apps/v1", "Deployment", "deployments"),
}


def install(kube: Kube, docs: list[dict[str, Any]], *, skip: tuple[str, ...] = ()) -> None:
    """Apply the install manifest's objects in order, as `kubectl apply -f agent.yaml` does (kinds in `skip`
    left out: a local agent process stands in for the Deployment's pod)."""
    for doc in docs:
        if doc["kind"] not in skip:
            kube.apply(INSTALL_KINDS[doc["kind"]], doc, doc["metadata"].get("namespace"))


def service_account_token(kube: Kube, expiration_seconds: int = 3600) -> str:
    """A TokenRequest for the agent's ServiceAccount: the identity its pod runs with, for an agent run outside."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": expiration_seconds}}
    response = kube.request("POST", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{NAME}/token", body=body)
    return str(response["status"]["token"])


def install_for_local_agent(admin_kubeconfig: Path, out: Path, *, token: str = "", server_url: str = "",
                            expiration_seconds: int = 3600) -> Path:
    """Install the agent with an admin kubeconfig, minus its Deployment (an agent process runs outside the
    cluster instead), and write a kubeconfig for its ServiceAccount to `out` (mode 0600): such an agent then
    has exactly the permissions it has on a cluster."""
    admin = Kube(str(admin_kubeconfig))
    try:
        install(admin, objects(None, token, server_url), skip=("Deployment",))
        sa_token = service_account_token(admin, expiration_seconds)
    finally:
        admin.close()
    config = yaml.safe_load(admin_kubeconfig.read_text())
    for user in config.get("users") or []:
        user["user"] = {"token": sa_token}
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(yaml.safe_dump(config, sort_keys=False))
    os.chmod(out, 0o600)  # also when the file existed with looser permissions
    return out


def agent_server_url(site_url: str) -> str:
    """The agent's WebSocket endpoint for a control plane at site_url."""
    scheme, rest = site_url.rstrip("/").split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/agent/ws"
