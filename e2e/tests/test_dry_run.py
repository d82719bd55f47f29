"""bin/e2e-k3s --dry-run end to end: the script (a real process) against kubesim, with the control plane as real
daphne and Celery worker processes, the agent as a process of its own, and the local PostgreSQL as the shared one."""

from __future__ import annotations

import os
import subprocess

import psycopg
import pytest

from accounts.services import create_api_token, create_organization
from agent import protocol
from agent.data.postgres import names_for
from clusters.infrastructure import COMPONENT_ORDER
from clusters.models import Cluster, ClusterStatus
from conftest import make_user, skip_or_fail
from e2e.__main__ import main, parse_args
from paas.testing.processes import BASE_DIR, free_port
from projects.models import Project

STEPS = ["1 register cluster", "2 apply install manifest", "3 agent connected, bootstrap done",
         "4 deploy compose with database", "5a fetch public URL", "5b wake from zero",
         "6a pod logs as the agent", "6b pod exec as the agent", "7 delete project"]


def result_of(output: str, step: str) -> str:
    """The result column of the step's row in the table: ok, skipped (why), FAILED or not run."""
    line = next(line for line in output.splitlines() if line.startswith(step + "  "))
    return line[len(step):].split(None, 1)[1]


def local_postgres() -> psycopg.Connection:
    try:
        return psycopg.connect(host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True,
                               connect_timeout=3)
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({exc})")
        raise


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_dry_run_passes_every_step_against_kubesim(plane, celery_worker):  # noqa: F811
    pg = local_postgres()
    operator = make_user("olga@example.com")
    operator.is_staff = True
    operator.save()
    user = make_user("uma@example.com")
    org = create_organization(user, "E2E Org")
    env = dict(os.environ, PAAS_URL=plane.url, PAAS_OPERATOR_TOKEN=create_api_token(operator, "e2e")[1],
               PAAS_USER_TOKEN=create_api_token(user, "e2e")[1], PAAS_ORG=org.slug,
               KUBECONFIG="/nonexistent/a-real-cluster")  # ignored by --dry-run, which starts kubesim

    run = subprocess.run([str(BASE_DIR / "bin" / "e2e-k3s"), "--dry-run", "--bootstrap-timeout", "120",
                          "--deploy-timeout", "120"], env=env, capture_output=True,
                         text=True, timeout=300)

    project = Project.objects.filter(organization=org).first()
    database = names_for(project.namespace) if project else ""
    print(run.stdout)
    try:
        assert run.returncode == 0, run.stdout + run.stderr
        expected = dict.fromkeys(STEPS, "ok")
        expected["5a fetch public URL"] = "skipped (kubesim pods serve no HTTP; not fetched: http://"
        expected["5b wake from zero"] = "skipped (kubesim's dry run has no edge or Sablier"
        # Exec runs as the agent once its ClusterRole grants pods/exec (or kubesim checks no tokens at all).
        exec_granted = any("pods/exec" in rule["resources"] for _, rule in protocol.RBAC_RULES)
        if not exec_granted and "has no TokenRequest" not in run.stdout:
            expected["6b pod exec as the agent"] = "skipped (the agent's ClusterRole does not grant pods/exec yet"
        for step, result in expected.items():
            assert result_of(run.stdout, step).startswith(result), run.stdout
        cluster = Cluster.objects.get()
        assert cluster.status == ClusterStatus.OFFLINE  # the script stopped the agent on its way out
        components = dict(cluster.bootstrap_components.values_list("name", "state"))
        assert components == dict.fromkeys(COMPONENT_ORDER, "ready")
        assert project.deleted_at is not None and project.releases.get().status == "live"
        # The deploy provisioned the managed database on the shared PostgreSQL (kept for the grace period).
        assert pg.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
    finally:
        if database:
            pg.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            pg.execute(f'DROP ROLE IF EXISTS "{database}"')
        pg.close()


def test_it_names_the_failed_step_and_exits_non_zero(kubesim, tmp_path, capsys):
    kubeconfig = kubesim.write_kubeconfig(tmp_path / "kubeconfig")
    nobody = f"http://127.0.0.1:{free_port()}"

    code = main(["--url", nobody, "--operator-token", "x", "--user-token", "y", "--org", "acme",
                 "--kubeconfig", str(kubeconfig), "--base-domain", "apps.example.com"])

    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED at step 1 register cluster: POST http://127.0.0.1:" in out
    assert result_of(out, "1 register cluster") == "FAILED"
    assert result_of(out, "2 apply install manifest") == "not run"


def test_it_refuses_to_start_without_a_control_plane_or_a_cluster(monkeypatch, capsys):
    for name in ("PAAS_URL", "PAAS_OPERATOR_TOKEN", "PAAS_USER_TOKEN", "PAAS_ORG", "KUBECONFIG", "E2E_BASE_DOMAIN"):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(SystemExit) as exited:
        main([])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "missing --url, --operator-token, --user-token, --org, --base-domain, --kubeconfig" in err


def test_a_dry_run_takes_a_kubeconfig_only_from_its_flag(monkeypatch):
    monkeypatch.setenv("KUBECONFIG", "/home/someone/.kube/production")
    common = ["--url", "http://cp", "--operator-token", "x", "--user-token", "y", "--org", "acme"]

    assert parse_args([*common, "--dry-run"]).kubeconfig is None
    assert parse_args([*common, "--dry-run", "--kubeconfig", "/tmp/sim"]).kubeconfig == "/tmp/sim"
    assert parse_args([*common, "--base-domain", "a.test"]).kubeconfig == "/home/someone/.kube/production"
