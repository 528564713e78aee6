"""Tensor statistics (``paramtool stats``) and the NaN/Inf scan (``check --no-nan``).

Statistics (:class:`Summary`) are taken over the finite elements: min, max,
mean, population standard deviation and mean ``|x|``; exact counts of zeros
(``+0`` and ``-0``), NaNs and infinities cover every element. A span is
converted to float32 (16- and 8-bit floats, F4, integers of up to 16 bits and
bool, all exactly) or float64 (F64 and wider integers); its sum and sum of
``|x|`` use numpy's pairwise summation and its squared deviations are taken
about the span's own mean, so no catastrophic cancellation; spans, tensors and
roll-ups are merged in float64 with Chan et al.'s parallel update. A span whose
float32 sums are not finite (a NaN, an infinity, or an overflow) is redone in
float64 over its finite elements. Integer min and max are exact integers.
GGUF block types are dequantized to float32 by gguf's own dequantizer, a span of
whole blocks at a time. The reading itself is :mod:`paramtool.values.reader`'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from typing import Any

from paramtool.analysis.anatomy import CATEGORIES, classify
from paramtool.jsonable import number, source_fields
from paramtool.patterns import NamePattern
from paramtool.records import Checkpoint, TensorInfo
from paramtool.values.reader import (
    CHUNK_ELEMENTS,
    CODECS,
    SCRATCH,
    Codec,
    Files,
    Progress,
    Span,
    decode,
    default_workers,
    native,
    ordered_map,
    select,
    tensor_spans,
    undecoded,
)

SCHEMA_VERSION = 1  # of the --json document

Number = int | float


@dataclass(frozen=True, slots=True)
class Summary:
    """Statistics of a set of elements; float figures cover the finite ones only.

    ``mean``/``m2`` are the running mean and sum of squared deviations of
    Welford and Chan; ``min``/``max``/``mean`` are None when no element is finite.
    """

    count: int = 0
    finite: int = 0
    zeros: int = 0
    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    min: Number | None = None
    max: Number | None = None
    mean: float | None = None
    m2: float = 0.0
    sum_abs: float = 0.0
    tensors: int = 0

    @property
    def std(self) -> float | None:
        """Population standard deviation of the finite elements."""
        if not self.finite:
            return None
        return math.sqrt(max(self.m2, 0.0) / self.finite)

    @property
    def mean_abs(self) -> float | None:
        return self.sum_abs / self.finite if self.finite else None

    @property
    def max_abs(self) -> Number | None:
        if self.min is None or self.max is None:
            return None
        return max(abs(self.min), abs(self.max))

    @property
    def nonfinite(self) -> int:
        return self.nan + self.posinf + self.neginf

    @property
    def zero_fraction(self) -> float:
        return self.zeros / self.count if self.count else 0.0

    def __add__(self, other: Summary) -> Summary:
        """Chan et al.'s pairwise merge: exact counts, float64 moments."""
        n = self.finite + other.finite
        if not self.finite or not other.finite:
            mean, m2 = (self.mean, self.m2) if self.finite else (other.mean, other.m2)
        else:
            assert self.mean is not None and other.mean is not None
            delta = other.mean - self.mean
            mean = self.mean + delta * (other.finite / n)
            m2 = self.m2 + other.m2 + delta * delta * (self.finite * other.finite / n)
        return Summary(
            count=self.count + other.count,
            finite=n,
            zeros=self.zeros + other.zeros,
            nan=self.nan + other.nan,
            posinf=self.posinf + other.posinf,
            neginf=self.neginf + other.neginf,
            min=_pick(min, self.min, other.min),
            max=_pick(max, self.max, other.max),
            mean=mean,
            m2=m2,
            sum_abs=self.sum_abs + other.sum_abs,
            tensors=self.tensors + other.tensors,
        )


def _pick(
    fn: Callable[[Number, Number], Number], a: Number | None, b: Number | None
) -> Number | None:
    if a is None:
        return b
    if b is None:
        return a
    return fn(a, b)


EMPTY = Summary()


def array_summary(x: Any) -> Summary:
    """Statistics of a 1-D float32 or float64 array (see the module docstring)."""
    import numpy as np

    with np.errstate(all="ignore"):  # NaN, Inf and overflow are expected here, and handled
        return _array_summary(x)


