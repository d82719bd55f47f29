"""The install manifest validates against the Kubernetes schemas and applies cleanly to kubesim."""

from __future__ import annotations

import yaml

from agent.k8s import Kind, Kube
from clusters import manifest
from kubesim import podsecurity
from kubesim.schema import validate_object

INSTALL_KINDS = {
    "Namespace": Kind("v1", "Namespace", "namespaces", namespaced=False),
    "ServiceAccount": Kind("v1", "ServiceAccount", "serviceaccounts"),
    "ClusterRole": Kind("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", namespaced=False),
    "ClusterRoleBinding": Kind("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings",
                               namespaced=False),
    "Secret": Kind("v1", "Secret", "secrets"),
    "Deployment": Kind("apps/v1", "Deployment", "deployments"),
}


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
    assert len(rules) == len(comments) == len(manifest.rbac_rules())
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
    for doc in rendered(cluster):
        kind = INSTALL_KINDS[doc["kind"]]
        kube.apply(kind, doc, doc["metadata"].get("namespace"))
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
