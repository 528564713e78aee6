"""Bounded searches over a monotone yes/no question (``fit``'s inverse solves).

Each asks a predicate at most about ``log2(hi - lo) + 1`` times; the predicate is assumed
monotone over ``[lo, hi]``, which holds for memory that only grows with the quantity
searched (context, sequences) or only shrinks with it (offloaded layers).
"""

from __future__ import annotations

from collections.abc import Callable


def largest(ok: Callable[[int], bool], lo: int, hi: int) -> int | None:
    """The largest ``n`` in ``[lo, hi]`` with ``ok(n)``, for ``ok`` true up to some point;
    None when ``ok(lo)`` is false."""
    if hi < lo or not ok(lo):
        return None
    if ok(hi):
        return hi
    good, bad = lo, hi  # ok(good), not ok(bad)
    while bad - good > 1:
        mid = (good + bad) // 2
        if ok(mid):
            good = mid
        else:
            bad = mid
    return good


def smallest(ok: Callable[[int], bool], lo: int, hi: int) -> int | None:
    """The smallest ``n`` in ``[lo, hi]`` with ``ok(n)``, for ``ok`` true from some point on;
    None when ``ok(hi)`` is false."""
    if hi < lo or not ok(hi):
        return None
    last_bad = largest(lambda n: not ok(n), lo, hi - 1)
    return lo if last_bad is None else last_bad + 1
