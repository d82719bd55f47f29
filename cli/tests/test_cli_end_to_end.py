"""The `paas` command end to end: the installed entry point, run as a subprocess, against a real control plane
(daphne, a Celery worker, the agent process, kubesim), through the public REST API and WebSockets only."""

from __future__ import annotations

import json
import os
import queue
import shutil
import stat
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import asyncssh
import pytest
from django.utils import timezone

from accounts.services import create_api_token, revoke_api_token
from billing.models import UsageRecord
from billing.usage import record_usage
from conftest import skip_or_fail
from kubesim.pytest_plugin import _kubesim_server, kubesim  # noqa: F401
from paas.testing.processes import start_daphne
from projects.models import Project
from projects.tests.conftest import cluster, connected  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PAAS = shutil.which("paas", path=str(Path(sys.executable).parent))

COMPOSE = """services:
  web:
    image: nginx:1.27
    ports:
      - "8080:80"
    environment:
      GREETING: ${GREETING:-hello}
"""


class Follower:
    """A `paas logs -f` process whose output lines are read by a thread, so a test can wait with a timeout."""

    def __init__(self, paas, *args: str) -> None:
        self.proc = subprocess.Popen([PAAS, "logs", *args], cwd=paas.work, env=paas.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.proc.stdout], daemon=True).start()

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} within {timeout}s") from None
            if text in line:
                return line

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def paas(tmp_path):
    """Runs the real `paas` entry point in a project directory, with its own config directory."""
    if PAAS is None:
        pytest.fail("the paas command is not installed in this virtualenv: run bin/setup --dev")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PAAS_CONFIG_DIR": str(tmp_path / "config")}
    for name in ("PAAS_URL", "PAAS_TOKEN", "PAAS_ORG", "PAAS_PROJECT"):
        env.pop(name, None)

    def run(*args: str, input: str | None = None, ok: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
        result = subprocess.run([PAAS, *args], cwd=work, env=env, capture_output=True, text=True, timeout=timeout,
                                **stdin)
        assert "Traceback" not in result.stderr, result.stderr
        if ok:
            assert result.returncode == 0, f"paas {' '.join(args)}: {result.returncode}\n{result.stdout}{result.stderr}"
        return result

    run.work, run.env, run.config = work, env, tmp_path / "config" / "config.json"
    return run


def test_a_user_logs_in_creates_deploys_watches_rolls_back_and_reads_credits(
        paas, daphne_server, connected, kubesim, personas):  # noqa: F811 (imported fixtures)
    _, token = create_api_token(personas.owner, "laptop")

    bad = paas("login", "--url", daphne_server, "--token", "paas_not-a-real-token", ok=False)
    assert bad.returncode == 1
    assert "This API token is not valid, expired or was revoked." in bad.stderr and "(HTTP 401)" in bad.stderr
    assert not paas.config.exists()

    logged_in = paas("login", "--url", daphne_server, "--token", token)
    assert f"Logged in to {daphne_server} as alice@example.com" in logged_in.stdout
    assert stat.S_IMODE(paas.config.stat().st_mode) == 0o600
    assert json.loads(paas.config.read_text()) == {"url": daphne_server, "token": token}

    assert [(o["slug"], o["role"]) for o in json.loads(paas("orgs", "--json").stdout)] == [("acme", "owner")]

    # No project linked yet: a clear request for one, no traceback.
    unlinked = paas("status", ok=False)
    assert unlinked.returncode == 2 and "Pass --project or run `paas link" in unlinked.stderr

    created = paas("projects", "create", "Store", "--link")
    assert "Created project store in acme on fsn. Linked this directory" in created.stdout
    assert json.loads((paas.work / ".paas.json").read_text()) == {"organization": "acme", "project": "store"}
    assert "store" in paas("projects").stdout

    paas("vars", "set", "GREETING=hi-from-cli")
    paas("vars", "set", "--service", "web", "COLOR=blue")
    paas("vars", "set", "--secret", "API_KEY", input="s3cret-value\n")
    listed = {(v["name"], v["service"]): v for v in json.loads(paas("vars", "--json").stdout)}
    assert listed[("GREETING", "")]["value"] == "hi-from-cli" and listed[("COLOR", "web")]["value"] == "blue"
    assert listed[("API_KEY", "")]["secret"] and listed[("API_KEY", "")]["value"] is None
    assert "s3cret-value" not in paas("vars").stdout

    (paas.work / "compose.yml").write_text(COMPOSE)
    first = paas("deploy", "--wait")  # compose.yml of the directory
    assert "Deploying r1" in first.stdout
    for step in ("render ", "apply ", "rollout "):
        assert f"  {step}" in first.stdout, first.stdout
    assert first.stdout.rstrip().endswith("Release r1 is live.")
    project = Project.objects.get(slug="store")
    deployment = kubesim.get("deployments", project.namespace, "web")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GREETING"] == "hi-from-cli"  # interpolated; COLOR and API_KEY travel in a Secret (envFrom)

    # A release that fails exits non-zero with the pipeline's reason.
    (paas.work / "broken.yml").write_text(COMPOSE.replace("nginx:1.27", "ghcr.io/acme/does-not-exist:1.0"))
    broken = paas("deploy", "-f", "broken.yml", "--wait", ok=False)
    assert broken.returncode == 1
    assert "release r2 failed [image_not_found]" in broken.stderr
    assert "image ghcr.io/acme/does-not-exist:1.0 could not be pulled" in broken.stderr

    # A compose file the API refuses: its problems, and no release.
    (paas.work / "bad.yml").write_text("services:\n  web: {}\n")
    refused = paas("deploy", "-f", "bad.yml", ok=False)
    assert refused.returncode == 1 and "(HTTP 400)" in refused.stderr and "web" in refused.stderr

    releases = json.loads(paas("releases", "--json").stdout)
    assert [(r["revision"], r["status"]) for r in releases] == [(2, "failed"), (1, "live")]

    back = paas("rollback", "r1", "--wait")
    assert "Rolling back to r1 as r3" in back.stdout and "Release r3 is live." in back.stdout
    assert kubesim.get("deployments", project.namespace, "web")["spec"]["template"]["spec"]["containers"][0][
        "image"] == "nginx:1.27"
    assert paas("rollback", "99", ok=False).stderr.strip().endswith("(HTTP 404)")

    status = json.loads(paas("status", "--json").stdout)
    assert status["latest_release"] == {"revision": 3, "status": "live"}
    assert [s["name"] for s in status["services"]] == ["web"]
    assert "web" in paas("status").stdout

    paas("vars", "unset", "--service", "web", "COLOR")
    missing = paas("vars", "unset", "GREETING", "NOPE", ok=False)
    assert "no variable NOPE in the project" in missing.stderr and "nothing was removed" in missing.stderr
    assert {v["name"] for v in json.loads(paas("vars", "--json").stdout)} == {"GREETING", "API_KEY"}

    # 60 usage windows: more than one page of the usage API (PAGE_SIZE 50), so the CLI follows `next`.
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=3)
    for minute in range(60):
        record_usage(personas.org, {"cluster": "fsn", "namespace": project.namespace, "service": "batch",
                                    "window_start": (start + timedelta(minutes=minute)).isoformat(),
                                    "window_seconds": 60, "replicas": 1, "cpu_millicores": 250, "memory_mib": 256,
                                    "storage_gib": 0})
    expected = sum(r.cost_millicredits for r in UsageRecord.objects.filter(service="batch"))
    report = json.loads(paas("credits", "--json").stdout)
    assert report["balance"]["organization"] == "acme"
    assert len([r for r in report["usage"] if r["service"] == "batch"]) == 60
    assert {"project": project.namespace, "service": "batch", "cost_millicredits": expected} in report[
        "cost_by_service"]
    human = paas("credits").stdout
    assert "credits on plan" in human and f"{expected / 1000:,.3f}" in human

    # --org/--project flags win over the link; a foreign organization looks like a missing one.
    foreign = paas("status", "--org", "charlie-corp", "--project", "store", ok=False)
    assert foreign.returncode == 1 and "(HTTP 404)" in foreign.stderr

    paas("projects", "delete", "store", "--yes")
    assert not Project.objects.active().filter(slug="store").exists()

    # Within the grace period the owner brings it back, its live release redeployed.
    deleted = json.loads(paas("projects", "deleted", "--json").stdout)
    assert [p["slug"] for p in deleted] == ["store"]
    restored = paas("projects", "restore", "store").stdout
    assert restored.startswith("Restored project store; revision ") and "redeploys its live release" in restored
    assert Project.objects.active().filter(slug="store").exists()
    assert json.loads(paas("projects", "deleted", "--json").stdout) == []
    gone = paas("projects", "restore", "store", ok=False)
    assert gone.returncode == 1 and "(HTTP 404)" in gone.stderr


