"""Integrity hashes: file SHA-256, per-tensor content digests, and checks against the Hub.

File hash
    SHA-256 of the whole file, byte for byte: what ``sha256sum`` prints and what
    the Hub records as the LFS ``sha256`` of a weight file.

Tensor digest (``DIGEST_SCHEME``)
    ``sha256(dtype + b"\0" + shape + b"\0" + data)`` where ``dtype`` is the
    safetensors name in ASCII (``BF16``), ``shape`` the compact JSON list of the
    dimensions (``[4096,4096]``, ``[]`` for a scalar) and ``data`` the tensor's
    raw little-endian bytes. The name, the file, the offset and the header's
    ``__metadata__`` are left out, so the digest names the weights alone.

Weights digest
    ``sha256`` of the UTF-8 compact JSON list of ``[name, tensor digest]`` pairs
    sorted by name (then digest): ``[["lm_head.weight","9f..."],...]``. Equal for two
    checkpoints holding the same tensors under the same names, however they are
    sharded, ordered, padded or annotated.

Each file is read once, front to back, in reads of :data:`BUFFER_BYTES`: every
chunk feeds the file's SHA-256 and, for the bytes inside a tensor, that tensor's
digest. With two threads or more the two hashes of a chunk are computed side by side
(hashlib releases the GIL), and files are hashed in parallel, largest first.
Progress counts each byte of each file once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from paramtool.errors import SourceNotFound
from paramtool.files import open_fd
from paramtool.jsonable import source_fields
from paramtool.records import Checkpoint, FileHeader, TensorInfo
from paramtool.values.reader import (
    Progress,
    Scratch,
    data_offset,
    default_workers,
    locked,
    read_exact,
    unordered_map,
)

SCHEMA_VERSION = 1  # of the --json document

DIGEST_SCHEME = "sha256(dtype NUL json(shape) NUL bytes)"
BUFFER_BYTES = 8 << 20  # read size for hashing: one reused buffer per thread, one stop check
_SCRATCH = Scratch()


def _hash_range(
    h: hashlib._Hash, path: str, offset: int, nbytes: int, progress: Progress | None = None
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


def tensor_digest(header: FileHeader, tensor: TensorInfo, progress: Progress | None = None) -> str:
    """The content digest of one tensor (see the module docstring)."""
    h = hashlib.sha256(digest_prefix(tensor.dtype, tensor.shape))
    _hash_range(h, header.path, data_offset(header) + tensor.start, tensor.nbytes, progress)
    return h.hexdigest()


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

    Each chunk is read once; the tensors' hashes of it run on ``helper`` while this
    thread feeds the file hash, when a helper is given.
    """
    path = header.path
    size = header.file_size
    base = data_offset(header)
    tensors = header.tensors
    hashes = [hashlib.sha256(digest_prefix(t.dtype, t.shape)) for t in tensors]
    # Byte ranges in the file, in file order; a range may start inside an earlier one.
    ranges = sorted(
        ((base + t.start, base + t.end, hashes[i]) for i, t in enumerate(tensors) if t.nbytes),
        key=lambda r: r[0],
    )
    file_h = hashlib.sha256()
    buf = _SCRATCH.buffer("hash", BUFFER_BYTES)
    view = memoryview(buf)
    active: list[tuple[int, int, Any]] = []
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
        done = 0
        while done < size:
            n = min(BUFFER_BYTES, size - done)
            chunk = view[:n]
            read_exact(fd, done, chunk, path)
            if helper is None:
                feed_tensors(done, chunk)
                file_h.update(chunk)
            else:
                side = helper.submit(feed_tensors, done, chunk)
                try:
                    file_h.update(chunk)
                finally:
                    side.result()  # the buffer is reused by the next read
            done += n
            progress(n)
    finally:
        os.close(fd)
    return file_h.hexdigest(), [h.hexdigest() for h in hashes]


def hash_checkpoint(
    checkpoint: Checkpoint, *, workers: int | None = None, progress: Progress | None = None
) -> HashReport:
    """Hash every file and every tensor; ``progress`` gets the bytes of each file read, once.

    Files are read once each, largest first: ``workers // 2`` files at a time, each
    with one thread for the file hash and one for its tensors' digests (one thread
    in all when ``workers`` is 1).
    """
    advance = locked(progress)
    files = list(checkpoint.files)
    threads = workers or default_workers()
    split = threads >= 2
    at_once = max(1, threads // 2) if split else 1
    helpers = ThreadPoolExecutor(at_once, thread_name_prefix="paramtool-hash") if split else None

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
