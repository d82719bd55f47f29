"""Bootstrap against kubesim's simulated K3s Helm controller: from a bare cluster to every component ready.

The endpoint checks are real: PostgreSQL's is the machine's server (127.0.0.1:5432, standing in for the
CNPG `-rw` Service), Garage's admin API is the documented double on loopback. kubesim has no CNPG
operator, so `play_cnpg_operator` does the operator's visible part (status, superuser Secret).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from agent import bootstrap as b
from agent import charts
from agent.data import services
from conftest import skip_or_fail
from kubesim.schema import validate_object
from paas.testing import cnpg
from paas.testing.agent_account import admin_kube

SUPERUSER_PASSWORD = "not-checked-by-trust-auth"  # noqa: S105


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def local_postgres() -> None:
    try:
        psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc})")


@pytest.fixture
def bare_k3s(kube, kubesim) -> Any:
    """A fresh cluster as K3s leaves it: its packaged Traefik chart, nothing of ours (and the agent's `kube`)."""
    admin_kube(kubesim).apply(b.HELMCHART, {"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart",
                             "metadata": {"name": "traefik", "namespace": "kube-system"},
                             "spec": {"chart": "https://%{KUBERNETES_API}%/static/charts/traefik-37.1.1.tgz",
                                      "targetNamespace": "kube-system"}}, "kube-system")
    return kube


@pytest.fixture
def boot(bare_k3s, double, local_postgres) -> b.Bootstrapper:
    # The admin token Secret exists already (e.g. from an earlier agent): bootstrap must keep it, so the
    # double, which holds the same token, answers.
    bare_k3s.apply(b.NAMESPACE, b.data_namespace())
    bare_k3s.apply(services.SECRET, services.secret_object(charts.DATA_NAMESPACE, charts.GARAGE_ADMIN_SECRET,
                                                           {"token": double.token}, {}), charts.DATA_NAMESPACE)
    endpoints = services.Endpoints(postgres_host="127.0.0.1", postgres_port=5432, garage_admin_url=double.url)
    return b.Bootstrapper(bare_k3s, endpoints, interval=0.02, backoff_base=30.0, clock=Clock())


def play_cnpg_operator(kubesim, *, archiving: bool = True) -> None:
    """What the CloudNativePG operator would do for our Cluster: run it, publish the superuser Secret, and
    (with `archiving`) archive WAL and take the ScheduledBackup's immediate base backup."""
    kube = admin_kube(kubesim)  # the operator's own identity, not the agent's
    cluster = kube.get(b.PG_CLUSTER, charts.POSTGRES_CLUSTER, charts.DATA_NAMESPACE)
    if cluster is None:
        return
    if archiving:
        play_cnpg_backups(kubesim)
    if (cluster.get("status") or {}).get("readyInstances"):
        return
    if kube.get(services.SECRET, charts.POSTGRES_SUPERUSER_SECRET, charts.DATA_NAMESPACE) is None:
        kube.apply(services.SECRET, services.secret_object(
            charts.DATA_NAMESPACE, charts.POSTGRES_SUPERUSER_SECRET,
            {"username": "postgres", "password": SUPERUSER_PASSWORD}, {"cnpg.io/userType": "superuser"}),
            charts.DATA_NAMESPACE)
    kube.request("PATCH", b.PG_CLUSTER.item(charts.POSTGRES_CLUSTER, charts.DATA_NAMESPACE) + "/status",
                 body={"status": {"instances": 1, "readyInstances": cluster["spec"]["instances"],
                                  "phase": "Cluster in healthy state"}},
                 content_type="application/merge-patch+json")


def set_cluster_condition(kubesim, ctype: str, status: str, reason: str, message: str = "") -> None:
    cnpg.set_cluster_condition(admin_kube(kubesim), ctype, status, reason, message)


def play_cnpg_backups(kubesim) -> None:
    cnpg.play_cnpg_backups(admin_kube(kubesim))


def drive(kubesim, boot: b.Bootstrapper, until: Callable[[dict[str, b.Status]], bool], *, passes: int = 200,
          operator: bool = True) -> dict[str, b.Status]:
    """Run passes (giving the simulated controllers time in between) until `until` holds."""
    statuses: dict[str, b.Status] = {}
    for _ in range(passes):
        statuses = boot.run_pass()
        if until(statuses):
            return statuses
        if operator:
            play_cnpg_operator(kubesim)
        time.sleep(0.02)
    raise AssertionError(f"not reached after {passes} passes: "
                         f"{ {c: (s.state, s.reason) for c, s in statuses.items()} }")


def all_ready(statuses: dict[str, b.Status]) -> bool:
    return all(s.state == b.READY for s in statuses.values())


def ours(kubesim) -> list[dict[str, Any]]:
    """Every object bootstrap applied (HelmCharts, the HelmChartConfig, the Cluster, Secrets, ConfigMap...)."""
    found = []
    for kind in ("HelmChart", "HelmChartConfig", "Cluster.postgresql.cnpg.io", "ScheduledBackup", "ConfigMap",
                 "Secret", "Namespace"):
        for obj in kubesim.list(kind):
            if (obj["metadata"].get("labels") or {}).get("app.kubernetes.io/part-of") == "paas":
                found.append(obj)
    return found


def versions(kubesim) -> dict[tuple[str, str, str], str]:
    out = {}
    for kind in ("HelmChart", "HelmChartConfig", "Cluster.postgresql.cnpg.io", "ScheduledBackup", "ConfigMap",
                 "Secret", "Job", "Deployment", "Namespace"):
        for obj in kubesim.list(kind):
            meta = obj["metadata"]
            out[(kind, meta.get("namespace", ""), meta["name"])] = meta["resourceVersion"]
    return out


def values_of(kubesim, kind: str, name: str) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(kubesim.get(kind, "kube-system", name)["spec"]["valuesContent"])


# --- from bare to ready -------------------------------------------------------------------------------


def test_it_drives_a_bare_cluster_to_every_component_ready(kubesim, boot, double):
    statuses = drive(kubesim, boot, all_ready)
    assert set(statuses) == set(b.COMPONENTS)
    assert "accepts superuser connections" in statuses["postgres"].reason
    assert "layout version 1" in statuses["garage"].reason
    assert double.layout_applied and double.nodes[0]["role"]["capacity"] == 10 * 1024**3
    charts_by_name = {c["metadata"]["name"]: c for c in kubesim.list("HelmChart", "kube-system")}
    assert charts_by_name["cnpg"]["spec"]["version"] == charts.CNPG.version == "0.29.0"
    assert charts_by_name["sablier"]["spec"]["repo"] == "https://sablierapp.github.io/helm-charts"
    assert charts_by_name["garage"]["spec"]["chartContent"] == charts.garage_chart_content()
    cluster = kubesim.get("Cluster.postgresql.cnpg.io", "paas-data", "paas-postgres")
    assert cluster["spec"]["enableSuperuserAccess"] is True
    for component, status in statuses.items():
        assert status.version == charts.versions()[component]


def test_it_applies_only_objects_that_validate_against_the_schemas(kubesim, boot):
    drive(kubesim, boot, all_ready)
    applied = ours(kubesim)
    assert {o["kind"] for o in applied} == {"HelmChart", "HelmChartConfig", "Cluster", "ScheduledBackup", "ConfigMap",
                                            "Secret", "Namespace"}
    for obj in applied:
        clean = {k: v for k, v in obj.items() if k != "status"}
        clean["metadata"] = {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "labels")}
        assert validate_object(clean) == [], (obj["kind"], obj["metadata"]["name"])