def test_logs_exec_and_ssh_reach_the_service_through_the_token_sockets(
        paas, daphne_server, connected, kubesim, personas, viewer):  # noqa: F811 (imported fixtures)
    from projects import services

    member_token, token = create_api_token(personas.member, "laptop")
    paas("login", "--url", daphne_server, "--token", token)
    services.create_project(personas.org, personas.owner, "Shop", connected, compose_text=COMPOSE)
    paas("link", "--org", "acme", "--project", "shop")
    paas("deploy", "--wait")
    project = Project.objects.get(slug="shop")
    pod = kubesim.wait_for(lambda: next(iter(kubesim.list("pods", project.namespace)), None), timeout=30)
    kubesim.push_logs(project.namespace, pod["metadata"]["name"], ["first line from cli test"])

    lines = paas("logs", "web", "--tail", "50").stdout
    assert f"{pod['metadata']['name']}/web first line from cli test" in lines

    follow = Follower(paas, "web", "-f", "--tail", "5")
    try:
        follow.wait_for("first line from cli test")
        kubesim.push_logs(project.namespace, pod["metadata"]["name"], ["a live line"])
        assert follow.wait_for("a live line").endswith(f"{pod['metadata']['name']}/web a live line\n")
    finally:
        follow.stop()

    result = paas("exec", "web", "--", "sh", "-c", "echo out; echo $GREETING; cat /missing; exit 3", ok=False)
    assert result.returncode == 3
    assert result.stdout == "out\nhello\n" and result.stderr == "cat: /missing: No such file or directory\n"
    piped = paas("exec", "-i", "web", "--", "cat", input="through stdin\n")
    assert piped.stdout == "through stdin\n"
    nothing = paas("exec", "nope", "--", "true", ok=False)
    assert nothing.returncode == 1 and "project shop has no service nope" in nothing.stderr

    printed = json.loads(paas("ssh", "web", "--json").stdout)
    assert printed["argv"][:3] == ["ssh", "-p", str(printed["port"])]
    assert printed["argv"][3] == f"acme.shop.web@{printed['host']}"

    # A viewer reads logs but may not run commands; a revoked token ends in a clear refusal.
    _, viewer_token = create_api_token(viewer, "viewer")
    paas("login", "--url", daphne_server, "--token", viewer_token)
    assert "first line from cli test" in paas("logs", "web").stdout
    denied = paas("exec", "web", "--", "true", ok=False)
    assert denied.returncode == 1 and "refused" in denied.stderr
    revoke_api_token(member_token)
    assert "(HTTP 401)" in paas("login", "--url", daphne_server, "--token", token, ok=False).stderr


