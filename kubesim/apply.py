"""Server-side apply and managedFields bookkeeping.

A field set is a set of paths; each path is a tuple of structured-merge-diff elements: `f:<name>` for a
map field, `k:<json>` for an associative-list item (by its key fields), `v:<json>` for a set item.
Only leaves and list items are recorded, which is what conflict detection and removal need.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from kubesim import schema
from kubesim.errors import ApiError
from kubesim.resources import ResourceType

Path = tuple[str, ...]
FieldSet = set[Path]

# metadata fields that are tracked; the rest (name, uid, resourceVersion, ...) belong to the system.
_TRACKED_META = ("labels", "annotations", "finalizers", "ownerReferences")
_OBJECT_META = {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def root_schema(rt: ResourceType) -> dict[str, Any] | None:
    if rt.crd_schema is not None:
        return rt.crd_schema
    return schema.builtin_schema(rt.api_version, rt.kind)


def _child(node: dict[str, Any] | None, key: str, depth: int) -> dict[str, Any] | None:
    if depth == 0 and key == "metadata":
        return schema.resolve(_OBJECT_META)
    return schema.child_schema(node, key)


def _item_key(item: Any, keys: list[str]) -> str:
    return "k:" + json.dumps({k: item[k] for k in keys if isinstance(item, dict) and k in item},
                             sort_keys=True, separators=(",", ":"))


def fields_of(obj: dict[str, Any], rt: ResourceType, *, include_status: bool = False) -> FieldSet:
    """The field set an object (or an apply configuration) sets."""
    out: FieldSet = set()
    for k, v in obj.items():
        if k in ("apiVersion", "kind") or (k == "status" and not include_status):
            continue
        if k == "metadata":
            meta = {mk: mv for mk, mv in (v or {}).items() if mk in _TRACKED_META}
            _collect(meta, schema.resolve(_OBJECT_META), ("f:metadata",), out) if meta else None
            continue
        _collect_field(k, v, _child(root_schema(rt), k, 0), (), out)
    return out


def _collect_field(k: str, v: Any, node: dict[str, Any] | None, prefix: Path, out: FieldSet) -> None:
    path = prefix + (f"f:{k}",)
    if isinstance(v, dict) and v and not (schema.resolve(node) or {}).get("x-kubernetes-map-type") == "atomic":
        _collect(v, node, path, out)
    elif isinstance(v, list) and v and schema.list_type(node) in ("map", "set"):
        keys = schema.list_keys(node)
        item_node = schema.items_schema(node)
        for item in v:
            if keys and isinstance(item, dict):
                ipath = path + (_item_key(item, keys),)
                out.add(ipath)
                _collect(item, item_node, ipath, out)
            else:
                out.add(path + ("v:" + json.dumps(item, sort_keys=True, separators=(",", ":")),))
    else:
        out.add(path)


def _collect(value: dict[str, Any], node: dict[str, Any] | None, prefix: Path, out: FieldSet) -> None:
    for k, v in value.items():
        _collect_field(k, v, schema.child_schema(node, k), prefix, out)


# --- fieldsV1 encoding ------------------------------------------------------------------------------


def to_fields_v1(fields: FieldSet) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(fields):
        node = tree
        for el in path:
            node = node.setdefault(el, {})
    # A path that is both owned and has owned children gets the "." marker, as in the apiserver.
    for path in fields:
        node = tree
        for el in path:
            node = node[el]
        if node:
            node["."] = {}
    return tree


def from_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> FieldSet:
    out: FieldSet = set()
    for k, v in tree.items():
        if k == ".":
            out.add(prefix)
        elif not v:
            out.add(prefix + (k,))
        else:
            out |= from_fields_v1(v, prefix + (k,))
    return out


# --- reading and writing paths ------------------------------------------------------------------------


def _find_item(lst: list[Any], el: str) -> int | None:
    if el.startswith("k:"):
        want = json.loads(el[2:])
        for i, item in enumerate(lst):
            if isinstance(item, dict) and all(item.get(k) == v for k, v in want.items()):
                return i
    elif el.startswith("v:"):
        want = json.loads(el[2:])
        for i, item in enumerate(lst):
            if item == want:
                return i
    return None


_MISSING = object()


def get_path(obj: Any, path: Path) -> Any:
    node = obj
    for el in path:
        if el.startswith("f:") and isinstance(node, dict):
            node = node.get(el[2:], _MISSING)
        elif isinstance(node, list):
            idx = _find_item(node, el)
            node = _MISSING if idx is None else node[idx]
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def remove_path(obj: Any, path: Path) -> None:
    parent = get_path(obj, path[:-1])
    el = path[-1]
    if isinstance(parent, dict) and el.startswith("f:"):
        parent.pop(el[2:], None)
    elif isinstance(parent, list):
        idx = _find_item(parent, el)
        if idx is not None:
            parent.pop(idx)


def merge_config(live: Any, cfg: Any, node: dict[str, Any] | None, depth: int = 0) -> Any:
    """Overlay an apply configuration on the live object: maps merge, associative lists merge by key."""
    if isinstance(cfg, dict) and isinstance(live, dict):
        out = dict(live)
        for k, v in cfg.items():
            out[k] = merge_config(live.get(k, _MISSING), v, _child(node, k, depth), depth + 1)
        return out
    if isinstance(cfg, list) and isinstance(live, list):
        kind = schema.list_type(node)
        if kind == "map":
            keys = schema.list_keys(node) or []
            item_node = schema.items_schema(node)
            out_list = [copy.deepcopy(x) for x in live]
            for item in cfg:
                idx = _find_item(out_list, _item_key(item, keys)) if isinstance(item, dict) else None
                if idx is None:
                    out_list.append(copy.deepcopy(item))
                else:
                    out_list[idx] = merge_config(out_list[idx], item, item_node, depth + 1)
            return out_list
        if kind == "set":
            return list(live) + [x for x in cfg if x not in live]
    return copy.deepcopy(cfg)


# --- managedFields entries ----------------------------------------------------------------------------


def _entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list(obj.get("metadata", {}).get("managedFields") or [])


def _entry_id(e: dict[str, Any]) -> tuple[str, str, str]:
    return (e.get("manager", ""), e.get("operation", ""), e.get("subresource", ""))


def _set_entries(obj: dict[str, Any], sets: dict[tuple[str, str, str], FieldSet], rt: ResourceType,
                 touched: set[tuple[str, str, str]], old_entries: list[dict[str, Any]]) -> None:
    old_by_id = {_entry_id(e): e for e in old_entries}
    entries = []
    for eid, fields in sets.items():
        if not fields:
            continue
        prev = old_by_id.get(eid, {})
        entry: dict[str, Any] = {"manager": eid[0], "operation": eid[1], "apiVersion": rt.api_version,
                                 "time": now() if eid in touched else prev.get("time", now()),
                                 "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(fields)}
        if eid[2]:
            entry["subresource"] = eid[2]
        entries.append(entry)
    obj["metadata"]["managedFields"] = entries


def _load_sets(obj: dict[str, Any]) -> dict[tuple[str, str, str], FieldSet]:
    return {_entry_id(e): from_fields_v1(e.get("fieldsV1") or {}) for e in _entries(obj)}


def record_update(old: dict[str, Any] | None, new: dict[str, Any], rt: ResourceType, manager: str,
                  subresource: str = "") -> None:
    """managedFields after a non-apply write: the writer owns what it changed; removed fields go away."""
    include_status = subresource == "status"
    new_fields = fields_of(new, rt, include_status=True)
    old_fields = fields_of(old, rt, include_status=True) if old else set()
    changed = {p for p in new_fields if old is None or get_path(old, p) != get_path(new, p)}
    removed = old_fields - new_fields
    sets = _load_sets(old) if old else {}
    for fields in sets.values():
        fields -= changed
        fields -= removed
    if not include_status:
        changed = {p for p in changed if p[0] != "f:status"} if rt.subresources and "status" in rt.subresources \
            else changed
    eid = (manager, "Update", subresource)
    sets.setdefault(eid, set()).update(changed)
    _set_entries(new, sets, rt, {eid} if changed else set(), _entries(old) if old else [])


def _fmt_path(path: Path) -> str:
    out = ""
    for el in path:
        if el.startswith("f:"):
            out += "." + el[2:]
        elif el.startswith("k:"):
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(el[2:]).items()) + "]"
        else:
            out += f"[{el[2:]}]"
    return out


def apply(live: dict[str, Any] | None, cfg: dict[str, Any], rt: ResourceType, manager: str, *,
          force: bool, subresource: str = "") -> dict[str, Any]:
    """The object after `manager` applies `cfg` over `live` (None when it does not exist yet)."""
    include_status = subresource == "status"
    cfg = copy.deepcopy(cfg)
    if not include_status and "status" in rt.subresources:
        cfg.pop("status", None)  # status on the main resource is ignored for kinds with a status subresource
    applied = fields_of(cfg, rt, include_status=include_status)
    base = copy.deepcopy(live) if live else {"apiVersion": cfg.get("apiVersion"), "kind": cfg.get("kind"),
                                             "metadata": {}}
    sets = _load_sets(base) if live else {}
    eid = (manager, "Apply", subresource)
    # Conflicts: a leaf another manager owns, whose value this configuration changes.
    conflicts: dict[str, list[Path]] = {}
    for other, owned in sets.items():
        if other[0] == manager:
            continue
        for p in applied & owned:
            if p[-1].startswith("f:") and get_path(base, p) != get_path(cfg, p):
                conflicts.setdefault(other[0], []).append(p)
    if conflicts and not force:
        causes = [{"reason": "FieldManagerConflict", "message": f'conflict with "{m}" using {rt.api_version}',
                   "field": _fmt_path(p)} for m, ps in conflicts.items() for p in sorted(ps)]
        n = len(causes)
        if n == 1:
            msg = f"Apply failed with 1 conflict: {causes[0]['message']}: {causes[0]['field']}"
        else:
            msg = f"Apply failed with {n} conflicts: " + "\n".join(
                f"{c['message']}: {c['field']}" for c in causes)
        raise ApiError("Conflict", msg, details={"causes": causes})
    for m, ps in conflicts.items():
        for other, owned in sets.items():
            if other[0] == m:
                owned -= set(ps)  # force: the applier takes these fields over
    previous = sets.get(eid, set())
    merged = merge_config(base, cfg, root_schema(rt))
    # Fields this manager applied before and drops now are removed unless someone else still owns them.
    others = set().union(*[s for k, s in sets.items() if k != eid]) if sets else set()
    for p in sorted(previous - applied, key=len):  # parents first: an item goes whole
        if not any(o[:len(p)] == p for o in others):
            remove_path(merged, p)
    sets[eid] = applied
    merged.setdefault("metadata", {})
    _set_entries(merged, sets, rt, {eid}, _entries(base))
    return merged
