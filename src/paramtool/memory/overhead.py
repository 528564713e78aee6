"""The serving overhead above weights and KV cache: a percentage or a fixed size.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction

from paramtool.errors import UsageError
from paramtool.frozen import dataclass
from paramtool.units import parse_size, percent_value

DEFAULT_OVERHEAD = "20%"




@dataclass(frozen=True, slots=True)
class Overhead:
    """What serving needs beyond weights and KV cache: CUDA context, activations, fragmentation.

    Either a fraction of the weights (it shards with them) or a fixed size per GPU.
    """

    fraction: Fraction | None = None
    bytes_per_gpu: int | None = None
    text: str = DEFAULT_OVERHEAD

    def per_gpu(self, weights_bytes: int, gpus: int = 1) -> int:
        if self.bytes_per_gpu is not None:
            return self.bytes_per_gpu
        assert self.fraction is not None
        return -(-self.fraction.numerator * weights_bytes // (self.fraction.denominator * gpus))


def parse_overhead(text: str) -> Overhead:
    """``20%`` (of the weights), ``0.2`` (the same), ``2GB`` or ``1.5GiB`` (per GPU)."""
    t = (text or "").strip()
    if t.endswith("%") or _is_plain_number(t):
        value = percent_value(t)
        if value is None:
            raise UsageError(repr(text), "write it like 20%, 2GB or 1.5GiB", param="overhead")
        if not 0 <= value <= 10:
            raise UsageError(
                repr(text), "a share of the weights between 0% and 1000%", param="overhead"
            )
        return Overhead(fraction=value, text=t)
    try:
        size = parse_size(t)
    except UsageError:
        raise UsageError(repr(text), "write it like 20%, 2GB or 1.5GiB", param="overhead") from None
    return Overhead(bytes_per_gpu=size, text=t)


def _is_plain_number(t: str) -> bool:
    try:
        value = Decimal(t)
    except InvalidOperation:
        return False
    return value.is_finite() and value <= 10 and "e" not in t.lower()
