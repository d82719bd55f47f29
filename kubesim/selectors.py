"""Label selectors (string and LabelSelector forms) and field selectors, as the apiserver parses them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kubesim.errors import bad_request

Matcher = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside a `(...)` value set."""
    terms, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    return [t for t in terms if t.strip()]


def parse_label_selector(selector: str | None) -> Matcher:
    if not selector:
        return lambda labels: True
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_terms(selector):
        eq = _EQ_RE.match(term)
        if eq:
            key, op, value = eq.groups()
            if op == "!=":
                checks.append(lambda lb, k=key, v=value: lb.get(k) != v)
            else:
                checks.append(lambda lb, k=key, v=value: lb.get(k) == v)
            continue
        st = _SET_RE.match(term)
        if not st:
            raise bad_request(f'unable to parse requirement: found \'{term.strip()}\', expected: identifier')
        neg, key, op, values = st.groups()
        if op:
            vals = {v.strip() for v in values.split(",") if v.strip()}
            if op == "in":
                checks.append(lambda lb, k=key, vs=vals: lb.get(k) in vs)
            else:
                checks.append(lambda lb, k=key, vs=vals: lb.get(k) not in vs)
        elif neg:
            checks.append(lambda lb, k=key: k not in lb)
        else:
            checks.append(lambda lb, k=key: k in lb)
    return lambda labels: all(c(labels) for c in checks)


def label_selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics; an empty selector matches everything, as in NetworkPolicy/Deployment."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and labels.get(key) in values) or \
           (op == "Exists" and key not in labels) or (op == "DoesNotExist" and key in labels):
            return False
    return True


def selector_to_string(selector: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key = expr["operator"], expr["key"]
        if op in ("In", "NotIn"):
            parts.append(f"{key} {op.lower()} ({','.join(expr.get('values') or [])})")
        else:
            parts.append(key if op == "Exists" else f"!{key}")
    return ",".join(parts)


# The Event fields the apiserver selects on (kubectl describe asks for kind, namespace, name and uid).
_INVOLVED = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")

# Fields every kind supports, plus the per-kind extras the apiserver registers that the product uses.
_FIELDS: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "metadata.name": lambda o: o["metadata"].get("name"),
    "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
    "status.phase": lambda o: (o.get("status") or {}).get("phase", ""),
    "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName", ""),
    **{f"involvedObject.{k}": (lambda o, k=k: (o.get("involvedObject") or {}).get(k, ""))
       for k in _INVOLVED},
    "reason": lambda o: o.get("reason", ""),
    "source": lambda o: (o.get("source") or {}).get("component", ""),
    "type": lambda o: o.get("type", ""),
}
_KIND_FIELDS = {"status.phase": {"Pod", "Namespace"}, "spec.nodeName": {"Pod"}, "reason": {"Event"},
                "source": {"Event"}, "type": {"Secret", "Event"},
                **{f"involvedObject.{k}": {"Event"} for k in _INVOLVED}}


def parse_field_selector(selector: str | None, kind: str) -> Matcher:
    if not selector:
        return lambda obj: True
    checks: list[Matcher] = []
    for term in _split_terms(selector):
        m = re.match(r"^\s*([A-Za-z.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise bad_request(f'invalid selector: \'{selector}\'; can\'t understand \'{term}\'')
        field, op, value = m.groups()
        getter = _FIELDS.get(field)
        if getter is None or (field in _KIND_FIELDS and kind not in _KIND_FIELDS[field]):
            raise bad_request(f'field label not supported: {field}')
        if op == "!=":
            checks.append(lambda o, g=getter, v=value: g(o) != v)
        else:
            checks.append(lambda o, g=getter, v=value: g(o) == v)
    return lambda obj: all(c(obj) for c in checks)