def test_it_configures_traefik_for_sablier_and_the_ingress_nodes(kubesim, boot):
    drive(kubesim, boot, lambda s: s["traefik"].state == b.READY)
    values = values_of(kubesim, "HelmChartConfig", "traefik")
    assert values["providers"] == {"kubernetesIngress": {"allowEmptyServices": True},
                                   "kubernetesCRD": {"allowEmptyServices": True}}
    assert values["experimental"]["plugins"]["sablier"] == {
        "moduleName": "github.com/sablierapp/sablier-traefik-plugin", "version": "v1.3.1"}
    assert values["nodeSelector"] == {"ingress-ready": "true"}
    assert "tolerations" not in values  # would replace K3s's own list


def test_it_does_not_pin_traefik_when_no_node_is_labelled(kubesim, boot):
    node = boot.kube.get(b.NODE, "kubesim-node-0")
    labels = {k: v for k, v in node["metadata"]["labels"].items() if k != "ingress-ready"}
    admin_kube(kubesim).request("PATCH", b.NODE.item("kubesim-node-0"),
                                body={"metadata": {"labels": {"ingress-ready": None}}},
                                content_type="application/merge-patch+json")
    assert "ingress-ready" not in boot.kube.get(b.NODE, "kubesim-node-0")["metadata"]["labels"]
    assert labels
    boot.run_pass()
    assert "nodeSelector" not in values_of(kubesim, "HelmChartConfig", "traefik")


