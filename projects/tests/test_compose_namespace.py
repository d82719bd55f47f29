from __future__ import annotations

from projects.compose import PlanLimits, namespace_for, render_project
from projects.compose import labels as L

from .compose_helpers import invalid_objects, make_ctx

TEXT = (
    "services:\n  web:\n    image: nginx\n    ports: ['8080:80']\n    depends_on: [cache]\n"
    "  cache:\n    image: redis\n    expose: [6379]\n  once:\n    image: busybox\n    restart: 'no'\n"
)


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_it_derives_a_dns_label_namespace_hashing_when_truncated() -> None:
    assert namespace_for("acme", "shop") == "tenant-acme-shop"
    long = namespace_for("a" * 40, "b" * 40)
    assert len(long) <= 63 and long != namespace_for("a" * 40, "b" * 41)
    assert namespace_for("Acme_Corp", "9shop").islower()


def test_it_renders_namespace_first_with_pod_security_and_labels() -> None:
    result = render_project(TEXT, make_ctx(revision=7))
    namespace = result.objects[0]
    assert namespace["kind"] == "Namespace" and namespace["metadata"]["name"] == "tenant-acme-shop"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/warn"] == "restricted"
    for obj in result.objects:
        labels = obj["metadata"]["labels"]
        assert labels[L.MANAGED_BY] == "paas" and labels[L.REVISION] == "7"
        assert labels[L.ORGANIZATION] == "acme" and labels[L.PROJECT] == "shop"
    assert invalid_objects(result.objects) == {}
    assert render_project(TEXT, make_ctx(revision=7)).objects == result.objects  # deterministic


def test_it_renders_the_network_policies() -> None:
    policies = by_kind(render_project(TEXT, make_ctx()).objects, "NetworkPolicy")
    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    traefik = policies["allow-from-traefik"]["spec"]["ingress"][0]["from"][0]
    assert traefik["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    assert traefik["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "traefik"}
    dns = policies["allow-dns"]["spec"]["egress"][0]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    data = policies["allow-shared-data"]["spec"]["egress"]
    assert data[0]["to"][0]["podSelector"]["matchLabels"] == {"cnpg.io/cluster": "paas-postgres"}
    assert data[0]["ports"] == [{"protocol": "TCP", "port": 5432}]
    assert data[1]["ports"] == [{"protocol": "TCP", "port": 3900}]
    assert "allow-internet" not in policies


def test_it_allows_internet_egress_only_when_enabled_and_never_private_ranges() -> None:
    ctx = make_ctx(allow_internet_egress=True, cluster_cidrs=("10.42.0.0/16", "198.18.0.0/15"))
    policies = by_kind(render_project(TEXT, ctx).objects, "NetworkPolicy")
    blocks = [peer["ipBlock"] for peer in policies["allow-internet"]["spec"]["egress"][0]["to"]]
    v4 = next(b for b in blocks if b["cidr"] == "0.0.0.0/0")
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "198.18.0.0/15"} <= set(v4["except"])


def test_internet_egress_never_reaches_the_nodes_own_addresses() -> None:
    # A bare-metal node's public address hosts the API server and the kubelet: not "internet".
    ctx = make_ctx(allow_internet_egress=True, node_addresses=("198.51.100.10", "172.18.0.3", "2001:db8::10"))
    policies = by_kind(render_project(TEXT, ctx).objects, "NetworkPolicy")
    blocks = {peer["ipBlock"]["cidr"]: peer["ipBlock"]["except"]
              for peer in policies["allow-internet"]["spec"]["egress"][0]["to"]}
    assert "198.51.100.10/32" in blocks["0.0.0.0/0"] and "2001:db8::10/128" in blocks["::/0"]
    assert "172.18.0.3/32" not in blocks["0.0.0.0/0"]  # already inside 172.16.0.0/12


def test_it_renders_member_view_rbac_quota_and_limits_from_the_plan() -> None:
    plan = PlanLimits(quota_cpu="3", quota_memory="6Gi", quota_pods=9, quota_storage="7Gi")
    objects = render_project(TEXT, make_ctx(plan=plan, members=["bob", "alice"])).objects
    binding = by_kind(objects, "RoleBinding")["project-viewer"]
    assert [s["name"] for s in binding["subjects"]] == ["project-viewer", "alice", "bob"]
    role = by_kind(objects, "Role")["project-viewer"]
    assert all(set(rule["verbs"]) <= {"get", "list", "watch"} for rule in role["rules"])  # read-only
    assert not any("secrets" in rule["resources"] for rule in role["rules"])
    hard = by_kind(objects, "ResourceQuota")["tenant-quota"]["spec"]["hard"]
    assert hard["requests.cpu"] == "3" and hard["limits.memory"] == "6Gi" and hard["pods"] == "9"
    assert hard["requests.storage"] == "7Gi" and hard["services.nodeports"] == "0"
    assert by_kind(objects, "LimitRange")["tenant-defaults"]["spec"]["limits"][0]["default"]["cpu"] == "500m"


def test_it_hardens_every_pod_and_routes_public_services_through_traefik() -> None:
    objects = render_project(TEXT, make_ctx(base_domain="apps.example.com")).objects
    workloads = [o for o in objects if o["kind"] in ("Deployment", "Job")]
    assert {o["kind"] for o in workloads} == {"Deployment", "Job"}
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}
            assert container["resources"]["limits"] and container["resources"]["requests"]
    web = by_kind(objects, "Deployment")["web"]["spec"]["template"]["spec"]
    assert web["initContainers"][0]["name"] == "wait-for-cache"  # depends_on -> start ordering
    ingress = by_kind(objects, "Ingress")
    assert list(ingress) == ["web"]
    rule = ingress["web"]["spec"]["rules"][0]
    assert ingress["web"]["spec"]["ingressClassName"] == "traefik"
    assert rule["host"] == "web-shop-acme-47cbdb9d.apps.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"]["port"] == {"number": 8080}
    private = render_project(TEXT, make_ctx(exposure={"web": "private", "cache": "public"})).objects
    assert list(by_kind(private, "Ingress")) == ["cache"]
