"""The records every layer shares: tensors, file headers, checkpoints."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import field
from itertools import chain, repeat
from operator import attrgetter
from types import MappingProxyType
from typing import Any

from paramtool.frozen import dataclass

_EMPTY: Mapping[str, Any] = MappingProxyType({})
# Pickled PyTorch checkpoints, by name: read symbolically, never unpickled.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def named_format(name: str) -> str | None:
    """The format a file name claims by its extension (``.safetensors``, ``.gguf``, a pickle's)."""
    low = name.lower()
    if low.endswith(".safetensors"):
        return "safetensors"
    if low.endswith(".gguf"):
        return "gguf"
    if low.endswith(PICKLE_SUFFIXES):
        return "pickle"
    return None


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One tensor as its header describes it; offsets are relative to the data region."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int
    file: str = ""
    # The bytes this tensor accounts for in the stored total, when not ``end - start``: a
    # pickle's tensors sharing a storage (tied weights, views) count it once, on one of them.
    stored: int | None = None
    # A pickle's non-contiguous view: its strides in elements (``start`` is the byte of its
    # first element); its values are gathered in C order. None: ``[start, end)`` holds them.
    strides: tuple[int, ...] | None = None

    @property
    def parameters(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.end - self.start

    @property
    def stored_bytes(self) -> int:
        """Bytes counted for this tensor in totals: a shared storage's bytes count once."""
        return self.end - self.start if self.stored is None else self.stored

    @property
    def shared(self) -> bool:
        """Whether another tensor of the file already counts this one's storage bytes."""
        return self.stored == 0 and self.end > self.start

    @classmethod
    def from_columns(
        cls,
        names: Sequence[str],
        dtypes: Sequence[str],
        shapes: Sequence[tuple[int, ...]],
        starts: Sequence[int],
        ends: Sequence[int],
        file: str,
    ) -> list[TensorInfo]:
        """Many records at once, equal to ``TensorInfo(name, dtype, shape, start, end, file)``
        each: the slots are filled column by column in C, not by a frozen ``__init__`` per
        record (a frontier header has 100k+ tensors). The columns must be equally long."""
        n = len(names)
        if not len(dtypes) == len(shapes) == len(starts) == len(ends) == n:
            raise ValueError("columns of different lengths")
        objs: list[TensorInfo] = list(map(object.__new__, repeat(cls, n)))
        for slot, column in (
            ("name", names),
            ("dtype", dtypes),
            ("shape", shapes),
            ("start", starts),
            ("end", ends),
            ("file", repeat(file, n)),
            ("stored", repeat(None, n)),
            ("strides", repeat(None, n)),
        ):
            deque(map(_SLOTS[slot], objs, column), maxlen=0)
        return objs


# Each slot's setter (a member descriptor's __set__), for TensorInfo.from_columns; a new
# field must be filled there too (the assertion keeps the two in step).
_SLOTS: dict[str, Any] = {f: TensorInfo.__dict__[f].__set__ for f in TensorInfo.__slots__}
assert set(_SLOTS) == {"name", "dtype", "shape", "start", "end", "file", "stored", "strides"}
_SHAPE = attrgetter("shape")


@dataclass(frozen=True, slots=True)
class PickleEntry:
    """A pickle entry that is not a model tensor: a step counter, a hyperparameter, an
    optimizer state dict's tensors (kind ``tensor``), listed, never counted as parameters."""

    name: str
    kind: str  # int, float, bool, str, bytes, None, dict, list, tuple, set, other, tensor


@dataclass(frozen=True, slots=True)
class PickleGlobal:
    """A global a pickle names outside the allowlist, and the byte offset of its opcode."""

    qualname: str
    offset: int


@dataclass(frozen=True, slots=True)
class PickleInfo:
    """What a pickled PyTorch file is, besides its tensors: container, verdict, the rest."""

    container: str  # "zip", "legacy", or "pickle" (a bare pickle, no torch frame)
    verdict: str  # "plain state dict" or "unsafe"
    unsafe_globals: tuple[PickleGlobal, ...]
    entries: tuple[PickleEntry, ...]
    prefix: str  # the wrapping prefix taken off the tensor names ("state_dict."), or ""
    file_size: int
    byteorder: str = "little"  # the zip's byteorder record: how its storages' bytes are laid
    # (tensor name, storage key) of each model tensor whose storage the zip compresses: its
    # bytes are not the elements, so its values cannot be read in place
    compressed: tuple[tuple[str, str], ...] = ()

    @property
    def unsafe(self) -> bool:
        return self.verdict != "plain state dict"

    def to_dict(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for e in self.entries:
            kinds[e.kind] = kinds.get(e.kind, 0) + 1
        return {
            "format": self.container,
            "verdict": self.verdict,
            "unsafe_globals": [
                {"name": g.qualname, "offset": g.offset} for g in self.unsafe_globals
            ],
            "prefix": self.prefix,
            "other_entries": {
                "count": len(self.entries),
                "kinds": dict(sorted(kinds.items())),
                "names": [e.name for e in self.entries[:50]],
            },
        }


@dataclass(frozen=True, slots=True)
class FileHeader:
    """A parsed header: its tensors (in header order) and metadata.

    For a pickled PyTorch file (``format == "pickle"``), tensor offsets are absolute in the
    file, ``data_size`` is its storages' bytes (each once), ``header_size`` the rest of the
    file, and ``pickle`` holds the container, the safety verdict and the other entries.
    """

    path: str
    header_size: int  # n, the JSON length, without the 8-byte prefix
    data_size: int  # bytes of the data region
    tensors: tuple[TensorInfo, ...]
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    format: str = "safetensors"  # what the file's bytes are ("gguf"), whatever its name says
    pickle: PickleInfo | None = None

    @property
    def misnamed(self) -> bool:
        """Whether the file's extension claims another format than its bytes."""
        claimed = named_format(self.path)
        return claimed is not None and claimed != self.format

    @property
    def file_size(self) -> int:
        if self.pickle is not None:
            return self.pickle.file_size
        return 8 + self.header_size + self.data_size

    @property
    def parameters(self) -> int:
        return sum(map(math.prod, map(_SHAPE, self.tensors)))


@dataclass(frozen=True, slots=True)
class HubInfo:
    """Where a Hub checkpoint came from: custody facts recorded with the result."""

    repo_id: str
    revision: str  # the resolved commit sha
    requested_revision: str | None = None
    subfolder: str = ""
    license: str | None = None
    gated: str | bool = False
    private: bool = False
    stated_parameters: int | None = None  # the Hub's own safetensors.total


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Everything paramtool knows about a checkpoint without reading its values."""

    source: str
    files: tuple[FileHeader, ...]
    config: Mapping[str, Any] | None = None
    adapter_config: Mapping[str, Any] | None = None
    index_path: str | None = None
    index_metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    warnings: tuple[str, ...] = ()
    hub: HubInfo | None = None
    # Pickle files beside the checkpoint (its own pickled weights too); None: nobody looked.
    pickle_files: tuple[str, ...] | None = None
    # Python files beside the weights, by name (what trust_remote_code could import, never
    # opened); None: nobody listed the folder.
    code_files: tuple[str, ...] | None = None
    format: str = "safetensors"  # or "gguf", or "pickle" (pickled PyTorch files)
    # GGUF only: version, architecture, name, context_length, file_type, kind
    # ("model", "mmproj", "adapter"), alignment, split_count (paramtool.gguf_reader.summary).
    gguf: Mapping[str, Any] | None = None

    @property
    def tensors(self) -> tuple[TensorInfo, ...]:
        return tuple(chain.from_iterable(f.tensors for f in self.files))

    @property
    def misnamed_files(self) -> tuple[str, ...]:
        """Weight files whose extension claims another format than their bytes."""
        return tuple(f.path for f in self.files if f.misnamed)

    @property
    def total_parameters(self) -> int:
        return sum(f.parameters for f in self.files)

    @property
    def tensor_bytes(self) -> int:
        return sum(f.data_size for f in self.files)

    @property
    def file_bytes(self) -> int:
        return sum(f.file_size for f in self.files)
