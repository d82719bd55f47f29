"""Observed state: the agent's watches over kubesim's simulated kubelet and deployment controller."""

from __future__ import annotations

import asyncio
from typing import Any

from agent import reconcile
from agent.observe import Observer, deployment_summary
from agent.tests.test_reconcile import LABELS, NS, deployment


async def collect_until(observer: Observer, published: list, predicate, timeout: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            for item in reversed(published):
                if item["namespace"] == NS and item["state"] and predicate(item["state"]):
                    return item["state"]
            await asyncio.sleep(0.05)


async def test_it_reports_rollouts_and_waiting_reasons(kube):
    published: list[dict] = []

    async def publish(kind: str, data: dict) -> bool:
        assert kind == "observed"
        published.append(data)
        return True

    observer = Observer(kube, publish, debounce=0.05, watch_timeout=5)
    task = asyncio.create_task(observer.run())
    try:
        objects = [deployment("web", replicas=2), deployment("broken", image="example/does-not-exist:pull-fail")]
        await asyncio.to_thread(reconcile.apply_project, kube, NS, LABELS, 1, objects)
        # The pull failure's Warning event may reach a later summary than the pods' waiting reason.
        state = await collect_until(observer, published, lambda s: s["deployments"].get("web", {}).get("rollout")
                                    == "complete" and len(s["pods"]) == 3 and any(p["waiting"] for p in
                                                                                 s["pods"].values())
                                    and any(e["type"] == "Warning" for e in s["events"]))
        assert state["deployments"]["web"]["ready"] == 2
        assert state["deployments"]["broken"]["rollout"] == "progressing"
        assert {p["waiting"] for p in state["pods"].values()} == {None, "ImagePullBackOff"}
        assert any(e["type"] == "Warning" for e in state["events"])
        # After a reconnect everything is sent again, unchanged.
        published.clear()
        await observer.resend_all()
        assert [p["namespace"] for p in published] == [NS]
        # Scaling to zero shows as such.
        await asyncio.to_thread(reconcile.apply_project, kube, NS, LABELS, 2, [deployment("web", replicas=0)])
        state = await collect_until(observer, published, lambda s: s["deployments"].get("web", {}).get("rollout")
                                    == "scaled-to-zero" and "broken" not in s["deployments"])
    finally:
        task.cancel()


def test_a_rollout_is_not_complete_while_old_pods_still_serve_and_new_ones_are_not_ready():
    # kubesim's (and Kubernetes') status while a new ReplicaSet's pod is still Pending: the old pod is the
    # ready and available one. Counting it made a release whose new image cannot be pulled go live.
    mid = {"metadata": {"name": "web", "generation": 2, "labels": {"paas.dev/revision": "2"}},
           "spec": {"replicas": 1},
           "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "readyReplicas": 1,
                      "availableReplicas": 1}}
    summary = deployment_summary(mid)
    assert summary["rollout"] == "progressing" and summary["revision"] == "2"
    done = {**mid, "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
                              "availableReplicas": 1}}
    assert deployment_summary(done)["rollout"] == "complete"


async def test_it_reports_certificates_as_cert_manager_sets_them(kube, kubesim):
    published: list[dict] = []

    async def publish(kind: str, data: dict) -> bool:
        published.append(data)
        return True

    certificate = {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "web"},
                   "spec": {"secretName": "tlsweb", "dnsNames": ["web.apps.example.com", "www.example.com"],
                            "issuerRef": {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "paas-acme"}}}
    observer = Observer(kube, publish, debounce=0.05, watch_timeout=5)
    task = asyncio.create_task(observer.run())
    try:
        await asyncio.to_thread(reconcile.apply_project, kube, NS, LABELS, 1, [certificate])
        state = await collect_until(observer, published, lambda s: "web" in s.get("certificates", {}))
        assert state["certificates"]["web"] | {"not_after": None} == {
            "ready": "Unknown", "failed": False, "reason": "", "message": "", "not_after": None,
            "dns_names": ["web.apps.example.com", "www.example.com"]}
        await asyncio.to_thread(kubesim.set_cert_manager_condition, "Certificate", NS, "web", "Issuing", "False",
                                "Failed", "The certificate request has failed to complete and will be retried")
        state = await collect_until(observer, published, lambda s: s["certificates"]["web"]["failed"])
        assert state["certificates"]["web"]["message"].startswith("The certificate request has failed")
        await asyncio.to_thread(kubesim.set_cert_manager_condition, "Certificate", NS, "web", "Issuing", "True",
                                "Issuing", "Issuing certificate as Secret does not exist")
        await asyncio.to_thread(kubesim.set_cert_manager_condition, "Certificate", NS, "web", "Ready", "True",
                                "Ready", "Certificate is up to date and has not expired")
        state = await collect_until(observer, published, lambda s: s["certificates"]["web"]["ready"] == "True")
        assert state["certificates"]["web"]["message"] == "Certificate is up to date and has not expired"
    finally:
        task.cancel()
