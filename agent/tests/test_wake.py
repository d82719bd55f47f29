"""The agent's `wake` operation against kubesim and its Sablier stand-in, over HTTP: it wakes a managed,
sleeping-enabled Deployment through Sablier's blocking strategy (Sablier scales it, with its own field
manager) and refuses everything else."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from agent import reconcile
from agent.handlers import build_ops
from agent.ops import OpError
from agent.tests.test_reconcile import LABELS, NS, deployment
from kubesim.testing import KubeSim


@pytest.fixture(scope="module")
def _kubesim_server() -> Iterator[KubeSim]:
    sim = KubeSim(controllers=True, preload_crds=True, sablier=True, sablier_expiry_interval=0.1)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def wake(kube, kubesim, monkeypatch):
    monkeypatch.setenv("AGENT_SABLIER_URL", kubesim.sablier_url)
    op = build_ops(kube)["wake"]
    return lambda **payload: asyncio.run(op({"namespace": NS, "session_duration": "1m", "timeout": 10, **payload}))


def sleeper(name: str, *, sleeps: bool = True) -> dict:
    obj = deployment(name, replicas=0)
    if sleeps:
        obj["metadata"]["labels"] = {"sablier.enable": "true", "sablier.group": f"{NS}-{name}"}
    return obj


def test_it_wakes_a_sleeping_deployment_through_sablier(kube, kubesim, wake):
    reconcile.apply_project(kube, NS, LABELS, 1, [sleeper("web")])
    assert wake(deployment="web") == {"group": f"{NS}-web", "ready": True}
    web = kubesim.get("deployments", NS, "web")
    assert web["spec"]["replicas"] == 1 and web["status"]["readyReplicas"] == 1
    assert any(f["manager"] == "sablier" for f in web["metadata"]["managedFields"]), "Sablier scaled it, not us"


def test_it_refuses_what_does_not_sleep_or_is_not_managed(kube, kubesim, wake):
    reconcile.apply_project(kube, NS, LABELS, 1, [sleeper("worker", sleeps=False)])
    with pytest.raises(OpError, match="does not sleep when idle"):
        wake(deployment="worker")
    with pytest.raises(OpError, match="no managed deployment nothing-here"):
        wake(deployment="nothing-here")
    with pytest.raises(OpError, match="'timeout' must be an int between 1 and 600"):
        wake(deployment="worker", timeout=0)
    assert kubesim.get("deployments", NS, "worker")["spec"]["replicas"] == 0


def test_a_workload_that_cannot_start_is_reported_not_waited_for(kube, kubesim, wake):
    reconcile.apply_project(kube, NS, LABELS, 1, [
        {**sleeper("web"), "spec": {**sleeper("web")["spec"], "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "main", "image": "ghcr.io/acme/web:crash"}]}}}}])
    result = wake(deployment="web")
    assert result["ready"] is False and "CrashLoopBackOff" in result["error"]
