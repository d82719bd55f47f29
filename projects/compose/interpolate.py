"""Compose variable interpolation: `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?msg}`,
`${VAR?msg}`, `${VAR:+alt}`, `${VAR+alt}` (defaults may nest) and `$$` for a literal dollar.

Like docker compose, an unset variable without a default becomes "" with a warning, and only
values are interpolated, never keys. Variables come from the project's settings only: the
control plane has no shell environment to leak.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_RESULT = 64 * 1024  # one value may not grow beyond this through substitution


class InterpolationError(ValueError):
    pass


class Interpolator:
    def __init__(self, variables: Mapping[str, str]) -> None:
        self.variables = variables
        self.missing: dict[str, tuple[str | int, ...]] = {}
        self.path: tuple[str | int, ...] = ()

    def expand(self, text: str) -> str:
        result, end = self._expand(text, 0, stop=None)
        return result

    def _expand(self, text: str, pos: int, stop: str | None) -> tuple[str, int]:
        out: list[str] = []
        size = 0
        while pos < len(text):
            char = text[pos]
            if stop is not None and char == stop:
                return "".join(out), pos
            if char != "$":
                out.append(char)
                pos += 1
                size += 1
                continue
            piece, pos = self._dollar(text, pos)
            out.append(piece)
            size += len(piece)
            if size > MAX_RESULT:
                raise InterpolationError("the value grows too large through substitution")
        if stop is not None:
            raise InterpolationError("missing closing `}`")
        return "".join(out), pos

    def _dollar(self, text: str, pos: int) -> tuple[str, int]:
        nxt = text[pos + 1] if pos + 1 < len(text) else ""
        if nxt == "$":
            return "$", pos + 2
        if nxt == "{":
            return self._braced(text, pos + 2)
        match = _NAME.match(text, pos + 1)
        if match:
            return self._lookup(match.group(0)), match.end()
        # A lone `$` (e.g. "cost: 5$") is kept, as docker compose does.
        return "$", pos + 1

    def _braced(self, text: str, pos: int) -> tuple[str, int]:
        match = _NAME.match(text, pos)
        if not match:
            raise InterpolationError(f"invalid variable name after `${{` at {text[pos:pos + 20]!r}")
        name, pos = match.group(0), match.end()
        if pos >= len(text):
            raise InterpolationError("missing closing `}`")
        if text[pos] == "}":
            return self._lookup(name), pos + 1
        for op in (":-", ":?", ":+", "-", "?", "+"):
            if text.startswith(op, pos):
                word, end = self._expand(text, pos + len(op), stop="}")
                return self._apply(name, op, word), end + 1
        raise InterpolationError(f"invalid interpolation format for {name!r}")

    def _apply(self, name: str, op: str, word: str) -> str:
        value = self.variables.get(name)
        is_set = value is not None
        non_empty = bool(value)
        if op == ":-":
            return value if non_empty else word  # type: ignore[return-value]
        if op == "-":
            return value if is_set else word  # type: ignore[return-value]
        if op == ":+":
            return word if non_empty else ""
        if op == "+":
            return word if is_set else ""
        if (op == ":?" and not non_empty) or (op == "?" and not is_set):
            raise InterpolationError(f"required variable {name} is missing: {word or 'no value given'}")
        return value or ""

    def _lookup(self, name: str) -> str:
        value = self.variables.get(name)
        if value is None:
            self.missing.setdefault(name, self.path)
            return ""
        return value


def interpolate(
    data: Any, variables: Mapping[str, str]
) -> tuple[Any, list[tuple[str, tuple[str | int, ...]]]]:
    """Interpolate every string value in `data`; returns it and the unset variables with the first
    key that used each. Raises InterpolationError with `.path` set."""
    interpolator = Interpolator(variables)
    result = _walk(data, interpolator, ())
    return result, sorted(interpolator.missing.items())


def _walk(value: Any, interpolator: Interpolator, path: tuple[str | int, ...]) -> Any:
    if isinstance(value, str):
        interpolator.path = path
        try:
            return interpolator.expand(value)
        except InterpolationError as exc:
            exc.path = path  # type: ignore[attr-defined]
            raise
    if isinstance(value, dict):
        # Extension fields (x-*) are not interpolated: they are templates for anchors.
        return {
            k: (v if str(k).startswith("x-") else _walk(v, interpolator, (*path, k))) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_walk(v, interpolator, (*path, i)) for i, v in enumerate(value)]
    return value


def project_variables(dotenv: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables from a project `.env` (later lines may use earlier ones), then `overrides`."""
    from .convert import parse_env_file  # the env-file syntax lives with env_file handling

    variables: dict[str, str] = {}
    for key, value in parse_env_file(dotenv).items():
        try:
            variables[key] = Interpolator(variables).expand(value)
        except InterpolationError:
            variables[key] = value
    variables.update(overrides or {})
    return variables
