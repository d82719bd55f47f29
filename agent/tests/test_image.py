"""The agent image (agent/Dockerfile) installs everything the agent imports, at the versions we test.

No image is built here (no container runtime on the test machines), so this checks the Dockerfile's
contract instead: a module the agent imports but the image lacks would crash every agent at start.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from paas.testing.isolation import requirements_in, site_with

BASE_DIR = Path(__file__).resolve().parents[2]

# Imports every agent module (tests aside) with nothing on sys.path but the standard library, the
# agent's source and `site` (the packages the image installs), then parses --help.
IMPORT_ALL = """
import importlib, pkgutil, sys
sys.path[:0] = sys.argv[1:]
import agent
for module in pkgutil.walk_packages(agent.__path__, "agent."):
    if ".tests" not in module.name:
        importlib.import_module(module.name)
from agent.__main__ import main
sys.argv = ["agent", "--help"]
main()
"""


def image_requirements() -> list[Requirement]:
    dockerfile = (BASE_DIR / "agent" / "Dockerfile").read_text().replace("\\\n", " ")
    commands = [part for line in dockerfile.splitlines() for part in line.split("&&")]
    install = next(part for part in commands if "pip install" in part and "==" in part)
    return [Requirement(word.strip("\"'")) for word in install.split() if "==" in word]


def test_the_image_pins_the_versions_the_control_plane_tests():
    pinned = {canonicalize_name(req.name): req for req in requirements_in(BASE_DIR / "requirements.txt")}
    for req in image_requirements():
        assert canonicalize_name(req.name) in pinned, f"{req.name} is in the agent image but not in requirements.txt"
        assert req.specifier == pinned[canonicalize_name(req.name)].specifier, (
            f"agent/Dockerfile pins {req}, requirements.txt {pinned[canonicalize_name(req.name)]}")


def test_the_agent_starts_with_only_what_the_image_installs(tmp_path):
    # The image's site-packages, as links into ours: every file of the distributions pip would install.
    site = site_with(image_requirements(), tmp_path / "site")
    source = tmp_path / "app"
    shutil.copytree(BASE_DIR / "agent", source / "agent", ignore=shutil.ignore_patterns("tests", "__pycache__"))
    # -S: not our virtualenv's site-packages (Django and the rest are there), only the links above.
    run = subprocess.run([sys.executable, "-S", "-c", IMPORT_ALL, str(source), str(site)], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, f"the agent image would not start:\n{run.stderr[-3000:]}"
    assert "--server" in run.stdout and "--token-file" in run.stdout
