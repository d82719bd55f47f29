"""Validation against the official OpenAPI schemas (built-in kinds) and CRD openAPIV3Schemas.

Built-in kinds use the JSON schemas that `kubernetes-validate` ships for KUBERNETES_VERSION; custom
kinds use their CRD's `openAPIV3Schema`, translated to JSON Schema. CEL rules
(`x-kubernetes-validations`) are NOT evaluated: nothing here embeds a CEL interpreter.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from referencing import Registry, Resource

# One pinned schema version, matching a current K3s release.
KUBERNETES_VERSION = "1.35.0"

_SCHEMA_ROOT = Path(kubernetes_validate.__file__).resolve().parent / "kubernetes-json-schema"

Cause = dict[str, str]

# --- names and labels (k8s.io/apimachinery/pkg/util/validation) ---------------------------------

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = DNS1123_LABEL + r"(\." + DNS1123_LABEL + r")*"
DNS1035_LABEL = r"[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"

_MSG_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
              "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
              "validation is '" + DNS1123_LABEL + "')")
_MSG_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                  "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
                  "for validation is '" + DNS1123_SUBDOMAIN + "')")
_MSG_1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
             "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
             "regex used for validation is '" + DNS1035_LABEL + "')")


def _full(regex: str, value: str) -> bool:
    return re.fullmatch(regex, value) is not None


def name_errors(name: str, rule: str) -> list[str]:
    """Messages for an invalid object name under one of the apiserver's name rules."""
    if rule == "path":
        if name in (".", ".."):
            return [f'may not be \'{name}\'']
        return [f"may not contain '{c}'" for c in "/%" if c in name]
    if rule == "label":
        errs = [] if _full(DNS1123_LABEL, name) else [_MSG_LABEL]
        return errs + (["must be no more than 63 characters"] if len(name) > 63 else [])
    if rule == "dns1035":
        errs = [] if _full(DNS1035_LABEL, name) else [_MSG_1035]
        return errs + (["must be no more than 63 characters"] if len(name) > 63 else [])
    errs = [] if _full(DNS1123_SUBDOMAIN, name) else [_MSG_SUBDOMAIN]
    return errs + (["must be no more than 253 characters"] if len(name) > 253 else [])


