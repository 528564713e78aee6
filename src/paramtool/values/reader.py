"""Reading tensor values: decoding every safetensors dtype, and streaming spans.

Tensors are read in spans of at most :data:`CHUNK_ELEMENTS` elements with
``pread`` into per-thread buffers that are reused, never through a memory map:
mapped page-cache pages count towards the process's resident memory, copied
chunks do not outlive their chunk. Peak memory is therefore a few buffers per
worker thread, whatever the checkpoint's size. Spans are handed to a small pool
of threads (numpy and hashlib release the GIL) and their results come back in
order, so that every figure is merged in the same order on every run.

Decoding is ml_dtypes' (bfloat16, the float8 family, float8_e8m0fnu, and
float4_e2m1fn after splitting each byte into two codes, low nibble first, the
order of PyTorch's float4_e2m1fn_x2 and the OCP MX specification). F6_E2M3 and
F6_E3M2 (four values in three bytes, a packing no library defines) and C64
(complex numbers have no order) are not decoded: see :data:`UNSUPPORTED`.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from paramtool import dtypes
from paramtool.errors import MetadataIncompleteBuffer, SourceNotFound
from paramtool.records import Checkpoint, FileHeader, TensorInfo

CHUNK_ELEMENTS = 1 << 18  # elements per span: 1 MB of float32, about one core's L2 cache
MAX_WORKERS = 8
T = TypeVar("T")
R = TypeVar("R")
Progress = Callable[[int], None]  # called with a number of bytes just read


def default_workers() -> int:
    """Threads to read with: one per core, at most :data:`MAX_WORKERS`."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


# ---------------------------------------------------------------- decoding


@dataclass(frozen=True, slots=True)
class Codec:
    """How one safetensors dtype becomes numbers: its numpy storage type and compute type."""

    dtype: str  # the safetensors name
    storage: str  # numpy or ml_dtypes type name of one stored element (one code for F4)
    compute: str  # "float32" or "float64": exact for every value of ``storage``
    integer: bool = False  # integers and bool: min and max are reported as exact ints
    per_byte: int = 0  # F4: two elements per byte (0: one element is ``itemsize`` bytes)


_F32, _F64 = "float32", "float64"
CODECS: Mapping[str, Codec] = {
    c.dtype: c
    for c in (
        Codec("F64", "float64", _F64),
        Codec("F32", "float32", _F32),
        Codec("F16", "float16", _F32),
        Codec("BF16", "bfloat16", _F32),
        Codec("F8_E4M3", "float8_e4m3fn", _F32),
        Codec("F8_E5M2", "float8_e5m2", _F32),
        Codec("F8_E4M3FNUZ", "float8_e4m3fnuz", _F32),
        Codec("F8_E5M2FNUZ", "float8_e5m2fnuz", _F32),
        Codec("F8_E8M0", "float8_e8m0fnu", _F32),
        Codec("F4", "float4_e2m1fn", _F32, per_byte=2),
        Codec("I64", "int64", _F64, integer=True),
        Codec("U64", "uint64", _F64, integer=True),
        Codec("I32", "int32", _F64, integer=True),
        Codec("U32", "uint32", _F64, integer=True),
        Codec("I16", "int16", _F32, integer=True),
        Codec("U16", "uint16", _F32, integer=True),
        Codec("I8", "int8", _F32, integer=True),
        Codec("U8", "uint8", _F32, integer=True),
        Codec("BOOL", "bool", _F32, integer=True),
    )
}
UNSUPPORTED: Mapping[str, str] = {
    "F6_E2M3": "6-bit floats packed four to three bytes: no library defines the packing",
    "F6_E3M2": "6-bit floats packed four to three bytes: no library defines the packing",
    "C64": "complex values have no order, so no min, max or |x| statistics",
}
FLOATING = frozenset(n for n, c in CODECS.items() if not c.integer)


@functools.cache
def numpy_dtype(name: str) -> Any:
    """A numpy dtype by name, from numpy itself or from ml_dtypes (bfloat16, float8...)."""
    import numpy as np

    try:
        return np.dtype(name)
    except TypeError:
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, name))


