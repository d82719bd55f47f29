"""Namespace defaults, K3s's ServiceLB (LoadBalancer status), Traefik's Ingress status, local-path PVCs."""

from __future__ import annotations

from typing import Any

from kubesim.controllers.base import Controller

INGRESS_IP = "172.18.0.2"  # the ingress-ready node's InternalIP


class NamespaceDefaultsController(Controller):
    """Every namespace gets the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap."""

    name = "namespace-defaults"
    manager = "kube-controller-manager"
    primary = ("", "namespaces")

    def reconcile(self, namespace: str, name: str) -> None:
        self.cluster.ensure_namespace_defaults(name, self.manager)


class ServiceLBController(Controller):
    name = "servicelb"
    manager = "k3s-servicelb"
    primary = ("", "services")

    def reconcile(self, namespace: str, name: str) -> None:
        rt = self.rt("v1", "Service")
        svc = self.fetch(rt, namespace, name)
        if svc is None or svc["spec"].get("type") != "LoadBalancer":
            return
        ports = [{"port": p["port"], "protocol": p.get("protocol", "TCP")} for p in svc["spec"].get("ports") or []]
        self.write_status(rt, svc, {"loadBalancer": {"ingress": [{"ip": INGRESS_IP, "ipMode": "VIP",
                                                                  "ports": ports}]}})


class IngressController(Controller):
    name = "ingress"
    manager = "traefik"
    primary = ("networking.k8s.io", "ingresses")

    def reconcile(self, namespace: str, name: str) -> None:
        rt = self.rt("networking.k8s.io/v1", "Ingress")
        ing = self.fetch(rt, namespace, name)
        if ing is None:
            return
        self.write_status(rt, ing, {"loadBalancer": {"ingress": [{"ip": INGRESS_IP}]}})


class VolumeController(Controller):
    """local-path: a PVC is Bound to a fresh PersistentVolume name with the requested capacity."""

    name = "volumes"
    manager = "local-path-provisioner"
    primary = ("", "persistentvolumeclaims")

    def reconcile(self, namespace: str, name: str) -> None:
        rt = self.rt("v1", "PersistentVolumeClaim")
        pvc = self.fetch(rt, namespace, name)
        if pvc is None or (pvc.get("status") or {}).get("phase") == "Bound":
            return
        volume = f"pvc-{pvc['metadata']['uid']}"
        if pvc["spec"].get("volumeName") != volume:
            pvc["spec"]["volumeName"] = volume
            pvc["spec"].setdefault("storageClassName", "local-path")
            pvc = self.cluster.write(rt, pvc, "kube-controller-manager")
        requests: dict[str, Any] = ((pvc["spec"].get("resources") or {}).get("requests") or {})
        self.write_status(rt, pvc, {"phase": "Bound", "accessModes": pvc["spec"].get("accessModes", []),
                                    "capacity": {"storage": requests.get("storage", "1Gi")}})
