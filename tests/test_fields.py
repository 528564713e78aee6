"""Typed reads from mappings paramtool did not write: only real, positive integers count."""

from __future__ import annotations

from paramtool.fields import is_int, positive_int


def test_positive_int_takes_the_first_key_holding_a_positive_integer() -> None:
    cfg = {"num_heads": 0, "n_head": 32, "heads": 64}
    assert positive_int(cfg, "num_heads", "n_head", "heads") == 32
    assert positive_int(cfg, "missing") is None
    assert positive_int({}) is None


def test_nothing_else_counts_as_an_integer() -> None:
    for hostile in (True, False, "32", 32.0, -4, 0, None, [32], {"n": 32}):
        assert positive_int({"n": hostile}, "n") is None
    assert is_int(7) and is_int(-7) and not is_int(True) and not is_int(7.0)
