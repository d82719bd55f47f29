"""The layer rules in pyproject.toml (checked by lint-imports) name every agent module, so none escapes them."""

from __future__ import annotations

import pkgutil
import tomllib
from pathlib import Path

import agent

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def agent_modules() -> set[str]:
    """The agent's top-level modules and packages, its tests aside (what the image ships)."""
    return {f"agent.{m.name}" for m in pkgutil.iter_modules(agent.__path__) if m.name != "tests"}


def contract(name: str) -> dict:
    contracts = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["name"] == name)


def test_the_no_django_and_the_kubernetes_client_rules_name_every_agent_module():
    modules = agent_modules()
    assert {"agent.__main__", "agent.k8s", "agent.protocol", "agent.data"} <= modules
    assert set(contract("The agent never imports Django or the control plane")["source_modules"]) == modules
    assert set(contract("Only agent.k8s talks to Kubernetes")["source_modules"]) == modules - {"agent.k8s"}


def test_every_agent_module_has_a_layer():
    layers = contract("The agent's layers")
    placed = {f"agent.{name.strip()}" for layer in layers["layers"] for name in layer.replace(":", "|").split("|")}
    assert layers["exhaustive"] is True and placed == agent_modules()
