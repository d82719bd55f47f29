"""Compose sizes, CPU counts and durations turned into Kubernetes quantities and seconds. Kubernetes quantities
themselves are parsed and written by agent.quantities (re-exported here), shared with the agent."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from agent.quantities import cpu_quantity, memory_bytes, memory_quantity, millicpus, parse_quantity

__all__ = [
    "compose_bytes", "compose_millicpus", "cpu_quantity", "duration_seconds", "memory_bytes", "memory_quantity",
    "millicpus", "parse_quantity",
]

_BINARY = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def compose_bytes(value: object) -> int:
    """Docker's memory syntax ("50M", "1.5g", 10000) in bytes; units are binary, like docker's."""
    if isinstance(value, bool):
        raise ValueError("a size is expected")
    if isinstance(value, int | float):
        if value < 0 or not math.isfinite(value):
            raise ValueError("a size must be positive")
        return int(value)
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgtp]?)(?:i?b?)\s*", str(value).lower())
    if not match:
        raise ValueError(f"{value!r} is not a size (e.g. 512m, 1g)")
    return int(Decimal(match.group(1)) * _BINARY[match.group(2)])


def compose_millicpus(value: object) -> int:
    """Docker's CPU count ("0.5", 2) in millicores, at least 1."""
    if isinstance(value, bool):
        raise ValueError("a CPU count is expected")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a CPU count (e.g. 0.5)") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{value!r} is not a CPU count (e.g. 0.5)")
    return max(1, int((number * 1000).to_integral_value(rounding="ROUND_CEILING")))


def duration_seconds(value: object) -> float:
    """Compose durations ("1m30s", "10s", "500ms"), or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is expected")
    if isinstance(value, int | float):
        if value < 0 or not math.isfinite(value):
            raise ValueError("a duration must be positive")
        return float(value)
    text = str(value).strip()
    if not text or _DURATION.sub("", text):
        raise ValueError(f"{value!r} is not a duration (e.g. 10s, 1m30s)")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION.findall(text))
