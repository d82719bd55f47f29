"""`manage.py compose_convert`: manifests on stdout and exit 0, or one-line refusals and exit 2."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

from .compose_helpers import CONFORMANCE
from .test_compose_refusals import HOSTILE

MANAGE = Path(__file__).resolve().parents[2] / "manage.py"
AWESOME = sorted((CONFORMANCE / "awesome-compose").glob("*/compose.y*ml"))


def run(path: Path, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("compose_convert", str(path), "--org", "acme", "--project", "shop", *extra, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("path", AWESOME, ids=lambda p: p.parent.name)
def test_it_handles_every_awesome_compose_sample_well_under_a_second(path: Path) -> None:
    started = time.monotonic()
    code, out, err = run(path)
    assert time.monotonic() - started < 0.5
    if code == 0:
        objects = list(yaml.safe_load_all(out))
        assert objects[0]["kind"] == "Namespace" and objects[0]["metadata"]["name"] == "tenant-acme-shop"
    else:
        assert code == 2 and out == ""
        assert all(line.startswith(("refused: ", "warning: ")) for line in err.splitlines())


@pytest.mark.parametrize(("text", "key", "reason"), HOSTILE, ids=[h[1] + ":" + h[2] for h in HOSTILE])
def test_it_refuses_hostile_files_with_exit_2_and_a_one_line_reason(tmp_path: Path, text: str, key: str, reason: str):
    compose = tmp_path / "compose.yaml"
    compose.write_text(text)
    code, out, err = run(compose)
    assert code == 2 and out == ""
    assert any(key in line and reason in line for line in err.splitlines())


def test_it_prints_json_and_reads_env_files_next_to_the_compose_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TAG=1.27\n")
    (tmp_path / "app.env").write_text("MODE=prod\n")
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: nginx:${TAG}\n    env_file: app.env\n")
    code, out, _ = run(tmp_path / "compose.yaml", "--format", "json")
    assert code == 0
    items = json.loads(out)["items"]
    config = next(o for o in items if o["kind"] == "ConfigMap")
    assert config["data"] == {"MODE": "prod"}
    assert next(o for o in items if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0][
        "image"
    ] == "nginx:1.27"


def test_it_works_as_a_real_process() -> None:
    path = CONFORMANCE / "awesome-compose" / "portainer" / "compose.yaml"
    done = subprocess.run(
        [sys.executable, str(MANAGE), "compose_convert", str(path), "--org", "acme", "--project", "shop"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "service 'portainer'; key services.portainer.volumes.0" in done.stderr
