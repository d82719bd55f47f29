"""OpenAPI v3 documents per group-version, as kube-apiserver serves them under /openapi/v3.

kubectl reads them to learn that PATCH takes `fieldValidation` (so it validates on the server) and, for
`kubectl explain`, the schemas with their `x-kubernetes-group-version-kind`. Built-in schemas come from the
JSON schemas `kubernetes-validate` ships for schema.KUBERNETES_VERSION, turned back into OpenAPI form;
custom kinds use their CRD's openAPIV3Schema.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from kubesim import schema
from kubesim.resources import Registry, ResourceType

_PARAMS = [{"name": n, "in": "query", "schema": {"type": "string"}}
           for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
_REF_PREFIX = "#/components/schemas/"


def _to_openapi(node: Any) -> Any:
    """JSON Schema (nullable type lists, $defs refs, oneOf scalars) back to the apiserver's OpenAPI v3 shapes."""
    if isinstance(node, list):
        return [_to_openapi(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            continue
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            value = types[0] if len(types) == 1 else types
        if key == "oneOf" and all(isinstance(v, dict) and set(v) == {"type"} for v in value):
            # IntOrString and Quantity: the apiserver publishes these as int-or-string / plain strings.
            kinds = {t for v in value for t in (v["type"] if isinstance(v["type"], list) else [v["type"]])}
            if "integer" in kinds:
                out.update({"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]})
            else:
                out["type"] = "string"
            continue
        if key == "properties":  # field names, not keywords (JSONSchemaProps has a field called "$ref")
            out[key] = {k: _to_openapi(v) for k, v in value.items()}
        else:
            out[key] = value if key in ("enum", "x-kubernetes-group-version-kind", "required") else _to_openapi(value)
    if isinstance(node.get("$ref"), str):
        ref = {"$ref": _REF_PREFIX + node["$ref"].rpartition("/")[2]}
        if not out:
            return ref
        out["allOf"] = [ref]  # siblings of a $ref are not allowed in OpenAPI 3.0: kube-openapi wraps it
    return out


@lru_cache(maxsize=1)
def builtin_schemas() -> dict[str, Any]:
    return {name: _to_openapi(s) for name, s in schema._definitions()["$defs"].items()}


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            found.add(ref[len(_REF_PREFIX):])
        for v in node.values():
            _refs(v, found)
    elif isinstance(node, list):
        for v in node:
            _refs(v, found)


def _closure(roots: list[str], schemas: dict[str, Any]) -> dict[str, Any]:
    """The named schemas and everything they reference."""
    out: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in out or name not in schemas:
            continue
        out[name] = schemas[name]
        refs: set[str] = set()
        _refs(schemas[name], refs)
        todo.extend(refs - out.keys())
    return out


def _gvk_names(schemas: dict[str, Any], group: str, version: str) -> dict[str, str]:
    """kind -> schema name for the kinds this group-version's schemas declare."""
    names = {}
    for name, s in schemas.items():
        for gvk in s.get("x-kubernetes-group-version-kind") or []:
            if (gvk.get("group", ""), gvk.get("version")) == (group, version):
                names.setdefault(gvk["kind"], name)
    return names


def _crd_schema_name(rt: ResourceType) -> str:
    return ".".join(reversed(rt.group.split("."))) + f".{rt.version}.{rt.kind}"


def index(registry: Registry, rv: int) -> dict[str, Any]:
    paths = {}
    for group, versions in registry.group_versions().items():
        for v in versions:
            key = f"apis/{group}/{v}" if group else f"api/{v}"
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={rv}"}
    return {"paths": paths}


def group_version(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """The document kubectl fetches for one group-version: paths with their parameters, and the schemas."""
    types = [rt for rt in registry.all() if (rt.group, rt.version) == (group, version)]
    if not types:
        return None
    builtin = builtin_schemas()
    by_kind = _gvk_names(builtin, group, version)
    roots: list[str] = []
    custom: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    for rt in types:
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        if rt.builtin and rt.kind in by_kind:
            roots.append(by_kind[rt.kind])
        elif rt.crd_schema is not None:
            props = {**(rt.crd_schema.get("properties") or {}),
                     "metadata": {"$ref": _REF_PREFIX + "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}}
            custom[_crd_schema_name(rt)] = {**rt.crd_schema, "properties": props,
                                            "x-kubernetes-group-version-kind": [gvk]}
        base = f"{prefix}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{prefix}/{rt.plural}"
        op = {"parameters": _PARAMS, "x-kubernetes-group-version-kind": gvk, "responses": {}}
        paths[base] = {"post": {**op, "x-kubernetes-action": "post"}}
        paths[base + "/{name}"] = {"get": {**op, "x-kubernetes-action": "get"},
                                   "patch": {**op, "x-kubernetes-action": "patch"},
                                   "put": {**op, "x-kubernetes-action": "put"}}
    schemas = {**_closure(roots, builtin), **custom}
    if custom:
        schemas.update(_closure(["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"], builtin))
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": f"v{schema.KUBERNETES_VERSION}"},
            "paths": paths, "components": {"schemas": schemas}}
