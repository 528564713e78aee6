"""Integrity hashes: file SHA-256, per-tensor content digests, and checks against the Hub.

File hash
    SHA-256 of the whole file, byte for byte: what ``sha256sum`` prints and what
    the Hub records as the LFS ``sha256`` of a weight file.

Tensor digest (``DIGEST_SCHEME``)
    ``blake3(dtype + b"\0" + shape + b"\0" + data)`` (32 bytes, lowercase hex) where
    ``dtype`` is the safetensors name in ASCII (``BF16``), ``shape`` the compact JSON list of
    the dimensions (``[4096,4096]``, ``[]`` for a scalar) and ``data`` the tensor's raw
    little-endian bytes in C order (a pickled strided view: the bytes of its contiguous
    copy, what safetensors stores for it). The name, the file, the offset and the header's
    ``__metadata__`` are left out, so the digest names the weights alone. BLAKE3, not a
    second SHA-256: it is a cryptographic hash about four times as fast per core, so the
    tensor digests cost a fraction of the file hash that every byte needs anyway.

Weights digest (``WEIGHTS_DIGEST_SCHEME``)
    ``sha256`` of the UTF-8 compact JSON list of ``[name, tensor digest]`` pairs
    sorted by name (then digest): ``[["lm_head.weight","9f..."],...]``. Equal for two
    checkpoints holding the same tensors under the same names, however they are
    sharded, ordered, padded or annotated. A hash of a short document, so its algorithm
    costs nothing: SHA-256, which ``sha256sum`` reproduces from the ``--tensors`` lines.

Each file is read once, front to back, in reads of :data:`BUFFER_BYTES`: every
chunk feeds the file's SHA-256 and, for the bytes inside a tensor, that tensor's
digest. ``workers`` threads share the job: ``workers`` files are hashed at once, largest
first, each on one thread that reads and feeds both digests itself; once a thread is to
spare (fewer files left than threads), the file's reads and tensor digests move to a
helper thread that fills a ring of :data:`RING` buffers ahead of the file's thread,
which then computes the SHA-256 alone (hashlib and blake3 release the GIL). One file on
two cores: the SHA-256 is its only work on the critical path; four shards on two cores:
two at a time, no thread waiting on another. Progress counts each byte of each file once.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from typing import Any, Protocol

import blake3

from paramtool import dtypes
from paramtool.errors import SourceNotFound
from paramtool.files import open_fd
from paramtool.frozen import dataclass
from paramtool.jsonable import source_fields
from paramtool.records import Checkpoint, FileHeader, TensorInfo
from paramtool.values.reader import (
    Files,
    Progress,
    Scratch,
    check_stop,
    data_offset,
    default_workers,
    locked,
    page_aligned,
    read_exact,
    tensor_spans,
    unordered_map,
)

SCHEMA_VERSION = 2  # of the --json document (2: tensor digests are BLAKE3; 1 had SHA-256)

DIGEST_SCHEME = "blake3(dtype NUL json(shape) NUL bytes)"
WEIGHTS_DIGEST_SCHEME = "sha256(json(sorted [name, digest] pairs))"
BUFFER_BYTES = 1 << 20  # read size for hashing: within a core's L2 cache (8 MiB: 30% slower)
RING = 4  # buffers a file's helper thread may fill ahead of its SHA-256
_SCRATCH = Scratch()


class Hasher(Protocol):
    """What both hashlib's and blake3's hashers offer."""

    def update(self, data: memoryview, /) -> object: ...

    def hexdigest(self) -> str: ...


def _hash_range(
    h: Hasher, path: str, offset: int, nbytes: int, progress: Progress | None = None
) -> None:
    """Feed bytes ``[offset, offset + nbytes)`` of ``path`` to ``h``."""
    buf = _SCRATCH.buffer("hash", BUFFER_BYTES)
    view = memoryview(buf)
    fd = open_fd(path)  # a regular file only, its errors one line
    try:
        done = 0
        while done < nbytes:
            n = min(BUFFER_BYTES, nbytes - done)
            read_exact(fd, offset + done, view[:n], path)
            h.update(view[:n])
            done += n
            if progress is not None:
                progress(n)
    finally:
        os.close(fd)


def file_sha256(path: str | os.PathLike[str], progress: Progress | None = None) -> str:
    """SHA-256 of a whole file, as ``sha256sum`` prints it (lowercase hex)."""
    p = os.fspath(path)
    try:
        size = os.stat(p).st_size
    except OSError as e:
        raise SourceNotFound(p, e.strerror or str(e)) from None
    h = hashlib.sha256()
    _hash_range(h, p, 0, size, progress)
    return h.hexdigest()


def git_blob_sha1(path: str | os.PathLike[str], progress: Progress | None = None) -> str:
    """The git blob id of a file: ``sha1(b"blob <size>\\0" + content)`` (the Hub's ``blobId``)."""
    p = os.fspath(path)
    try:
        size = os.stat(p).st_size
    except OSError as e:
        raise SourceNotFound(p, e.strerror or str(e)) from None
    h = hashlib.sha1(b"blob %d\0" % size)
    _hash_range(h, p, 0, size, progress)
    return h.hexdigest()


def digest_prefix(dtype: str, shape: Sequence[int]) -> bytes:
    """What the tensor digest hashes before the data: ``dtype NUL json(shape) NUL``."""
    return (
        dtype.encode("ascii")
        + b"\0"
        + json.dumps(list(shape), separators=(",", ":")).encode()
        + b"\0"
    )


def tensor_hasher(dtype: str, shape: Sequence[int]) -> Hasher:
    """A tensor digest's hasher, fed its prefix: give it the data, then take ``hexdigest()``."""
    return blake3.blake3(digest_prefix(dtype, shape))


def tensor_digest(header: FileHeader, tensor: TensorInfo, progress: Progress | None = None) -> str:
    """The content digest of one tensor (see the module docstring)."""
    h = tensor_hasher(tensor.dtype, tensor.shape)
    if tensor.strides is not None:
        _hash_view(h, header, tensor, progress)
    else:
        _hash_range(h, header.path, data_offset(header) + tensor.start, tensor.nbytes, progress)
    return h.hexdigest()


def _hash_view(
    h: Hasher, header: FileHeader, tensor: TensorInfo, progress: Progress | None = None
) -> None:
    """Feed a strided view's elements to ``h`` in C order: the bytes of its contiguous copy."""
    item = max(1, dtypes.lookup(tensor.dtype).bytes_per_block)
    with Files() as files:
        for span in tensor_spans(0, header, tensor, max(1, BUFFER_BYTES // item)):
            h.update(memoryview(files.read(span, _SCRATCH.buffer("view", span.nbytes))))
            if progress is not None:
                progress(span.nbytes)


def weights_digest(pairs: Iterable[tuple[str, str]]) -> str:
    """The checkpoint-level digest over ``(tensor name, tensor digest)`` pairs, in any order."""
    doc = json.dumps(sorted([n, d] for n, d in pairs), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class FileHash:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class TensorHash:
    name: str
    dtype: str
    shape: tuple[int, ...]
    file: str
    digest: str


@dataclass(frozen=True, slots=True)
class HashReport:
    """``paramtool hash``: each file's SHA-256, each tensor's digest, the weights digest."""

    checkpoint: Checkpoint
    files: tuple[FileHash, ...]
    tensors: tuple[TensorHash, ...]  # header order
    weights_digest: str

    def to_dict(self) -> dict[str, Any]:
        """The document ``paramtool hash --json`` prints."""
        ck = self.checkpoint
        return {
            "schema_version": SCHEMA_VERSION,
            **source_fields(ck),
            "files": [{"path": f.path, "bytes": f.size, "sha256": f.sha256} for f in self.files],
            "weights_digest": self.weights_digest,
            "digest_scheme": DIGEST_SCHEME,
            "weights_digest_scheme": WEIGHTS_DIGEST_SCHEME,
            "tensor_count": len(self.tensors),
            "tensors": [
                {
                    "name": t.name,
                    "dtype": t.dtype,
                    "shape": list(t.shape),
                    "file": t.file,
                    "digest": t.digest,
                }
                for t in self.tensors
            ],
            "warnings": list(ck.warnings),
        }


class _Cores:
    """How many of the job's threads are busy: a file's own thread counts one, its
    helper one more. A file takes a helper only while a thread is to spare."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.busy = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.busy += 1

    def take(self) -> bool:
        with self._lock:
            if self.busy < self.threads:
                self.busy += 1
                return True
            return False

    def give(self) -> None:
        with self._lock:
            self.busy -= 1


def _file_digests(header: FileHeader, cores: _Cores, progress: Progress) -> tuple[str, list[str]]:
    """One pass over a file: its SHA-256 and the digest of each of its tensors (header order).

    Each chunk is read once. While every thread of the job is busy (as many files as
    threads), this thread reads each chunk and feeds both digests itself; once a
    thread is to spare, a helper thread takes over the reads and tensor digests
    (:func:`_pipelined`) and this thread computes the SHA-256 alone.
    """
    path = header.path
    size = header.file_size
    base = data_offset(header)
    tensors = header.tensors
    hashes = [tensor_hasher(t.dtype, t.shape) for t in tensors]
    # Byte ranges in the file, in file order; a range may start inside an earlier one.
    # Strided views (a pickle's) are not ranges: they are gathered after the pass.
    ranges = sorted(
        (
            (base + t.start, base + t.end, hashes[i])
            for i, t in enumerate(tensors)
            if t.nbytes and t.strides is None
        ),
        key=lambda r: r[0],
    )
    file_h = hashlib.sha256()
    active: list[tuple[int, int, Hasher]] = []
    nxt = 0

    def feed_tensors(lo: int, chunk: memoryview) -> None:
        nonlocal nxt, active
        hi = lo + len(chunk)
        while nxt < len(ranges) and ranges[nxt][0] < hi:
            active.append(ranges[nxt])
            nxt += 1
        for start, end, h in active:
            a, b = max(start, lo), min(end, hi)
            if a < b:
                h.update(chunk[a - lo : b - lo])
        active = [r for r in active if r[1] > hi]

    fd = open_fd(path)  # a regular file only, its errors one line
    try:
        if hasattr(os, "posix_fadvise"):  # a larger read-ahead when not in the page cache
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        view = memoryview(_SCRATCH.buffer("hash", BUFFER_BYTES))
        done = 0
        while done < size:
            if cores.take():
                try:
                    _pipelined(fd, path, done, size, file_h, feed_tensors, progress)
                finally:
                    cores.give()
                break
            n = min(BUFFER_BYTES, size - done)
            chunk = view[:n]
            read_exact(fd, done, chunk, path)
            feed_tensors(done, chunk)
            file_h.update(chunk)
            done += n
            progress(n)
    finally:
        os.close(fd)
    for t, h in zip(tensors, hashes, strict=True):
        if t.strides is not None:
            _hash_view(h, header, t)
    return file_h.hexdigest(), [h.hexdigest() for h in hashes]


def _pipelined(
    fd: int,
    path: str,
    done: int,
    size: int,
    file_h: Hasher,
    feed_tensors: Callable[[int, memoryview], None],
    progress: Progress,
) -> None:
    """Bytes ``[done, size)`` of ``fd``: a helper thread reads them, chunk by chunk, into
    a ring of :data:`RING` buffers, hands each chunk to this thread and feeds it to
    ``feed_tensors``; this thread feeds each chunk to ``file_h`` and hands the buffer
    back. The ring absorbs the jitter of either side, so the SHA-256 never waits on one
    chunk's read and tensor digests (BLAKE3 and a read are faster than SHA-256).

    This thread checks for a stop between chunks; the helper is told to quit and is
    joined before this returns, so a stop takes effect within a chunk or two.
    """
    ring = [page_aligned(BUFFER_BYTES) for _ in range(RING)]
    filled: queue.SimpleQueue[tuple[int, int] | BaseException] = queue.SimpleQueue()
    free: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(RING):
        free.put(i)
    quit_ = threading.Event()

    def helper() -> None:
        try:
            lo = done
            while lo < size:
                i = free.get()
                if quit_.is_set():
                    return
                chunk = ring[i][: min(BUFFER_BYTES, size - lo)]
                read_exact(fd, lo, chunk, path)
                filled.put((i, len(chunk)))
                feed_tensors(lo, chunk)  # this buffer is not reused before the next get
                lo += len(chunk)
                progress(len(chunk))  # here, off the SHA-256's path
        except BaseException as e:  # a read error, or a truncated file: this thread's
            filled.put(e)

    thread = threading.Thread(target=helper, name="paramtool-hash", daemon=True)
    thread.start()
    try:
        while done < size:
            item = filled.get()
            if isinstance(item, BaseException):
                raise item
            i, n = item
            file_h.update(ring[i][:n])
            free.put(i)
            done += n
            check_stop()
    finally:
        quit_.set()
        free.put(-1)  # wakes a helper waiting for a buffer
        thread.join()
    while not filled.empty():  # the helper failed after handing over the last chunk
        item = filled.get()
        if isinstance(item, BaseException):
            raise item


def hash_checkpoint(
    checkpoint: Checkpoint, *, workers: int | None = None, progress: Progress | None = None
) -> HashReport:
    """Hash every file and every tensor; ``progress`` gets the bytes of each file read, once.

    Files are read once each, largest first, on ``workers`` threads (default: one per
    core, at most 8): a file per thread, and a thread to spare helps a file under way
    with its reads and tensor digests; ``workers=1``: one thread in all.
    """
    threads = workers or default_workers()
    if threads < 1:
        raise ValueError(f"workers must be 1 or more, not {threads}")
    advance = locked(progress)
    files = list(checkpoint.files)
    at_once = max(1, min(threads, len(files)))
    cores = _Cores(threads)

    def run(i: int) -> tuple[str, list[str]]:
        return _file_digests(files[i], cores, advance)

    def run_one(i: int) -> tuple[str, list[str]]:
        cores.enter()  # the file's own thread
        try:
            return run(i)
        finally:
            cores.give()

    order = sorted(range(len(files)), key=lambda i: -files[i].file_size)
    results: list[tuple[str, list[str]]] = [("", [])] * len(files)
    with closing(unordered_map(run_one, order, at_once)) as jobs:
        for i, digests in jobs:
            results[i] = digests
    file_hashes = tuple(FileHash(f.path, f.file_size, results[i][0]) for i, f in enumerate(files))
    tensor_hashes = tuple(
        TensorHash(t.name, t.dtype, t.shape, t.file, results[i][1][k])
        for i, f in enumerate(files)
        for k, t in enumerate(f.tensors)
    )
    return HashReport(
        checkpoint,
        file_hashes,
        tensor_hashes,
        weights_digest((t.name, t.digest) for t in tensor_hashes),
    )
