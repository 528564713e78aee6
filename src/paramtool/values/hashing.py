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

Files are hashed whole (one file per thread); tensor digests are computed by the
other threads at the same time, so a single large file costs about one pass.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from paramtool.errors import SourceNotFound
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
BUFFER_BYTES = 8 << 20  # read size for hashing: large reads, one reused buffer per thread
_SCRATCH = Scratch()


def _hash_range(
    h: hashlib._Hash, path: str, offset: int, nbytes: int, progress: Progress | None = None
) -> None:
    """Feed bytes ``[offset, offset + nbytes)`` of ``path`` to ``h``."""
    buf = _SCRATCH.buffer("hash", BUFFER_BYTES)
    view = memoryview(buf)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise SourceNotFound(path, e.strerror or str(e)) from None
    try:
        done = 0
        while done < nbytes:
            n = min(len(buf), nbytes - done)
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


def hash_checkpoint(
    checkpoint: Checkpoint, *, workers: int | None = None, progress: Progress | None = None
) -> HashReport:
    """Hash every file and every tensor; ``progress`` gets bytes hashed (files, then tensors).

    Jobs run longest first on ``workers`` threads, so that one big file and the
    tensor digests inside it are hashed side by side.
    """
    advance = locked(progress)
    files = list(checkpoint.files)
    tensors = [(f, t) for f in files for t in f.tensors]

    def run(i: int) -> str:
        if i < len(files):
            return file_sha256(files[i].path, advance)
        f, t = tensors[i - len(files)]
        return tensor_digest(f, t, advance)

    sizes = [f.file_size for f in files] + [t.nbytes for _, t in tensors]
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    results = [""] * len(sizes)
    for i, digest in unordered_map(run, order, workers or default_workers()):
        results[i] = digest
    file_hashes = tuple(FileHash(f.path, f.file_size, results[i]) for i, f in enumerate(files))
    tensor_hashes = tuple(
        TensorHash(t.name, t.dtype, t.shape, t.file, results[len(files) + k])
        for k, (_, t) in enumerate(tensors)
    )
    return HashReport(
        checkpoint,
        file_hashes,
        tensor_hashes,
        weights_digest((t.name, t.digest) for t in tensor_hashes),
    )
