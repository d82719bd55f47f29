"""Collects refusals, warnings and notes, each placed at a line and column of the file."""

from __future__ import annotations

from .parse import Parsed, Path
from .problems import ComposeRefusal, Problem


class Report:
    def __init__(self, parsed: Parsed) -> None:
        self.parsed = parsed
        self.refusals: list[Problem] = []
        self.warnings: list[Problem] = []
        self.notes: list[Problem] = []

    def problem(self, path: Path, message: str) -> Problem:
        line, column = self.parsed.position(path)
        service = str(path[1]) if len(path) >= 2 and path[0] == "services" else None
        key = ".".join(str(p) for p in path) or None
        return Problem(message, service=service, key=key, line=line, column=column)

    def refuse(self, path: Path, message: str) -> None:
        self.refusals.append(self.problem(path, message))

    def warn(self, path: Path, message: str) -> None:
        self.warnings.append(self.problem(path, message))

    def note(self, path: Path, message: str) -> None:
        self.notes.append(self.problem(path, message))

    def raise_if_refused(self) -> None:
        if self.refusals:
            raise ComposeRefusal(self.refusals)


class Invalid(Exception):  # noqa: N818 - control flow inside the normalizer, never escapes it
    """A value has the wrong shape; the normalizer records a refusal and skips the key."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
