"""Strided views: a pickled tensor's elements in C order, gathered from its storage.

A PyTorch tensor is a view of a storage: an offset and a stride per dimension, in
elements. Read as safetensors would store it, a view is its elements in C order. A
contiguous view is one byte range; any other is gathered, run by run:

- a *run* is the innermost stretch of elements that are contiguous in the storage;
  runs of at least :data:`RUN_BYTES` are read one by one, straight where they belong;
- shorter runs are picked out (numpy) from the storage span the elements touch, read
  in one piece, and only when the whole view's span fits :data:`GATHER_BYTES`; a
  sparser view is refused (:func:`gather_refusal`), never read piecemeal without bound.

Shared by ``paramtool convert`` (which writes the gathered bytes) and the value readers
(``stats``, ``hash``, ``diff``), so a view reads the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

GATHER_BYTES = 256 << 20  # the most storage a view with short runs is gathered from
RUN_BYTES = 64 << 10  # contiguous runs at least this long are read run by run
_UINT = {1: "uint8", 2: "uint16", 4: "uint32", 8: "uint64"}


def is_contiguous(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Whether a view's elements lie in C order, back to back (size-1 dimensions aside)."""
    expect = 1
    for d, s in zip(reversed(shape), reversed(strides), strict=True):
        if d != 1 and s != expect:
            return False
        expect *= d
    return True


def runs(shape: Sequence[int], strides: Sequence[int]) -> tuple[int, list[tuple[int, int]]]:
    """(elements per contiguous run, the sizes and strides of the outer dimensions)."""
    run, k = 1, len(shape) - 1
    while k >= 0 and (shape[k] == 1 or strides[k] == run):
        run *= shape[k]
        k -= 1
    return run, [(shape[i], strides[i]) for i in range(k + 1)]


def extent(shape: Sequence[int], strides: Sequence[int]) -> int:
    """Elements of the storage a (non-empty) view spans, from its first element."""
    return 1 + sum((d - 1) * s for d, s in zip(shape, strides, strict=True))


def run_starts(outer: Sequence[tuple[int, int]], base: int) -> Iterator[int]:
    """The storage position of each run, in C order."""
    if not outer:
        yield base
        return
    (d, s), rest = outer[0], outer[1:]
    for i in range(d):
        yield from run_starts(rest, base + i * s)


def gather_refusal(
    shape: Sequence[int],
    strides: Sequence[int],
    itemsize: int,
    *,
    run_bytes: int | None = None,
    gather_bytes: int | None = None,
) -> str | None:
    """Why a view is not gathered (too sparse for :data:`GATHER_BYTES`), or None."""
    run_bytes = RUN_BYTES if run_bytes is None else run_bytes
    gather_bytes = GATHER_BYTES if gather_bytes is None else gather_bytes
    n = 1
    for d in shape:
        n *= d
    if n == 0 or is_contiguous(shape, strides):
        return None
    run, _ = runs(shape, strides)
    span = extent(shape, strides) * itemsize
    if run * itemsize < run_bytes and span > gather_bytes:
        return (
            f"a strided view spanning {span:,} bytes of its storage in runs of "
            f"{run * itemsize:,} bytes, more than the {gather_bytes:,} bytes gathered in "
            "memory; save it with .contiguous() first"
        )
    return None


ReadInto = Callable[[int, memoryview], None]  # (absolute byte offset, view to fill)


def gather_into(
    read_into: ReadInto,
    base: int,
    shape: Sequence[int],
    strides: Sequence[int],
    itemsize: int,
    first: int,
    out: memoryview,
    *,
    run_bytes: int | None = None,
) -> None:
    """Fill ``out`` with elements ``[first, first + len(out) // itemsize)`` of a view, in C
    order; ``base`` is the byte offset of the view's first element (its storage offset).

    ``read_into(offset, view)`` fills ``view`` with the bytes at ``offset``.
    """
    import numpy as np

    count = len(out) // itemsize
    if count == 0:
        return
    run, outer = runs(shape, strides)
    q0, q1 = first // run, (first + count - 1) // run  # the runs the range touches
    if outer:
        sizes = [d for d, _ in outer]
        steps = np.array([s for _, s in outer], dtype=np.int64)
        index = np.unravel_index(np.arange(q0, q1 + 1, dtype=np.int64), sizes)
        starts = np.stack(index, axis=-1).astype(np.int64) @ steps
    else:
        starts = np.zeros(1, dtype=np.int64)
    if run * itemsize >= (RUN_BYTES if run_bytes is None else run_bytes):
        done = 0
        for k, start in enumerate(starts.tolist()):
            lo = first - (q0 + k) * run if k == 0 else 0
            n = min(run - lo, count - done)
            read_into(base + (start + lo) * itemsize, out[done * itemsize : (done + n) * itemsize])
            done += n
        return
    positions = (starts[:, None] + np.arange(run, dtype=np.int64)[None, :]).reshape(-1)
    positions = positions[first - q0 * run : first - q0 * run + count]
    lo, hi = int(positions.min()), int(positions.max()) + 1
    raw = bytearray((hi - lo) * itemsize)
    read_into(base + lo * itemsize, memoryview(raw))
    stored = np.frombuffer(raw, dtype=_UINT.get(itemsize, f"V{itemsize}"))
    target: Any = np.frombuffer(out, dtype=stored.dtype, count=count)
    np.take(stored, positions - lo, out=target)
