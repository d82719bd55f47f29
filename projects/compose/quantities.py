"""Compose sizes, CPU counts and durations turned into Kubernetes quantities and seconds."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_BINARY = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_K8S_SUFFIX = {
    "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
_K8S = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity ("500m", "1Gi") as a number; ValueError when it is not one."""
    match = _K8S.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 2, 512Mi, 10Gi)")
    return Decimal(match.group(1)) * _K8S_SUFFIX[match.group(2) or ""]


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


def cpu_quantity(millicpus: int) -> str:
    return str(millicpus // 1000) if millicpus % 1000 == 0 else f"{millicpus}m"


def memory_quantity(size: int) -> str:
    for suffix, unit in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def millicpus(quantity: str) -> int:
    return int((parse_quantity(quantity) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def memory_bytes(quantity: str) -> int:
    return int(parse_quantity(quantity).to_integral_value(rounding="ROUND_CEILING"))


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
