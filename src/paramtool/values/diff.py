"""What differs between two checkpoints: structure, then values, tensor by tensor.

Tensors are matched by name, whatever file, shard or header position holds
them. Structure: names only in B (added), only in A (removed), the same name
with another shape (reshaped) or dtype (retyped). Values, for every common
tensor of one shape: whether it is bit-identical, how many elements changed,
``||B - A||`` and ``||B - A|| / ||A||`` (L2 norms over the elements finite in
both, in float64) and ``max |B - A|``. Spans of the two tensors are compared
byte for byte first; only spans that differ are decoded, so identical weights
cost a read and a ``memcmp``.

"Changed elements" counts stored bit patterns that differ when the dtype is the
same (so ``-0`` against ``+0`` or another NaN payload counts), and values that
differ (NaN equal to NaN) across dtypes. Changed elements where either side is
NaN or infinite are counted apart (``nonfinite``) and left out of the norms.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import Any

from paramtool.analysis.anatomy import CATEGORIES, classify
from paramtool.jsonable import number, source_fields
from paramtool.patterns import NamePattern
from paramtool.records import Checkpoint, FileHeader, TensorInfo
from paramtool.values.reader import (
    CHUNK_ELEMENTS,
    CODECS,
    Codec,
    Files,
    Progress,
    Scratch,
    Span,
    decode,
    default_workers,
    ordered_map,
    tensor_spans,
)

SCHEMA_VERSION = 1  # of the --json document

_SCRATCH = Scratch()


@dataclass(frozen=True, slots=True)
class TensorDiff:
    """One tensor present in both checkpoints with the same shape."""

    name: str
    category: str
    layer: int | None
    a: TensorInfo
    b: TensorInfo
    identical: bool  # same dtype and the same bytes
    changed: int | None = 0  # elements that differ; None when the dtype is not decoded
    nonfinite: int = 0  # changed elements where A or B is NaN or infinite
    diff_sq: float | None = 0.0  # sum of (B - A)^2 over elements finite in both
    a_sq: float | None = 0.0  # sum of A^2 over the same elements
    max_abs: float | None = 0.0  # max |B - A| over the same elements

    @property
    def elements(self) -> int:
        return self.a.parameters

    @property
    def retyped(self) -> bool:
        return self.a.dtype != self.b.dtype

    @property
    def l2(self) -> float | None:
        return None if self.diff_sq is None else math.sqrt(self.diff_sq)

    @property
    def rel_l2(self) -> float | None:
        """``||B - A|| / ||A||``; 0 when nothing changed, None when A is all zeros and B is not."""
        return relative(self.diff_sq, self.a_sq)


def relative(diff_sq: float | None, a_sq: float | None) -> float | None:
    if diff_sq is None or a_sq is None:
        return None
    if diff_sq == 0:
        return 0.0
    return math.sqrt(diff_sq / a_sq) if a_sq > 0 else None


@dataclass(frozen=True, slots=True)
class DiffTally:
    """A group of tensors (a category, a layer, everything) in a diff."""

    compared: int = 0  # tensors whose values were compared
    identical: int = 0
    changed: int = 0  # compared tensors that are not bit-identical
    added: int = 0
    removed: int = 0
    reshaped: int = 0
    retyped: int = 0
    elements: int = 0  # elements of the compared tensors
    changed_elements: int = 0
    diff_sq: float = 0.0
    a_sq: float = 0.0
    max_abs: float | None = None
    changed_layers: tuple[int, ...] = ()  # layers with a changed, added, removed or reshaped tensor

    @property
    def rel_l2(self) -> float | None:
        return relative(self.diff_sq, self.a_sq)

    @property
    def touched(self) -> bool:
        return bool(self.changed or self.added or self.removed or self.reshaped)


@dataclass(frozen=True, slots=True)
class DiffReport:
    """``paramtool diff A B``."""

    a: Checkpoint
    b: Checkpoint
    added: tuple[TensorInfo, ...]  # in B only, B's order
    removed: tuple[TensorInfo, ...]  # in A only, A's order
    reshaped: tuple[tuple[TensorInfo, TensorInfo], ...]  # (A, B), A's order
    tensors: tuple[TensorDiff, ...]  # same shape in both, A's order
    pattern: str | None = None
    total: DiffTally = field(default_factory=DiffTally)
    by_category: Mapping[str, DiffTally] = field(default_factory=dict)
    by_layer: tuple[tuple[int, DiffTally], ...] = ()

    @property
    def retyped(self) -> tuple[TensorDiff, ...]:
        return tuple(t for t in self.tensors if t.retyped)

    @property
    def identical(self) -> bool:
        """No structural difference and every common tensor bit-identical."""
        return not (self.added or self.removed or self.reshaped) and all(
            t.identical for t in self.tensors
        )

    def most_changed(self, n: int) -> list[TensorDiff]:
        """The ``n`` changed tensors with the largest relative L2 change (then max |B - A|)."""
        changed = [t for t in self.tensors if not t.identical]
        changed.sort(
            key=lambda t: (-(t.rel_l2 if t.rel_l2 is not None else math.inf), -(t.max_abs or 0.0))
        )
        return changed[: max(n, 0)]

    def to_dict(self) -> dict[str, Any]:
        """The document ``paramtool diff --json`` prints."""
        return {
            "schema_version": SCHEMA_VERSION,
            "a": _side(self.a),
            "b": _side(self.b),
            "filter": self.pattern,
            "identical": self.identical,
            "structure": {
                "added": [
                    {"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in self.added
                ],
                "removed": [
                    {"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in self.removed
                ],
                "reshaped": [
                    {
                        "name": a.name,
                        "shape_a": list(a.shape),
                        "shape_b": list(b.shape),
                        "dtype_a": a.dtype,
                        "dtype_b": b.dtype,
                    }
                    for a, b in self.reshaped
                ],
                "retyped": [
                    {
                        "name": d.name,
                        "dtype_a": d.a.dtype,
                        "dtype_b": d.b.dtype,
                        "shape": list(d.a.shape),
                    }
                    for d in self.retyped
                ],
            },
            "total": _tally_json(self.total),
            "by_category": {
                c: {
                    **_tally_json(self.by_category[c]),
                    "changed_layers": list(self.by_category[c].changed_layers),
                }
                for c in CATEGORIES
            },
            "by_layer": [{"layer": i, **_tally_json(t)} for i, t in self.by_layer],
            "tensors": [tensor_diff_json(d) for d in self.tensors],
            "warnings": list(self.a.warnings) + list(self.b.warnings),
        }


# ---------------------------------------------------------------- span comparison


@dataclass(frozen=True, slots=True)
class _Part:
    equal: bool
    changed: int = 0
    nonfinite: int = 0
    diff_sq: float = 0.0
    a_sq: float = 0.0
    max_abs: float = 0.0


_EQUAL = _Part(True)


def _same_bytes(x: memoryview, y: memoryview) -> bool:
    import numpy as np

    n = len(x)
    if len(y) != n:
        return False
    k = n - n % 8
    return bool(
        np.array_equal(np.frombuffer(x, np.uint64, k // 8), np.frombuffer(y, np.uint64, k // 8))
        and x[k:] == y[k:]
    )


def _bits(codec: Codec, raw: memoryview, count: int) -> Any:  # a numpy array
    """The stored element codes as unsigned integers, for comparing bit patterns."""
    import numpy as np

    from paramtool.values.reader import numpy_dtype

    if codec.per_byte:
        packed = np.frombuffer(raw, dtype=np.uint8, count=count // 2)
        codes = np.empty(count, dtype=np.uint8)
        np.bitwise_and(packed, 0x0F, out=codes[0::2])
        np.right_shift(packed, 4, out=codes[1::2])
        return codes
    size = numpy_dtype(codec.storage).itemsize
    return np.frombuffer(raw, dtype=f"u{size}", count=count)


def _as_f64(codec: Codec, raw: memoryview, count: int, key: str) -> Any:  # a numpy array
    out = _SCRATCH.array(key, "float64", count)
    if codec.per_byte or codec.storage != "float64":
        return decode(codec, raw, count, out)
    return decode(codec, raw, count)


def _compare(files: Files, ca: Codec | None, cb: Codec | None, sa: Span, sb: Span) -> _Part:
    """Compare one span of A with the same elements of B (runs in a worker thread)."""
    import numpy as np

    with np.errstate(all="ignore"):  # NaN, Inf and overflow are expected here, and handled
        return _compare_span(files, ca, cb, sa, sb)


def _compare_span(files: Files, ca: Codec | None, cb: Codec | None, sa: Span, sb: Span) -> _Part:
    import numpy as np

    ra = files.read(sa, _SCRATCH.buffer("a", sa.nbytes))
    rb = files.read(sb, _SCRATCH.buffer("b", sb.nbytes))
    same_type = ca is cb
    if same_type and _same_bytes(ra, rb):
        return _EQUAL
    if ca is None or cb is None:  # a dtype paramtool does not decode: bytes differ, nothing more
        return _Part(False, -1)
    n = sa.count
    x = _as_f64(ca, ra, n, "xa")
    y = _as_f64(cb, rb, n, "xb")
    if same_type and not ca.ggml:  # GGUF blocks have no per-element code: compare values
        changed_mask = _bits(ca, ra, n) != _bits(cb, rb, n)
    else:
        changed_mask = (x != y) & ~(np.isnan(x) & np.isnan(y))
    changed = int(np.count_nonzero(changed_mask))
    d = np.subtract(y, x, out=_SCRATCH.array("d", "float64", n)[:n])
    diff_sq = float(np.dot(d, d))
    a_sq = float(np.dot(x, x))
    if math.isfinite(diff_sq) and math.isfinite(a_sq):
        return _Part(False, changed, 0, diff_sq, a_sq, float(max(d.max(), -d.min())))
    both = np.isfinite(x) & np.isfinite(y)
    nonfinite = int(np.count_nonzero(changed_mask & ~both))
    d, x = d[both], x[both]
    max_abs = float(np.abs(d).max()) if d.size else 0.0
    return _Part(False, changed, nonfinite, float(np.dot(d, d)), float(np.dot(x, x)), max_abs)


def _norm_sq(files: Files, codec: Codec, span: Span) -> float:
    """Sum of squares of a span of A (its finite elements), for a span that did not change."""
    import numpy as np

    x = _as_f64(codec, files.read(span, _SCRATCH.buffer("a", span.nbytes)), span.count, "xa")
    with np.errstate(all="ignore"):
        s = float(np.dot(x, x))
        if not math.isfinite(s):
            x = x[np.isfinite(x)]
            s = float(np.dot(x, x))
    return s


# ---------------------------------------------------------------- the diff


def _by_name(
    checkpoint: Checkpoint, pattern: NamePattern | None
) -> dict[str, tuple[FileHeader, TensorInfo]]:
    out: dict[str, tuple[FileHeader, TensorInfo]] = {}
    for f in checkpoint.files:
        for t in f.tensors:
            if pattern is None or pattern.search(t.name):
                out.setdefault(t.name, (f, t))
    return out


def diff_checkpoints(
    a: Checkpoint,
    b: Checkpoint,
    *,
    pattern: NamePattern | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    chunk: int = CHUNK_ELEMENTS,
) -> DiffReport:
    """Compare ``a`` and ``b``; ``progress`` gets the bytes of A and B read."""
    ta, tb = _by_name(a, pattern), _by_name(b, pattern)
    added = tuple(t for name, (_, t) in tb.items() if name not in ta)
    removed = tuple(t for name, (_, t) in ta.items() if name not in tb)
    reshaped = tuple(
        (t, tb[name][1])
        for name, (_, t) in ta.items()
        if name in tb and tb[name][1].shape != t.shape
    )
    pairs = [
        (ta[name], tb[name])
        for name, (_, t) in ta.items()
        if name in tb and tb[name][1].shape == t.shape
    ]
    chunk -= chunk % 4  # so that spans of any two dtypes cover the same elements
    parts: list[list[_Part]] = [[] for _ in pairs]
    equal_spans: list[list[Span]] = [[] for _ in pairs]
    advance = progress or (lambda n: None)

    def items() -> Iterator[tuple[Span, Span]]:
        for i, ((fa, xa), (fb, xb)) in enumerate(pairs):
            yield from zip(
                tensor_spans(i, fa, xa, chunk), tensor_spans(i, fb, xb, chunk), strict=True
            )

    with Files() as files:

        def work(item: tuple[Span, Span]) -> _Part:
            sa, sb = item
            return _compare(
                files,
                CODECS.get(pairs[sa.index][0][1].dtype),
                CODECS.get(pairs[sa.index][1][1].dtype),
                sa,
                sb,
            )

        with closing(ordered_map(work, items(), workers or default_workers())) as results:
            for (sa, sb), part in results:
                parts[sa.index].append(part)
                if part.equal:
                    equal_spans[sa.index].append(sa)
                advance(sa.nbytes + sb.nbytes)
        rows = [
            _tensor_diff(files, p, spans, pa, pb)
            for p, spans, (pa, pb) in zip(parts, equal_spans, pairs, strict=True)
        ]
    return _tally(
        DiffReport(
            a, b, added, removed, reshaped, tuple(rows), pattern.pattern if pattern else None
        )
    )


def _tensor_diff(
    files: Files,
    parts: Sequence[_Part],
    equal_spans: Sequence[Span],
    pa: tuple[FileHeader, TensorInfo],
    pb: tuple[FileHeader, TensorInfo],
) -> TensorDiff:
    ta, tb = pa[1], pb[1]
    role = classify(ta.name)
    same_type = ta.dtype == tb.dtype
    if same_type and all(p.equal for p in parts):
        return TensorDiff(ta.name, role.category, role.layer, ta, tb, True)
    if any(p.changed < 0 for p in parts) or ta.dtype not in CODECS or tb.dtype not in CODECS:
        return TensorDiff(
            ta.name, role.category, role.layer, ta, tb, False, None, 0, None, None, None
        )
    codec = CODECS[ta.dtype]
    # Spans that did not change still count towards ||A||: read them again, only now.
    a_sq = math.fsum(
        [p.a_sq for p in parts if not p.equal] + [_norm_sq(files, codec, s) for s in equal_spans]
    )
    changed = [p for p in parts if not p.equal]
    return TensorDiff(
        ta.name,
        role.category,
        role.layer,
        ta,
        tb,
        False,
        changed=sum(p.changed for p in changed),
        nonfinite=sum(p.nonfinite for p in changed),
        diff_sq=math.fsum(p.diff_sq for p in changed),
        a_sq=a_sq,
        max_abs=max((p.max_abs for p in changed), default=0.0),
    )


def _merge(t: DiffTally, d: DiffTally) -> DiffTally:
    return DiffTally(
        compared=t.compared + d.compared,
        identical=t.identical + d.identical,
        changed=t.changed + d.changed,
        added=t.added + d.added,
        removed=t.removed + d.removed,
        reshaped=t.reshaped + d.reshaped,
        retyped=t.retyped + d.retyped,
        elements=t.elements + d.elements,
        changed_elements=t.changed_elements + d.changed_elements,
        diff_sq=t.diff_sq + d.diff_sq,
        a_sq=t.a_sq + d.a_sq,
        max_abs=d.max_abs if t.max_abs is None else max(t.max_abs, d.max_abs or 0.0),
        changed_layers=tuple(sorted(set(t.changed_layers) | set(d.changed_layers))),
    )


def _tally(r: DiffReport) -> DiffReport:
    """Fill in the totals, the per-category and the per-layer tallies."""
    groups: dict[str, DiffTally] = {c: DiffTally() for c in CATEGORIES}
    layers: dict[int, DiffTally] = {}
    total = DiffTally()

    def put(name: str, delta: DiffTally) -> None:
        nonlocal total
        role = classify(name)
        if delta.touched and role.layer is not None:
            delta = replace(delta, changed_layers=(role.layer,))
        total = _merge(total, delta)
        groups[role.category] = _merge(groups[role.category], delta)
        if role.layer is not None:
            layers[role.layer] = _merge(layers.get(role.layer, DiffTally()), delta)

    for t in r.added:
        put(t.name, DiffTally(added=1))
    for t in r.removed:
        put(t.name, DiffTally(removed=1))
    for ta, tb in r.reshaped:
        put(ta.name, DiffTally(reshaped=1, retyped=int(ta.dtype != tb.dtype)))
    for d in r.tensors:
        base = DiffTally(compared=1, elements=d.elements, retyped=int(d.retyped))
        if d.identical:
            put(d.name, replace(base, identical=1))
        else:
            changed = replace(base, changed=1, changed_elements=d.changed or 0, max_abs=d.max_abs)
            put(d.name, replace(changed, diff_sq=d.diff_sq or 0.0, a_sq=d.a_sq or 0.0))
    return DiffReport(
        r.a,
        r.b,
        r.added,
        r.removed,
        r.reshaped,
        r.tensors,
        r.pattern,
        total,
        groups,
        tuple(sorted(layers.items())),
    )


def layer_ranges(layers: Sequence[int]) -> str:
    """``[0, 1, 2, 3, 7, 9, 10]`` -> ``"0-3, 7, 9-10"``."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(set(layers)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ", ".join(out)


def _tally_json(t: DiffTally) -> dict[str, Any]:
    return {
        "compared": t.compared,
        "identical": t.identical,
        "changed": t.changed,
        "added": t.added,
        "removed": t.removed,
        "reshaped": t.reshaped,
        "retyped": t.retyped,
        "elements": t.elements,
        "changed_elements": t.changed_elements,
        "rel_l2": number(t.rel_l2),
        "max_abs": number(t.max_abs),
    }


def tensor_diff_json(d: TensorDiff) -> dict[str, Any]:
    return {
        "name": d.name,
        "category": d.category,
        "layer": d.layer,
        "dtype_a": d.a.dtype,
        "dtype_b": d.b.dtype,
        "shape": list(d.a.shape),
        "identical": d.identical,
        "elements": d.elements,
        "changed_elements": d.changed,
        "nonfinite_changed": d.nonfinite,
        "l2": number(d.l2),
        "rel_l2": number(d.rel_l2),
        "max_abs": number(d.max_abs),
    }


def _side(ck: Checkpoint) -> dict[str, Any]:
    return {
        **source_fields(ck),
        "files": [f.path for f in ck.files],
        "tensor_count": sum(len(f.tensors) for f in ck.files),
    }
