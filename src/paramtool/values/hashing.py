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
digest. With two threads or more each file has a helper thread that computes the
tensors' digests of a chunk and reads the next chunk (into a second buffer) while the
file's thread computes the SHA-256 of the chunk, so the file hash is the only work on
a file's critical path (hashlib and blake3 release the GIL); ``workers`` files are
hashed at once, largest first. Progress counts each byte of each file once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Protocol

import blake3

from paramtool import dtypes
from paramtool.errors import SourceNotFound
from paramtool.files import open_fd
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
    read_exact,
    tensor_spans,
    unordered_map,
)

SCHEMA_VERSION = 2  # of the --json document (2: tensor digests are BLAKE3; 1 had SHA-256)

DIGEST_SCHEME = "blake3(dtype NUL json(shape) NUL bytes)"
WEIGHTS_DIGEST_SCHEME = "sha256(json(sorted [name, digest] pairs))"
BUFFER_BYTES = 1 << 20  # read size for hashing: within a core's L2 cache (8 MiB: 30% slower)
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


def _file_digests(
    header: FileHeader,
    helper: ThreadPoolExecutor | None,
    progress: Progress,
) -> tuple[str, list[str]]:
    """One pass over a file: its SHA-256 and the digest of each of its tensors (header order).

    Each chunk is read once. Given a ``helper``, this thread computes the file hash of
    a chunk while the helper computes its tensors' digests and reads the next chunk.
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
        if helper is None:
            view = memoryview(_SCRATCH.buffer("hash", BUFFER_BYTES))
            done = 0
            while done < size:
                n = min(BUFFER_BYTES, size - done)
                chunk = view[:n]
                read_exact(fd, done, chunk, path)
                feed_tensors(done, chunk)
                file_h.update(chunk)
                done += n
                progress(n)
        else:
            _pipelined(fd, path, size, file_h, feed_tensors, helper, progress)
    finally:
        os.close(fd)
    for t, h in zip(tensors, hashes, strict=True):
        if t.strides is not None:
            _hash_view(h, header, t)
    return file_h.hexdigest(), [h.hexdigest() for h in hashes]


def _pipelined(
    fd: int,
    path: str,
    size: int,
    file_h: Hasher,
    feed_tensors: Callable[[int, memoryview], None],
    helper: ThreadPoolExecutor,
    progress: Progress,
) -> None:
    """Read ``fd`` into two buffers in turn: while this thread feeds chunk k to ``file_h``,
    ``helper`` feeds it to ``feed_tensors``, then reads chunk k + 1 into the other buffer.

    The helper's reads do not see a stopped map; this thread checks between chunks, so a
    stop still takes effect within one chunk.
    """
    views = (
        memoryview(_SCRATCH.buffer("hash", BUFFER_BYTES)),
        memoryview(_SCRATCH.buffer("hash-next", BUFFER_BYTES)),
    )

    def step(lo: int, chunk: memoryview, following: memoryview) -> None:
        feed_tensors(lo, chunk)
        if following:
            read_exact(fd, lo + len(chunk), following, path)

    done = 0
    chunk = views[0][: min(BUFFER_BYTES, size)]
    read_exact(fd, 0, chunk, path)
    turn = 0
    while done < size:
        n = len(chunk)
        turn ^= 1
        following = views[turn][: min(BUFFER_BYTES, size - done - n)]
        side = helper.submit(step, done, chunk, following)
        try:
            file_h.update(chunk)
        finally:
            side.result()  # both buffers change hands at the next step
        done += n
        progress(n)
        check_stop()
        chunk = following


def hash_checkpoint(
    checkpoint: Checkpoint, *, workers: int | None = None, progress: Progress | None = None
) -> HashReport:
    """Hash every file and every tensor; ``progress`` gets the bytes of each file read, once.

    Files are read once each, largest first, ``workers`` files at a time (default: one
    per core, at most 8), each with a helper thread for its reads and tensor digests
    beside the thread of its SHA-256; ``workers=1``: one thread in all.
    """
    threads = workers or default_workers()
    if threads < 1:
        raise ValueError(f"workers must be 1 or more, not {threads}")
    advance = locked(progress)
    files = list(checkpoint.files)
    at_once = max(1, min(threads, len(files))) if threads >= 2 else 1
    helpers = (
        ThreadPoolExecutor(at_once, thread_name_prefix="paramtool-hash") if threads >= 2 else None
    )

    def run(i: int) -> tuple[str, list[str]]:
        return _file_digests(files[i], helpers, advance)

    order = sorted(range(len(files)), key=lambda i: -files[i].file_size)
    results: list[tuple[str, list[str]]] = [("", [])] * len(files)
    try:
        with closing(unordered_map(run, order, at_once)) as jobs:
            for i, digests in jobs:
                results[i] = digests
    finally:
        if helpers is not None:
            helpers.shutdown(wait=True, cancel_futures=True)
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
