"""Shared helpers for the compose converter tests: contexts, the conformance corpus, schemas."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import referencing
from kubernetes_validate import utils as kv

from projects.compose import RenderContext
from projects.compose.interpolate import project_variables
from projects.management.commands.compose_convert import read_folder

K8S_VERSION = "1.35.0"
SHARED = Path(__file__).resolve().parents[3] / "shared"
CONFORMANCE = SHARED / "conformance"


def make_ctx(**overrides: Any) -> RenderContext:
    values: dict[str, Any] = {"org_slug": "acme", "project_slug": "shop"}
    values.update(overrides)
    return RenderContext(**values)


def compose_inputs() -> list[Path]:
    """Every compose input of the corpus (expected outputs excluded)."""
    return sorted(
        p
        for p in CONFORMANCE.rglob("*")
        if p.suffix in (".yml", ".yaml") and not p.name.startswith("output") and p.is_file()
    )


def sample_id(path: Path) -> str:
    return path.relative_to(CONFORMANCE).as_posix()


@functools.lru_cache(maxsize=64)
def folder_files(folder: Path) -> dict[str, str]:
    return read_folder(folder)


def sample_ctx(path: Path, **overrides: Any) -> RenderContext:
    files = folder_files(path.parent)
    overrides.setdefault("variables", project_variables(files.get(".env", "")))
    overrides.setdefault("files", files)
    return make_ctx(**overrides)


@functools.lru_cache(maxsize=1)
def _definitions() -> referencing.Resource:
    schema_dir = _schema_dir()
    return referencing.Resource.from_contents(kv.schema_contents(f"{schema_dir}/_definitions.json", K8S_VERSION))


def _schema_dir() -> str:
    version = [v for v in kv.all_versions() if kv.major_minor(v) <= kv.major_minor(K8S_VERSION)][-1]
    return f"kubernetes-json-schema/v{version}-local-strict"


@functools.lru_cache(maxsize=64)
def _validator(kind: str, api_version: str) -> jsonschema.protocols.Validator:
    # The same files and validator as kubernetes_validate.validate(obj, K8S_VERSION, strict=True),
    # loaded once per kind: its own validate() re-reads the large definitions file on every call.
    group, _, version = api_version.rpartition("/")
    group = f"{group.split('.')[0]}-{version}" if group else version
    schema = kv.schema_contents(f"{_schema_dir()}/{kind.lower()}-{group}.json", K8S_VERSION)
    registry = referencing.Registry().with_resources([("", referencing.Resource.from_contents(schema))])
    registry = _definitions() @ (referencing.Resource.from_contents(schema) @ registry)
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _crd_validators() -> dict[tuple[str, str], dict[str, Any]]:
    import yaml

    found = {}
    for path in (Path(__file__).resolve().parents[2] / "kubesim" / "crds").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                found[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = version["schema"][
                    "openAPIV3Schema"
                ]
    return found


def validate_object(obj: dict[str, Any]) -> list[str]:
    """Schema errors of one object (empty when valid): kubesim's validator when the team has one,
    else the Kubernetes 1.35 strict schemas and the CRDs in kubesim/crds."""
    errors = _kubesim_causes(obj)
    # Round-trip through JSON: what the agent sends is JSON, and it rejects non-JSON values early.
    obj = json.loads(json.dumps(obj))
    crds = _crds()
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    if key in crds:
        return errors + [e.message for e in jsonschema.Draft7Validator(crds[key]).iter_errors(obj)]
    validator = _validator(obj["kind"], obj["apiVersion"])
    return errors + [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


def _kubesim_causes(obj: dict[str, Any]) -> list[str]:
    """kubesim's apiserver-like checks (names, labels) when the teammate's module is importable."""
    try:
        from kubesim.schema import validate_object as kubesim_validate  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - absent or half-written: the schema check below still runs
        return []
    return [str(cause) for cause in kubesim_validate(obj)]


@functools.lru_cache(maxsize=1)
def _crds() -> dict[tuple[str, str], dict[str, Any]]:
    return _crd_validators()


def invalid_objects(objects: list[dict[str, Any]]) -> dict[str, list[str]]:
    errors = {}
    for obj in objects:
        found = validate_object(obj)
        if found:
            errors[f"{obj['kind']}/{obj['metadata']['name']}"] = found
    return errors