def decode(codec: Codec, raw: Any, count: int, out: Any | None = None) -> Any:
    """``count`` elements of ``raw`` (bytes-like) as a 1-D float array.

    Without ``out`` the array is of ``codec.compute`` (F32 and F64 data: a view of
    ``raw``, no copy); with ``out`` (a float array of at least ``count`` elements,
    float32 or float64) the values are converted into it and no memory is allocated.
    """
    import numpy as np

    if codec.per_byte:
        packed = np.frombuffer(raw, dtype=np.uint8, count=count // 2)
        codes = np.empty(count, dtype=np.uint8)
        np.bitwise_and(packed, 0x0F, out=codes[0::2])
        np.right_shift(packed, 4, out=codes[1::2])
        stored = codes.view(numpy_dtype(codec.storage))
    else:
        stored = np.frombuffer(raw, dtype=numpy_dtype(codec.storage), count=count)
    if codec.storage == codec.compute and out is None:
        return stored
    target = np.empty(count, dtype=codec.compute) if out is None else out[:count]
    np.copyto(target, stored, casting="unsafe")
    return target


def native(codec: Codec, raw: Any, count: int) -> Any:
    """The stored elements themselves (integers and bool), without conversion."""
    import numpy as np

    return np.frombuffer(raw, dtype=numpy_dtype(codec.storage), count=count)


# ---------------------------------------------------------------- reading


def data_offset(header: FileHeader) -> int:
    """Where the data region of a safetensors file starts: after the prefix and the header."""
    return 8 + header.header_size


def element_bytes(dtype: str, count: int) -> int:
    """Bytes of ``count`` elements of ``dtype`` (whole blocks: spans start on element 0 of one)."""
    return count * dtypes.lookup(dtype).bytes_per_block // dtypes.lookup(dtype).block_size


@dataclass(frozen=True, slots=True)
class Span:
    """Elements ``[first, first + count)`` of one tensor, at ``offset`` in its file."""

    index: int  # the tensor's position in the list being read
    path: str
    offset: int  # absolute byte offset in the file
    nbytes: int
    first: int
    count: int
    last: bool  # the tensor's final span


def tensor_spans(
    index: int, header: FileHeader, tensor: TensorInfo, chunk: int = CHUNK_ELEMENTS
) -> Iterator[Span]:
    """The spans of one tensor, in order; none for a tensor of zero elements."""
    n = tensor.parameters
    block = dtypes.lookup(tensor.dtype).block_size
    step = max(block, chunk - chunk % block)
    base = data_offset(header) + tensor.start
    for first in range(0, n, step):
        count = min(step, n - first)
        yield Span(
            index,
            tensor.file,
            base + element_bytes(tensor.dtype, first),
            element_bytes(tensor.dtype, count),
            first,
            count,
            first + count >= n,
        )


def read_exact(fd: int, offset: int, view: memoryview, path: str) -> None:
    """Fill ``view`` from ``offset`` of ``fd`` (``pread``: safe from several threads at once)."""
    done = 0
    while done < len(view):
        try:
            if hasattr(os, "preadv"):
                n = os.preadv(fd, [view[done:]], offset + done)
            else:  # pragma: no cover - platforms without preadv
                chunk = os.pread(fd, len(view) - done, offset + done)
                n = len(chunk)
                view[done : done + n] = chunk
        except OSError as e:
            raise SourceNotFound(path, f"read failed: {e.strerror or e}") from None
        if n == 0:
            raise MetadataIncompleteBuffer(
                path,
                f"file ends at byte {offset + done:,}, inside a tensor (truncated or changed "
                "while being read?)",
            )
        done += n


class Files:
    """Open file descriptors, shared by the reading threads; close them with :meth:`close`."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}
        self._lock = threading.Lock()

    def fd(self, path: str) -> int:
        with self._lock:
            fd = self._fds.get(path)
            if fd is None:
                try:
                    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
                except OSError as e:
                    raise SourceNotFound(path, e.strerror or str(e)) from None
                self._fds[path] = fd
            return fd

    def read(self, span: Span, buffer: bytearray) -> memoryview:
        """The bytes of ``span``, read into (the start of) ``buffer``."""
        view = memoryview(buffer)[: span.nbytes]
        read_exact(self.fd(span.path), span.offset, view, span.path)
        return view

    def release(self, path: str) -> None:
        with self._lock:
            fd = self._fds.pop(path, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            fds, self._fds = list(self._fds.values()), {}
        for fd in fds:
            os.close(fd)

    def __enter__(self) -> Files:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Scratch(threading.local):
    """Per-thread buffers, grown on demand and reused from span to span."""

    def __init__(self) -> None:
        self.raw: dict[str, bytearray] = {}
        self.arrays: dict[tuple[str, str], Any] = {}

    def buffer(self, key: str, nbytes: int) -> bytearray:
        buf = self.raw.get(key)
        if buf is None or len(buf) < nbytes:
            buf = self.raw[key] = bytearray(nbytes)
        return buf

    def array(self, key: str, dtype: str, count: int) -> Any:
        import numpy as np

        arr = self.arrays.get((key, dtype))
        if arr is None or arr.size < count:
            arr = self.arrays[(key, dtype)] = np.empty(count, dtype=dtype)
        return arr


SCRATCH = Scratch()


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[tuple[T, R]]:
    """``(item, fn(item))`` in the order of ``items``, computed by ``workers`` threads.

    At most ``2 * workers`` items are in flight, so memory stays bounded however
    many items there are; the results of earlier items are always complete.
    """
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="paramtool-read")
    pending: deque[tuple[T, Future[R]]] = deque()
    try:
        for item in items:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= 2 * workers:
                first, fut = pending.popleft()
                yield first, fut.result()
        while pending:
            first, fut = pending.popleft()
            yield first, fut.result()
    finally:
        for _, fut in pending:
            fut.cancel()
        pool.shutdown(wait=True)


def unordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[tuple[T, R]]:
    """``(item, fn(item))`` as each finishes, at most ``2 * workers`` in flight.

    For jobs of very different lengths (whole files, single tensors), where waiting
    for the oldest one would leave threads idle.
    """
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="paramtool-read")
    running: dict[Future[R], T] = {}
    source = iter(items)
    try:
        while True:
            for item in source:
                running[pool.submit(fn, item)] = item
                if len(running) >= 2 * workers:
                    break
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                yield running.pop(fut), fut.result()
    finally:
        for fut in running:
            fut.cancel()
        pool.shutdown(wait=True)


def locked(progress: Progress | None) -> Progress:
    """A progress callback that may be called from several threads at once."""
    if progress is None:
        return lambda n: None
    lock = threading.Lock()

    def advance(n: int) -> None:
        with lock:
            progress(n)

    return advance


def select(
    checkpoint: Checkpoint, pattern: re.Pattern[str] | None = None
) -> list[tuple[FileHeader, TensorInfo]]:
    """The tensors to read (header order, file by file), with the header each lives in."""
    return [
        (f, t)
        for f in checkpoint.files
        for t in f.tensors
        if pattern is None or pattern.search(t.name)
    ]
