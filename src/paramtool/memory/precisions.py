"""The weights' bytes at every precision: exact integers from the one dtype table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from paramtool import dtypes
from paramtool.dtypes import DType

# The precisions listed when no --dtype is given (issue 3), in the table's names.
DEFAULT_PRECISIONS: tuple[str, ...] = (
    "F32", "TF32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "I8", "INT4",
    "NF4", "NF4-DQ", "FP4",
    "INT4-G32", "INT4-G32-ZP", "INT4-G64", "INT4-G64-ZP", "INT4-G128", "INT4-G128-ZP",
    "MXFP4", "NVFP4",
    "Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K", "IQ4_XS",
)  # fmt: skip




@dataclass(frozen=True, slots=True)
class PrecisionRow:
    """The weights of ``parameters`` at one precision."""

    dtype: DType
    parameters: int

    @property
    def bits_per_parameter(self) -> float:
        return self.dtype.bits

    @property
    def weights_bytes(self) -> int:
        return self.dtype.estimate_nbytes(self.parameters)


def precision_rows(parameters: int, names: Sequence[str] | None = None) -> tuple[PrecisionRow, ...]:
    """One row per precision: the issue's list by default, or the named ones."""
    chosen = [dtypes.lookup(n) for n in (names or DEFAULT_PRECISIONS)]
    return tuple(PrecisionRow(d, parameters) for d in chosen)
