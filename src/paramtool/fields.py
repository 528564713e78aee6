"""Typed reads from mappings paramtool did not write: config.json, GGUF metadata and the like.

A value counts only when it has the type asked for: ``True`` is not the integer 1, and
``"32"`` is not 32. Anything else reads as missing, never as an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard


def is_int(value: object) -> TypeGuard[int]:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def positive_int(mapping: Mapping[str, Any], *keys: str) -> int | None:
    """The value of the first of ``keys`` that holds a positive integer; None when none does.

    >>> positive_int({"num_heads": 0, "n_head": 32}, "num_heads", "n_head")
    32
    """
    for key in keys:
        value = mapping.get(key)
        if is_int(value) and value > 0:
            return value
    return None
