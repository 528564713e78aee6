"""A PyTorch distributed checkpoint's ``.metadata``, read without unpickling.

``torch.distributed.checkpoint.save`` writes a folder: ``.metadata``, a pickle of its
``Metadata`` dataclass, and the ``__<rank>_<n>.distcp`` files holding the data. The pickle
is run by the symbolic interpreter of :mod:`paramtool.formats.torch_pickle` (nothing named
is imported or called) and the tree read as DCP writes it: ``state_dict_metadata`` maps each
flattened name to a ``TensorStorageMetadata`` (properties with the dtype, the full size, the
chunks each rank wrote: offsets and sizes) or a ``BytesStorageMetadata`` (a non-tensor entry,
``torch.save``'d into a ``.distcp`` file); ``storage_data`` maps a ``MetadataIndex`` (name,
chunk offsets) to a ``_StorageInfo`` (file, offset, length).

Every global is checked against :data:`ALLOWLIST`, what DCP writes (its dataclasses,
``torch.Size``, dtypes, layouts, ``pathlib`` paths for the checkpoint id); any other makes
the verdict ``"unsafe"``, named with its offset, and the tree is read only as far as it can.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from paramtool.formats.torch_pickle import (
    _TORCH_DTYPES,
    _UNMAPPED_DTYPES,
    MAX_DIMS,
    MAX_ENTRIES,
    Call,
    Global,
    PDict,
    TorchFormatError,
    UnsafeGlobal,
    Verdict,
    interpret,
)

_METADATA = "torch.distributed.checkpoint.metadata"
_FILESYSTEM = "torch.distributed.checkpoint.filesystem"
_LAYOUTS = ("strided", "sparse_coo", "sparse_csr", "sparse_csc", "sparse_bsr", "sparse_bsc")
_FORMATS = ("contiguous_format", "channels_last", "channels_last_3d", "preserve_format")

ALLOWLIST: frozenset[tuple[str, str]] = frozenset(
    {
        (_METADATA, n)
        for n in (
            "Metadata",
            "TensorStorageMetadata",
            "BytesStorageMetadata",
            "ChunkStorageMetadata",
            "TensorProperties",
            "MetadataIndex",
            "StorageMeta",
            "_MEM_FORMAT_ENCODING",
        )
    }  # fmt: skip
    | {(_FILESYSTEM, "_StorageInfo"), (_FILESYSTEM, "_StoragePrefix")}
    | {("torch.serialization", "_get_layout")}
    | {("torch", n) for n in (*_LAYOUTS, *_FORMATS, *_TORCH_DTYPES, *_UNMAPPED_DTYPES, "Size")}
    | {("pathlib", n) for n in ("Path", "PosixPath", "WindowsPath", "PurePosixPath")}
    | {("pathlib", "PureWindowsPath"), ("collections", "OrderedDict"), ("_codecs", "encode")}
)
"""The globals ``torch.distributed.checkpoint.save`` writes in ``.metadata`` (checked
against torch 2.13): its metadata dataclasses, ``_StorageInfo``, ``torch.Size``, dtypes,
layouts and memory formats, and the ``pathlib`` path of the checkpoint id."""


class DcpFormatError(TorchFormatError):
    """A distributed checkpoint whose ``.metadata`` or data files disagree with DCP's layout."""


@dataclass(frozen=True, slots=True)
class DcpChunk:
    """One chunk of a tensor (what one rank wrote): where it sits in the full tensor, and
    the bytes holding it (a ``torch.save`` stream, unless transformed, e.g. compressed)."""

    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    file: str  # relative to the checkpoint folder: __0_0.distcp
    offset: int
    length: int
    transformed: bool = False

    @property
    def numel(self) -> int:
        n = 1
        for d in self.sizes:
            n *= d
        return n