def _array_summary(x: Any) -> Summary:
    import numpy as np

    n = int(x.size)
    if n == 0:
        return EMPTY
    scratch = SCRATCH.array("abs", x.dtype.name, n)[:n]
    total = float(np.add.reduce(x))
    a = np.abs(x, out=scratch)
    total_abs = float(np.add.reduce(a))
    if math.isfinite(total) and math.isfinite(total_abs):
        mean = total / n
        zeros = n - int(np.count_nonzero(a.view(np.uint32 if x.itemsize == 4 else np.uint64)))
        lo, hi = float(np.minimum.reduce(x)), float(np.maximum.reduce(x))
        centre = x.dtype.type(mean)
        c = np.subtract(x, centre, out=a)
        np.square(c, out=c)
        # Deviations are about the rounded centre: remove the (tiny) offset exactly.
        m2 = float(np.add.reduce(c)) - n * (mean - float(centre)) ** 2
        if math.isfinite(m2):
            return Summary(n, n, zeros, 0, 0, 0, lo, hi, mean, m2, total_abs)
    return _finite_summary(x)


def _finite_summary(x: Any) -> Summary:
    """The careful path: count NaN and infinities, then float64 moments of the finite rest."""
    import numpy as np

    n = int(x.size)
    finite = np.isfinite(x)
    k = int(np.count_nonzero(finite))
    nan = int(np.count_nonzero(np.isnan(x)))
    posinf = int(np.count_nonzero(x == np.inf))
    neginf = n - k - nan - posinf
    if k == 0:
        return Summary(n, 0, 0, nan, posinf, neginf)
    y = x[finite].astype(np.float64)
    mean = float(np.add.reduce(y)) / k
    a = np.abs(y)
    zeros = k - int(np.count_nonzero(a))
    c = y - mean
    m2 = float(np.dot(c, c))
    return Summary(
        n,
        k,
        zeros,
        nan,
        posinf,
        neginf,
        float(y.min()),
        float(y.max()),
        mean,
        m2,
        float(np.add.reduce(a)),
    )


def span_summary(files: Files, codec: Codec, span: Span) -> Summary:
    """Read one span and summarise it (runs in a worker thread)."""
    import numpy as np

    raw = files.read(span, SCRATCH.buffer("raw", span.nbytes))
    out = None if codec.storage == codec.compute else SCRATCH.array("x", codec.compute, span.count)
    s = array_summary(decode(codec, raw, span.count, out))
    if codec.integer and s.finite:
        values = native(codec, raw, span.count)
        s = replace(s, min=int(np.minimum.reduce(values)), max=int(np.maximum.reduce(values)))
    return s


@dataclass(frozen=True, slots=True)
class TensorStats:
    """One tensor's statistics, with where it sits in the model."""

    tensor: TensorInfo
    category: str
    layer: int | None
    summary: Summary


@dataclass(frozen=True, slots=True)
class Skipped:
    """A tensor whose values paramtool does not decode, and why."""

    tensor: TensorInfo
    reason: str


