"""Integer money: formatting, parsing and the exact fine units prices are computed in."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import Plan
from billing.money import (
    FINE_PER_MICROCREDIT,
    FINE_PER_MILLICREDIT,
    MAX_ENTRY_MILLICREDITS,
    format_credits,
    parse_credits,
    require_int,
    split_fine,
)


@pytest.mark.parametrize(
    ("millis", "text", "signed"),
    [(0, "0.000", "0.000"), (5, "0.005", "+0.005"), (-5, "-0.005", "-0.005"), (12345, "12.345", "+12.345"),
     (-1_234_567_890, "-1,234,567.890", "-1,234,567.890")],
)
def test_it_formats_millicredits_as_credits_with_three_decimals(millis, text, signed):
    assert format_credits(millis) == text
    assert format_credits(millis, sign=True) == signed


@pytest.mark.parametrize(("text", "millis"), [("12.5", 12500), ("-0.001", -1), ("3", 3000), ("1,000.25", 1_000_250),
                                              (Decimal("0.010"), 10), (7, 7000)])
def test_it_parses_credits_exactly(text, millis):
    assert parse_credits(text) == millis


@pytest.mark.parametrize("bad", ["0.0001", "abc", "NaN", "Infinity", "", "99999999999999999999", "1e999999999",
                                 "-1000000000000.001"])
def test_it_refuses_amounts_it_cannot_represent(bad):
    with pytest.raises(ValueError):
        parse_credits(bad)


def test_the_largest_amount_of_one_entry_is_accepted():
    assert parse_credits("-1000000000000") == -MAX_ENTRY_MILLICREDITS


@pytest.mark.parametrize("value", [1.5, True, Decimal("1"), "1"])
def test_it_never_takes_a_float_or_anything_but_an_int_as_money(value):
    with pytest.raises(TypeError):
        require_int(value)
    with pytest.raises(TypeError):
        format_credits(value)
    if isinstance(value, float):
        with pytest.raises(TypeError):
            parse_credits(value)


def test_fine_units_make_every_price_an_exact_integer():
    plan = Plan(price_vcpu_second=1, price_memory_gib_second=1, price_volume_gib_month=1,
                price_database_gib_month=1, price_bucket_gib_month=1)
    # One millicore for one second at 1 microcredit per vCPU-second is 1/1000 microcredit.
    assert plan.cost_fine(cpu_millicore_seconds=1, memory_mib_seconds=0) * 1000 == FINE_PER_MICROCREDIT
    assert plan.cost_fine(cpu_millicore_seconds=0, memory_mib_seconds=1) * 1024 == FINE_PER_MICROCREDIT
    month = 30 * 24 * 3600
    for field in ("volume_gib_seconds", "database_gib_seconds", "bucket_gib_seconds"):
        assert plan.cost_fine(cpu_millicore_seconds=0, memory_mib_seconds=0, **{field: month}) == FINE_PER_MICROCREDIT


def test_a_default_window_costs_what_the_prices_say():
    plan = Plan()  # 20 microcredits per vCPU-second, 2 per GiB-second
    fine = plan.cost_fine(cpu_millicore_seconds=60 * 1000, memory_mib_seconds=60 * 1024)
    # 60 vCPU-seconds * 20 + 60 GiB-seconds * 2 = 1,320 microcredits = 1.32 millicredits
    assert fine == 1_320 * FINE_PER_MICROCREDIT
    assert split_fine(fine) == (1, 320 * FINE_PER_MICROCREDIT)
    assert split_fine(FINE_PER_MILLICREDIT * 7) == (7, 0)
