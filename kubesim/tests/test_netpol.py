"""NetworkPolicy evaluation (kubesim.netpol): each rule of the networking.k8s.io/v1 semantics, with objects
created through the official client and pods started by the simulated kubelet."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from kubesim.testing import KubeSim
from kubesim.tests.helpers import raw

EXTERNAL = "1.1.1.1"


@pytest.fixture
def net(kubesim: KubeSim, kube_api: client.ApiClient) -> Net:
    return Net(kubesim, kube_api)


class Net:
    """Namespaces, pods and policies made with the official client; pods wait until the kubelet gave them IPs."""

    def __init__(self, sim: KubeSim, api: client.ApiClient) -> None:
        self.sim, self.core, self.networking = sim, client.CoreV1Api(api), client.NetworkingV1Api(api)

    def namespace(self, name: str, **labels: str) -> str:
        self.core.create_namespace({"metadata": {"name": name, "labels": labels}})
        return name

    def pod(self, namespace: str, name: str, ports: list[dict[str, Any]] | None = None, **labels: str
            ) -> tuple[str, str]:
        container: dict[str, Any] = {"name": "main", "image": "nginx:1.27"}
        if ports:
            container["ports"] = ports
        self.core.create_namespaced_pod(namespace, {"metadata": {"name": name, "labels": labels},
                                                    "spec": {"containers": [container]}})
        self.sim.wait_for(lambda: self.ip((namespace, name)))
        return namespace, name

    def ip(self, pod: tuple[str, str]) -> str:
        return ((self.sim.get("Pod", *pod) or {}).get("status") or {}).get("podIP", "")

    def policy(self, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self.networking.create_namespaced_network_policy(
            namespace, {"metadata": {"name": name}, "spec": spec}).to_dict()

    def can(self, source: tuple[str, str] | str, destination: tuple[str, str] | str, port: int,
            protocol: str = "TCP") -> bool:
        return self.sim.can_connect(source, destination, port, protocol).allowed


def test_without_policies_every_connection_is_allowed(net: Net) -> None:
    a, b = net.pod("default", "a", app="a"), net.pod("default", "b", app="b")
    assert net.can(a, b, 80) and net.can(b, a, 5432, "UDP") and net.can(a, EXTERNAL, 443)
    assert net.can(a, net.ip(b), 80)  # by pod IP as well as by name
    verdict = net.sim.can_connect(a, b, 80)
    assert "no Ingress policy selects pod default/b" in verdict.reason


def test_a_policy_restricts_only_the_pods_it_selects_and_only_its_directions(net: Net) -> None:
    a, b, c = net.pod("default", "a", app="a"), net.pod("default", "b", app="b"), net.pod("default", "c", app="c")
    net.policy("default", "deny-b", {"podSelector": {"matchLabels": {"app": "b"}}, "policyTypes": ["Ingress"]})
    assert not net.can(a, b, 80)
    assert net.can(a, c, 80)  # not selected
    assert net.can(b, a, 80) and net.can(b, EXTERNAL, 443)  # b's egress is not restricted
    verdict = net.sim.can_connect(a, b, 80)
    assert not verdict and "ingress denied" in verdict.reason and "deny-b" in verdict.reason


def test_policy_types_default_to_ingress_plus_egress_when_egress_rules_exist(net: Net) -> None:
    a, b = net.pod("default", "a", app="a"), net.pod("default", "b", app="b")
    stored = net.policy("default", "egress-dns", {"podSelector": {"matchLabels": {"app": "a"}},
                                                  "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]})
    assert stored["spec"]["policy_types"] == ["Ingress", "Egress"]
    assert not net.can(b, a, 80)  # Ingress is implied, and the policy has no ingress rule
    assert not net.can(a, b, 80) and net.can(a, b, 53, "UDP")
    only_ingress = net.policy("default", "ingress-only", {"podSelector": {"matchLabels": {"app": "b"}},
                                                          "ingress": [{}]})
    assert only_ingress["spec"]["policy_types"] == ["Ingress"]
    assert net.can(b, EXTERNAL, 443)


def test_an_empty_rule_list_denies_and_an_empty_peer_list_allows_everyone(net: Net) -> None:
    a, b = net.pod("default", "a", app="a"), net.pod("default", "b", app="b")
    other = net.pod(net.namespace("other"), "x", app="x")
    net.policy("default", "deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [],
                                       "egress": []})
    assert not net.can(a, b, 80) and not net.can(a, EXTERNAL, 443) and not net.can(other, a, 80)
    net.policy("default", "open-80", {"podSelector": {}, "policyTypes": ["Ingress"],
                                      "ingress": [{"from": [], "ports": [{"port": 80}]}]})
    assert net.can(other, a, 80) and net.can(EXTERNAL, a, 80) and not net.can(other, a, 81)
    assert not net.can(a, b, 80)  # a's egress is still denied


def test_policies_add_up(net: Net) -> None:
    a, b = net.pod("default", "a", app="a"), net.pod("default", "b", app="b")
    net.policy("default", "only-80", {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]})
    net.policy("default", "only-from-a", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {
        "matchLabels": {"app": "a"}}}]}]})
    assert net.can(b, a, 80) and not net.can(b, a, 81)  # only-80
    assert net.can(a, b, 81)  # only-from-a allows any port from a


def test_a_pod_selector_peer_means_pods_of_the_policys_own_namespace(net: Net) -> None:
    web = net.pod("default", "web", role="web")
    client_here = net.pod("default", "client", role="client")
    client_there = net.pod(net.namespace("elsewhere"), "client", role="client")
    net.policy("default", "from-clients", {"podSelector": {"matchLabels": {"role": "web"}},
                                           "ingress": [{"from": [{"podSelector": {"matchLabels": {
                                               "role": "client"}}}]}]})
    assert net.can(client_here, web, 80)
    assert not net.can(client_there, web, 80)  # same labels, other namespace


def test_namespace_selectors_match_namespace_labels_including_the_metadata_name(net: Net) -> None:
    web = net.pod("default", "web", app="web")
    team = net.pod(net.namespace("team-a", team="a"), "any", app="whatever")
    stranger = net.pod(net.namespace("team-b", team="b"), "any", app="whatever")
    net.policy("default", "from-team-a", {"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"team": "a"}}}]}]})
    assert net.can(team, web, 80) and not net.can(stranger, web, 80)
    net.policy("default", "from-team-b-by-name", {"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                                     "values": ["team-b"]}]}}]}]})
    assert net.can(stranger, web, 80)


def test_namespace_and_pod_selector_in_one_peer_must_both_match_but_two_peers_are_either(net: Net) -> None:
    web = net.pod("default", "web", app="web")
    mon = net.namespace("monitoring")
    scraper, other = net.pod(mon, "scraper", app="prometheus"), net.pod(mon, "other", app="grafana")
    local_prom = net.pod("default", "prom", app="prometheus")
    net.policy("default", "and", {"podSelector": {}, "ingress": [{"from": [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app": "prometheus"}}}], "ports": [{"port": 9090}]}]})
    assert net.can(scraper, web, 9090)
    assert not net.can(other, web, 9090) and not net.can(local_prom, web, 9090)
    net.policy("default", "or", {"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
        {"podSelector": {"matchLabels": {"app": "prometheus"}}}], "ports": [{"port": 9100}]}]})
    assert net.can(other, web, 9100) and net.can(local_prom, web, 9100)


def test_ip_blocks_with_except_decide_external_addresses_and_also_pod_ips(net: Net) -> None:
    a, b = net.pod("default", "a", app="a"), net.pod("default", "b", app="b")
    net.policy("default", "egress", {"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"],
                                     "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0",
                                                                     "except": ["10.0.0.0/8", "169.254.0.0/16"]}}]}]})
    assert net.can(a, EXTERNAL, 443) and net.can(a, "8.8.8.8", 53, "UDP")
    assert not net.can(a, "169.254.169.254", 80) and not net.can(a, "10.200.0.1", 80)
    assert not net.can(a, b, 80)  # b's pod IP (10.42.x.y) is in an excepted range
    net.policy("default", "egress-pods", {"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"],
                                          "egress": [{"to": [{"ipBlock": {"cidr": net.ip(b) + "/32"}}]}]})
    assert net.can(a, b, 80)  # kube-router's reading: an ipBlock matches a pod IP too
    net.policy("default", "ingress", {"podSelector": {"matchLabels": {"app": "b"}}, "ingress": [{"from": [
        {"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]}}]}]})
    assert net.can("203.0.113.7", b, 80) and not net.can("203.0.113.200", b, 80)
    assert not net.can(a, b, 80)  # a's IP is outside the block; pod selectors would be needed


def test_pod_and_namespace_selectors_never_match_addresses_outside_the_pods(net: Net) -> None:
    a = net.pod("default", "a", app="a")
    net.policy("default", "egress", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [
        {"namespaceSelector": {}}]}]})
    assert not net.can(a, EXTERNAL, 443) and not net.can(a, "172.18.0.2", 6443)
    assert net.can(a, net.pod(net.namespace("any"), "b"), 80)


def test_ports_numbers_ranges_protocols(net: Net) -> None:
    a, b = net.pod("default", "a", app="a"), net.pod("default", "b", app="b")
    net.policy("default", "ports", {"podSelector": {"matchLabels": {"app": "b"}}, "ingress": [{"ports": [
        {"port": 8080}, {"port": 30000, "endPort": 30010, "protocol": "UDP"}, {"port": 5000, "protocol": "SCTP"},
        {"protocol": "TCP", "port": 7000, "endPort": 7001}]}]})
    assert net.can(a, b, 8080) and not net.can(a, b, 8080, "UDP")  # protocol defaults to TCP
    assert net.can(a, b, 30000, "UDP") and net.can(a, b, 30010, "UDP") and not net.can(a, b, 30011, "UDP")
    assert not net.can(a, b, 30005, "TCP")
    assert net.can(a, b, 5000, "SCTP") and not net.can(a, b, 5000)
    assert net.can(a, b, 7001) and not net.can(a, b, 6999)
    net.policy("default", "any-udp", {"podSelector": {"matchLabels": {"app": "b"}}, "ingress": [{"ports": [
        {"protocol": "UDP"}]}]})
    assert net.can(a, b, 12345, "UDP") and not net.can(a, b, 12345, "TCP")


def test_named_ports_are_resolved_against_the_destination_pods_container_ports(net: Net) -> None:
    a = net.pod("default", "a", app="a")
    web = net.pod("default", "web", ports=[{"name": "http", "containerPort": 8080}], app="web")
    api = net.pod("default", "api", ports=[{"name": "http", "containerPort": 9000}], app="api")
    plain = net.pod("default", "plain", app="plain")
    net.policy("default", "egress-http", {"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"],
                                          "egress": [{"ports": [{"port": "http"}]}]})
    assert net.can(a, web, 8080) and not net.can(a, web, 9000)
    assert net.can(a, api, 9000) and not net.can(a, api, 8080)  # the same name, another number on this pod
    assert not net.can(a, plain, 8080)  # no port of that name
    assert not net.can(a, EXTERNAL, 8080)  # only pods have named ports
    net.policy("default", "ingress-http", {"podSelector": {"matchLabels": {"app": "web"}},
                                           "ingress": [{"ports": [{"port": "http", "protocol": "UDP"}]}]})
    assert not net.can(plain, web, 8080)  # the port named http is TCP


def test_both_ends_must_allow(net: Net) -> None:
    a = net.pod(net.namespace("left"), "a", app="a")
    b = net.pod(net.namespace("right"), "b", app="b")
    net.policy("left", "out-to-right", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "right"}}}]}]})
    net.policy("right", "deny-in", {"podSelector": {}, "policyTypes": ["Ingress"]})
    verdict = net.sim.can_connect(a, b, 80)
    assert not verdict and "ingress denied" in verdict.reason
    net.policy("right", "in-from-left", {"podSelector": {}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "left"}}}]}]})
    verdict = net.sim.can_connect(a, b, 80)
    assert verdict and "out-to-right" in verdict.reason and "in-from-left" in verdict.reason
    assert net.can(b, a, 80)  # neither right's egress nor left's ingress is restricted


def test_a_service_clusterip_is_decided_at_its_endpoints_target_port(net: Net) -> None:
    a = net.pod("default", "a", app="a")
    for name in ("db-0", "db-1"):
        net.pod("default", name, ports=[{"name": "pg", "containerPort": 5432}], app="db")
    service = net.core.create_namespaced_service("default", {"metadata": {"name": "db"}, "spec": {
        "selector": {"app": "db"}, "ports": [{"port": 15432, "targetPort": "pg"}]}})
    ip = service.spec.cluster_ip
    net.policy("default", "db-ingress", {"podSelector": {"matchLabels": {"app": "db"}},
                                         "ingress": [{"ports": [{"port": 5432}]}]})
    assert net.can(a, ip, 15432)  # the policy sees the pod port 5432, not the Service port
    assert not net.can(a, ip, 5432)  # the Service has no such port
    net.core.delete_namespaced_pod("db-1", "default", grace_period_seconds=0)  # at once: its name is reused next
    net.pod("default", "db-1", ports=[{"name": "pg", "containerPort": 5433}], app="db")
    verdict = net.sim.can_connect(a, ip, 15432)
    assert not verdict and "db-1" in verdict.reason  # a connection may land on db-1, which refuses 5433
    net.pod(net.namespace("elsewhere"), "lookalike", app="nothing")  # a Service selects in its own namespace
    empty = net.core.create_namespaced_service("default", {"metadata": {"name": "none"}, "spec": {
        "selector": {"app": "nothing"}, "ports": [{"port": 80}]}})
    verdict = net.sim.can_connect(a, empty.spec.cluster_ip, 80)
    assert not verdict and "no ready endpoints" in verdict.reason


def test_a_numeric_target_port_is_the_port_the_policy_sees(net: Net) -> None:
    a = net.pod("default", "a", app="a")
    net.pod("default", "web", app="web")
    ip = net.core.create_namespaced_service("default", {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}).spec.cluster_ip
    net.policy("default", "web-8080", {"podSelector": {"matchLabels": {"app": "web"}},
                                       "ingress": [{"ports": [{"port": 8080}]}]})
    assert net.can(a, ip, 80)
    net.policy("default", "a-out-80", {"podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Egress"],
                                       "egress": [{"ports": [{"port": 80}]}]})
    assert not net.can(a, ip, 80)  # a's egress is decided at 8080 too


def test_the_kubernetes_service_leads_to_the_api_server_on_the_control_plane_node(net: Net) -> None:
    a = net.pod("default", "a", app="a")
    assert net.can(a, "10.43.0.1", 443)
    net.policy("default", "egress", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [
        {"ipBlock": {"cidr": "10.43.0.0/16"}}]}]})
    assert not net.can(a, "10.43.0.1", 443)  # the policy sees the node's address, not the ClusterIP
    net.policy("default", "egress-api", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [
        {"ipBlock": {"cidr": "172.18.0.2/32"}}], "ports": [{"port": 6443}]}]})
    assert net.can(a, "10.43.0.1", 443) and net.can(a, "172.18.0.2", 6443)


def test_it_refuses_malformed_questions(net: Net) -> None:
    a = net.pod("default", "a")
    with pytest.raises(ValueError, match="protocol 'ICMP'"):
        net.sim.can_connect(a, EXTERNAL, 1, "ICMP")
    with pytest.raises(ValueError, match="pod default/missing does not exist"):
        net.sim.can_connect(a, ("default", "missing"), 80)
    with pytest.raises(ValueError, match="'example.com' is neither"):
        net.sim.can_connect(a, "example.com", 80)
    with pytest.raises(ValueError, match="port 70000"):
        net.sim.can_connect(a, EXTERNAL, 70000)


def test_the_kubelet_gives_every_live_pod_its_own_ip(net: Net) -> None:
    pods = [net.pod("default", f"p{i}") for i in range(40)]
    ips = [net.ip(p) for p in pods]
    assert len(set(ips)) == len(ips) and all(ip.startswith("10.42.") for ip in ips)


@pytest.mark.parametrize(("spec", "field", "message"), [
    ({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}, "spec.ingress[0].from[0].ipBlock.cidr",
     'Invalid value: "10.0.0.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)'),
    ({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}}]}]},
     "spec.egress[0].to[0].ipBlock.except[0]", 'Invalid value: "192.168.0.0/16": must be a strict subset of `cidr`'),
    ({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}}]}]},
     "spec.egress[0].to[0].ipBlock.except[0]", 'Invalid value: "10.0.0.0/8": must be a strict subset of `cidr`'),
    ({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]}, "spec.ingress[0].from[0]",
     "Forbidden: may not specify both ipBlock and another peer"),
    ({"ingress": [{"from": [{}]}]}, "spec.ingress[0].from[0]", "Required value: must specify a peer"),
    ({"ingress": [{"ports": [{"port": 80, "endPort": 79}]}]}, "spec.ingress[0].ports[0].endPort",
     "Invalid value: 79: must be greater than or equal to `port`"),
    ({"ingress": [{"ports": [{"port": "http", "endPort": 90}]}]}, "spec.ingress[0].ports[0].endPort",
     "Invalid value: 90: may not be specified when `port` is non-numeric"),
    ({"ingress": [{"ports": [{"endPort": 90}]}]}, "spec.ingress[0].ports[0].endPort",
     "Invalid value: 90: may not be specified when `port` is not specified"),
    ({"ingress": [{"ports": [{"port": 70000}]}]}, "spec.ingress[0].ports[0].port",
     "Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ({"ingress": [{"ports": [{"port": "8080"}]}]}, "spec.ingress[0].ports[0].port",
     'Invalid value: "8080": must contain at least one letter (a-z)'),
    ({"ingress": [{"ports": [{"protocol": "ICMP"}]}]}, "spec.ingress[0].ports[0].protocol",
     'Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"'),
    ({"policyTypes": ["Sideways"]}, "spec.policyTypes[0]",
     'Unsupported value: "Sideways": supported values: "Ingress", "Egress"'),
])
def test_it_refuses_invalid_policies_as_the_apiserver_does(kube_api: client.ApiClient, spec: dict[str, Any],
                                                           field: str, message: str) -> None:
    body = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "bad"},
            "spec": {"podSelector": {}, **spec}}
    code, status, _ = raw(kube_api, "POST", "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies", body)
    assert code == 422 and status["reason"] == "Invalid"
    assert {"field": field, "message": message} in [
        {"field": c["field"], "message": c["message"]} for c in status["details"]["causes"]]
