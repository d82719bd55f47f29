"""Kubernetes quantities ("500m", "2", "512Mi", "10Gi"): the one parser and the one formatter, for both sides.

The agent validates its settings with it, the control plane's compose converter, plan limits and usage
metering with it. It depends on the standard library only, so Django code may import it (like agent.protocol).
"""

from __future__ import annotations

import re
from decimal import Decimal

_K8S_SUFFIX = {
    "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}
_K8S = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes quantity ("500m", "1Gi") as a number; ValueError when it is not one."""
    match = _K8S.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 2, 512Mi, 10Gi)")
    return Decimal(match.group(1)) * _K8S_SUFFIX[match.group(2) or ""]


def cpu_quantity(millicpus: int) -> str:
    return str(millicpus // 1000) if millicpus % 1000 == 0 else f"{millicpus}m"


def memory_quantity(size: int) -> str:
    """Bytes as the largest binary unit that divides them ("4Gi", "1536Mi")."""
    for suffix, unit in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def millicpus(quantity: str) -> int:
    return int((parse_quantity(quantity) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def memory_bytes(quantity: str) -> int:
    """Bytes, rounded up (also for storage sizes)."""
    return int(parse_quantity(quantity).to_integral_value(rounding="ROUND_CEILING"))
