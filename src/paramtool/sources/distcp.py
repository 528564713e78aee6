"""A PyTorch distributed checkpoint folder as one :class:`~paramtool.records.FileHeader`.

``.metadata`` is read symbolically (:func:`paramtool.formats.torch_dcp.read_dcp_metadata`,
at most :data:`~paramtool.formats.torch_pickle.MAX_PICKLE_BYTES`); the ``.distcp`` data
files are only looked at (``stat``): each must be a regular file in the folder holding every
byte range ``.metadata`` gives it. Tensor data is never read. A non-tensor entry (a step
counter, a setting) is a small ``torch.save`` stream in a data file, which DCP's loader
unpickles: each is read symbolically too (its zip directory and ``data.pkl``), so that the
verdict judges every pickle a load would run.

The header: format ``"pickle"``, container ``"dcp"``; each tensor's span is its first
chunk's byte range in its data file (a ``torch.save`` stream, not raw elements, so values are
not read from it), its stored bytes all its chunks' lengths.
"""

from __future__ import annotations

import os
from pathlib import Path

from paramtool.errors import reading
from paramtool.files import is_regular, open_fd, pread_upto
from paramtool.formats.torch_dcp import DcpFormatError, DcpMetadata, read_dcp_metadata
from paramtool.formats.torch_pickle import (
    MAX_PICKLE_BYTES,
    OtherKind,
    PickleLimit,
    UnsafeGlobal,
    read_torch_source,
)
from paramtool.formats.torch_zip import ReadAt
from paramtool.records import FileHeader, PickleEntry, PickleGlobal, PickleInfo, TensorInfo
from paramtool.sources.pickled import wrapper
from paramtool.sources.weights import DCP_METADATA as METADATA

DATA_SUFFIX = ".distcp"
CONTAINER = "dcp"


def is_dcp_metadata(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a distributed checkpoint's ``.metadata`` (by name)."""
    return Path(path).name == METADATA


def _read_metadata(path: Path, shown: str) -> tuple[DcpMetadata, int]:
    fd = open_fd(path, shown)
    try:
        with reading(shown):
            size = os.fstat(fd).st_size
            if size > MAX_PICKLE_BYTES:
                raise PickleLimit(shown, f"larger than {MAX_PICKLE_BYTES:,} bytes")
            data = pread_upto(fd, 0, MAX_PICKLE_BYTES + 1, MAX_PICKLE_BYTES + 1)
    finally:
        os.close(fd)
    return read_dcp_metadata(data, shown), size


def _data_sizes(folder: Path, md: DcpMetadata, shown: str) -> dict[str, int]:
    """Each data file's size by ``stat``: a regular file inside the folder, or an error."""
    root = os.path.realpath(folder)
    sizes: dict[str, int] = {}
    for name in md.files:
        p = folder / name
        real = os.path.realpath(p)
        if os.path.commonpath([root, real]) != root:
            raise DcpFormatError(shown, f"data file {name!r} is a symlink that leaves the folder")
        kind = is_regular(p)
        if kind is None:
            raise DcpFormatError(shown, f"data file {name!r} is missing")
        if not kind:
            raise DcpFormatError(shown, f"data file {name!r} is not a regular file")
        sizes[name] = os.stat(p).st_size
    spans = [(t.name, c.file, c.offset, c.length) for t in md.tensors for c in t.chunks]
    spans += [(e.name, e.file, e.offset, e.length) for e in md.entries]
    for name, file, offset, length in spans:
        if offset + length > sizes[file]:
            raise DcpFormatError(
                shown,
                f"bytes {offset:,}..{offset + length:,} run past the end of {file} "
                f"({sizes[file]:,} bytes)",
                name,
            )
    return sizes


def _judge_entries(
    folder: Path, md: DcpMetadata, shown: str
) -> tuple[list[PickleEntry], list[PickleGlobal]]:
    """Each non-tensor entry's kind and unsafe globals (offsets in its data file), read
    symbolically; at most :data:`MAX_PICKLE_BYTES` read for all of them together."""
    entries: list[PickleEntry] = []
    found: list[PickleGlobal] = []
    budget = [MAX_PICKLE_BYTES]
    fds: dict[str, int] = {}
    try:
        for e in md.entries:
            where = str(folder / e.file)
            if e.transformed:
                raise DcpFormatError(
                    shown, "the entry is transformed (compressed): it cannot be judged", e.name
                )
            fd = fds.get(e.file)
            if fd is None:
                fd = fds[e.file] = open_fd(folder / e.file, where)

            read_at = _span(fd, e.offset, e.length, budget, shown)
            with reading(where):
                ck = read_torch_source(read_at, e.length, f"{where} (entry {e.name[:200]!r})")
            kind: OtherKind | str = "other"
            if ck.tensors:
                kind = "tensor"
            elif len(ck.others) == 1 and ck.others[0].name == "":
                kind = ck.others[0].kind
            entries.append(PickleEntry(e.name, kind))
            found.extend(_moved(g, e.offset) for g in ck.unsafe_globals)
    finally:
        for fd in fds.values():
            os.close(fd)
    return entries, found


def _span(fd: int, start: int, length: int, budget: list[int], shown: str) -> ReadAt:
    """Reads within ``[start, start + length)`` of ``fd``, taken from a shared ``budget``."""

    def read_at(offset: int, n: int) -> bytes:
        n = max(0, min(n, length - offset))
        budget[0] -= n
        if budget[0] < 0:
            raise PickleLimit(
                shown, f"non-tensor entries need more than {MAX_PICKLE_BYTES:,} bytes"
            )
        return pread_upto(fd, start + offset, n, start + length)

    return read_at


def _moved(g: UnsafeGlobal, by: int) -> PickleGlobal:
    return PickleGlobal(g.qualname, g.offset + by)


def read_dcp_header(path: str | os.PathLike[str], shown: str | None = None) -> FileHeader:
    """A distributed checkpoint (its folder, or its ``.metadata``), headers only."""
    p = Path(path)
    folder = p.parent if is_dcp_metadata(p) else p
    meta = folder / METADATA
    shown = shown if shown is not None else str(meta)
    md, meta_size = _read_metadata(meta, shown)
    sizes = _data_sizes(folder, md, shown)
    entries, globals_ = _judge_entries(folder, md, shown)
    names = [t.name for t in md.tensors]
    prefix = wrapper(names, bool(md.entries))
    tensors: list[TensorInfo] = []
    data_size = 0
    for t in md.tensors:
        if prefix and not t.name.startswith(prefix):
            entries.append(PickleEntry(t.name, "tensor"))
            continue
        first = t.chunks[0]
        data_size += t.stored
        tensors.append(
            TensorInfo(
                t.name[len(prefix) :],
                t.dtype,
                t.shape,
                first.offset,
                first.offset + first.length,
                str(folder / first.file),
                t.stored,
            )
        )
    file_size = meta_size + sum(sizes.values())
    unsafe = [PickleGlobal(g.qualname, g.offset) for g in md.unsafe_globals] + globals_
    info = PickleInfo(
        container=CONTAINER,
        verdict="unsafe" if unsafe else "plain state dict",
        unsafe_globals=tuple(unsafe),
        entries=tuple(entries),
        prefix=prefix,
        file_size=file_size,
    )
    return FileHeader(
        path=str(meta),
        header_size=max(0, file_size - data_size),
        data_size=data_size,
        tensors=tuple(tensors),
        format="pickle",
        pickle=info,
    )