@dataclass(frozen=True, slots=True)
class StatsReport:
    """``paramtool stats``: per tensor (header order), per category, per layer, in total."""

    checkpoint: Checkpoint
    tensors: tuple[TensorStats, ...]
    skipped: tuple[Skipped, ...]
    total: Summary
    by_category: Mapping[str, Summary]  # every category of anatomy.CATEGORIES, in order
    by_layer: tuple[tuple[int, Summary], ...]
    pattern: str | None = None

    def top_abs(self, n: int) -> list[TensorStats]:
        """The ``n`` tensors with the largest finite ``|x|``."""
        ranked = [t for t in self.tensors if t.summary.max_abs is not None]
        ranked.sort(key=lambda t: -float(t.summary.max_abs))  # type: ignore[arg-type]
        return ranked[: max(n, 0)]

    def top_nonfinite(self, n: int) -> list[TensorStats]:
        """The ``n`` tensors with the most NaN and infinite values (those with any)."""
        ranked = [t for t in self.tensors if t.summary.nonfinite]
        ranked.sort(key=lambda t: (-t.summary.nan, -t.summary.nonfinite))
        return ranked[: max(n, 0)]

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        """The document ``paramtool stats --json`` prints (``--top N``: ``top=N``)."""
        ck = self.checkpoint
        return {
            "schema_version": SCHEMA_VERSION,
            **source_fields(ck),
            "filter": self.pattern,
            "tensor_count": len(self.tensors),
            "total": {"tensors": self.total.tensors, **summary_json(self.total)},
            "by_category": {
                c: {"tensors": self.by_category[c].tensors, **summary_json(self.by_category[c])}
                for c in CATEGORIES
            },
            "by_layer": [
                {"layer": i, "tensors": s.tensors, **summary_json(s)} for i, s in self.by_layer
            ],
            "tensors": [
                {
                    "name": t.tensor.name,
                    "dtype": t.tensor.dtype,
                    "shape": list(t.tensor.shape),
                    "category": t.category,
                    "layer": t.layer,
                    "file": t.tensor.file,
                    **summary_json(t.summary),
                }
                for t in self.tensors
            ],
            "top": {
                "n": top,
                "max_abs": [t.tensor.name for t in self.top_abs(top)],
                "nonfinite": [t.tensor.name for t in self.top_nonfinite(top)],
            },
            "unsupported": [
                {"name": s.tensor.name, "dtype": s.tensor.dtype, "reason": s.reason}
                for s in self.skipped
            ],
            "warnings": list(ck.warnings),
        }


def compute_stats(
    checkpoint: Checkpoint,
    *,
    pattern: NamePattern | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    chunk: int = CHUNK_ELEMENTS,
) -> StatsReport:
    """Read every selected tensor once and summarise it; ``progress`` gets bytes read."""
    chosen = select(checkpoint, pattern)
    readable = [(h, t) for h, t in chosen if t.dtype in CODECS]
    skipped = tuple(
        Skipped(t, undecoded(t.dtype) or "not decoded") for _, t in chosen if t.dtype not in CODECS
    )
    sums = [EMPTY] * len(readable)
    with Files() as files:
        items = (s for i, (h, t) in enumerate(readable) for s in tensor_spans(i, h, t, chunk))
        advance = progress or (lambda n: None)

        def work(span: Span) -> Summary:
            return span_summary(files, CODECS[readable[span.index][1].dtype], span)

        last_path = ""
        with closing(ordered_map(work, items, workers or default_workers())) as results:
            for span, s in results:
                sums[span.index] = sums[span.index] + s
                advance(span.nbytes)
                if span.path != last_path and last_path:
                    files.release(last_path)  # every span of the earlier file is done
                last_path = span.path
    rows = []
    for (_, t), s in zip(readable, sums, strict=True):
        role = classify(t.name)
        rows.append(TensorStats(t, role.category, role.layer, replace(s, tensors=1)))
    return rollup(checkpoint, rows, skipped, pattern.pattern if pattern else None)


def rollup(
    checkpoint: Checkpoint,
    rows: Sequence[TensorStats],
    skipped: Sequence[Skipped] = (),
    pattern: str | None = None,
) -> StatsReport:
    """Merge per-tensor statistics into the category, layer and total roll-ups."""
    total = EMPTY
    by_category = {c: EMPTY for c in CATEGORIES}
    layers: dict[int, Summary] = {}
    for r in rows:
        total = total + r.summary
        by_category[r.category] = by_category[r.category] + r.summary
        if r.layer is not None:
            layers[r.layer] = layers.get(r.layer, EMPTY) + r.summary
    return StatsReport(
        checkpoint,
        tuple(rows),
        tuple(skipped),
        total,
        by_category,
        tuple(sorted(layers.items())),
        pattern,
    )


def summary_json(s: Summary) -> dict[str, Any]:
    return {
        "count": s.count,
        "finite": s.finite,
        "zeros": s.zeros,
        "nan": s.nan,
        "posinf": s.posinf,
        "neginf": s.neginf,
        "zero_fraction": s.zero_fraction,
        "min": number(s.min),
        "max": number(s.max),
        "mean": number(s.mean),
        "std": number(s.std),
        "mean_abs": number(s.mean_abs),
        "max_abs": number(s.max_abs),
    }
