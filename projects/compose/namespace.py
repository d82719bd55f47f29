"""The tenant baseline rendered with every release (specs.md section 9).

Namespace with Pod Security labels; NetworkPolicies (default deny both ways, then allow: within
the namespace, in from Traefik, out to kube-dns, out to the shared PostgreSQL and Garage, and out to
the internet only when the project enables it); a view ServiceAccount/Role/RoleBinding for the
project's members, and a deployer ServiceAccount/Role/RoleBinding (also exec, attach, port-forward) that the
agent impersonates for members who may deploy (docs/kubectl.md); ResourceQuota and LimitRange from the plan.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from agent import protocol

from . import labels as L
from .context import RenderContext
from .k8s import metadata

# Never "internet": private, shared, link-local and loopback ranges (the node and metadata services).
PRIVATE_V4 = ("10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16")
PRIVATE_V6 = ("fc00::/7", "fe80::/10", "::1/128")
VIEWER = protocol.KUBE_VIEWER_ACCOUNT
DEPLOYER = protocol.KUBE_DEPLOYER_ACCOUNT


def _namespace(ctx: RenderContext) -> dict[str, Any]:
    meta = metadata(ctx, ctx.namespace, namespaced=False)
    meta["labels"].update({**L.POD_SECURITY_LABELS, L.TENANT: "true"})
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def _policy(ctx: RenderContext, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(ctx, name, component="network-policy"),
        "spec": {"podSelector": {}, **spec},
    }


def _peer(namespace: str, pod_labels: dict[str, str]) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        "podSelector": {"matchLabels": dict(pod_labels)},
    }


def _internet_blocks(ctx: RenderContext) -> list[dict[str, Any]]:
    blocks = []
    for everything, private in (("0.0.0.0/0", PRIVATE_V4), ("::/0", PRIVATE_V6)):
        version = ipaddress.ip_network(everything).version
        excluded = [ipaddress.ip_network(c) for c in private]
        for cidr in (*ctx.cluster_cidrs, *ctx.node_addresses):
            network = ipaddress.ip_network(cidr, strict=False)
            if network.version == version and not any(network.subnet_of(e) for e in excluded):  # type: ignore[arg-type]
                excluded.append(network)
        blocks.append({"ipBlock": {"cidr": everything, "except": sorted(str(e) for e in excluded)}})
    return blocks


def network_policies(ctx: RenderContext) -> list[dict[str, Any]]:
    tcp = "TCP"
    policies = [
        _policy(ctx, "default-deny", {"policyTypes": ["Ingress", "Egress"]}),
        _policy(
            ctx,
            "allow-same-namespace",
            {
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {}}]}],
                "egress": [{"to": [{"podSelector": {}}]}],
            },
        ),
        _policy(
            ctx,
            "allow-from-traefik",
            {
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [_peer(ctx.traefik_namespace, dict(ctx.traefik_pod_labels))]}],
            },
        ),
        _policy(
            ctx,
            "allow-dns",
            {
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [_peer(ctx.dns_namespace, {"k8s-app": "kube-dns"})],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": tcp, "port": 53}],
                    }
                ],
            },
        ),
        _policy(
            ctx,
            "allow-shared-data",
            {
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [_peer(ctx.postgres_namespace, dict(ctx.postgres_pod_labels))],
                        "ports": [{"protocol": tcp, "port": ctx.postgres_port}],
                    },
                    {
                        "to": [_peer(ctx.garage_namespace, dict(ctx.garage_pod_labels))],
                        "ports": [{"protocol": tcp, "port": port} for port in ctx.garage_ports],
                    },
                ],
            },
        ),
    ]
    if ctx.allow_internet_egress:
        policies.append(
            _policy(ctx, "allow-internet", {"policyTypes": ["Egress"], "egress": [{"to": _internet_blocks(ctx)}]})
        )
    return policies


def viewer_rules() -> list[dict[str, Any]]:
    """What project members may read in their namespace. The agent creates this Role, so its ClusterRole must
    hold every one of these permissions (kube-apiserver refuses a Role granting more than its writer holds)."""
    read = ["get", "list", "watch"]
    return [
        {
            "apiGroups": [""],
            "resources": [
                "pods", "services", "endpoints", "events", "configmaps",
                "persistentvolumeclaims", "resourcequotas", "limitranges",
            ],
            "verbs": read,
        },
        # Logs are only ever read (`get`, also when following); list/watch on pods/log mean nothing.
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["deployments", "replicasets", "statefulsets"], "verbs": read},
        {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": read},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"], "verbs": read},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": read},
    ]


def deployer_rules() -> list[dict[str, Any]]:
    """The viewer's reads plus streams into pods; no writes, so kubectl cannot fight the desired state."""
    return [*viewer_rules(), *(dict(rule) for rule in protocol.DEPLOYER_STREAM_RULES)]


def _access(ctx: RenderContext, name: str, rules: list[dict[str, Any]],
            users: list[dict[str, Any]]) -> list[dict[str, Any]]:
    subjects = [{"kind": "ServiceAccount", "name": name, "namespace": ctx.namespace}, *users]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(ctx, name, component="access"),
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata(ctx, name, component="access"),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata(ctx, name, component="access"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": subjects,
        },
    ]


def _rbac(ctx: RenderContext) -> list[dict[str, Any]]:
    users: list[dict[str, Any]] = [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": member} for member in sorted(set(ctx.members))
    ]
    return [*_access(ctx, VIEWER, viewer_rules(), users), *_access(ctx, DEPLOYER, deployer_rules(), [])]


def _quota(ctx: RenderContext) -> list[dict[str, Any]]:
    plan = ctx.plan
    hard = {
        "requests.cpu": plan.quota_cpu,
        "limits.cpu": plan.quota_cpu,
        "requests.memory": plan.quota_memory,
        "limits.memory": plan.quota_memory,
        "pods": str(plan.quota_pods),
        "persistentvolumeclaims": str(plan.quota_volumes),
        "requests.storage": plan.quota_storage,
        "services.loadbalancers": "0",
        "services.nodeports": "0",
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": metadata(ctx, "tenant-quota", component="quota"),
            "spec": {"hard": hard},
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": metadata(ctx, "tenant-defaults", component="quota"),
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": plan.default_cpu_limit, "memory": plan.default_memory_limit},
                        "defaultRequest": {"cpu": plan.default_cpu_request, "memory": plan.default_memory_request},
                        "max": {"cpu": plan.max_container_cpu, "memory": plan.max_container_memory},
                    },
                    {"type": "PersistentVolumeClaim", "max": {"storage": plan.quota_storage}},
                ]
            },
        },
    ]


def tenant_objects(ctx: RenderContext) -> list[dict[str, Any]]:
    """Namespace first, then access, quota and network policy, in a fixed order."""
    return [_namespace(ctx), *_rbac(ctx), *_quota(ctx), *network_policies(ctx)]
