"""Safe YAML loading with positions.

PyYAML's SafeLoader is not enough for untrusted input: it resolves YAML 1.1 surprises (`80:80` is
the sexagesimal integer 4880, `no` is False), and aliases are shared references that expand
whenever the data is walked ("billion laughs"). So we only *compose* the node graph and build the
Python values ourselves: a YAML 1.2 core schema, standard tags only, duplicate keys refused, merge
keys (`<<`) supported, and a budget on expanded nodes that stops alias bombs before they grow.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from .problems import ComposeRefusal, Problem

MAX_BYTES = 256 * 1024
MAX_NODES = 50_000  # after alias expansion; real compose files have a few hundred
MAX_DEPTH = 50

Path = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ, _MERGE = f"{_TAG}map", f"{_TAG}seq", f"{_TAG}merge"


class _Resolver(BaseResolver):
    """YAML 1.2 core schema (what docker compose's go-yaml v3 uses), plus `<<` merge keys."""


_Resolver.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Resolver.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Resolver.add_implicit_resolver(
    _FLOAT,
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)
_Resolver.add_implicit_resolver(_NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Resolver.add_implicit_resolver(_MERGE, re.compile(r"^<<$"), ["<"])


class _Composer(Reader, Scanner, Parser, Composer, _Resolver):
    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _Resolver.__init__(self)


@dataclass
class Parsed:
    data: dict[str, Any]
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: Path) -> tuple[int | None, int | None]:
        """Line and column (1-based) of the closest known prefix of `path`."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.positions:
                return self.positions[path[:end]]
        return None, None


def parse_yaml(text: str) -> Parsed:
    """Parse a compose document, or raise ComposeRefusal with line and column."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise ComposeRefusal([Problem(f"the file is larger than {MAX_BYTES // 1024} KiB")])
    try:
        node = _Composer(text).get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ComposeRefusal(
            [Problem(f"malformed YAML: {message}", line=_line(mark), column=_column(mark))]
        ) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise ComposeRefusal([Problem("malformed YAML: unacceptable character", line=line, column=column)]) from None
    except yaml.YAMLError as exc:
        raise ComposeRefusal([Problem(f"malformed YAML: {exc}")]) from None
    except RecursionError:
        raise ComposeRefusal([Problem("malformed YAML: nested too deeply")]) from None
    if node is None:
        raise ComposeRefusal([Problem("the file is empty")])
    parsed = Parsed(data={})
    value = _Builder(parsed).build(node, ())
    if not isinstance(value, dict):
        raise ComposeRefusal([Problem("the file must be a mapping with a `services` key", line=1, column=1)])
    parsed.data = value
    return parsed


def _line(mark: Any) -> int | None:
    return mark.line + 1 if mark is not None else None


def _column(mark: Any) -> int | None:
    return mark.column + 1 if mark is not None else None


class _Builder:
    def __init__(self, parsed: Parsed) -> None:
        self.parsed = parsed
        self.budget = MAX_NODES
        self.active: set[int] = set()

    def _refuse(self, node: Node, message: str, path: Path) -> ComposeRefusal:
        key = ".".join(str(p) for p in path) or None
        return ComposeRefusal(
            [Problem(message, key=key, line=_line(node.start_mark), column=_column(node.start_mark))]
        )

    def build(self, node: Node, path: Path) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise self._refuse(node, f"too many values after expanding aliases (limit {MAX_NODES})", path)
        if len(path) > MAX_DEPTH:
            raise self._refuse(node, "nested too deeply", path)
        if id(node) in self.active:
            raise self._refuse(node, "an alias refers to itself", path)
        self.active.add(id(node))
        try:
            if isinstance(node, ScalarNode):
                return self._scalar(node, path)
            if isinstance(node, SequenceNode) and node.tag == _SEQ:
                items = []
                for index, child in enumerate(node.value):
                    self.parsed.positions.setdefault((*path, index), (_pos(child)))
                    items.append(self.build(child, (*path, index)))
                return items
            if isinstance(node, MappingNode) and node.tag == _MAP:
                return self._mapping(node, path)
            raise self._refuse(node, f"unsupported YAML tag {node.tag}", path)
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _MERGE:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                raise self._refuse(key_node, "mapping keys must be plain values", path)
            key = _key_text(self._scalar(key_node, path))
            if key in result:
                raise self._refuse(key_node, f"duplicate key {key!r}", (*path, key))
            self.parsed.positions.setdefault((*path, key), _pos(key_node))
            result[key] = self.build(value_node, (*path, key))
        # Explicit keys win over merged ones; earlier merge sources win over later ones.
        for merge in merges:
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                merged = self.build(source, path)
                if not isinstance(merged, dict):
                    raise self._refuse(source, "`<<` must merge a mapping", path)
                for key, value in merged.items():
                    result.setdefault(key, value)
        return result

    def _scalar(self, node: ScalarNode, path: Path) -> Any:
        text = node.value
        if node.tag == _STR:
            return text
        if node.tag == _NULL:
            return None
        if node.tag == _BOOL:
            return text.lower() == "true"
        if node.tag == _INT:
            try:
                return _int(text)
            except ValueError:
                raise self._refuse(node, f"invalid integer {text!r}", path) from None
        if node.tag == _FLOAT:
            try:
                return _float(text)
            except ValueError:
                raise self._refuse(node, f"invalid number {text!r}", path) from None
        raise self._refuse(node, f"unsupported YAML tag {node.tag}", path)


def _pos(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _key_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _int(text: str) -> int:
    lowered = text.lower()
    if lowered.startswith("0o"):
        return int(text[2:], 8)
    if lowered.startswith("0x"):
        return int(text[2:], 16)
    if re.fullmatch(r"[-+]?0[0-7]+", text):
        return int(text, 8)  # go-yaml v3 (docker compose) reads 0440 as octal, as file modes expect
    return int(text, 10)


def _float(text: str) -> float:
    lowered = text.lower().lstrip("+")
    if lowered in (".inf", "-.inf"):
        return -math.inf if lowered.startswith("-") else math.inf
    if lowered == ".nan":
        return math.nan
    return float(text)