def qualified_name_errors(key: str) -> list[str]:
    """Label and annotation keys: optional DNS subdomain prefix, '/', and a qualified name."""
    prefix, _, name = key.rpartition("/")
    errs: list[str] = []
    if "/" in key and not prefix:
        errs.append("prefix part must be non-empty")
    elif prefix and (not _full(DNS1123_SUBDOMAIN, prefix) or len(prefix) > 253):
        errs.append("prefix part " + _MSG_SUBDOMAIN)
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    elif not _full(QUALIFIED_NAME, name):
        errs.append("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    return errs


def label_value_errors(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _full(LABEL_VALUE, value):
        errs.append("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
                    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value', "
                    " or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
    return errs


def _cause(reason: str, field: str, message: str) -> Cause:
    return {"reason": reason, "message": message, "field": field}


def _invalid(field: str, value: Any, detail: str) -> Cause:
    return _cause("FieldValueInvalid", field, f"Invalid value: {json.dumps(value)}: {detail}")


def metadata_causes(obj: dict[str, Any], name_rule: str, *, namespaced: bool | None = None) -> list[Cause]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [_cause("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")]
    causes: list[Cause] = []
    name = meta.get("name")
    if not name and not meta.get("generateName"):
        causes.append(_cause("FieldValueRequired", "metadata.name", "Required value: name or generateName is required"))
    elif isinstance(name, str) and name:
        causes += [_invalid("metadata.name", name, m) for m in name_errors(name, name_rule)]
    gen = meta.get("generateName")
    if isinstance(gen, str) and gen and not name:
        # A generated name appends 5 characters; the prefix must be a valid name once they are added.
        causes += [_invalid("metadata.generateName", gen, m) for m in name_errors(gen + "x", name_rule)]
    if namespaced is False and meta.get("namespace"):
        causes.append(_cause("FieldValueForbidden", "metadata.namespace", "Forbidden: not allowed on this type"))
    for key, value in (meta.get("labels") or {}).items():
        causes += [_invalid("metadata.labels", key, m) for m in qualified_name_errors(str(key))]
        if not isinstance(value, str):
            causes.append(_invalid(f"metadata.labels[{key}]", value, "must be a string"))
        else:
            causes += [_invalid("metadata.labels", value, m) for m in label_value_errors(value)]
    annotations = meta.get("annotations") or {}
    for key in annotations:
        causes += [_invalid("metadata.annotations", key, m) for m in qualified_name_errors(str(key).lower())]
    if len(json.dumps(annotations)) > 256 * 1024:
        causes.append(_cause("FieldValueTooLong", "metadata.annotations", "Too long: must have at most 262144 bytes"))
    return causes


# --- schemas ----------------------------------------------------------------------------------------


def _schema_dir() -> Path:
    return _SCHEMA_ROOT / f"v{KUBERNETES_VERSION}-local-strict"


@lru_cache(maxsize=1)
def _definitions() -> dict[str, Any]:
    with open(_schema_dir() / "_definitions.json") as f:
        return json.load(f)


@lru_cache(maxsize=1)
def _registry() -> Registry:
    return Resource.from_contents(_definitions()) @ Registry()


def _builtin_file(api_version: str, kind: str) -> Path:
    # rbac.authorization.k8s.io/v1 -> rbac-v1, as kubernetes-validate names its files.
    slug = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return _schema_dir() / f"{kind.lower()}-{slug}.json"


@lru_cache(maxsize=256)
def builtin_schema(api_version: str, kind: str) -> dict[str, Any] | None:
    path = _builtin_file(api_version, kind)
    if not path.exists():
        return None
    with open(path) as f:
        return json.load(f)


@lru_cache(maxsize=256)
def _builtin_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    schema = builtin_schema(api_version, kind)
    if schema is None:
        return None
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def resolve(node: dict[str, Any] | None) -> dict[str, Any] | None:
    """Follow a `$ref` into the built-in definitions (one level is all the generated schemas use)."""
    while node is not None and "$ref" in node:
        node = _definitions()["$defs"].get(node["$ref"].rpartition("/")[2])
    return node


def child_schema(node: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    node = resolve(node)
    if not node:
        return None
    props = node.get("properties") or {}
    if key in props:
        return resolve(props[key])
    extra = node.get("additionalProperties")
    return resolve(extra) if isinstance(extra, dict) else None


def items_schema(node: dict[str, Any] | None) -> dict[str, Any] | None:
    node = resolve(node)
    return resolve(node.get("items")) if node else None


def list_keys(node: dict[str, Any] | None) -> list[str] | None:
    """Keys that identify items of an associative list (`x-kubernetes-list-map-keys` / patch merge key)."""
    node = resolve(node)
    if not node:
        return None
    if node.get("x-kubernetes-list-type") == "map" and node.get("x-kubernetes-list-map-keys"):
        return list(node["x-kubernetes-list-map-keys"])
    if node.get("x-kubernetes-patch-merge-key"):
        return [node["x-kubernetes-patch-merge-key"]]
    return None


def list_type(node: dict[str, Any] | None) -> str:
    node = resolve(node)
    if not node:
        return "atomic"
    if list_keys(node):
        return "map"
    return node.get("x-kubernetes-list-type") or ("set" if node.get("x-kubernetes-patch-strategy") == "merge"
                                                  else "atomic")


# --- CRD schemas ------------------------------------------------------------------------------------

_META_PROPS = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}


def crd_to_jsonschema(node: dict[str, Any], *, structural: bool = True, root: bool = False) -> dict[str, Any]:
    """Translate an OpenAPI v3 structural schema to JSON Schema; unknown fields become errors we can spot."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {k: crd_to_jsonschema(v, structural=structural) for k, v in value.items()}
        elif key == "items" and isinstance(value, dict):
            out[key] = crd_to_jsonschema(value, structural=structural)
        elif key == "additionalProperties" and isinstance(value, dict):
            out[key] = crd_to_jsonschema(value, structural=structural)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [crd_to_jsonschema(v, structural=False) for v in value]
        elif key == "not":
            out[key] = crd_to_jsonschema(value, structural=False)
        elif key in ("description", "x-kubernetes-validations", "default", "example", "format"):
            continue  # CEL rules are skipped; formats are advisory here
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("allOf", []).append({"anyOf": [{"type": "integer"}, {"type": "string"}]})
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-embedded-resource") or root:
        out.setdefault("properties", {})
        for k, v in _META_PROPS.items():
            out["properties"][k] = v
    is_object = node.get("type") == "object" or "properties" in node
    if (structural and is_object and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def crd_validator(crd_schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    key = id(crd_schema)
    cached = _crd_validators.get(key)
    if cached is None or cached[0] is not crd_schema:
        cached = (crd_schema, jsonschema.Draft202012Validator(crd_to_jsonschema(crd_schema, root=True)))
        _crd_validators[key] = cached
    return cached[1]


_crd_validators: dict[int, tuple[dict[str, Any], jsonschema.protocols.Validator]] = {}


def crds_dir() -> Path:
    override = os.environ.get("KUBESIM_CRDS_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent / "crds"  # shipped with kubesim (see crds/README.md)


# The C loader parses the 1.3 MB of CRDs several times faster than the pure-Python one.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_crd_files(directory: Path | None = None) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition found in YAML files under a directory (recursively)."""
    directory = directory or crds_dir()
    crds: list[dict[str, Any]] = []
    if not directory.is_dir():
        return crds
    for path in sorted(directory.rglob("*.y*ml")):
        with open(path) as f:
            for doc in yaml.load_all(f, Loader=_YAML_LOADER):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    crds.append(doc)
    return crds


@lru_cache(maxsize=8)
def _shared_crd_schemas(directory: str) -> dict[tuple[str, str], tuple[dict[str, Any], bool]]:
    out: dict[tuple[str, str], tuple[dict[str, Any], bool]] = {}
    for crd in load_crd_files(Path(directory)):
        spec = crd["spec"]
        for ver in spec.get("versions", []):
            schema = (ver.get("schema") or {}).get("openAPIV3Schema") or {}
            out[(f"{spec['group']}/{ver['name']}", spec["names"]["kind"])] = (schema, spec.get("scope") == "Namespaced")
    return out


# --- turning jsonschema errors into apiserver causes ------------------------------------------------


def field_path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _schema_causes(validator: jsonschema.protocols.Validator, obj: dict[str, Any],
                   skip_root: frozenset[str]) -> tuple[list[Cause], list[list[Any]]]:
    """Apiserver-style causes for value errors, and the paths of unknown fields (reported separately)."""
    causes: list[Cause] = []
    unknown: list[list[Any]] = []
    for err in validator.iter_errors(obj):
        path = list(err.absolute_path)
        if path and path[0] in skip_root:
            continue
        field = field_path(path)
        if err.validator == "additionalProperties" and err.validator_value is False:
            known = set((err.schema.get("properties") or {}).keys())
            unknown += [path + [k] for k in err.instance if k not in known]
        elif err.validator == "required":
            missing = err.message.split("'")[1] if "'" in err.message else "?"
            causes.append(_cause("FieldValueRequired", field_path(path + [missing]), "Required value"))
        elif err.validator == "type":
            want = err.validator_value if isinstance(err.validator_value, str) else err.validator_value[0]
            causes.append(_cause("FieldValueTypeInvalid", field,
                                 f"Invalid value: {json.dumps(err.instance)}: {field or 'body'} in body must be "
                                 f"of type {want}: {json.dumps(err.instance)}"))
        elif err.validator == "enum":
            supported = ", ".join(json.dumps(v) for v in err.validator_value if v is not None)
            causes.append(_cause("FieldValueNotSupported", field,
                                 f"Unsupported value: {json.dumps(err.instance)}: supported values: {supported}"))
        else:
            causes.append(_invalid(field, err.instance, err.message))
    return causes, unknown


def check(obj: dict[str, Any], *, name_rule: str = "subdomain", crd_schema: dict[str, Any] | None = None,
          namespaced: bool | None = None) -> tuple[list[Cause], list[list[Any]]]:
    """Validate one object: (causes for 422, unknown-field paths for Strict/Warn handling)."""
    causes = metadata_causes(obj, name_rule, namespaced=namespaced)
    if crd_schema is not None:
        validator = crd_validator(crd_schema)
    else:
        validator = _builtin_validator(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        if validator is None:
            return causes + [_cause("FieldValueNotSupported", "kind",
                                    f"no schema for {obj.get('apiVersion')}/{obj.get('kind')}")], []
    more, unknown = _schema_causes(validator, obj, frozenset({"metadata"}) if crd_schema is not None else frozenset())
    return causes + more, unknown


def unknown_field_causes(unknown: list[list[Any]]) -> list[Cause]:
    return [_cause("FieldValueUnknown", field_path(p), f'unknown field "{field_path(p)}"') for p in unknown]


def _name_rule(api_version: str, kind: str) -> tuple[str, bool | None]:
    from kubesim.resources import builtin_types

    for rt in builtin_types():
        if rt.api_version == api_version and rt.kind == kind:
            return rt.name_rule, rt.namespaced
    return "subdomain", None


def validate_object(obj: dict[str, Any], *, strict: bool = True) -> list[Cause]:
    """Causes the apiserver (KUBERNETES_VERSION, with the shared CRDs installed) would give for `obj`.

    An empty list means a real cluster accepts it. With `strict` (like `fieldValidation=Strict`),
    unknown fields are causes too (reason `FieldValueUnknown`); otherwise they are ignored, as the
    apiserver drops them with a warning. CEL rules in CRDs are not evaluated.
    """
    if not isinstance(obj, dict):
        return [_cause("FieldValueTypeInvalid", "", "object must be a mapping")]
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    if not api_version or not kind:
        return [_cause("FieldValueRequired", "apiVersion" if not api_version else "kind", "Required value")]
    crd = _shared_crd_schemas(str(crds_dir())).get((api_version, kind))
    if crd is not None:
        causes, unknown = check(obj, crd_schema=crd[0], namespaced=crd[1])
    elif builtin_schema(api_version, kind) is not None:
        rule, namespaced = _name_rule(api_version, kind)
        causes, unknown = check(obj, name_rule=rule, namespaced=namespaced)
    else:
        return [_cause("FieldValueNotSupported", "kind",
                       f'no matches for kind "{kind}" in version "{api_version}"')]
    return causes + (unknown_field_causes(unknown) if strict else [])


def prune(obj: dict[str, Any], paths: list[list[Any]]) -> None:
    """Drop unknown fields, as the apiserver does when it decodes (built-ins) or prunes (CRDs)."""
    for path in paths:
        node: Any = obj
        for p in path[:-1]:
            node = node[p]
        if isinstance(node, dict):
            node.pop(path[-1], None)