@dataclass(frozen=True, slots=True)
class DcpTensor:
    name: str
    dtype: str  # a paramtool dtype name
    shape: tuple[int, ...]
    chunks: tuple[DcpChunk, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def stored(self) -> int:
        """Bytes its chunks take in the data files."""
        return sum(c.length for c in self.chunks)


@dataclass(frozen=True, slots=True)
class DcpBytes:
    """A non-tensor entry (a step counter, a setting): a ``torch.save``'d object."""

    name: str
    file: str
    offset: int
    length: int
    transformed: bool = False


@dataclass(frozen=True, slots=True)
class DcpMetadata:
    """What ``.metadata`` says, read symbolically."""

    path: str
    tensors: tuple[DcpTensor, ...]
    entries: tuple[DcpBytes, ...]
    unsafe_globals: tuple[UnsafeGlobal, ...]
    version: str | None = None

    @property
    def verdict(self) -> Verdict:
        return "unsafe" if self.unsafe_globals else "plain state dict"

    @property
    def files(self) -> tuple[str, ...]:
        """The data files it refers to, sorted."""
        names = {c.file for t in self.tensors for c in t.chunks}
        names.update(e.file for e in self.entries)
        return tuple(sorted(names))

    @property
    def parameters(self) -> int:
        return sum(t.numel for t in self.tensors)


class _Reader:
    def __init__(self, shown: str) -> None:
        self.shown = shown

    def err(self, why: str, name: str | None = None) -> DcpFormatError:
        return DcpFormatError(self.shown, why, name)

    def fields(self, v: object, cls: str, what: str) -> dict[str, object]:
        """The fields of a pickled dataclass ``cls``: its BUILD state (a dict, or
        ``(dict, slots)``), string keys only."""
        if not (isinstance(v, Call) and isinstance(v.func, Global) and v.func.name == cls):
            raise self.err(f"{what} is not a {cls}")
        if v.func.module not in (_METADATA, _FILESYSTEM):
            raise self.err(f"{what} is {v.func.qualname}, not DCP's {cls}")
        parts = v.state if isinstance(v.state, tuple) else (v.state,)
        out: dict[str, object] = {}
        for part in parts:
            if part is None:
                continue
            if not isinstance(part, PDict):
                raise self.err(f"{what}: the {cls} state is not a dict")
            for k, x in part.items:
                if not isinstance(k, str):
                    raise self.err(f"{what}: a {cls} field name is not a string")
                out[k] = x
        return out

    def ints(self, v: object, what: str, name: str) -> tuple[int, ...]:
        if isinstance(v, Call) and isinstance(v.func, Global) and v.func.qualname == "torch.Size":
            args = v.args
            v = args[0] if isinstance(args, tuple) and len(args) == 1 else args
        if isinstance(v, list):
            v = tuple(v)
        if not isinstance(v, tuple) or len(v) > MAX_DIMS:
            raise self.err(f"{what} is not a tuple of at most {MAX_DIMS} integers", name)
        for d in v:
            if not isinstance(d, int) or isinstance(d, bool) or not 0 <= d < 2**62:
                raise self.err(f"{what} is not non-negative integers", name)
        return v

    def count(self, v: object, what: str, name: str) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**62:
            raise self.err(f"{what} is not a non-negative integer", name)
        return v

    def dtype(self, props: object, name: str) -> str:
        if (
            isinstance(props, Call)
            and isinstance(props.func, Global)
            and (props.func.module, props.func.name) == (_METADATA, "TensorProperties")
            and isinstance(props.state, tuple)
            and props.state
            and not isinstance(props.state[0], PDict)
        ):
            value: object = props.state[0]  # TensorProperties.__getstate__: a tuple
        else:
            value = self.fields(props, "TensorProperties", "properties").get("dtype")
        if isinstance(value, Global) and value.module == "torch" and value.name in _TORCH_DTYPES:
            return _TORCH_DTYPES[value.name]
        shown = value.qualname if isinstance(value, Global) else type(value).__name__
        raise self.err(f"dtype {shown} has no paramtool dtype", name)

    def storage(self, v: object) -> tuple[tuple[str, tuple[int, ...] | None], _Info]:
        key = self.fields(v[0] if isinstance(v, tuple) else None, "MetadataIndex", "a key")
        fqn = key.get("fqn")
        if not isinstance(fqn, str):
            raise self.err("a storage_data key has no name")
        offset = key.get("offset")
        at = None if offset is None else self.ints(offset, "storage offset", fqn)
        info = self.fields(v[1] if isinstance(v, tuple) else None, "_StorageInfo", fqn[:200])
        rel = info.get("relative_path")
        if (
            not isinstance(rel, str)
            or not rel
            or rel in (".", "..")
            or any(c in rel for c in "/\\\0")
        ):
            raise self.err(f"data file {str(rel)[:80]!r} is not a file name in the folder", fqn)
        transforms = info.get("transform_descriptors")
        if transforms is not None and not (
            isinstance(transforms, (list, tuple)) and all(isinstance(t, str) for t in transforms)
        ):
            raise self.err("transform_descriptors is not a list of strings", fqn)
        return (fqn[:1000], at), _Info(
            rel[:255],
            self.count(info.get("offset"), "storage offset", fqn),
            self.count(info.get("length"), "storage length", fqn),
            bool(transforms),
        )

    def read(self, root: object) -> tuple[tuple[DcpTensor, ...], tuple[DcpBytes, ...], str | None]:
        meta = self.fields(root, "Metadata", "the root object")
        sdm = meta.get("state_dict_metadata")
        data = meta.get("storage_data")
        if not isinstance(sdm, PDict):
            raise self.err("state_dict_metadata is not a dict")
        if not isinstance(data, PDict):
            raise self.err("storage_data is not a dict (not written by the file system writer)")
        if len(sdm.items) + len(data.items) > MAX_ENTRIES:
            raise self.err(f"more than {MAX_ENTRIES:,} entries")
        infos = dict(self.storage(pair) for pair in data.items)
        tensors: list[DcpTensor] = []
        entries: list[DcpBytes] = []
        for k, md in sdm.items:
            if not isinstance(k, str):
                raise self.err("a state_dict_metadata name is not a string")
            name = k[:1000]
            if isinstance(md, Call) and isinstance(md.func, Global):
                if md.func.name == "BytesStorageMetadata":
                    self.fields(md, "BytesStorageMetadata", name)
                    info = infos.get((name, None))
                    if info is None:
                        raise self.err("entry has no storage_data", name)
                    entries.append(
                        DcpBytes(name, info.file, info.offset, info.length, info.transformed)
                    )
                    continue
            tensors.append(self.tensor(name, md, infos))
        version = meta.get("version")
        return tuple(tensors), tuple(entries), version[:50] if isinstance(version, str) else None

    def tensor(
        self, name: str, md: object, infos: dict[tuple[str, tuple[int, ...] | None], _Info]
    ) -> DcpTensor:
        f = self.fields(md, "TensorStorageMetadata", name)
        dtype = self.dtype(f.get("properties"), name)
        shape = self.ints(f.get("size"), "size", name)
        raw_chunks = f.get("chunks")
        if not isinstance(raw_chunks, list) or not raw_chunks:
            raise self.err("chunks is not a non-empty list", name)
        chunks: list[DcpChunk] = []
        for c in raw_chunks:
            cf = self.fields(c, "ChunkStorageMetadata", name)
            offsets = self.ints(cf.get("offsets"), "chunk offsets", name)
            sizes = self.ints(cf.get("sizes"), "chunk sizes", name)
            if len(offsets) != len(shape) or len(sizes) != len(shape):
                raise self.err(
                    f"a chunk of {len(sizes)} dimensions in a tensor of {len(shape)}", name
                )
            if any(o + s > d for o, s, d in zip(offsets, sizes, shape, strict=True)):
                raise self.err(f"chunk at {offsets} of size {sizes} leaves {shape}", name)
            info = infos.get((name, offsets))
            if info is None:
                raise self.err(f"chunk at {offsets} has no storage_data", name)
            chunks.append(
                DcpChunk(offsets, sizes, info.file, info.offset, info.length, info.transformed)
            )
        t = DcpTensor(name, dtype, shape, tuple(chunks))
        covered = sum(c.numel for c in chunks)
        if covered != t.numel:
            raise self.err(
                f"its chunks hold {covered:,} elements, its size {shape} needs {t.numel:,}", name
            )
        return t


@dataclass(frozen=True, slots=True)
class _Info:
    file: str
    offset: int
    length: int
    transformed: bool


def read_dcp_metadata(data: bytes, shown: str) -> DcpMetadata:
    """The records of a ``.metadata`` pickle, read without unpickling.

    An unsafe pickle (a global outside :data:`ALLOWLIST`) still gives the tensors when its
    tree reads as DCP's, and none otherwise; a safe one that does not is an error.
    """
    root, globals_, _ = interpret(data, shown)
    unsafe = tuple(
        UnsafeGlobal(g.module, g.name, g.offset)
        for g in globals_
        if (g.module, g.name) not in ALLOWLIST
    )
    try:
        tensors, entries, version = _Reader(shown).read(root)
    except DcpFormatError:
        if not unsafe:
            raise
        return DcpMetadata(shown, (), (), unsafe)
    except RecursionError:
        raise DcpFormatError(shown, "objects nested too deeply") from None
    return DcpMetadata(shown, tensors, entries, unsafe, version)
