"""The tenant fence, proven: generated projects on a K3s-like cluster, decided by kubesim's NetworkPolicy evaluator.

Two organizations' projects are rendered by the control plane (`manifests.render_release`, the real converter)
and applied by the agent's applier into kubesim with K3s's add-ons (CoreDNS, Traefik), the agent as its install
manifest deploys it, the shared data plane the agent's bootstrap installs (with stand-ins for what CloudNativePG
would create) and Sablier. The kubelet starts every pod; the assertions ask `KubeSim.can_connect`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, dynamic

from agent import bootstrap, charts
from agent.k8s import Kube
from agent.reconcile import apply_project
from clusters import manifest
from clusters import services as cluster_services
from kubesim.testing import KubeSim
from projects import manifests, services
from projects.compose import labels as L
from projects.models import Project, Release

SHOP = """services:
  web:
    image: nginx:1.27
    ports: ["8080:80"]
  api:
    image: ghcr.io/acme/api:1.0
    expose: [9000]
"""
BLOG = """services:
  blog:
    image: ghost:5
    ports: ["2368:2368"]
    labels:  # a tenant posing as Traefik and CoreDNS gains nothing
      app.kubernetes.io/name: traefik
      k8s-app: kube-dns
"""
INTERNET = "1.1.1.1"
PUBLIC_NODE, PUBLIC_NODE_IP, PRIVATE_NODE_IP = "kubesim-node-0", "198.51.100.10", "172.18.0.3"
PRIVATE = ("10.0.0.1", "100.64.0.1", "127.0.0.1", "169.254.169.254", "172.16.0.1", "192.168.1.1")

Pod = tuple[str, str]


@pytest.fixture(scope="module")
def sim() -> Iterator[KubeSim]:
    with KubeSim(k3s_addons=True) as server:
        yield server


@dataclass
class Cluster:
    sim: KubeSim
    shop: Project  # Acme's, no internet egress
    blog: Project  # Charlie Corp's, internet egress allowed

    def pod(self, namespace: str, **labels: str) -> Pod:
        """A running pod of `namespace` carrying `labels`."""
        def find() -> Pod | None:
            for pod in self.sim.list("Pod", namespace):
                if (pod.get("status") or {}).get("podIP") and pod["status"].get("phase") == "Running" and \
                        labels.items() <= (pod["metadata"].get("labels") or {}).items():
                    return namespace, pod["metadata"]["name"]
            return None
        return self.sim.wait_for(find, timeout=20)

    def service_pod(self, project: Project, service: str) -> Pod:
        return self.pod(project.namespace, **{L.SERVICE: service})

    def cluster_ip(self, namespace: str, name: str) -> str:
        service = self.sim.get("Service", namespace, name)
        assert service is not None, f"Service {namespace}/{name}"
        return service["spec"]["clusterIP"]

    def can(self, source: Pod, destination: Pod | str, port: int, protocol: str = "TCP") -> bool:
        return self.sim.can_connect(source, destination, port, protocol).allowed


def _apply(sim: KubeSim, objects: list[dict[str, Any]]) -> None:
    with sim.api_client() as api:
        dyn = dynamic.DynamicClient(api)
        for obj in objects:
            resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            dyn.server_side_apply(resource, body=obj, namespace=obj["metadata"].get("namespace"),
                                  field_manager="fence-test")


def _data_plane_stand_ins() -> list[dict[str, Any]]:
    """What CloudNativePG and the Garage chart's templates create, which kubesim's controllers do not."""
    ns = charts.DATA_NAMESPACE
    pg = {"cnpg.io/cluster": charts.POSTGRES_CLUSTER, "cnpg.io/instanceRole": "primary", "cnpg.io/podRole": "instance"}
    garage = {"app.kubernetes.io/name": "garage", "app.kubernetes.io/instance": charts.GARAGE.release}

    def service(name: str, selector: dict[str, str], ports: list[tuple[str, int]]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                "spec": {"selector": selector, "ports": [{"name": n, "port": p, "targetPort": p} for n, p in ports]}}

    return [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{charts.POSTGRES_CLUSTER}-1", "namespace": ns,
                                                         "labels": pg},
         "spec": {"containers": [{"name": "postgres", "image": "ghcr.io/cloudnative-pg/postgresql:17", "ports": [
             {"name": "postgresql", "containerPort": 5432}, {"name": "metrics", "containerPort": 9187}]}]}},
        service(f"{charts.POSTGRES_CLUSTER}-rw", {"cnpg.io/cluster": charts.POSTGRES_CLUSTER,
                                                   "cnpg.io/instanceRole": "primary"}, [("postgres", 5432)]),
        service(charts.GARAGE.release, garage, [("s3-api", 3900)]),
        service(f"{charts.GARAGE.release}-admin", garage, [("admin", 3903)]),
    ]


def _deploy(sim: KubeSim, kubeconfig: Path, project: Project) -> None:
    release = Release.objects.create(project=project, revision=1, compose_text=project.compose_text)
    objects, _ = manifests.render_release(project, release)
    kube = Kube(str(kubeconfig))
    try:
        result = apply_project(kube, project.namespace, project.labels, 1, objects)
    finally:
        kube.close()
    assert not [r for r in result["results"] if r["action"] == "failed"]


@pytest.fixture
def cluster(sim: KubeSim, personas: Any, tmp_path: Path) -> Cluster:
    sim.reset()
    # Bare-metal servers often have only a public address: the control-plane node gets one, the other keeps
    # its private one. The cluster record holds the node summary the agent sends in its handshake.
    with sim.api_client() as api:
        client.CoreV1Api(api).patch_node_status(PUBLIC_NODE, {"status": {"addresses": [
            {"type": "InternalIP", "address": PUBLIC_NODE_IP}, {"type": "Hostname", "address": PUBLIC_NODE}]}})
    kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
    record = cluster_services.create_cluster("Falkenstein", "apps.example.com", simulated=True, slug="fsn")
    kube = Kube(str(kubeconfig))
    try:
        record.nodes = kube.nodes()
    finally:
        kube.close()
    record.save(update_fields=["nodes"])
    _apply(sim, manifest.objects(record, "agent-token", "ws://control-plane.invalid/agent/ws"))
    _apply(sim, bootstrap.desired_objects(bootstrap.Settings()))
    _apply(sim, _data_plane_stand_ins())
    shop = services.create_project(personas.org, personas.owner, "Shop", record, compose_text=SHOP)
    blog = services.create_project(personas.outsider_org, personas.outsider, "Blog", record,
                                   allow_internet_egress=True, compose_text=BLOG)
    for project in (shop, blog):
        _deploy(sim, kubeconfig, project)
    return Cluster(sim, shop, blog)


def test_a_tenants_pods_reach_each_other_dns_and_the_shared_data_and_traefik_reaches_them(cluster: Cluster) -> None:
    web, api = cluster.service_pod(cluster.shop, "web"), cluster.service_pod(cluster.shop, "api")
    assert cluster.can(web, api, 9000) and cluster.can(api, web, 80)
    assert cluster.can(web, cluster.cluster_ip(cluster.shop.namespace, "api"), 9000)  # through its Service
    dns = cluster.cluster_ip("kube-system", "kube-dns")
    assert cluster.can(web, dns, 53, "UDP") and cluster.can(web, dns, 53, "TCP")
    postgres = cluster.cluster_ip(charts.DATA_NAMESPACE, f"{charts.POSTGRES_CLUSTER}-rw")
    assert cluster.can(web, postgres, 5432)
    garage = cluster.cluster_ip(charts.DATA_NAMESPACE, charts.GARAGE.release)
    assert cluster.can(api, garage, 3900)
    traefik = cluster.pod("kube-system", **{"app.kubernetes.io/name": "traefik"})
    assert cluster.can(traefik, web, 80) and cluster.can(traefik, cluster.service_pod(cluster.blog, "blog"), 2368)


def test_a_tenant_reaches_nothing_else_without_internet_egress(cluster: Cluster) -> None:
    web = cluster.service_pod(cluster.shop, "web")
    blog = cluster.service_pod(cluster.blog, "blog")
    assert not cluster.can(web, blog, 2368)
    assert not cluster.can(web, cluster.cluster_ip(cluster.blog.namespace, "blog"), 2368)
    agent = cluster.pod(manifest.NAMESPACE, **{"app.kubernetes.io/name": manifest.NAME})
    assert not cluster.can(web, agent, manifest.HEALTH_PORT)
    for node in (PUBLIC_NODE_IP, PRIVATE_NODE_IP):
        assert not cluster.can(web, node, 6443) and not cluster.can(web, node, 10250)  # API server, kubelet
    assert not cluster.can(web, "10.43.0.1", 443)
    assert not cluster.can(web, "169.254.169.254", 80)
    assert not cluster.can(web, INTERNET, 443) and not cluster.can(web, "8.8.8.8", 53, "UDP")
    verdict = cluster.sim.can_connect(web, INTERNET, 443)
    assert "egress denied" in verdict.reason and "default-deny" in verdict.reason
    # Platform pods on the tenant's allowed ports are still closed: the port is only open toward the right pods.
    cnpg = cluster.pod("cnpg-system", **{"app.kubernetes.io/name": "cloudnative-pg"})
    assert not cluster.can(web, cnpg, 5432) and not cluster.can(web, cnpg, 443)


def test_the_shared_data_plane_is_open_only_on_its_service_ports(cluster: Cluster) -> None:
    api = cluster.service_pod(cluster.shop, "api")
    postgres = cluster.pod(charts.DATA_NAMESPACE, **{"cnpg.io/cluster": charts.POSTGRES_CLUSTER})
    garage = cluster.pod(charts.DATA_NAMESPACE, **{"app.kubernetes.io/name": "garage"})
    assert cluster.can(api, postgres, 5432) and cluster.can(api, garage, 3900)
    assert not cluster.can(api, postgres, 22) and not cluster.can(api, postgres, 9187)  # ssh, metrics
    assert not cluster.can(api, postgres, 5432, "UDP")
    assert not cluster.can(api, garage, 3901) and not cluster.can(api, garage, 3903)  # RPC, admin API
    assert not cluster.can(api, cluster.cluster_ip(charts.DATA_NAMESPACE, f"{charts.GARAGE.release}-admin"), 3903)


def test_internet_egress_opens_the_internet_and_nothing_private(cluster: Cluster) -> None:
    blog = cluster.service_pod(cluster.blog, "blog")
    assert cluster.can(blog, INTERNET, 443) and cluster.can(blog, "8.8.8.8", 53, "UDP")
    for address in PRIVATE:
        assert not cluster.can(blog, address, 443), address
    # The nodes, whatever their addresses: the API server (also behind 10.43.0.1), the kubelet, any host port.
    assert not cluster.can(blog, "10.43.0.1", 443)
    for node in (PUBLIC_NODE_IP, PRIVATE_NODE_IP):
        assert not cluster.can(blog, node, 6443) and not cluster.can(blog, node, 10250), node
    assert not cluster.can(blog, cluster.service_pod(cluster.shop, "web"), 80)
    assert not cluster.can(blog, cluster.pod(manifest.NAMESPACE, **{"app.kubernetes.io/name": manifest.NAME}),
                           manifest.HEALTH_PORT)
    # The shop's pods stay closed to the internet while the blog's are open.
    assert not cluster.can(cluster.service_pod(cluster.shop, "web"), INTERNET, 443)


def test_nothing_but_traefik_and_the_tenant_itself_gets_in(cluster: Cluster) -> None:
    web = cluster.service_pod(cluster.shop, "web")
    blog = cluster.service_pod(cluster.blog, "blog")
    agent = cluster.pod(manifest.NAMESPACE, **{"app.kubernetes.io/name": manifest.NAME})
    sablier = cluster.pod(charts.SABLIER.target_namespace, **{"app.kubernetes.io/name": "sablier"})
    dns = cluster.pod("kube-system", **{"k8s-app": "kube-dns"})
    postgres = cluster.pod(charts.DATA_NAMESPACE, **{"cnpg.io/cluster": charts.POSTGRES_CLUSTER})
    for outsider in (blog, agent, sablier, dns, postgres):
        verdict = cluster.sim.can_connect(outsider, web, 80)
        assert not verdict and "ingress denied" in verdict.reason, outsider
    # Sablier scales workloads through the API and Traefik asks Sablier, so Sablier needs no way in.
    assert cluster.can(cluster.pod("kube-system", **{"app.kubernetes.io/name": "traefik"}), sablier, 10000)
