"""NetworkPolicy evaluation: may a pod open a TCP/UDP/SCTP port on another pod, a Service or an address?

kubesim moves no packets. `evaluate` answers what a CNI's policy engine would decide, from the stored Pods,
Namespaces, Services, Nodes and NetworkPolicies, with the semantics of the Kubernetes documentation
("Network Policies") and the networking.k8s.io/v1 API reference:

* A policy selects pods of its own namespace by `podSelector` (`{}`: all of them) and applies to the
  directions in `policyTypes` (default: Ingress, plus Egress when the policy has egress rules).
* A pod no policy selects for a direction is unrestricted in that direction; a selected pod is allowed
  only what some rule of some selecting policy allows (policies add up, none subtracts). An empty rule
  list therefore denies everything.
* A connection needs both: egress allowed at the source and ingress allowed at the destination.
* A rule's peers (`from` / `to`): `podSelector` alone means pods of the policy's namespace;
  `namespaceSelector` alone all pods of the matching namespaces (by their labels, including
  `kubernetes.io/metadata.name`); both in one peer means pods matching both; `ipBlock` an address range
  minus its `except` ranges. No peers (missing or `[]`) means every peer.
* A rule's `ports`: a number, a number range (`port`..`endPort`) or a named port, each with a protocol
  (default TCP); a named port is resolved against the destination pod's container ports, in both
  directions. No ports means every port of every protocol.

Where Kubernetes leaves the behaviour to the implementation, kubesim decides like kube-router, the policy
controller embedded in K3s:

* `ipBlock` matches any address, pod IPs included (so does Calico; Cilium does not). For proving a fence
  this is the cautious reading: an egress rule to `0.0.0.0/0` also reaches other pods unless the pod range
  is excepted.
* Policies see addresses after a Service's ClusterIP is translated: a connection to a ClusterIP is decided
  for each ready endpoint pod, at the Service port's `targetPort`, and is allowed only if every endpoint
  allows it (any of them may be picked). The `kubernetes` Service (10.43.0.1:443, the first address of
  K3s's Service range) leads to the API server on the control-plane nodes' InternalIP, port 6443.
* Host-network pods and node-to-pod traffic (kubelet probes) are not modelled.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubesim.selectors import label_selector_matches

if TYPE_CHECKING:
    from kubesim.cluster import Cluster

PROTOCOLS = ("TCP", "UDP", "SCTP")
API_SERVICE_IP = "10.43.0.1"
API_SERVICE_PORT = 443
API_SERVER_PORT = 6443
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"

PodRef = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class Peer:
    """One end of a connection once Services are translated: a pod, or a bare address (node, internet)."""

    ip: str
    pod: dict[str, Any] | None = None
    namespace_labels: dict[str, str] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.pod["metadata"]["namespace"] if self.pod else ""

    @property
    def labels(self) -> dict[str, str]:
        return (self.pod["metadata"].get("labels") or {}) if self.pod else {}

    def __str__(self) -> str:
        if self.pod is None:
            return self.ip
        return f"pod {self.namespace}/{self.pod['metadata']['name']} ({self.ip})"


def policy_types(spec: dict[str, Any]) -> list[str]:
    """`spec.policyTypes`, or the apiserver's default for a policy without it."""
    if spec.get("policyTypes"):
        return list(spec["policyTypes"])
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def policy_causes(spec: dict[str, Any]) -> list[dict[str, str]]:
    """The apiserver's checks of a NetworkPolicy spec beyond its schema (ValidateNetworkPolicySpec)."""
    causes: list[dict[str, str]] = []

    def cause(reason: str, path: str, message: str) -> None:
        causes.append({"reason": reason, "field": path, "message": message})

    def dicts(items: Any) -> list[tuple[int, dict[str, Any]]]:  # wrong types are the schema check's causes
        return [(i, d) for i, d in enumerate(items if isinstance(items, list) else []) if isinstance(d, dict)]

    for kind, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in dicts(spec.get(kind)):
            for j, port in dicts(rule.get("ports")):
                _port_causes(port, f"spec.{kind}[{i}].ports[{j}]", cause)
            for j, peer in dicts(rule.get(peers_key)):
                path = f"spec.{kind}[{i}].{peers_key}[{j}]"
                given = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(k) is not None]
                if not given:
                    cause("FieldValueRequired", path, "Required value: must specify a peer")
                elif len(given) > 1 and "ipBlock" in given:
                    cause("FieldValueForbidden", path, "Forbidden: may not specify both ipBlock and another peer")
                if isinstance(peer.get("ipBlock"), dict):
                    _ip_block_causes(peer["ipBlock"], f"{path}.ipBlock", cause)
    types = spec.get("policyTypes") if isinstance(spec.get("policyTypes"), list) else []
    if len(types) > 2:
        cause("FieldValueInvalid", "spec.policyTypes", "Invalid value: may not specify more than two policyTypes")
    for i, kind in enumerate(types if len(types) <= 2 else []):
        if kind not in ("Ingress", "Egress"):
            cause("FieldValueNotSupported", f"spec.policyTypes[{i}]",
                  f'Unsupported value: "{kind}": supported values: "Ingress", "Egress"')
    return causes


