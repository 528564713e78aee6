"""The records every layer shares: tensors, file headers, checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, Any] = MappingProxyType({})
# Pickled PyTorch checkpoints, by name: never opened as tensors, never unpickled.
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

    @property
    def parameters(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class FileHeader:
    """A parsed safetensors header: its tensors (in header order) and metadata."""

    path: str
    header_size: int  # n, the JSON length, without the 8-byte prefix
    data_size: int  # bytes of the data region
    tensors: tuple[TensorInfo, ...]
    metadata: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    format: str = "safetensors"  # what the file's bytes are ("gguf"), whatever its name says

    @property
    def misnamed(self) -> bool:
        """Whether the file's extension claims another format than its bytes."""
        claimed = named_format(self.path)
        return claimed is not None and claimed != self.format

    @property
    def file_size(self) -> int:
        return 8 + self.header_size + self.data_size

    @property
    def parameters(self) -> int:
        return sum(t.parameters for t in self.tensors)


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
    # Pickle weight files beside the checkpoint (named, never opened); None: nobody looked.
    pickle_files: tuple[str, ...] | None = None
    # Python files beside the weights, by name (what trust_remote_code could import, never
    # opened); None: nobody listed the folder.
    code_files: tuple[str, ...] | None = None
    format: str = "safetensors"  # or "gguf"
    # GGUF only: version, architecture, name, context_length, file_type, kind
    # ("model", "mmproj", "adapter"), alignment, split_count (paramtool.gguf_reader.summary).
    gguf: Mapping[str, Any] | None = None

    @property
    def tensors(self) -> tuple[TensorInfo, ...]:
        return tuple(t for f in self.files for t in f.tensors)

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