def test_it_shows_traefik_failed_when_k3s_runs_without_it(kubesim, boot):
    admin_kube(kubesim).delete(b.HELMCHART, "traefik", "kube-system")
    kubesim.wait_for(lambda: kubesim.get("HelmChart", "kube-system", "traefik") is None)
    statuses = drive(kubesim, boot, lambda s: all(s[c].state == b.READY for c in ("cnpg", "sablier", "garage",
                                                                                  "postgres")))
    assert statuses["traefik"].state == b.FAILED
    assert "--disable=traefik" in statuses["traefik"].reason


# --- idempotence, drift, failures, restarts ----------------------------------------------------------------


def test_it_changes_nothing_on_a_second_run(kubesim, boot):
    drive(kubesim, boot, all_ready)
    kubesim.wait_for(lambda: True)
    before = versions(kubesim)
    again = b.Bootstrapper(boot.kube, boot.endpoints, clock=boot.clock).run_pass()
    assert all_ready(again)
    assert versions(kubesim) == before


def test_it_puts_a_drifted_chart_back_and_waits_for_the_new_install(kubesim, boot):
    drive(kubesim, boot, all_ready)
    old_job = kubesim.get("Job", "kube-system", "helm-install-cnpg")["metadata"]["uid"]
    admin_kube(kubesim).request("PATCH", b.HELMCHART.item("cnpg", "kube-system"),
                                body={"spec": {"version": "0.1.0"}}, content_type="application/merge-patch+json")
    statuses = boot.run_pass()
    assert statuses["cnpg"].state == b.INSTALLING
    assert kubesim.get("HelmChart", "kube-system", "cnpg")["spec"]["version"] == "0.29.0"
    drive(kubesim, boot, all_ready)
    assert kubesim.get("Job", "kube-system", "helm-install-cnpg")["metadata"]["uid"] != old_job


def test_it_shows_a_failed_chart_and_retries_it_with_backoff(kubesim, boot):
    kubesim.fail_helm_chart("kube-system", "sablier")
    statuses = drive(kubesim, boot, lambda s: s["sablier"].state == b.FAILED and "retrying in" in s["sablier"].reason)
    failed = statuses["sablier"]
    assert failed.attempt == 1
    assert "helm install failed" in failed.reason
    assert any("INSTALLATION FAILED" in line for line in failed.logs), failed.logs
    assert any(line.startswith("+ helm_v3 install") for line in failed.logs)
    first_job = kubesim.get("Job", "kube-system", "helm-install-sablier")["metadata"]["uid"]

    # Before the backoff is over nothing is retried, however many passes run.
    for _ in range(3):
        assert boot.run_pass()["sablier"].state == b.FAILED
    assert kubesim.get("Job", "kube-system", "helm-install-sablier")["metadata"]["uid"] == first_job

    # The cause goes away; once the backoff is over, the Job is replaced and the chart installs.
    kubesim.fail_helm_chart("kube-system", "sablier", fail=False)
    boot.clock.now += 31
    assert "retrying now" in boot.run_pass()["sablier"].reason
    statuses = drive(kubesim, boot, all_ready)
    assert kubesim.get("Job", "kube-system", "helm-install-sablier")["metadata"]["uid"] != first_job
    assert statuses["sablier"].attempt == 0  # reset once ready


def test_it_doubles_the_backoff_between_attempts(kubesim, boot):
    kubesim.fail_helm_chart("kube-system", "sablier")
    delays = []
    for attempt in (1, 2, 3):
        status = drive(kubesim, boot, lambda s, n=attempt: s["sablier"].state == b.FAILED
                       and s["sablier"].attempt == n and "retrying in" in s["sablier"].reason)["sablier"]
        delays.append(int(re.search(r"retrying in (\d+)s", status.reason)[1]))
        boot.clock.now += delays[-1] + 1
        boot.run_pass()  # deletes the failed Job
    assert delays == [30, 60, 120]


