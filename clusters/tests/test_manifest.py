"""The install manifest validates against the Kubernetes schemas and applies cleanly to kubesim."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agent import protocol as p
from agent.k8s import PROJECT_KINDS, Kube, KubeError
from clusters import manifest
from clusters.manifest import INSTALL_KINDS
from kubesim import podsecurity
from kubesim.rbac import uncovered
from kubesim.schema import validate_object
from paas.testing.agent_account import agent_kubeconfig
from projects.compose.namespace import deployer_rules, viewer_rules

DOCS = Path(__file__).resolve().parents[2] / "docs" / "agent.md"
ROLE, ROLE_BINDING = (next(k for k in PROJECT_KINDS if k.kind == kind) for kind in ("Role", "RoleBinding"))


def rendered(cluster) -> list[dict]:
    return list(yaml.safe_load_all(manifest.render(cluster, "1.token", "wss://paas.example.com/agent/ws")))


def test_it_validates_against_the_kubernetes_schemas(cluster):
    docs = rendered(cluster)
    assert [d["kind"] for d in docs] == list(INSTALL_KINDS)
    for doc in docs:
        assert validate_object(doc) == [], doc["kind"]


def test_it_comments_every_rbac_rule(cluster):
    text = manifest.render(cluster, "1.token", "wss://paas.example.com/agent/ws")
    role = next(d for d in text.split("---\n") if "kind: ClusterRole\n" in d)
    rules = [line for line in role.splitlines() if line.startswith("- apiGroups")]
    comments = [line for line in role.splitlines() if line.startswith("# ")]
    assert len(rules) == len(comments) == len(p.RBAC_RULES)
    assert "escalate" not in role and "'*'" not in role and '"*"' not in role


def test_it_runs_the_agent_safely(cluster):
    deployment = next(d for d in rendered(cluster) if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] > 0
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]
    assert {"name": "AGENT_SERVER", "value": "wss://paas.example.com/agent/ws"} in container["env"]


def test_it_applies_cleanly_to_kubesim(cluster, kubesim, tmp_path):
    kube = Kube(str(kubesim.write_kubeconfig(tmp_path / "kubeconfig")))
    manifest.install(kube, rendered(cluster))
    kubesim.wait_for(lambda: (kubesim.get("Deployment", "paas-system", "paas-agent") or {}).get("status", {})
                     .get("readyReplicas") == 1)
    assert kubesim.get("Secret", "paas-system", "paas-agent-token") is not None
    kube.close()


def test_the_agent_url_follows_the_site_scheme():
    assert manifest.agent_server_url("https://paas.example.com") == "wss://paas.example.com/agent/ws"
    assert manifest.agent_server_url("http://127.0.0.1:8000/") == "ws://127.0.0.1:8000/agent/ws"


def test_the_agent_pod_passes_its_namespaces_restricted_pod_security(cluster):
    """The agent's pod template meets `restricted`, the enforce level its own namespace carries."""
    docs = rendered(cluster)
    namespace = next(d for d in docs if d["kind"] == "Namespace")
    policy = podsecurity.policy_of(namespace["metadata"]["labels"])
    assert policy.enforce.level == "restricted" and policy.warn.level == "restricted"
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert podsecurity.admit(namespace["metadata"]["labels"], deployment, None) == podsecurity.Decision()
    template = deployment["spec"]["template"]
    assert podsecurity.evaluate(policy.enforce, template["metadata"], template["spec"]) == []


def test_the_agent_holds_every_permission_of_the_roles_it_creates():
    """kube-apiserver refuses a Role (and a binding to it) granting more than its writer holds: the agent has no
    escalate/bind, so its ClusterRole must cover the project-viewer and project-deployer Roles of every release.
    It may impersonate those two ServiceAccounts by name, and nobody else."""
    held = [rule for _, rule in p.RBAC_RULES]
    assert uncovered(held, viewer_rules()) == []
    assert uncovered(held, deployer_rules()) == []
    assert not any(verb in rule["verbs"] for rule in held for verb in ("escalate", "bind", "*"))
    impersonating = [rule for rule in held if "impersonate" in rule["verbs"]]
    assert impersonating == [{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"],
                              "resourceNames": ["project-deployer", "project-viewer"]}]


def test_the_docs_table_lists_exactly_the_agents_rules():
    section = DOCS.read_text().split("## Permissions", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| API group")]
    expected = []
    for why, rule in p.RBAC_RULES:
        groups = ", ".join(f"`{g}`" if g else "core" for g in rule["apiGroups"])
        expected.append(f"| {groups} | {', '.join(rule['resources'])} | {', '.join(rule['verbs'])} | {why} |")
    assert rows == expected


def test_the_agent_can_write_a_releases_viewer_role_as_its_service_account(cluster, kubesim, tmp_path):
    """Through kubesim's RBAC and escalation checks, with the token of the ServiceAccount the manifest creates."""
    kube = Kube(str(agent_kubeconfig(kubesim, tmp_path / "kubeconfig")))
    try:
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "acme-shop"}}
        kube.apply(INSTALL_KINDS["Namespace"], ns)
        role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "project-viewer", "namespace": "acme-shop"}, "rules": viewer_rules()}
        kube.apply(ROLE, role, "acme-shop")
        kube.apply(ROLE_BINDING, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                                  "metadata": {"name": "project-viewer", "namespace": "acme-shop"},
                                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                              "name": "project-viewer"},
                                  "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                                "name": "alice"}]}, "acme-shop")
        kube.apply(ROLE, {**role, "metadata": {"name": "project-deployer", "namespace": "acme-shop"},
                          "rules": deployer_rules()}, "acme-shop")
        role["rules"] = [*viewer_rules(), {"apiGroups": [""], "resources": ["pods/ephemeralcontainers"],
                                           "verbs": ["patch"]}]
        with pytest.raises(KubeError) as exc:
            kube.apply(ROLE, role, "acme-shop")
        assert exc.value.status == 403 and "attempting to grant RBAC permissions not currently held" in str(exc.value)
    finally:
        kube.close()
