"""PostgreSQL client programs exec'd in a PostgreSQL image run for real (kubesim.pgclient), with the container's
environment built from its env, key references and envFrom; and a run-to-completion pod running `sleep N`."""

from __future__ import annotations

import base64
import time

import psycopg
import pytest
from kubernetes import client
from kubernetes.stream import stream

from kubesim.testing import KubeSim

DB_HOST = "db.data.svc.cluster.local"


@pytest.fixture
def core(kube_api: client.ApiClient) -> client.CoreV1Api:
    try:
        psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc})")
    return client.CoreV1Api(kube_api)


def _wait_phase(kubesim: KubeSim, name: str, phase: str, timeout: float = 5) -> None:
    kubesim.wait_for(lambda: (kubesim.get("Pod", "default", name) or {}).get("status", {}).get("phase") == phase,
                     timeout)


def test_psql_runs_with_the_env_the_kubelet_would_give_the_container(kubesim: KubeSim, core) -> None:
    core.create_namespaced_secret("default", {"metadata": {"name": "db"}, "data": {
        "PGUSER": base64.b64encode(b"postgres").decode(), "PGDATABASE": base64.b64encode(b"postgres").decode()}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "app"}, "data": {"name": "from-configmap"}})
    core.create_namespaced_pod("default", {"metadata": {"name": "pg"}, "spec": {"containers": [{
        "name": "pg", "image": "ghcr.io/cloudnative-pg/postgresql:18.1-standard-trixie",
        "envFrom": [{"secretRef": {"name": "db"}}],
        "env": [{"name": "PGHOST", "value": DB_HOST},
                {"name": "PGAPPNAME", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "name"}}}]}]}})
    _wait_phase(kubesim, "pg", "Running")
    kubesim.set_cluster_dns(DB_HOST, "127.0.0.1")

    def psql(sql: str) -> str:
        return stream(core.connect_get_namespaced_pod_exec, "pg", "default", command=["psql", "-tAc", sql],
                      stdin=False, stdout=True, stderr=True, tty=False)

    assert psql("SELECT current_user, current_database(), current_setting('application_name')").strip() == \
        "postgres|postgres|from-configmap"
    # Without the DNS entry the in-cluster name resolves nowhere, as outside a cluster.
    kubesim.set_cluster_dns(DB_HOST, None)
    assert "could not translate host name" in psql("SELECT 1")


def test_other_images_and_programs_keep_the_built_in_shell(kubesim: KubeSim, core) -> None:
    core.create_namespaced_pod("default", {"metadata": {"name": "web"}, "spec": {"containers": [{
        "name": "web", "image": "nginx:1.27"}]}})
    _wait_phase(kubesim, "web", "Running")
    out = stream(core.connect_get_namespaced_pod_exec, "web", "default", command=["psql", "-c", "SELECT 1"],
                 stdin=False, stdout=True, stderr=True, tty=False)
    assert "psql: not found" in out


def test_a_run_to_completion_pod_running_sleep_runs_that_long(kubesim: KubeSim, core) -> None:
    # Timed from creation: the moment a poll first sees Running can lag the start by a poll interval or more.
    created = time.monotonic()
    core.create_namespaced_pod("default", {"metadata": {"name": "nap"}, "spec": {"restartPolicy": "Never",
                                                                                 "containers": [{
        "name": "nap", "image": "busybox:1.36", "command": ["sleep", "1.5"]}]}})
    _wait_phase(kubesim, "nap", "Running")
    _wait_phase(kubesim, "nap", "Succeeded", timeout=10)
    assert time.monotonic() - created >= 1.4
