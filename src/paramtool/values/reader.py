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

GGUF block types (Q4_0, Q8_0, the K-quants, the IQ family, MXFP4...) are decoded by
the ``gguf`` package's numpy dequantizers (``gguf.quants.dequantize``), a span of
whole blocks at a time, so a NaN or infinite block scale becomes the NaN or
infinite values llama.cpp would compute. A block type the installed ``gguf`` has
no dequantizer for is not in :data:`CODECS`; :func:`undecoded` says why.

Pickled PyTorch tensors are read the same way: their offsets are absolute in the file
(:func:`data_offset` is 0), and a strided view's spans are gathered in C order
(:mod:`paramtool.values.views`), so every command sees what a contiguous copy holds.

Stopping: every read goes through :func:`read_exact`, which checks the stop flag of
the map it runs under, so when the caller stops consuming (Ctrl-C, an error) each
worker gives up after the span or the 8 MiB read it is in, and the pool's threads
end within milliseconds instead of finishing their job.
"""

from __future__ import annotations

import functools
import mmap
import os
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from paramtool import dtypes
from paramtool.errors import MetadataIncompleteBuffer, SourceNotFound, UnsupportedFormat
from paramtool.files import open_fd
from paramtool.formats.gguf import GGML_TYPES
from paramtool.frozen import dataclass
from paramtool.patterns import NamePattern
from paramtool.records import Checkpoint, FileHeader, TensorInfo
from paramtool.values import views

CHUNK_ELEMENTS = 1 << 18  # elements per span: 1 MB of float32, about one core's L2 cache
MAX_WORKERS = 8
MAX_READ = 8 << 20  # bytes one read asks for: a stopped worker gives up within one of them
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
    ggml: int = 0  # a GGUF block type's ggml id: whole blocks, gguf's dequantizer decodes


_F32, _F64 = "float32", "float64"
_FIXED: Mapping[str, Codec] = {
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
# GGUF block types by name (the plain F32, F16, BF16, I8... are the safetensors codecs above).
GGUF_BLOCK_TYPES: Mapping[str, int] = {n: i for i, n in GGML_TYPES.items() if n not in _FIXED}


@functools.cache
def _gguf_probe(name: str) -> str | None:
    """Why the installed gguf cannot decode block type ``name``, or None when it can.

    Asked of the public API itself: one zero block through ``gguf.quants.dequantize``.
    """
    try:
        import gguf
        import gguf.quants
        import numpy as np
    except ImportError:
        return "the gguf package is not installed (pip install 'gguf>=0.10')"
    version = _gguf_version()
    try:
        qtype = gguf.GGMLQuantizationType(GGUF_BLOCK_TYPES[name])
        block, nbytes = gguf.GGML_QUANT_SIZES[qtype]
        with np.errstate(all="ignore"):
            out = gguf.quants.dequantize(np.zeros(nbytes, dtype=np.uint8), qtype)
        if out.size != block:
            return f"gguf {version} decodes one {name} block to {out.size} values, not {block}"
    except Exception as e:  # NotImplementedError, or an older gguf without the API
        return f"gguf {version} has no dequantizer for {name} ({e.__class__.__name__})"
    return None


def _gguf_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gguf")
    except PackageNotFoundError:  # pragma: no cover - imported from a source tree
        return "(unknown version)"


def undecoded(dtype: str) -> str | None:
    """Why the values of ``dtype`` are not decoded here, or None when they are."""
    if dtype in _FIXED:
        return None
    if dtype in UNSUPPORTED:
        return UNSUPPORTED[dtype]
    if dtype in GGUF_BLOCK_TYPES:
        return _gguf_probe(dtype)
    return "not decoded"


class _Codecs(Mapping[str, Codec]):
    """The safetensors dtypes, and the GGUF block types the installed gguf decodes.

    A GGUF name is probed (importing gguf and numpy) only when first asked for, so a
    safetensors checkpoint never imports gguf.
    """

    def __getitem__(self, name: str) -> Codec:
        codec = _FIXED.get(name)
        if codec is not None:
            return codec
        if name in GGUF_BLOCK_TYPES and _gguf_probe(name) is None:
            return _gguf_codec(name)
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        yield from _FIXED
        yield from (n for n in GGUF_BLOCK_TYPES if _gguf_probe(n) is None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@functools.cache
def _gguf_codec(name: str) -> Codec:
    return Codec(name, "uint8", _F32, ggml=GGUF_BLOCK_TYPES[name])


CODECS: Mapping[str, Codec] = _Codecs()


def is_floating(dtype: str) -> bool:
    """Whether ``dtype`` holds floating-point values (so NaN and Inf), decoded here or not."""
    codec = _FIXED.get(dtype)
    return (not codec.integer) if codec else dtype in UNSUPPORTED or dtype in GGUF_BLOCK_TYPES


FLOATING = frozenset(n for n, c in _FIXED.items() if not c.integer)  # safetensors dtypes


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

    if codec.ggml:
        return _dequantize(codec, raw, count, out)
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


def _dequantize(codec: Codec, raw: Any, count: int, out: Any | None) -> Any:
    """``count`` values of whole GGUF blocks, through gguf's own dequantizer (float32)."""
    import gguf
    import gguf.quants
    import numpy as np

    qtype = gguf.GGMLQuantizationType(codec.ggml)
    block, nbytes = gguf.GGML_QUANT_SIZES[qtype]
    packed = np.frombuffer(raw, dtype=np.uint8, count=count // block * nbytes)
    with np.errstate(all="ignore"):  # a NaN or infinite scale is data, reported, not a warning
        values = gguf.quants.dequantize(packed, qtype).reshape(-1)
    if out is None:
        return values
    target = out[:count]
    np.copyto(target, values, casting="unsafe")
    return target


def native(codec: Codec, raw: Any, count: int) -> Any:
    """The stored elements themselves (integers and bool), without conversion."""
    import numpy as np

    return np.frombuffer(raw, dtype=numpy_dtype(codec.storage), count=count)


# ---------------------------------------------------------------- reading


def data_offset(header: FileHeader) -> int:
    """Where tensor offsets count from: a safetensors file's data region (after the prefix
    and the header), a GGUF file's; 0 for a pickle, whose tensor offsets are absolute."""
    return 0 if header.format == "pickle" else 8 + header.header_size


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
    # A strided view (a pickle's): its elements are gathered in C order, and ``offset`` is
    # the byte of the view's first element, not of the span's.
    view: TensorInfo | None = None


class ViewError(UnsupportedFormat):
    """A strided view that is not read: too sparse to gather in bounds, or not whole bytes."""


def gather_refusal(tensor: TensorInfo) -> str | None:
    """Why a strided view's values are not read, or None (contiguous, or gathered)."""
    if tensor.strides is None:
        return None
    dt = dtypes.lookup(tensor.dtype)
    if dt.block_size != 1:
        return f"a strided view of {tensor.dtype}, whose elements are not whole bytes"
    return views.gather_refusal(tensor.shape, tensor.strides, dt.bytes_per_block)


def tensor_spans(
    index: int, header: FileHeader, tensor: TensorInfo, chunk: int = CHUNK_ELEMENTS
) -> Iterator[Span]:
    """The spans of one tensor, in order; none for a tensor of zero elements.

    Raises :class:`ViewError` for a strided view that is not gathered (see
    :mod:`paramtool.values.views`), before any of its spans.
    """
    n = tensor.parameters
    block = dtypes.lookup(tensor.dtype).block_size
    step = max(block, chunk - chunk % block)
    base = data_offset(header) + tensor.start
    view = tensor if tensor.strides is not None and n else None
    if view is not None:
        why = gather_refusal(tensor)
        if why is not None:
            raise ViewError(header.path, f"tensor {tensor.name!r} is {why}")
    for first in range(0, n, step):
        count = min(step, n - first)
        yield Span(
            index,
            tensor.file,
            base if view is not None else base + element_bytes(tensor.dtype, first),
            element_bytes(tensor.dtype, count),
            first,
            count,
            first + count >= n,
            view,
        )


class Stopped(Exception):
    """Raised in a worker thread whose map was stopped: its result is no longer wanted."""


_WORKER = threading.local()  # .stop: the threading.Event of the map this thread works for


def check_stop() -> None:
    """Raise :class:`Stopped` when the map this thread works for has been stopped."""
    stop = getattr(_WORKER, "stop", None)
    if stop is not None and stop.is_set():
        raise Stopped


def read_exact(fd: int, offset: int, view: memoryview, path: str) -> None:
    """Fill ``view`` from ``offset`` of ``fd`` (``pread``: safe from several threads at once).

    Reads at most :data:`MAX_READ` bytes at a time and checks :func:`check_stop`
    before each, so a stopped map's workers give up within one read.
    """
    done = 0
    while done < len(view):
        check_stop()
        try:
            want = min(len(view) - done, MAX_READ)
            if hasattr(os, "preadv"):
                n = os.preadv(fd, [view[done : done + want]], offset + done)
            else:  # pragma: no cover - platforms without preadv
                chunk = os.pread(fd, want, offset + done)
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
                    fd = open_fd(path)  # a regular file only: never a FIFO or a device
                except OSError as e:
                    raise SourceNotFound(path, e.strerror or str(e)) from None
                self._fds[path] = fd
            return fd

    def read(self, span: Span, buffer: bytearray | memoryview) -> memoryview:
        """The bytes of ``span``, read into (the start of) ``buffer``; a strided view's
        elements gathered in C order (what a contiguous copy of it holds)."""
        view = memoryview(buffer)[: span.nbytes]
        fd = self.fd(span.path)
        if span.view is None:
            read_exact(fd, span.offset, view, span.path)
            return view
        t = span.view
        assert t.strides is not None

        def read_into(offset: int, out: memoryview) -> None:
            read_exact(fd, offset, out, span.path)

        item = dtypes.lookup(t.dtype).bytes_per_block
        views.gather_into(read_into, span.offset, t.shape, t.strides, item, span.first, view)
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


def page_aligned(nbytes: int) -> memoryview:
    """A zeroed, writable buffer of ``nbytes`` that starts on a page boundary (anonymous
    memory of its own), for the buffers file data is read into.

    A large ``bytearray`` is malloc's own mapping and starts 16 bytes past a page
    boundary, and the kernel copies page-cache pages into such a destination several times
    slower on some CPUs, 4K aliasing likely (measured on this project's AMD EPYC runner:
    2 GiB read with 1 MiB ``preadv`` calls took 1.3 s of system time into buffers at page
    offset 16, 0.27 s at offset 0, 32 or 64; ``hash`` of one 2 GiB file took 2.34 s, then
    1.68 s).
    """
    return memoryview(mmap.mmap(-1, max(nbytes, 1)))[:nbytes]


class Scratch(threading.local):
    """Per-thread buffers (:func:`page_aligned`), grown on demand and reused from span to
    span."""

    def __init__(self) -> None:
        self.raw: dict[str, memoryview] = {}
        self.arrays: dict[tuple[str, str], Any] = {}

    def buffer(self, key: str, nbytes: int) -> memoryview:
        buf = self.raw.get(key)
        if buf is None or len(buf) < nbytes:
            buf = self.raw[key] = page_aligned(nbytes)
        return buf

    def array(self, key: str, dtype: str, count: int) -> Any:
        import numpy as np

        arr = self.arrays.get((key, dtype))
        if arr is None or arr.size < count:
            arr = self.arrays[(key, dtype)] = np.empty(count, dtype=dtype)
        return arr


SCRATCH = Scratch()


def _worker(stop: threading.Event, fn: Callable[[T], R]) -> Callable[[T], R]:
    """``fn`` run under ``stop``: it gives up (:class:`Stopped`) at its next read once set."""

    def run(item: T) -> R:
        if stop.is_set():
            raise Stopped
        _WORKER.stop = stop
        try:
            return fn(item)
        finally:
            _WORKER.stop = None

    return run


def _stop_pool(
    stop: threading.Event, pool: ThreadPoolExecutor, futures: Iterable[Future[R]]
) -> None:
    """Stop a map's workers: no job starts, each running one gives up at its next read.

    The threads are waited for (``shutdown(wait=True)``), which takes one read of at
    most :data:`MAX_READ` bytes, so that no thread still reads a descriptor the caller
    is about to close.
    """
    stop.set()
    for fut in futures:
        fut.cancel()
    pool.shutdown(wait=True, cancel_futures=True)


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int
) -> Generator[tuple[T, R], None, None]:
    """``(item, fn(item))`` in the order of ``items``, computed by ``workers`` threads.

    At most ``2 * workers`` items are in flight, so memory stays bounded however
    many items there are; the results of earlier items are always complete. When the
    caller stops early (Ctrl-C in the main thread, an error, ``close()``), the
    workers stop at their next read (see :func:`read_exact`).
    """
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    stop = threading.Event()
    job = _worker(stop, fn)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="paramtool-read")
    pending: deque[tuple[T, Future[R]]] = deque()
    try:
        for item in items:
            pending.append((item, pool.submit(job, item)))
            if len(pending) >= 2 * workers:
                first, fut = pending.popleft()
                yield first, fut.result()
        while pending:
            first, fut = pending.popleft()
            yield first, fut.result()
    finally:
        _stop_pool(stop, pool, (fut for _, fut in pending))


def unordered_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int
) -> Generator[tuple[T, R], None, None]:
    """``(item, fn(item))`` as each finishes, at most ``2 * workers`` in flight.

    For jobs of very different lengths (whole files, single tensors), where waiting
    for the oldest one would leave threads idle. Stops as :func:`ordered_map` does.
    """
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    stop = threading.Event()
    job = _worker(stop, fn)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="paramtool-read")
    running: dict[Future[R], T] = {}
    source = iter(items)
    try:
        while True:
            for item in source:
                running[pool.submit(job, item)] = item
                if len(running) >= 2 * workers:
                    break
            if not running:
                return
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                yield running.pop(fut), fut.result()
    finally:
        _stop_pool(stop, pool, list(running))


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
    checkpoint: Checkpoint, pattern: NamePattern | None = None
) -> list[tuple[FileHeader, TensorInfo]]:
    """The tensors to read (header order, file by file), with the header each lives in."""
    return [
        (f, t)
        for f in checkpoint.files
        for t in f.tensors
        if pattern is None or pattern.search(t.name)
    ]
