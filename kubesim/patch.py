"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

from kubesim import schema
from kubesim.errors import ApiError

Node = dict[str, Any] | None


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


# --- JSON patch -------------------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError("Invalid", f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], op: str) -> Any:
    node = doc
    for p in parts:
        try:
            node = node[int(p)] if isinstance(node, list) else node[p]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError("Invalid", f"the server rejected our request due to an error in our request: "
                           f"{op} operation does not apply: doc is missing path: \"/{'/'.join(parts)}\"") from None
    return node


def _json_patch_op(doc: Any, op: dict[str, Any]) -> Any:
    kind = op.get("op")
    parts = _pointer(op.get("path", ""))
    if kind in ("add", "replace", "test") and "value" not in op:
        raise ApiError("Invalid", f"missing value for {kind} operation")
    if kind in ("move", "copy"):
        value = copy.deepcopy(_walk(doc, _pointer(op.get("from", "")), kind))
        if kind == "move":
            doc = _json_patch_op(doc, {"op": "remove", "path": op["from"]})
        return _json_patch_op(doc, {"op": "add", "path": op["path"], "value": value})
    if kind == "test":
        if _walk(doc, parts, kind) != op["value"]:
            raise ApiError("Invalid", f"testing value {op['path']} failed: test failed")
        return doc
    if not parts:
        return copy.deepcopy(op["value"]) if kind in ("add", "replace") else None
    parent = _walk(doc, parts[:-1], kind)
    last = parts[-1]
    if kind == "add":
        if isinstance(parent, list):
            idx = len(parent) if last == "-" else int(last)
            if idx > len(parent):
                raise ApiError("Invalid", f"add operation does not apply: index out of range: {op['path']}")
            parent.insert(idx, copy.deepcopy(op["value"]))
        elif isinstance(parent, dict):
            parent[last] = copy.deepcopy(op["value"])
        else:
            raise ApiError("Invalid", f"add operation does not apply: doc is missing path: {op['path']}")
    elif kind in ("remove", "replace"):
        _walk(doc, parts, kind)  # raises when the path is missing, as the apiserver does
        if isinstance(parent, list):
            if kind == "remove":
                parent.pop(int(last))
            else:
                parent[int(last)] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del parent[last]
        else:
            parent[last] = copy.deepcopy(op["value"])
    else:
        raise ApiError("Invalid", f"Unexpected kind: {kind}")
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise ApiError("BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for op in ops:
        doc = _json_patch_op(doc, op)
    return doc


# --- strategic merge patch --------------------------------------------------------------------------


def _strategy(node: Node) -> str:
    node = schema.resolve(node)
    return str((node or {}).get("x-kubernetes-patch-strategy", ""))


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _merge_list(orig: list[Any], patch: list[Any], node: Node) -> list[Any]:
    keys = schema.list_keys(node)
    if not keys:
        # Primitive list with merge strategy (e.g. finalizers): union, keeping order.
        out = list(orig)
        out += [p for p in patch if p not in out]
        return out
    key = keys[0]
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [_strip(p) for p in patch if not (isinstance(p, dict) and p.get("$patch") == "replace")]
    out = [copy.deepcopy(o) for o in orig]
    item_node = schema.items_schema(node)
    for p in patch:
        if not isinstance(p, dict):
            continue
        idx = next((i for i, o in enumerate(out) if isinstance(o, dict) and o.get(key) == p.get(key)), None)
        if p.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(_strip(p))
        else:
            out[idx] = strategic_merge(out[idx], p, item_node)
    return out


def strategic_merge(orig: Any, patch: Any, node: Node) -> Any:
    """Strategic merge patch using the `x-kubernetes-patch-*` hints of the official schema."""
    if not isinstance(patch, dict) or not isinstance(orig, dict):
        return _strip(patch)
    if patch.get("$patch") == "replace":
        return _strip(patch)
    result = copy.deepcopy(orig)
    for k, v in patch.items():
        if k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            result[field] = [x for x in result.get(field, []) if x not in v]
            continue
        if k.startswith("$"):
            continue  # $setElementOrder / $retainKeys only affect ordering and pruning details
        child = schema.child_schema(node, k)
        if v is None:
            result.pop(k, None)
        elif isinstance(v, dict) and isinstance(result.get(k), dict):
            result[k] = strategic_merge(result[k], v, child)
        elif isinstance(v, list) and "merge" in _strategy(child) and isinstance(result.get(k), list):
            result[k] = _merge_list(result[k], v, child)
        else:
            result[k] = _strip(v)
    return result
