"""Exact parsing of counts and sizes, and their human forms."""

from __future__ import annotations

from fractions import Fraction

import pytest

from paramtool.errors import UsageError
from paramtool.units import (
    human_bytes,
    human_count,
    parse_count,
    parse_percent,
    parse_size,
    percent_text,
    percent_value,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("70B", 70_000_000_000),
        ("70b", 70_000_000_000),
        ("1.5T", 1_500_000_000_000),
        ("405M", 405_000_000),
        ("7e9", 7_000_000_000),
        ("8030261248", 8_030_261_248),
        ("8_030_261_248", 8_030_261_248),
        (" 8B ", 8_000_000_000),
        ("0.5K", 500),
        ("1.5e-3T", 1_500_000_000),
        ("7E9", 7_000_000_000),
        ("1e30", 10**30),
        # more digits than a float holds, still exact
        ("123456789012345678901234567", 123_456_789_012_345_678_901_234_567),
        ("1.0000000000000000000000000000000000000000000000000K", 1000),
    ],
)
def test_parse_count_accepts(text: str, value: int) -> None:
    assert parse_count(text) == value


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("70Q", "unknown suffix"),
        ("-5B", "greater than zero"),
        ("", "not a number"),
        ("   ", "not a number"),
        ("0", "greater than zero"),
        ("0B", "greater than zero"),
        ("1.5", "whole number"),
        ("1e-999999", "whole number"),
        ("1e999999999", "too large"),  # used to raise decimal.Overflow (a traceback)
        ("1e31", "too large"),
        ("B", "not a number"),
        ("70 billion", "unknown suffix"),
        ("1.2.3B", "not a number"),
        ("nan", "not a number"),
        ("inf", "not a number"),
        ("0x10", "not a number"),
    ],
)
def test_parse_count_rejects_with_one_clear_reason(text: str, why: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_count(text)
    assert why in e.value.why
    assert e.value.what == f"count {text!r}"


def test_parse_size_decimal_and_binary() -> None:
    assert parse_size("16GB") == 16 * 10**9
    assert parse_size("15GiB") == 15 * 2**30
    assert parse_size("1.5GB") == 1_500_000_000
    assert parse_size("0") == 0
    with pytest.raises(UsageError, match="too large"):
        parse_size("1e99999999GB")


def test_parse_percent_is_exact() -> None:
    assert parse_percent("5%") == Fraction(1, 20)
    assert parse_percent("0.05") == Fraction(1, 20)
    assert parse_percent(" 0.1 %") == Fraction(1, 1000)
    assert parse_percent("0.1000000000000000000000000000001") == Fraction(
        1000000000000000000000000000001, 10**31
    )
    assert parse_percent("1000%", most=Fraction(10)) == 10


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("150%", "must lie between 0% and 100%"),
        ("-1%", "must lie between 0% and 100%"),
        ("inf", "must lie between 0% and 100%"),
        ("1e999999999%", "must lie between 0% and 100%"),  # at once, never 10**999999999
        ("nan", "write it like 5% or 0.05"),
        ("1/20", "write it like 5% or 0.05"),
        ("5 percent", "write it like 5% or 0.05"),
        ("%", "write it like 5% or 0.05"),
        ("1e-99999999%", "write it like 5% or 0.05"),  # likewise
    ],
)
def test_parse_percent_rejects(text: str, why: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_percent(text)
    assert e.value.what == f"percentage {text!r}" and e.value.why == why


def test_percent_value_and_text() -> None:
    assert percent_value("20%") == Fraction(1, 5) and percent_value("lots") is None
    assert percent_value("1e50") == 10**41  # beyond every range, without building 10**50
    assert percent_text(Fraction(1, 20)) == "5%" and percent_text(Fraction(1, 1000)) == "0.1%"
    assert percent_text(Fraction(10)) == "1000%"


def test_human_forms() -> None:
    assert human_count(8_030_261_248) == "8.03B"
    assert human_bytes(140_000_000_000) == "140 GB"
    assert human_bytes(17_179_869_184, binary=True) == "16.0 GiB"
    assert human_bytes(999) == "999 B"
