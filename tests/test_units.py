"""Exact parsing of counts and sizes, and their human forms."""

from __future__ import annotations

import pytest

from paramtool.errors import UsageError
from paramtool.units import human_bytes, human_count, parse_count, parse_percent, parse_size


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


def test_parse_percent() -> None:
    assert parse_percent("5%") == pytest.approx(0.05)
    assert parse_percent("0.05") == pytest.approx(0.05)
    with pytest.raises(UsageError):
        parse_percent("150%")


def test_human_forms() -> None:
    assert human_count(8_030_261_248) == "8.03B"
    assert human_bytes(140_000_000_000) == "140 GB"
    assert human_bytes(17_179_869_184, binary=True) == "16.0 GiB"
    assert human_bytes(999) == "999 B"
