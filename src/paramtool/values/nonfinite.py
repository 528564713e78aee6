"""The NaN/Inf scan behind ``check --no-nan`` and ``--no-inf``: exact counts, streamed.

Every floating-point tensor is scanned, GGUF block types included (dequantized by
gguf's own dequantizer, so a NaN or infinite block scale is found); a floating-point
tensor whose dtype is not decoded here is listed in ``skipped``, never passed over.
"""

from __future__ import annotations

import math
from contextlib import closing
from dataclasses import dataclass

from paramtool.patterns import NamePattern
from paramtool.records import Checkpoint
from paramtool.values.reader import (
    CODECS,
    SCRATCH,
    Codec,
    Files,
    Progress,
    Span,
    decode,
    default_workers,
    is_floating,
    ordered_map,
    select,
    tensor_spans,
    undecoded,
)
from paramtool.values.stats import Skipped


@dataclass(frozen=True, slots=True)
class NonFinite:
    """NaN and infinity counts of one tensor."""

    name: str
    dtype: str
    file: str
    nan: int
    posinf: int
    neginf: int

    @property
    def total(self) -> int:
        return self.nan + self.posinf + self.neginf


@dataclass(frozen=True, slots=True)
class NonFiniteReport:
    """Every tensor with a NaN or an infinity (header order), and the totals."""

    tensors: tuple[NonFinite, ...]
    scanned: int  # floating-point tensors read
    skipped: tuple[Skipped, ...]  # float types not decoded here (F6_*, C64, some GGUF types)

    @property
    def nan(self) -> int:
        return sum(t.nan for t in self.tensors)

    @property
    def inf(self) -> int:
        return sum(t.posinf + t.neginf for t in self.tensors)


def _span_nonfinite(files: Files, codec: Codec, span: Span) -> tuple[int, int, int]:
    import numpy as np

    raw = files.read(span, SCRATCH.buffer("raw", span.nbytes))
    out = None if codec.storage == codec.compute else SCRATCH.array("x", codec.compute, span.count)
    x = decode(codec, raw, span.count, out)
    with np.errstate(all="ignore"):
        total = float(np.add.reduce(x))
    if math.isfinite(total):  # any NaN or infinity makes the sum non-finite
        return 0, 0, 0
    nan = int(np.count_nonzero(np.isnan(x)))
    posinf = int(np.count_nonzero(x == np.inf))
    return nan, posinf, int(np.count_nonzero(x == -np.inf))


def scan_nonfinite(
    checkpoint: Checkpoint,
    *,
    pattern: NamePattern | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> NonFiniteReport:
    """Count NaN and +-Inf in every floating-point tensor; integer tensors cannot hold them.

    Cheaper than :func:`compute_stats`: one conversion and one sum per span, and
    counting only in the spans whose sum is not finite.
    """
    chosen = [(h, t) for h, t in select(checkpoint, pattern) if is_floating(t.dtype)]
    readable = [(h, t) for h, t in chosen if t.dtype in CODECS]
    skipped = tuple(
        Skipped(t, undecoded(t.dtype) or "not decoded") for _, t in chosen if t.dtype not in CODECS
    )
    counts = [[0, 0, 0] for _ in readable]
    advance = progress or (lambda n: None)
    with Files() as files:
        items = (s for i, (h, t) in enumerate(readable) for s in tensor_spans(i, h, t))

        def work(span: Span) -> tuple[int, int, int]:
            return _span_nonfinite(files, CODECS[readable[span.index][1].dtype], span)

        with closing(ordered_map(work, items, workers or default_workers())) as results:
            for span, (nan, pos, neg) in results:
                c = counts[span.index]
                c[0] += nan
                c[1] += pos
                c[2] += neg
                advance(span.nbytes)
    found = tuple(
        NonFinite(t.name, t.dtype, t.file, *c)
        for (_, t), c in zip(readable, counts, strict=True)
        if any(c)
    )
    return NonFiniteReport(found, len(readable), skipped)
