"""Patterns users give to pick tensors by name (``--filter``), compiled once and checked."""

from __future__ import annotations

import re

from paramtool.errors import UsageError


def compile_filter(pattern: str | None) -> re.Pattern[str] | None:
    """A ``--filter`` regular expression, searched in each tensor name; None selects all."""
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as e:
        raise UsageError(repr(pattern), f"not a regular expression: {e}", param="filter") from None
