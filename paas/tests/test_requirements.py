"""`bin/run` installs requirements.txt only (the test tools are in requirements-dev.txt): everything
the run command starts must work with that alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from paas.testing.isolation import requirements_in, site_with

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory) -> dict[str, str]:
    site = site_with(requirements_in(BASE_DIR / "requirements.txt"), tmp_path_factory.mktemp("site"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DJANGO"))}
    return {**env, "PYTHONPATH": f"{BASE_DIR}{os.pathsep}{site}", "DEBUG": "false", "SECRET_KEY": "x" * 50,
            "ALLOWED_HOSTS": "localhost", "PAAS_ENCRYPTION_KEY": Fernet.generate_key().decode()}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    # -S: not our virtualenv's site-packages (the test tools are there), only the runtime's links.
    return subprocess.run([sys.executable, "-S", *args], cwd=BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("command", [
    ["manage.py", "check", "--deploy", "--fail-level", "ERROR"],  # every app, URL, admin and template tag
    ["-m", "paas.serve", "--help"],
    ["-m", "paas.daphne_server", "--help"],
    ["-m", "kubesim", "--help"],  # bin/run --emulated-cluster
    ["-m", "agent", "--help"],
    ["-m", "celery", "-A", "paas", "inspect", "--help"],
], ids=lambda command: " ".join(command[:2]))
def test_what_bin_run_starts_needs_only_the_runtime_requirements(runtime_env, command):
    result = run(runtime_env, *command)
    assert result.returncode == 0, f"{' '.join(command)} failed with requirements.txt alone:\n{result.stderr[-3000:]}"