def test_it_continues_where_it_stopped_after_an_agent_restart(kubesim, boot):
    kubesim.configure_controllers(enabled=False, only=["helm"])  # the installs hang mid-way
    first = drive(kubesim, boot, lambda s: s["cnpg"].state == b.INSTALLING and s["garage"].state == b.INSTALLING)
    assert first["postgres"].state == b.PENDING
    charts_before = {c["metadata"]["name"]: c for c in kubesim.list("HelmChart", "kube-system")}
    token = kubesim.get("Secret", "paas-data", charts.GARAGE_RPC_SECRET)["data"]
    kube, endpoints, clock = boot.kube, boot.endpoints, boot.clock
    del boot  # the agent process dies; nothing it held in memory survives

    kubesim.configure_controllers(enabled=True, only=["helm"])  # it catches up with the charts it missed
    restarted = b.Bootstrapper(kube, endpoints, interval=0.02, backoff_base=30.0, clock=clock)
    drive(kubesim, restarted, all_ready)
    for name, chart in charts_before.items():
        now = kubesim.get("HelmChart", "kube-system", name)
        assert now["metadata"]["uid"] == chart["metadata"]["uid"]
        assert now["metadata"]["generation"] == chart["metadata"]["generation"]  # not re-applied
    assert kubesim.get("Secret", "paas-data", charts.GARAGE_RPC_SECRET)["data"] == token


# --- TLS: cert-manager and the ACME ClusterIssuer -------------------------------------------------------------


def test_with_an_acme_email_tls_is_ready_only_once_the_cluster_issuer_is(kubesim, boot):
    boot.store_settings({"acme_email": "ops@example.com"})
    drive(kubesim, boot, lambda s: "waiting for it to register" in s["tls"].reason)
    chart = kubesim.get("HelmChart", "kube-system", "cert-manager")
    assert chart["spec"]["repo"] == "https://charts.jetstack.io" and chart["spec"]["version"] == "v1.21.1"
    assert values_of(kubesim, "HelmChart", "cert-manager") == {"crds": {"enabled": True}}
    issuer = kubesim.get("ClusterIssuer", None, "paas-acme")
    assert issuer["spec"]["acme"] == {
        "email": "ops@example.com", "server": "https://acme-staging-v02.api.letsencrypt.org/directory",
        "privateKeySecretRef": {"name": "paas-acme-account-key"},
        "solvers": [{"http01": {"ingress": {"ingressClassName": "traefik"}}}]}
    assert validate_object({k: v for k, v in issuer.items() if k not in ("status", "metadata")}
                           | {"metadata": {"name": "paas-acme"}}) == []

    kubesim.set_cert_manager_condition("ClusterIssuer", None, "paas-acme", "Ready", "False", "ErrRegisterACMEAccount",
                                       "Failed to register ACME account: 400 urn:ietf:params:acme:error:invalidContact")
    failed = boot.run_pass()["tls"]
    assert failed.state == b.FAILED and "invalidContact" in failed.reason
    kubesim.set_cert_manager_condition("ClusterIssuer", None, "paas-acme", "Ready", "True", "ACMEAccountRegistered",
                                       "The ACME account was registered with the ACME server")
    ready = boot.run_pass()["tls"]
    assert ready.state == b.READY
    assert ready.reason == "ClusterIssuer paas-acme ready: The ACME account was registered with the ACME server"


def test_without_an_acme_email_cert_manager_is_installed_and_no_issuer_is_made(kubesim, boot):
    statuses = drive(kubesim, boot, lambda s: s["tls"].state == b.READY)
    assert "no ACME e-mail is set" in statuses["tls"].reason
    assert kubesim.get("HelmChart", "kube-system", "cert-manager") is not None
    assert kubesim.list("ClusterIssuer") == []


def test_it_refuses_an_acme_server_that_is_not_https(boot):
    with pytest.raises(ValueError, match="must be an https:// ACME directory URL"):
        boot.store_settings({"acme_email": "ops@example.com", "acme_server": "http://acme.example/directory"})
