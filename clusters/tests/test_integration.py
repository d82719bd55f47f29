"""The whole path with real processes: daphne, the Redis channel layer, a Celery worker, the agent
(`python -m agent`, a subprocess) and kubesim over HTTP."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from agent import protocol as p
from agent.tunnel import EXIT_TOKEN_REJECTED
from clusters import rpc, services
from clusters.models import Cluster, ClusterStatus, DesiredProject
from clusters.tasks import agent_rpc
from paas.testing.agent_account import agent_kubeconfig
from paas.testing.plane import Agents, online, poll
from paas.testing.processes import ManagedProcess

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

NS = "tenant-acme-web"
LABELS = {p.ORGANIZATION_LABEL: "acme", p.PROJECT_LABEL: "web",
          p.PROJECT_UID_LABEL: "4d3c2b1a-0000-4000-8000-000000000001"}


@pytest.fixture
def kubeconfig(kubesim, tmp_path) -> Path:
    """The agent's: its ServiceAccount's token after the install manifest was applied, as on a cluster."""
    return agent_kubeconfig(kubesim, tmp_path / "kubeconfig")


@pytest.fixture
def agents(plane, kubeconfig, tmp_path):
    started = Agents(plane, kubeconfig, tmp_path)
    yield started
    started.stop_all()


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as response:  # noqa: S310
            return response.status == 200
    except urllib.error.HTTPError:
        return False


def exit_code(proc: ManagedProcess, timeout: float = 10) -> int:
    return poll(lambda: proc.proc.poll() is not None, timeout, f"{proc.name} to exit") and proc.proc.returncode


def test_it_registers_a_cluster_from_the_install_manifest_and_connects(plane, agents, kubesim):
    cluster = services.create_cluster("Falkenstein", "apps.example.com")
    secret = services.issue_install_secret(cluster)
    manifest_url = f"{plane.url}/clusters/{cluster.pk}/agent.yaml?secret={secret}"
    with urllib.request.urlopen(manifest_url) as response:  # noqa: S310 (http URL built here)
        docs = list(yaml.safe_load_all(response.read()))
    token = next(d for d in docs if d["kind"] == "Secret")["stringData"]["token"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AGENT_SERVER"] == plane.agent_url

    agent = agents.start(token)
    poll(lambda: online(cluster), what="cluster online")
    assert cluster.kubernetes_version.startswith("v1.")
    assert len(cluster.nodes) >= 1 and all("capacity" in n for n in cluster.nodes)
    assert "apply_project" in cluster.capabilities["ops"]
    # The cluster is marked online just before the welcome reaches the agent: poll readiness.
    poll(lambda: ready(agent.health_port), 5, "/readyz to answer 200")
    assert rpc.call(cluster, "ping", {}, timeout=5)["pong"] is True
    unsupported = pytest.raises(rpc.AgentError, rpc.call, cluster, "reticulate_splines", {}, timeout=5)
    assert unsupported.value.code == p.ERR_UNSUPPORTED

    agent.proc.send_signal(signal.SIGTERM)
    assert exit_code(agent) == 0
    poll(lambda: Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.OFFLINE, what="cluster offline")
    assert "agent stopped (exit status 0)" in agent.output()


def test_it_refuses_a_bad_token_and_the_agent_exits_non_zero(plane, agents):
    cluster = services.create_cluster("Bad token", "x.example.com")
    services.issue_token(cluster)
    agent = agents.start(f"{cluster.pk}.not-the-token")
    assert exit_code(agent) == EXIT_TOKEN_REJECTED
    assert "refused the agent token" in agent.output()
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.PENDING


def test_revoking_disconnects_the_agent_which_exits_non_zero(plane, agents):
    cluster = services.create_cluster("Revoked", "x.example.com")
    agent = agents.start(services.issue_token(cluster))
    poll(lambda: online(cluster), what="cluster online")
    services.revoke_token(cluster)
    assert exit_code(agent) == EXIT_TOKEN_REJECTED
    assert "revoked the agent token" in agent.output()
    with pytest.raises(rpc.AgentOffline):
        rpc.call(cluster, "ping", {}, timeout=2)


def test_a_rotated_token_keeps_the_old_one_working_during_the_grace_period(plane, agents):
    cluster = services.create_cluster("Rotated", "x.example.com")
    old = services.issue_token(cluster)
    new = services.issue_token(cluster)
    first = agents.start(old, "old-token-agent")
    poll(lambda: online(cluster), what="old token accepted")
    first.stop()
    poll(lambda: Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.OFFLINE, what="offline")
    # After the grace period only the new token works.
    Cluster.objects.filter(pk=cluster.pk).update(previous_token_valid_until=cluster.created_at)
    assert exit_code(agents.start(old, "expired-token-agent")) == EXIT_TOKEN_REJECTED
    agents.start(new, "new-token-agent")
    poll(lambda: online(cluster), what="new token accepted")


def test_a_second_agent_replaces_the_first(plane, agents):
    cluster = services.create_cluster("Twice", "x.example.com")
    token = services.issue_token(cluster)
    first = agents.start(token, "first")
    first_session = poll(lambda: online(cluster), what="first online").session_id
    agents.start(token, "second")
    poll(lambda: online(cluster, session_other_than=first_session), what="second session live")
    poll(lambda: "replaced this one" in first.output(), what="first agent told it was replaced")
    assert first.proc.poll() is None  # replaced, not dead: it backs off and would take over if the other went
    assert rpc.call(cluster, "ping", {}, timeout=5)["pong"] is True
    assert cluster.events.filter(kind="replaced").exists()


def test_rpc_from_a_celery_task_and_timeouts_when_the_agent_is_gone(plane, agents, celery_worker, kubesim):
    cluster = services.create_cluster("Celery", "x.example.com")
    agent = agents.start(services.issue_token(cluster))
    poll(lambda: online(cluster), what="cluster online")
    reply = agent_rpc.delay(cluster.pk, "version", {}, 10).get(timeout=20)
    assert reply["result"]["kubernetes_version"].startswith("v1.")

    # A frozen agent keeps its socket open but answers nothing: the call times out, with a clear error.
    os.killpg(agent.proc.pid, signal.SIGSTOP)
    started = time.monotonic()
    with pytest.raises(rpc.AgentTimeout, match="did not answer 'ping' within 1s"):
        rpc.call(cluster, "ping", {}, timeout=1)
    assert time.monotonic() - started < 3
    reply = agent_rpc.delay(cluster.pk, "ping", {}, 1).get(timeout=20)
    assert reply["code"] == "AgentTimeout"
    # The control plane's heartbeat notices the silent peer and marks the cluster offline.
    poll(lambda: Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.OFFLINE, 10, "offline after heartbeats")
    with pytest.raises(rpc.AgentOffline):
        rpc.call(cluster, "ping", {}, timeout=1)
    os.killpg(agent.proc.pid, signal.SIGCONT)
    poll(lambda: online(cluster), 15, "the thawed agent back online")


def test_apply_project_through_the_whole_path(plane, agents, kubesim):
    cluster = services.create_cluster("Apply", "x.example.com")
    agents.start(services.issue_token(cluster))
    poll(lambda: online(cluster), what="cluster online")

    def apply(revision: int, objects: list[dict]) -> dict[str, str]:
        result = rpc.call(cluster, "apply_project", {"namespace": NS, "labels": LABELS, "revision": revision,
                                                     "objects": objects}, timeout=20)
        return {f"{r['kind']}/{r['name']}": r["action"] for r in result["results"]}

    def cm(name: str, value: str) -> dict:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}}

    assert apply(1, [cm("a", "1"), cm("b", "1")]) == {"ConfigMap/a": "created", "ConfigMap/b": "created"}
    assert apply(1, [cm("a", "1"), cm("b", "1")]) == {"ConfigMap/a": "unchanged", "ConfigMap/b": "unchanged"}
    assert apply(2, [cm("a", "2")]) == {"ConfigMap/a": "configured", "ConfigMap/b": "pruned"}
    assert kubesim.get("ConfigMap", NS, "a")["data"] == {"v": "2"}
    assert kubesim.get("ConfigMap", NS, "b") is None
    with pytest.raises(rpc.AgentError) as stale:
        apply(1, [cm("a", "1")])
    assert stale.value.code == p.ERR_STALE_REVISION
    assert kubesim.get("ConfigMap", NS, "a")["data"] == {"v": "2"}
    # Another project (another uid) may neither apply into the namespace nor delete it.
    intruder = {**LABELS, p.PROJECT_UID_LABEL: "4d3c2b1a-0000-4000-8000-000000000002"}
    for op, payload in (("apply_project", {"namespace": NS, "labels": intruder, "revision": 3, "objects": []}),
                        ("delete_project", {"namespace": NS, "labels": intruder})):
        with pytest.raises(rpc.AgentError) as refused:
            rpc.call(cluster, op, payload, timeout=20)
        assert refused.value.code == p.ERR_NOT_OWNED and f"{NS} belongs to another project" in refused.value.message
    with pytest.raises(rpc.AgentError) as anonymous:
        nameless = {k: v for k, v in LABELS.items() if k != p.PROJECT_UID_LABEL}
        rpc.call(cluster, "delete_project", {"namespace": NS, "labels": nameless}, timeout=20)
    assert anonymous.value.code == p.ERR_BAD_REQUEST and p.PROJECT_UID_LABEL in anonymous.value.message
    assert kubesim.get("ConfigMap", NS, "a")["data"] == {"v": "2"}
    assert rpc.call(cluster, "delete_project", {"namespace": NS, "labels": LABELS}, timeout=20)["deleted"] is True


def test_the_agent_reconnects_after_a_control_plane_restart_and_the_cluster_converges(plane, agents, kubesim,
                                                                                      celery_worker):
    cluster = services.create_cluster("Restart", "x.example.com")
    agent = agents.start(services.issue_token(cluster))
    session = poll(lambda: online(cluster), what="cluster online").session_id

    plane.stop()
    # While the control plane is down, a release is recorded; the push finds no agent and is deferred.
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"v": "1"}}
    desired = services.set_desired_project(cluster, NS, LABELS, 1, [config])
    plane.start()

    poll(lambda: online(cluster, session_other_than=session), 20, "agent reconnected by itself")
    assert agent.proc.poll() is None
    poll(lambda: kubesim.get("ConfigMap", NS, "settings"), 15, "desired state re-sent after reconnect")
    poll(lambda: DesiredProject.objects.get(pk=desired.pk).applied_revision == 1, 10, "apply recorded")


def test_set_desired_project_pushes_through_celery(plane, agents, kubesim, celery_worker):
    cluster = services.create_cluster("Push", "x.example.com")
    agents.start(services.issue_token(cluster))
    poll(lambda: online(cluster), what="cluster online")
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pushed"}, "data": {"v": "1"}}
    desired = services.set_desired_project(cluster, NS, LABELS, 3, [config])
    poll(lambda: kubesim.get("ConfigMap", NS, "pushed"), 15, "pushed by the Celery task")
    poll(lambda: DesiredProject.objects.get(pk=desired.pk).applied_revision == 3, 10, "apply recorded")
    assert DesiredProject.objects.get(pk=desired.pk).last_result["results"][0]["action"] in ("created", "unchanged")


def test_observed_state_reaches_the_browser(plane, agents, kubesim, operator):
    import asyncio

    from django.test import Client
    from websockets.asyncio.client import connect

    cluster = services.create_cluster("Observed", "x.example.com")
    agents.start(services.issue_token(cluster))
    poll(lambda: online(cluster), what="cluster online")
    browser = Client()
    browser.force_login(operator)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}]}}}}

    async def watch_page() -> dict:
        async with connect(f"ws://127.0.0.1:{plane.port}/ws/clusters/{cluster.slug}/",
                           additional_headers={"Cookie": cookie, "Origin": plane.url}) as ws:
            await asyncio.to_thread(rpc.call, cluster, "apply_project",
                                    {"namespace": NS, "labels": LABELS, "revision": 1, "objects": [deployment]}, 20)
            async with asyncio.timeout(20):
                while True:
                    message = json.loads(await ws.recv())
                    state = message["data"].get("state") or {}
                    web = state.get("deployments", {}).get("web", {})
                    if message["event"] == "cluster.observed" and web.get("rollout") == "complete":
                        return state

    state = asyncio.run(watch_page())
    assert state["deployments"]["web"]["ready"] == 1
    stored = poll(lambda: cluster.observed_projects.filter(namespace=NS).first(), 5, "observed state stored")
    assert stored.state["deployments"]["web"]["rollout"] == "complete"


def test_a_stream_carries_bytes_both_ways_with_flow_control(plane, agents):
    import asyncio

    cluster = services.create_cluster("Streams", "x.example.com")
    agents.start(services.issue_token(cluster))
    poll(lambda: online(cluster), what="cluster online")
    payload = os.urandom(3 * p.DEFAULT_STREAM_WINDOW)  # more than one window each way: needs credit to finish

    async def echo() -> bytes:
        stream = await rpc.open_stream(cluster, "echo", {})
        received = b""

        async def reader() -> None:
            nonlocal received
            while len(received) < len(payload):
                chunk = await stream.recv(timeout=10)
                assert chunk is not None
                received += chunk

        read = asyncio.create_task(reader())
        for i in range(0, len(payload), 64 * 1024):
            await stream.send(payload[i : i + 64 * 1024])
        await asyncio.wait_for(read, 20)
        await stream.close()
        return received

    assert asyncio.run(echo()) == payload


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a Prometheus text page, by (name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url) as response:  # noqa: S310 (http URL built here)
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_agent_reports_its_tunnel_applies_and_reconnects_on_metrics(plane, agents, kubesim):
    cluster = services.create_cluster("Metrics", "x.example.com")
    agent = agents.start(services.issue_token(cluster))
    poll(lambda: online(cluster), what="cluster online")
    metrics_url = f"http://127.0.0.1:{agent.health_port}/metrics"
    poll(lambda: scrape(metrics_url)[("paas_agent_tunnel_connected", ())] == 1, 5, "tunnel reported up")
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "m"}, "data": {"v": "1"}}
    rpc.call(cluster, "apply_project", {"namespace": NS, "labels": LABELS, "revision": 1, "objects": [config]},
             timeout=20)
    with pytest.raises(rpc.AgentError):  # an older revision is refused, and counted as such
        rpc.call(cluster, "apply_project", {"namespace": NS, "labels": LABELS, "revision": 0, "objects": [config]},
                 timeout=20)
    samples = scrape(metrics_url)
    assert samples[("paas_agent_apply_seconds_count", (("outcome", "ok"),))] == 1
    assert samples[("paas_agent_apply_seconds_count", (("outcome", "stale"),))] == 1
    assert samples[("paas_agent_reconnects_total", ())] == 0

    plane.stop()
    poll(lambda: scrape(metrics_url)[("paas_agent_tunnel_connected", ())] == 0, 10, "tunnel reported down")
    poll(lambda: scrape(metrics_url)[("paas_agent_reconnects_total", ())] >= 1, 10, "reconnect attempts counted")
    plane.start()
    poll(lambda: scrape(metrics_url)[("paas_agent_tunnel_connected", ())] == 1, 20, "tunnel back up")
