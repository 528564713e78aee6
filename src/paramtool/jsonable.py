"""Pieces the core's JSON documents share: strict numbers, where a checkpoint came from."""

from __future__ import annotations

import math
from typing import Any

from paramtool.records import Checkpoint


def number(x: float | int | None) -> float | int | str | None:
    """A statistic as strict JSON: ints and finite floats as is, others as strings.

    ``"inf"``, ``"-inf"`` or ``"nan"`` stand for the rare float64 overflow, so that every
    document stays strict JSON.
    """
    if x is None or isinstance(x, int):
        return x
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def source_fields(ck: Checkpoint) -> dict[str, Any]:
    """``source`` and ``revision`` (the pinned Hub commit, or null for local files)."""
    return {"source": ck.source, "revision": ck.hub.revision if ck.hub else None}
