"""Whether a pickled PyTorch checkpoint's values can be read, before any are.

Values are read straight from the storages' bytes (zip entries or the legacy format's
raw storages), never by unpickling. Refused, each in one line naming the file:

- an unsafe pickle (globals outside what a state dict needs): its values are not read,
  and the globals are named, as ``convert`` names them;
- a PyTorch distributed checkpoint (its chunks are ``torch.save`` streams, not raw
  elements);
- a checkpoint written big-endian (its ``byteorder`` entry): values are read as the
  little-endian bytes safetensors stores, never reinterpreted;
- a model tensor whose storage is compressed in the zip (torch stores storages
  uncompressed; a deflated one is not read);
- a strided view too sparse to gather in bounds (:mod:`paramtool.values.views`);
- a tensor whose bytes lie past the end of the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from paramtool import dtypes
from paramtool.errors import MetadataIncompleteBuffer, UnsafeFormat, UnsupportedFormat
from paramtool.records import Checkpoint, FileHeader
from paramtool.values.reader import ViewError, gather_refusal
from paramtool.values.views import extent


class _Named(Protocol):
    @property
    def qualname(self) -> str: ...

    @property
    def offset(self) -> int: ...


def unsafe_line(found: Sequence[_Named], outcome: str = "its values are not read") -> str:
    """The refusal of an unsafe pickle: the globals it names, where the first is, and
    ``outcome`` (what is not done)."""
    names = list(dict.fromkeys(g.qualname for g in found))
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    where = f" (first at byte {found[0].offset:,})" if found else ""
    return (
        f"unsafe pickle: it names {shown or 'globals'}{where}, outside what a state dict "
        f"needs; {outcome}"
    )


def check_pickle(header: FileHeader) -> None:
    """Raise unless the values of one pickled file can be read (see the module docstring)."""
    info = header.pickle
    if info is None:
        return
    if info.container == "dcp":  # its chunks are torch.save streams, not raw elements
        raise UnsupportedFormat(
            header.path,
            "reading the values of a distributed checkpoint is not supported "
            "(inspect, footprint, fit and check read its metadata)",
        )
    if info.unsafe:
        raise UnsafeFormat(header.path, unsafe_line(info.unsafe_globals))
    if info.byteorder != "little":
        raise UnsupportedFormat(
            header.path,
            f"written with byte order {info.byteorder[:20]!r}; values are read from "
            "little-endian checkpoints only",
        )
    if info.compressed:
        name, key = info.compressed[0]
        raise UnsupportedFormat(
            header.path,
            f"tensor {name!r}: its storage {key!r} is compressed "
            "in the zip (torch stores storages uncompressed); its values are not read",
        )
    size = header.file_size
    for x in header.tensors:
        why = gather_refusal(x)
        if why is not None:
            raise ViewError(header.path, f"tensor {x.name!r} is {why}")
        if not x.parameters:
            continue
        item = dtypes.lookup(x.dtype).bytes_per_block
        end = x.end if x.strides is None else x.start + extent(x.shape, x.strides) * item
        if x.start < 0 or end > size:
            raise MetadataIncompleteBuffer(
                header.path,
                f"tensor {x.name!r} lies at bytes {x.start:,} to {end:,}, past the end of the "
                f"file ({size:,} bytes)",
            )


def check_pickles(checkpoint: Checkpoint) -> None:
    """:func:`check_pickle` for every pickled file of ``checkpoint``."""
    for f in checkpoint.files:
        if f.format == "pickle":
            check_pickle(f)
