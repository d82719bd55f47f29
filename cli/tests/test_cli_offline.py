"""The `paas` entry point where no server is needed: completion, the missing login, the linked directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

PAAS = shutil.which("paas", path=str(Path(sys.executable).parent))


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    assert PAAS is not None, "the paas command is not installed in this virtualenv: run bin/setup --dev"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PAAS_", "_PAAS_"))}
    return subprocess.run([PAAS, *args], cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=60)


def test_it_completes_commands_and_prints_the_completion_script(tmp_path):
    words = run(cwd=tmp_path, _PAAS_COMPLETE="bash_complete", COMP_WORDS="paas pro", COMP_CWORD="1").stdout
    assert words.split() == ["plain,projects"]
    sub = run(cwd=tmp_path, _PAAS_COMPLETE="bash_complete", COMP_WORDS="paas vars u", COMP_CWORD="2").stdout
    assert sub.split() == ["plain,unset"]
    assert "_PAAS_COMPLETE=bash_complete" in run("completion", "bash", cwd=tmp_path).stdout


def test_without_a_login_it_says_how_to_log_in_without_a_traceback(tmp_path):
    result = run("status", cwd=tmp_path, PAAS_CONFIG_DIR=str(tmp_path / "config"))
    assert result.returncode == 1
    assert result.stderr == "Error: not logged in: run `paas login` (or set PAAS_URL and PAAS_TOKEN)\n"


def test_an_unreachable_server_is_one_line_of_error(tmp_path):
    result = run("orgs", cwd=tmp_path, PAAS_CONFIG_DIR=str(tmp_path), PAAS_URL="http://127.0.0.1:9",
                 PAAS_TOKEN="paas_x")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: cannot reach http://127.0.0.1:9")


def test_a_login_file_that_is_not_json_is_named(tmp_path):
    (tmp_path / "config.json").write_text("[1, 2]")
    result = run("orgs", cwd=tmp_path, PAAS_CONFIG_DIR=str(tmp_path))
    assert result.returncode == 1 and "config.json is not a JSON object" in result.stderr


def test_the_project_comes_from_the_nearest_link_unless_another_organization_is_asked_for(tmp_path):
    (tmp_path / ".paas.json").write_text(json.dumps({"organization": "acme", "project": "shop"}))
    deep = tmp_path / "src" / "app"
    deep.mkdir(parents=True)
    env = {"PAAS_CONFIG_DIR": str(tmp_path), "PAAS_URL": "http://127.0.0.1:9", "PAAS_TOKEN": "paas_x"}
    # From a subdirectory the link is found, so the command gets as far as the (absent) server.
    assert run("status", cwd=deep, **env).stderr.startswith("Error: cannot reach http://127.0.0.1:9")
    # With another organization and no project, the linked project does not apply: the CLI asks for one.
    other = run("status", "--org", "beta", cwd=deep, **env)
    assert other.returncode == 2 and "Pass --project or run `paas link" in other.stderr
    assert run("status", "--org", "beta", cwd=deep, PAAS_PROJECT="shop", **env).stderr.startswith(
        "Error: cannot reach")