def _port_causes(port: dict[str, Any], path: str, cause: Any) -> None:
    protocol, number, end = port.get("protocol"), port.get("port"), port.get("endPort")
    if protocol is not None and protocol not in PROTOCOLS:
        cause("FieldValueNotSupported", f"{path}.protocol",
              f'Unsupported value: "{protocol}": supported values: "TCP", "UDP", "SCTP"')
    problems: list[tuple[str, Any, str]] = []  # (field, value, message)
    if isinstance(number, int):
        problems += [("port", number, _PORT_RANGE)] if not 1 <= number <= 65535 else []
        if end is not None:
            problems += [("endPort", end, "must be greater than or equal to `port`")] if end < number else []
            problems += [("endPort", end, _PORT_RANGE)] if not 1 <= end <= 65535 else []
    elif number is not None:
        if end is not None:
            problems.append(("endPort", end, "may not be specified when `port` is non-numeric"))
        problems += [("port", f'"{number}"', message) for message in _port_name_problems(str(number))]
    elif end is not None:
        problems.append(("endPort", end, "may not be specified when `port` is not specified"))
    for name, value, message in problems:
        cause("FieldValueInvalid", f"{path}.{name}", f"Invalid value: {value}: {message}")


_PORT_RANGE = "must be between 1 and 65535, inclusive"


def _port_name_problems(name: str) -> list[str]:
    """IsValidPortName (an IANA service name), message for message."""
    checks = [
        (len(name) > 15, "must be no more than 15 characters"),
        (not re.fullmatch(r"[-a-z0-9]+", name),
         "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"),
        (not re.search(r"[a-z]", name), "must contain at least one letter (a-z)"),
        ("--" in name, "must not contain consecutive hyphens"),
        (name.startswith("-") or name.endswith("-"), "must not begin or end with a hyphen"),
    ]
    return [message for failed, message in checks if failed]


