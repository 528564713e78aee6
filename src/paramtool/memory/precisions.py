"""The weights' bytes at every precision: exact integers from the one dtype table, and the
checkpoint's own bytes as stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from paramtool import dtypes
from paramtool.dtypes import DType
from paramtool.errors import UsageError
from paramtool.frozen import dataclass

if TYPE_CHECKING:
    from paramtool.analysis.breakdown import Breakdown

# The precisions listed when no --dtype is given: what people choose between when they
# serve a model (docs/footprint.md says why these). ``--dtype all`` lists ALL_PRECISIONS.
DEFAULT_PRECISIONS: tuple[str, ...] = (
    "F32", "BF16", "F8_E4M3", "I8", "INT4-G128", "NF4", "Q8_0", "Q5_K_M", "Q4_K_M",
)  # fmt: skip

# Every precision ``--dtype all`` lists, in the table's names.
ALL_PRECISIONS: tuple[str, ...] = (
    "F32", "TF32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "I8", "INT4",
    "NF4", "NF4-DQ", "FP4",
    "INT4-G32", "INT4-G32-ZP", "INT4-G64", "INT4-G64-ZP", "INT4-G128", "INT4-G128-ZP",
    "MXFP4", "NVFP4",
    "Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K", "IQ4_XS",
)  # fmt: skip

ALL = "all"  # --dtype all
STORED_NAMES = ("stored", "as-stored", "as_stored")  # --dtype stored: the checkpoint's bytes
STORED_LABEL = "as-stored"
STORED_KIND = "stored"


@dataclass(frozen=True, slots=True)
class StoredWeights:
    """A checkpoint's tensors as its files hold them: every byte, and what they are."""

    bytes: int
    description: str  # "gptq 4-bit: I32 3.96 GB, F16 1.77 GB"


def stored_weights(breakdown: Breakdown) -> StoredWeights:
    """The stored tensor bytes of a checkpoint (the Breakdown's total), with its dtypes."""
    parts = sorted(breakdown.by_dtype.items(), key=lambda kv: -kv[1].bytes)
    listed = ", ".join(f"{name} {t.bytes / 1e9:.3g} GB" for name, t in parts if t.bytes)
    q = breakdown.quantization
    head = "the checkpoint's tensors as stored"
    if q is not None:
        head += f" ({q.scheme}" + (f", {q.bits}-bit" if q.bits else "") + ")"
    return StoredWeights(breakdown.stored_bytes, f"{head}: {listed}" if listed else head)


@dataclass(frozen=True, slots=True)
class PrecisionRow:
    """The weights of ``parameters`` at one precision (or as the checkpoint stores them)."""

    dtype: DType
    parameters: int

    @property
    def as_stored(self) -> bool:
        """The checkpoint's own bytes, not an estimate at a precision."""
        return self.dtype.kind == STORED_KIND

    @property
    def bits_per_parameter(self) -> float:
        return self.dtype.bits

    @property
    def weights_bytes(self) -> int:
        return self.dtype.estimate_nbytes(self.parameters)


def stored_row(parameters: int, stored: StoredWeights) -> PrecisionRow:
    """The as-stored row: a one-block dtype whose block is the whole checkpoint, so that
    its bytes are exactly the stored bytes and its bits the stored bits per parameter."""
    dtype = DType(STORED_LABEL, parameters, stored.bytes, STORED_KIND, note=stored.description)
    return PrecisionRow(dtype, parameters)


def is_stored_name(name: str) -> bool:
    return name.strip().lower() in STORED_NAMES


def precision_rows(
    parameters: int,
    names: Sequence[str] | None = None,
    stored: StoredWeights | None = None,
) -> tuple[PrecisionRow, ...]:
    """One row per precision: the default list, ``all``, or the named ones; the as-stored
    row first when a checkpoint's ``stored`` bytes are known and no names (or ``all`` or
    ``stored``) are given."""
    wanted = list(names or ())
    show_stored = not wanted
    chosen: list[str] = []
    for n in wanted:
        if is_stored_name(n):
            if stored is None:
                raise UsageError(
                    n, "the as-stored row needs a checkpoint to read the bytes of", param="dtype"
                )
            show_stored = True
        elif n.strip().lower() == ALL:
            show_stored = True
            chosen.extend(ALL_PRECISIONS)
        else:
            chosen.append(n)
    if not wanted:
        chosen = list(DEFAULT_PRECISIONS)
    rows: list[PrecisionRow] = []
    if show_stored and stored is not None and stored.bytes > 0:
        rows.append(stored_row(parameters, stored))
    seen: set[str] = set()
    for d in (dtypes.lookup(n) for n in chosen):
        if d.name not in seen:
            seen.add(d.name)
            rows.append(PrecisionRow(d, parameters))
    return tuple(rows)
