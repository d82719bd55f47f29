"""{{ amount|credits }}: integer millicredits shown as credits with three decimals."""

from __future__ import annotations

from django import template

from billing.money import MICROCREDITS_PER_MILLICREDIT, MILLICREDITS_PER_CREDIT, format_credits

MICROCREDITS_PER_CREDIT = MICROCREDITS_PER_MILLICREDIT * MILLICREDITS_PER_CREDIT

register = template.Library()


@register.filter
def credits(millicredits: int | None, arg: str = "") -> str:
    """12345 -> "12.345"; with "sign" positive amounts get a "+"."""
    if millicredits is None or millicredits == "":
        return ""
    return format_credits(millicredits, sign=arg == "sign")


@register.filter
def microcredits(value: int) -> str:
    """A price in microcredits as credits: 100000 -> "0.1"."""
    whole, frac = divmod(abs(value), MICROCREDITS_PER_CREDIT)
    text = f"{whole:,}.{frac:06d}".rstrip("0").rstrip(".")
    return f"-{text}" if value < 0 else text


@register.filter
def per_hour(price_per_second: int) -> int:
    return price_per_second * 3600
