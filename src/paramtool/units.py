"""Exact parsing and human formatting of counts, byte sizes and percentages.

Counts use decimal SI suffixes as model names do (8B = 8,000,000,000). Sizes
are decimal by default (GB = 10**9, as spec sheets and the Hub), binary on
request (GiB = 2**30). Parsing is exact: ``Decimal`` arithmetic, no floats.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal, InvalidOperation, localcontext
from fractions import Fraction

from paramtool.errors import UsageError

_COUNT_SUFFIX = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}
_SIZE_SUFFIX = {
    "": 1, "B": 1,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15,
    "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "PIB": 2**50,
}  # fmt: skip
_NUMBER = re.compile(r"^\s*([0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
MAX_VALUE = 10**30  # beyond any real count or size; keeps exponents like 1e999999 from running away


def _parse(text: str, table: dict[str, int], what: str, example: str) -> int:
    m = _NUMBER.match(text or "")
    if not m:
        raise UsageError(f"{what} {text!r}", f"not a number; write it like {example}")
    digits, suffix = m.group(1).replace("_", ""), m.group(2).upper()
    if suffix not in table:
        known = ", ".join(k for k in table if k)
        raise UsageError(f"{what} {text!r}", f"unknown suffix {m.group(2)!r} (use one of {known})")
    try:
        number = Decimal(digits)  # exact: the string constructor never rounds
    except InvalidOperation:
        raise UsageError(f"{what} {text!r}", f"not a number; write it like {example}") from None
    if number and not -40 <= number.adjusted() <= 40:
        why = (
            f"too large (the limit is {MAX_VALUE:.0e})"
            if number.adjusted() > 0
            else "does not come to a whole number"
        )
        raise UsageError(f"{what} {text!r}", why)
    # Exact product: enough digits for both factors, so nothing is ever rounded.
    value = Context(prec=len(digits) + 100).multiply(number, Decimal(table[suffix]))
    if value > MAX_VALUE:
        raise UsageError(f"{what} {text!r}", f"too large (the limit is {MAX_VALUE:.0e})")
    if value != value.to_integral_value():
        raise UsageError(f"{what} {text!r}", "does not come to a whole number")
    return int(value)


def parse_count(text: str) -> int:
    """Parse a parameter count: ``70B``, ``1.5T``, ``405M``, ``7e9``, ``8_030_261_248``."""
    if (text or "").strip().startswith("-"):
        raise UsageError(f"count {text!r}", "must be greater than zero")
    n = _parse(text, _COUNT_SUFFIX, "count", "70B, 1.5T, 405M, 7e9 or 8030261248")
    if n <= 0:
        raise UsageError(f"count {text!r}", "must be greater than zero")
    return n


def parse_size(text: str) -> int:
    """Parse a byte size: ``16GB`` (decimal), ``15GiB`` (binary), ``500MB``, ``1e9``."""
    return _parse(text, _SIZE_SUFFIX, "size", "16GB, 15GiB or 500MB")


def percent_value(text: str) -> Fraction | None:
    """``5%``, ``0.1%`` or a bare fraction ``0.05``, exactly; None when the text is neither.

    Decimal notation, read exactly (never through a float); ``nan`` is not a number. A
    magnitude past 1e40 (``inf`` too) comes back as ``±1e41``, outside any range a caller
    allows: its exact value could take hours to build (``1e999999999%``), and so could a
    fraction below 1e-1000, which reads as None.
    """
    t = (text or "").strip()
    percent = t.endswith("%")
    try:
        number = Decimal(t[:-1] if percent else t)
    except InvalidOperation:
        return None
    if number.is_nan():
        return None
    if number.is_infinite() or (number and number.adjusted() > 40):
        return Fraction(10**41 if number > 0 else -(10**41))
    if number and number.adjusted() < -1000:
        return None
    value = Fraction(number)
    return value / 100 if percent else value


def parse_percent(text: str, *, most: Fraction = Fraction(1)) -> Fraction:
    """Parse ``5%``, ``0.1%`` or a bare fraction ``0.05`` into an exact fraction, 0 to ``most``.

    >>> parse_percent("0.1%")
    Fraction(1, 1000)
    """
    value = percent_value(text)
    if value is None:
        raise UsageError(f"percentage {text!r}", "write it like 5% or 0.05")
    if not 0 <= value <= most:
        raise UsageError(f"percentage {text!r}", f"must lie between 0% and {percent_text(most)}")
    return value


def percent_text(f: Fraction) -> str:
    """1/20 -> "5%", 1/1000 -> "0.1%": exact, every digit the fraction has (up to 40)."""
    pct = f * 100
    if pct.denominator == 1:
        return f"{pct.numerator}%"
    with localcontext() as ctx:
        ctx.prec = 40
        return format((Decimal(pct.numerator) / pct.denominator).normalize(), "f") + "%"


def human_count(n: int) -> str:
    """``8030261248`` -> ``8.03B`` (three significant digits)."""
    for suffix, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(n) >= scale:
            return f"{_sig3(n / scale)}{suffix}"
    return str(n)


def human_bytes(n: int | float, binary: bool = False) -> str:
    """``16060522496`` -> ``16.1 GB`` (decimal) or ``15.0 GiB`` (binary)."""
    base, units = (1024, ("B", "KiB", "MiB", "GiB", "TiB", "PiB")) if binary else (
        1000, ("B", "kB", "MB", "GB", "TB", "PB"))  # fmt: skip
    value = float(n)
    for unit in units:
        if abs(value) < base or unit == units[-1]:
            return f"{int(value)} B" if unit == "B" else f"{_sig3(value)} {unit}"
        value /= base
    raise AssertionError("unreachable")


def _sig3(x: float) -> str:
    """Three significant digits, no exponent: 8.03, 80.3, 803."""
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


_WHOLE = re.compile(r"^\s*([0-9][0-9_]*)\s*([kK]?)\s*$")
MAX_WHOLE = 10**12  # larger whole-number arguments (layers, tokens, GPUs) are typos


def parse_whole(param: str, value: int | str, *, kilo: bool = False, low: int = 1) -> int:
    """The whole-number parameter ``param`` (an int, or text); ``kilo`` also takes ``8k`` = 8,192.

    >>> parse_whole("context", "128k", kilo=True)
    131072
    """
    if isinstance(value, bool):
        raise UsageError(repr(value), "expected a whole number", param=param)
    if isinstance(value, int):
        number, text = value, str(value)
    else:
        m = _WHOLE.match(value)
        if not m or (m.group(2) and not kilo):
            example = "8192 or 128k" if kilo else "a whole number such as 8"
            raise UsageError(repr(value), f"write it as {example}", param=param)
        number = int(m.group(1).replace("_", "")) * (1024 if m.group(2) else 1)
        text = repr(value)
    if number < low:
        raise UsageError(text, f"must be at least {low}", param=param)
    if number > MAX_WHOLE:
        raise UsageError(text, "too large", param=param)
    return number
