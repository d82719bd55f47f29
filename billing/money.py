"""Money as integers: amounts, prices and the exact arithmetic that connects them.

Units
- Ledger amounts and balances are integer **millicredits** (1 credit = 1,000 millicredits).
- Prices are integer **microcredits** per unit (1 credit = 1,000,000 microcredits): per vCPU-second,
  per GiB-second of memory, per GiB-month of storage. Compute prices are tiny per second, so a coarser
  unit would round them to zero.
- Usage is measured in millicore-seconds, MiB-seconds and GiB-seconds. Turning those into money
  divides by 1,000 (millicores per vCPU), 1,024 (MiB per GiB) and 2,592,000 (seconds in a 30-day
  month). To stay exact, costs are counted in **fine units**: 1 microcredit = 10,368,000 fine units,
  the least common multiple of those divisors, so every cost is a whole number of fine units.
- Database and bucket sizes are measured in bytes (byte-seconds): dividing by GiB as well would need a fine
  unit 2^20 times smaller, too small for 64-bit costs, so their share below one fine unit is rounded down
  (Plan.cost_parts).

Rounding: a usage charge is the whole millicredits of (cost of the window + the organization's carried
remainder); the fraction left over is carried on the account to the next window. Nothing is rounded
away, nothing is charged twice, and the total charged never differs from the exact total by a
millicredit or more. No float is involved anywhere; Decimal appears only to parse and show credits.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation

MILLICREDITS_PER_CREDIT = 1_000
MICROCREDITS_PER_MILLICREDIT = 1_000
GIB = 1024**3  # bytes; database and bucket sizes are measured in bytes
SECONDS_PER_MONTH = 30 * 24 * 3600  # storage is priced per 30-day month
FINE_PER_MICROCREDIT = 10_368_000  # lcm(1_000, 1_024, 2_592_000)
FINE_PER_MILLICREDIT = FINE_PER_MICROCREDIT * MICROCREDITS_PER_MILLICREDIT

# Fine units per (usage unit x price in microcredits):
FINE_PER_MILLICORE_SECOND = FINE_PER_MICROCREDIT // 1_000  # price is per vCPU-second
FINE_PER_MIB_SECOND = FINE_PER_MICROCREDIT // 1_024  # price is per GiB-second
FINE_PER_GIB_SECOND_OF_MONTH = FINE_PER_MICROCREDIT // SECONDS_PER_MONTH  # price is per GiB-month

assert FINE_PER_MILLICORE_SECOND * 1_000 == FINE_PER_MICROCREDIT
assert FINE_PER_MIB_SECOND * 1_024 == FINE_PER_MICROCREDIT
assert FINE_PER_GIB_SECOND_OF_MONTH * SECONDS_PER_MONTH == FINE_PER_MICROCREDIT


# The most one ledger entry may move, and the most a balance may hold either way: far beyond any real
# payment, far below where 64-bit database integers overflow (so no sum of entries can reach it).
MAX_ENTRY_MILLICREDITS = 10**15  # one trillion credits
MAX_BALANCE_MILLICREDITS = 10**17


def require_int(value: object, what: str = "amount") -> int:
    """`value` if it is a real int (not bool, float or Decimal); money never goes through floats."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an integer number of millicredits, not {type(value).__name__}")
    return value


def format_credits(millicredits: int, *, sign: bool = False) -> str:
    """12345 -> "12.345"; -5 -> "-0.005". With sign=True positive amounts get a "+"."""
    millicredits = require_int(millicredits)
    whole, frac = divmod(abs(millicredits), MILLICREDITS_PER_CREDIT)
    prefix = "-" if millicredits < 0 else ("+" if sign and millicredits > 0 else "")
    return f"{prefix}{whole:,}.{frac:03d}"


def parse_credits(text: str | Decimal | int) -> int:
    """"12.5" credits -> 12500 millicredits. More than three decimals is an error, not a rounding."""
    if isinstance(text, bool) or isinstance(text, float):
        raise TypeError("credits must be given as text, Decimal or int, never float")
    try:
        value = Decimal(str(text).strip().replace(",", ""))
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount of credits (e.g. 12.5)") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not an amount of credits (e.g. 12.5)")
    # Compared before any arithmetic: "1e999999999" must neither overflow Decimal nor become a billion digits.
    if value.copy_abs() > Decimal(MAX_ENTRY_MILLICREDITS) / MILLICREDITS_PER_CREDIT:  # copy_abs: no rounding
        raise ValueError(f"At most {format_credits(MAX_ENTRY_MILLICREDITS)} credits, up or down, in one entry.")
    millis = value * MILLICREDITS_PER_CREDIT
    if millis != millis.to_integral_value(rounding=ROUND_DOWN):
        raise ValueError("Credits have at most three decimals (1 millicredit is the smallest amount).")
    return int(millis)


def split_fine(fine_total: int) -> tuple[int, int]:
    """(whole millicredits, remaining fine units) of a non-negative number of fine units."""
    return divmod(fine_total, FINE_PER_MILLICREDIT)