def test_a_revoked_token_closes_its_open_log_stream(
        paas, daphne_server, connected, kubesim, personas):  # noqa: F811 (imported fixtures)
    from projects import services

    api_token, token = create_api_token(personas.owner, "laptop")
    paas("login", "--url", daphne_server, "--token", token)
    services.create_project(personas.org, personas.owner, "Shop", connected, compose_text=COMPOSE)
    paas("link", "--project", "shop")
    paas("deploy", "--wait")
    project = Project.objects.get(slug="shop")
    pod = kubesim.wait_for(lambda: next(iter(kubesim.list("pods", project.namespace)), None), timeout=30)
    kubesim.push_logs(project.namespace, pod["metadata"]["name"], ["before the revocation"])
    follow = Follower(paas, "web", "-f")
    try:
        follow.wait_for("before the revocation")  # the stream is open
        revoke_api_token(api_token)
        assert follow.proc.wait(15) == 1
        assert "your access to this project ended" in follow.proc.stderr.read()
    finally:
        follow.stop()


def test_ssh_runs_the_system_ssh_against_the_gateway_the_api_names(paas, connected, kubesim,  # noqa: F811
                                                                   personas, tmp_path):
    from sshgateway.tests.test_gateway import SSH, Gateway

    if SSH is None:
        skip_or_fail("the OpenSSH client is not installed (apt-get install -y openssh-client)")
    gateway = Gateway(tmp_path).start()
    # A daphne that tells clients where this gateway listens (it reaches the agent over Redis).
    proc, url = start_daphne(SSH_PUBLIC_HOST="127.0.0.1", SSH_PUBLIC_PORT=str(gateway.port),
                             SSH_HOST_KEY_PATH=str(gateway.host_key))
    try:
        key = gateway.key_for(personas.member)
        _, token = create_api_token(personas.member, "laptop")
        paas("login", "--url", url, "--token", token)
        paas("projects", "create", "Shop", "--link")
        (paas.work / "compose.yml").write_text(COMPOSE)
        paas("deploy", "--wait")

        where = json.loads(paas("ssh", "web", "--json").stdout)
        assert (where["host"], where["port"]) == ("127.0.0.1", gateway.port)
        assert where["host_key_fingerprint"] == asyncssh.read_private_key(gateway.host_key).get_fingerprint("sha256")

        options = ["-o", f"IdentityFile={key}", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                   "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={gateway.known_hosts}"]
        result = paas("ssh", "web", *options, "--", "echo $GREETING from ssh; exit 5", ok=False)
        assert (result.returncode, result.stdout) == (5, "hello from ssh\n"), result.stderr
    finally:
        proc.stop()
        gateway.stop()