def _cidr(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """ParseCIDRSloppy: an address with a prefix length; bits beyond the prefix are allowed (legacy field)."""
    try:
        return ipaddress.ip_network(value, strict=False) if isinstance(value, str) and "/" in value else None
    except ValueError:
        return None


def _ip_block_causes(block: dict[str, Any], path: str, cause: Any) -> None:
    invalid = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
    if not block.get("cidr"):
        cause("FieldValueRequired", f"{path}.cidr", "Required value")
        return
    network = _cidr(block["cidr"])
    if network is None:
        cause("FieldValueInvalid", f"{path}.cidr", f'Invalid value: "{block["cidr"]}": {invalid}')
        return
    for i, text in enumerate(block.get("except") or []):
        excepted = _cidr(text)
        if excepted is None:
            cause("FieldValueInvalid", f"{path}.except[{i}]", f'Invalid value: "{text}": {invalid}')
        elif excepted.version != network.version or excepted.prefixlen <= network.prefixlen \
                or not excepted.subnet_of(network):  # type: ignore[arg-type]
            cause("FieldValueInvalid", f"{path}.except[{i}]",
                  f'Invalid value: "{text}": must be a strict subset of `cidr`')


def evaluate(cluster: Cluster, source: PodRef | str, destination: PodRef | str, port: int,
             protocol: str = "TCP") -> Verdict:
    """May `source` (a pod, or an address outside the cluster's pods) open `port`/`protocol` on `destination`
    (a pod, or an address: a pod IP, a Service ClusterIP, a node or an external address)?

    Raises ValueError for a malformed question (unknown protocol or pod, port out of range, not an address).
    """
    protocol = protocol.upper()
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not between 1 and 65535")
    view = _View(cluster)
    src = view.peer(source)
    if src.pod is not None and not src.ip:
        return Verdict(False, f"{_pod_name(src.pod)} has no IP yet: it is not running")
    targets = view.targets(destination, port, protocol)
    if isinstance(targets, Verdict):
        return targets
    denied = []
    for dst, dst_port in targets:
        verdict = _decide(view, src, dst, dst_port, protocol)
        if not verdict:
            denied.append(verdict.reason)
        elif len(targets) == 1:
            return verdict
    if denied:
        return Verdict(False, "; ".join(denied))
    return Verdict(True, f"{src} -> {destination}:{port}/{protocol}: allowed to all {len(targets)} endpoints")


def _pod_name(pod: dict[str, Any]) -> str:
    return f"pod {pod['metadata']['namespace']}/{pod['metadata']['name']}"


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither a (namespace, pod) pair nor an IP address") from None


def _running(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return bool(status.get("podIP")) and not pod["metadata"].get("deletionTimestamp") \
        and status.get("phase") not in ("Succeeded", "Failed") and not pod["spec"].get("hostNetwork")


def _ready(pod: dict[str, Any]) -> bool:
    return _running(pod) and any(c.get("type") == "Ready" and c.get("status") == "True"
                                 for c in (pod.get("status") or {}).get("conditions") or [])


def _container_ports(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod.get("spec") or {}
    return [p for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
            for p in c.get("ports") or []]


class _View:
    """The objects one evaluation reads, listed once."""

    def __init__(self, cluster: Cluster) -> None:
        def listed(api_version: str, kind: str) -> list[dict[str, Any]]:
            return cluster.list(cluster.rt_for(api_version, kind))

        self.pods = listed("v1", "Pod")
        self.services = listed("v1", "Service")
        self.nodes = listed("v1", "Node")
        self.namespace_labels = {n["metadata"]["name"]: n["metadata"].get("labels") or {}
                                 for n in listed("v1", "Namespace")}
        self.policies: dict[str, list[dict[str, Any]]] = {}
        for policy in listed("networking.k8s.io/v1", "NetworkPolicy"):
            self.policies.setdefault(policy["metadata"]["namespace"], []).append(policy)

    def _pod_peer(self, pod: dict[str, Any]) -> Peer:
        ip = (pod.get("status") or {}).get("podIP", "") if _running(pod) else ""
        return Peer(ip, pod, self.namespace_labels.get(pod["metadata"]["namespace"], {}))

    def peer(self, ref: PodRef | str) -> Peer:
        if isinstance(ref, tuple):
            namespace, name = ref
            pod = next((p for p in self.pods if p["metadata"]["namespace"] == namespace
                        and p["metadata"]["name"] == name), None)
            if pod is None:
                raise ValueError(f"pod {namespace}/{name} does not exist")
            return self._pod_peer(pod)
        ip = str(_ip(ref))
        pod = next((p for p in self.pods if _running(p) and p["status"]["podIP"] == ip), None)
        return self._pod_peer(pod) if pod else Peer(ip)

    def targets(self, destination: PodRef | str, port: int, protocol: str) -> list[tuple[Peer, int]] | Verdict:
        """Where a connection to `destination`:`port` lands, after Service translation."""
        peer = self.peer(destination)
        if peer.pod is not None:
            if not peer.ip:
                return Verdict(False, f"{_pod_name(peer.pod)} has no IP yet: it is not running")
            return [(peer, port)]
        if peer.ip == API_SERVICE_IP:  # its endpoints are no pods, so no selector finds them
            if (port, protocol) != (API_SERVICE_PORT, "TCP"):
                return Verdict(False, f"the kubernetes Service ({API_SERVICE_IP}) has no port {port}/{protocol}")
            servers = [(Peer(ip), API_SERVER_PORT) for ip in self._api_server_ips()]
            return servers or Verdict(False, "no control-plane node has an InternalIP for the API server")
        service = next((s for s in self.services if (s.get("spec") or {}).get("clusterIP") == peer.ip), None)
        if service is not None:
            return self._endpoints(service, port, protocol)
        return [(peer, port)]

    def _api_server_ips(self) -> list[str]:
        return [a["address"] for n in self.nodes if CONTROL_PLANE_LABEL in (n["metadata"].get("labels") or {})
                for a in (n.get("status") or {}).get("addresses") or [] if a.get("type") == "InternalIP"]

    def _endpoints(self, service: dict[str, Any], port: int, protocol: str) -> list[tuple[Peer, int]] | Verdict:
        spec, meta = service.get("spec") or {}, service["metadata"]
        name = f"Service {meta['namespace']}/{meta['name']} ({spec.get('clusterIP')})"
        service_port = next((p for p in spec.get("ports") or []
                             if p.get("port") == port and (p.get("protocol") or "TCP") == protocol), None)
        if service_port is None:
            return Verdict(False, f"{name} has no port {port}/{protocol}")
        selector = spec.get("selector") or {}
        target = service_port.get("targetPort", port)
        found = []
        for pod in self.pods:
            labels = pod["metadata"].get("labels") or {}
            if not selector or pod["metadata"]["namespace"] != meta["namespace"] or not _ready(pod) \
                    or any(labels.get(k) != v for k, v in selector.items()):
                continue
            if isinstance(target, int):
                found.append((self._pod_peer(pod), target))
                continue
            # A named targetPort: the endpoint is the pod's container port of that name, if it has one.
            numbers = [p["containerPort"] for p in _container_ports(pod)
                       if p.get("name") == target and (p.get("protocol") or "TCP") == protocol]
            if numbers:
                found.append((self._pod_peer(pod), numbers[0]))
        return found or Verdict(False, f"{name} has no ready endpoints for port {port}/{protocol}")


def _decide(view: _View, src: Peer, dst: Peer, port: int, protocol: str) -> Verdict:
    what = f"{src} -> {dst}:{port}/{protocol}"
    egress = _direction(view, "Egress", src, dst, dst, port, protocol) if src.pod \
        else (True, "not restricted: the source is no pod")
    ingress = _direction(view, "Ingress", dst, src, dst, port, protocol) if dst.pod \
        else (True, "not restricted: the destination is no pod")
    denied = [f"{side} denied: {why}" for side, (ok, why) in (("egress", egress), ("ingress", ingress)) if not ok]
    if denied:
        return Verdict(False, f"{what}: {'; '.join(denied)}")  # both sides, so each fence can be checked
    return Verdict(True, f"{what}: egress {egress[1]}; ingress {ingress[1]}")


def _direction(view: _View, kind: str, subject: Peer, other: Peer, dst: Peer, port: int,
               protocol: str) -> tuple[bool, str]:
    """Is the `kind` side of the connection at `subject` (talking to `other`) allowed, and why."""
    assert subject.pod is not None
    namespace = subject.namespace
    selecting = [p for p in view.policies.get(namespace, [])
                 if kind in policy_types(p.get("spec") or {})
                 and label_selector_matches((p.get("spec") or {}).get("podSelector") or {}, subject.labels)]
    if not selecting:
        return True, f"unrestricted (no {kind} policy selects {subject})"
    rules_key, peers_key = ("ingress", "from") if kind == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in (policy.get("spec") or {}).get(rules_key) or []:
            if _peers_match(rule.get(peers_key), namespace, other) and _ports_match(rule.get("ports"), port,
                                                                                   protocol, dst):
                return True, f"allowed by NetworkPolicy {namespace}/{policy['metadata']['name']}"
    names = ", ".join(sorted(p["metadata"]["name"] for p in selecting))
    return False, f"{subject} is selected by NetworkPolicy {names} in {namespace} and no rule allows it"


def _peers_match(peers: list[dict[str, Any]] | None, namespace: str, other: Peer) -> bool:
    return not peers or any(_peer_matches(peer, namespace, other) for peer in peers)


def _peer_matches(peer: dict[str, Any], namespace: str, other: Peer) -> bool:
    block = peer.get("ipBlock")
    if block is not None:
        ip = ipaddress.ip_address(other.ip)
        return ip in ipaddress.ip_network(block["cidr"], strict=False) and \
            not any(ip in ipaddress.ip_network(e, strict=False) for e in block.get("except") or [])
    pods, namespaces = peer.get("podSelector"), peer.get("namespaceSelector")
    if other.pod is None or (pods is None and namespaces is None):
        return False  # pod and namespace selectors only ever select pods
    if namespaces is None:
        in_namespace = other.namespace == namespace
    else:
        in_namespace = label_selector_matches(namespaces, other.namespace_labels)
    return in_namespace and (pods is None or label_selector_matches(pods, other.labels))


def _ports_match(ports: list[dict[str, Any]] | None, port: int, protocol: str, dst: Peer) -> bool:
    if not ports:
        return True
    for entry in ports:
        if (entry.get("protocol") or "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, int):
            if wanted <= port <= (entry.get("endPort") or wanted):
                return True
        elif dst.pod is not None and any(p.get("name") == wanted and p.get("containerPort") == port
                                         and (p.get("protocol") or "TCP") == protocol
                                         for p in _container_ports(dst.pod)):
            return True
    return False
