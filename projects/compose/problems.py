"""Problems (refusal reasons, warnings, notes) and the refusal exception."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One finding about a compose file, pointing at a service and a dotted key when it can."""

    message: str
    service: str | None = None
    key: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}" + (f", column {self.column}" if self.column else ""))
        if self.service:
            where.append(f"service {self.service!r}")
        if self.key:
            where.append(f"key {self.key}")
        prefix = f"{'; '.join(where)}: " if where else ""
        # One line, whatever the message or user input contained.
        return " ".join(f"{prefix}{self.message}".split())

    def as_dict(self) -> dict[str, object]:
        return {
            "service": self.service,
            "key": self.key,
            "message": self.message,
            "line": self.line,
            "column": self.column,
        }


class ComposeRefusal(Exception):  # noqa: N818 - the contract names it a refusal, not an error
    """The compose file cannot be deployed; nothing is applied. `.problems` says why."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(problems, key=_order)
        super().__init__("; ".join(str(p) for p in self.problems) or "refused")


def _order(problem: Problem) -> tuple[int, int, str, str]:
    return (problem.line or 0, problem.column or 0, problem.service or "", problem.key or "")
