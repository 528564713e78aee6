"""GGUF checkpoints, header only: metadata, tensor infos, never the tensor data.

A GGUF file is ``GGUF``, a u32 version, u64 tensor and KV counts, the KV pairs
(typed values, arrays included), one info per tensor (name, dims ``ne0`` first,
ggml type, offset into the data region), padding to ``general.alignment``
(default 32), then the data. :func:`read_gguf` parses that as strictly as
llama.cpp's loader (``ggml/src/gguf.cpp`` ``gguf_init_from_file_impl``):
version 2 or 3, no duplicate keys or tensor names, no nested arrays,
``general.alignment`` a u32 power of two, at most 4 dims with a product below
2^63, a known ggml type whose block divides ``ne0``, each offset exactly where
the previous tensor (padded to the alignment) ends, and every tensor inside the file.

Hand-written, not ``gguf.GGUFReader``: that reader memory-maps the file, walks
every array element into its own numpy object (a 150k-token vocabulary is
300k arrays), builds a numpy view of every tensor, and trusts the counts it
reads: a tensor count or array length of 2^60 makes it loop until killed. It
also pulls numpy in. This parser streams the header through a small buffer,
checks every count and length against the bytes left (and the limits below)
before it reads, skips the values it does not keep, and needs no import beyond
the standard library. ggml type ids and block sizes come from
:mod:`paramtool.dtypes`, whose GGUF rows the tests check against
``gguf.GGMLQuantizationType`` and ``gguf.GGML_QUANT_SIZES``.

Shapes are reported in GGUF order, ``ne0`` (the contiguous row) first, as
llama.cpp and ``gguf-dump`` print them: ``token_embd.weight`` of a Llama is
``(4096, 128256)``, where Hugging Face writes ``[128256, 4096]``. The number of
elements is the same either way.

A checkpoint's ``config`` is synthesized from the metadata in Hugging Face
``config.json`` terms (:mod:`paramtool.formats.gguf_config`), so that inspect's config
line and footprint's KV-cache dimensions work unchanged; what kind of file it is and
its summary are read in :mod:`paramtool.formats.gguf_metadata`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, BinaryIO

from paramtool import dtypes
from paramtool.errors import (
    HeaderTooLarge,
    InvalidHeader,
    InvalidHeaderDeserialization,
    InvalidHeaderLength,
    InvalidOffset,
    MetadataIncompleteBuffer,
    TensorInvalidInfo,
    UnsupportedFormat,
    ValidationOverflow,
)
from paramtool.fields import is_int
from paramtool.files import open_binary, read_prefix
from paramtool.records import FileHeader, TensorInfo

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
LLAMA_CPP_MAX_NAME = 64  # GGML_MAX_NAME: llama.cpp refuses tensor names of 64 bytes or more

# Limits: far above any real file, low enough that hostile counts cannot hang or exhaust memory.
MAX_HEADER_SIZE = 256 * 2**20  # metadata + tensor infos; real ones (big vocabularies) are ~30 MB
MAX_TENSORS = 262_144  # real files hold up to a few 10k (per-expert MoE tensors)
MAX_KV = 65_536  # real files hold ~20-100
MAX_NAME = 65_536  # bytes of a key or a tensor name
MAX_STRING_ARRAY = 4 * 2**20  # strings in one array (a vocabulary is ~260k, merges ~300k)
KEEP_STRING = 2**20  # longer string values are skipped and summarised, never read
KEEP_ARRAY = 4096  # longer numeric arrays are skipped; shorter ones kept (per-layer values)
KEEP_STRING_ARRAY = 16  # short string arrays (tags, languages) are kept
SHOW_ARRAY = 16  # arrays up to this length are spelled out in the string metadata
_CHUNK = 65_536
_I64_MAX = 2**63 - 1

# ggml tensor types by id (ggml.h enum ggml_type); names as in the dtypes table.
GGML_TYPES: Mapping[int, str] = MappingProxyType({
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K",
    16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S",
    22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
    29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4", 40: "NVFP4", 41: "Q1_0",
})  # fmt: skip
# Ids ggml once had and removed (Q4_2, Q4_3, the repacked Q4_0_4_4 family): named in errors.
_REMOVED_TYPES = {4: "Q4_2", 5: "Q4_3", 31: "Q4_0_4_4", 32: "Q4_0_4_8", 33: "Q4_0_8_8",
                  36: "IQ4_NL_4_4", 37: "IQ4_NL_4_8", 38: "IQ4_NL_8_8"}  # fmt: skip

# GGUF value types (gguf.h enum gguf_type): name, struct format (None: string/array).
_VALUE_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("uint8", "<B"), 1: ("int8", "<b"), 2: ("uint16", "<H"), 3: ("int16", "<h"),
    4: ("uint32", "<I"), 5: ("int32", "<i"), 6: ("float32", "<f"), 7: ("bool", "<B"),
    8: ("string", None), 9: ("array", None), 10: ("uint64", "<Q"), 11: ("int64", "<q"),
    12: ("float64", "<d"),
}  # fmt: skip
_STRING, _ARRAY, _BOOL = 8, 9, 7
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
# A tensor info after its name and dimension count: the dims, the ggml type, the offset.
_DIMS_TYPE_OFFSET = [struct.Struct(f"<{n}QIQ") for n in range(MAX_DIMS + 1)]
# ggml type id -> (name, block size, bytes per block), from the dtypes table.
_BLOCKS = {
    i: (n, dtypes.GGUF[n].block_size, dtypes.GGUF[n].bytes_per_block) for i, n in GGML_TYPES.items()
}


@dataclass(frozen=True, slots=True)
class GGUFArray:
    """An array value: element type and length; the values when short enough to keep."""

    type: str  # element type: "uint32", "string", ...
    length: int
    values: tuple[Any, ...] | None = None

    def __str__(self) -> str:
        if self.values is not None and self.length <= SHOW_ARRAY:
            return "[" + ", ".join(_scalar_text(v, self.type) for v in self.values) + "]"
        kind = "strings" if self.type == "string" else self.type
        return f"<array of {self.length:,} {kind}>"


@dataclass(frozen=True, slots=True)
class SkippedString:
    """A string value too long to keep (a tokenizer JSON): its length only."""

    length: int

    def __str__(self) -> str:
        return f"<string of {self.length:,} bytes>"


@dataclass(frozen=True, slots=True)
class GGUFFile:
    """One parsed GGUF file: its typed metadata, and its header in paramtool's terms."""

    path: str
    version: int
    alignment: int
    data_start: int  # absolute offset of the data region (after the padding)
    kv: Mapping[str, Any]  # int, float, bool, str, GGUFArray or SkippedString
    kv_types: Mapping[str, str]  # each key's GGUF value type name
    header: FileHeader
    warnings: tuple[str, ...] = ()

    @property
    def tensors(self) -> tuple[TensorInfo, ...]:
        return self.header.tensors

    @property
    def split(self) -> tuple[int, int] | None:
        """(split.no, split.count) when the file says it is one part of several."""
        no, count = self.kv.get("split.no"), self.kv.get("split.count")
        if is_int(count) and count > 1 and is_int(no):
            return no, count
        return None


class _Source:
    """Reads the header through a small buffer, checking each length before it reads."""

    __slots__ = ("f", "path", "size", "limit", "buf", "pos", "base")

    def __init__(self, f: BinaryIO, path: str, size: int) -> None:
        self.f, self.path, self.size = f, path, size
        self.limit = min(size, MAX_HEADER_SIZE)  # the buffer never reaches past this
        self.buf = b""
        self.pos = 0  # position in buf
        self.base = 0  # file offset of buf[0]

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def _refuse(self, n: int, what: str) -> None:
        end = self.offset + n
        if end > self.size:
            raise InvalidHeaderLength(
                self.path,
                f"{what} at byte {self.offset:,} needs {n:,} bytes, past the end of the "
                f"{self.size:,}-byte file (truncated?)",
            )
        raise HeaderTooLarge(
            self.path,
            f"{what} at byte {self.offset:,} takes the header past the "
            f"{MAX_HEADER_SIZE:,}-byte limit",
        )

    def take(self, n: int, what: str) -> bytes:
        """The next ``n`` bytes (``n`` already checked against the file by the caller or here)."""
        if self.pos + n > len(self.buf):
            self._fill(n, what)
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def _fill(self, n: int, what: str) -> None:
        if self.offset + n > self.limit:
            self._refuse(n, what)
        rest = self.buf[self.pos :]
        self.base = self.offset
        self.pos = 0
        want = min(max(n - len(rest), _CHUNK), self.limit - self.base - len(rest))
        self.f.seek(self.base + len(rest))
        more = self.f.read(want)
        self.buf = rest + more
        if len(self.buf) < n:
            raise InvalidHeaderLength(self.path, "the file shrank while its header was read")

    def skip(self, n: int, what: str) -> None:
        if self.pos + n <= len(self.buf):
            self.pos += n
            return
        if self.offset + n > self.limit:
            self._refuse(n, what)
        self.base, self.pos, self.buf = self.offset + n, 0, b""

    def unpack(self, s: struct.Struct, what: str) -> Any:
        if self.pos + s.size > len(self.buf):
            self._fill(s.size, what)
        (v,) = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return v

    def unpack_all(self, s: struct.Struct, what: str) -> tuple[Any, ...]:
        if self.pos + s.size > len(self.buf):
            self._fill(s.size, what)
        v = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return v

    def u32(self, what: str) -> int:
        return int(self.unpack(_U32, what))

    def u64(self, what: str) -> int:
        return int(self.unpack(_U64, what))

    def name(self, what: str) -> str:
        """A key or tensor name: strict UTF-8, at most MAX_NAME bytes."""
        n = self.unpack(_U64, what)
        if n > MAX_NAME:
            if self.offset + n > self.size:
                self._refuse(n, what)
            raise HeaderTooLarge(
                self.path,
                f"{what} at byte {self.offset:,} is {n:,} bytes long (limit {MAX_NAME:,})",
            )
        raw = self.take(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidHeader(
                self.path, f"{what} at byte {self.offset - n:,} is not valid UTF-8"
            ) from None


def is_gguf_name(name: str) -> bool:
    return name.lower().endswith(".gguf")


def sniff_gguf(path: str | os.PathLike[str]) -> bool:
    """Whether a regular file starts with the GGUF magic (False when it cannot be read)."""
    return read_prefix(path, 4) == MAGIC


def read_gguf(path: str | os.PathLike[str], display: str | None = None) -> GGUFFile:
    """Read and validate one GGUF file's header; no tensor data is read.

    Only a regular file is opened (:func:`paramtool.files.open_binary`), and at most
    ``MAX_HEADER_SIZE`` bytes of it are read.
    """
    shown = display if display is not None else os.fspath(path)
    with open_binary(path, shown) as f:
        return _parse(f, shown, os.fstat(f.fileno()).st_size)


def _parse(f: BinaryIO, path: str, size: int) -> GGUFFile:
    src = _Source(f, path, size)
    if size < 4:
        raise InvalidHeaderLength(
            path, f"file is {size} bytes; a GGUF file starts with 'GGUF' and a version"
        )
    magic = src.take(4, "magic")
    if magic != MAGIC:
        raise UnsupportedFormat(path, f"not a GGUF file (it starts with {magic!r}, not b'GGUF')")
    version = src.u32("version")
    if version & 0xFFFF == 0 and version:
        raise UnsupportedFormat(
            path, f"version field {version:#010x}: a big-endian GGUF file, which is not supported"
        )
    if version not in VERSIONS:
        why = (
            "GGUF v1 is no longer supported (llama.cpp refuses it too)"
            if version == 1
            else (f"unsupported GGUF version {version} (paramtool reads versions 2 and 3)")
        )
        raise UnsupportedFormat(path, why)
    n_tensors = src.u64("tensor count")
    n_kv = src.u64("metadata count")
    left = size - src.offset
    if n_tensors > MAX_TENSORS or n_tensors * 24 > left:  # a tensor info takes at least 24 bytes
        raise HeaderTooLarge(
            path,
            f"tensor count {n_tensors:,} is more than the file "
            f"(or the {MAX_TENSORS:,} limit) can hold",
        )
    if n_kv > MAX_KV or n_kv * 13 > left:  # a KV pair takes at least 13 bytes
        raise HeaderTooLarge(
            path,
            f"metadata count {n_kv:,} is more than the file (or the {MAX_KV:,} limit) can hold",
        )

    kv: dict[str, Any] = {}
    kv_types: dict[str, str] = {}
    for _ in range(n_kv):
        key = src.name("metadata key")
        if key in kv:
            raise InvalidHeaderDeserialization(path, f"duplicate metadata key {key!r}")
        vtype = src.u32(f"type of {key!r}")
        kv[key] = _read_value(src, vtype, key)
        kv_types[key] = _VALUE_TYPES[vtype][0]

    alignment = DEFAULT_ALIGNMENT
    if "general.alignment" in kv:
        alignment = kv["general.alignment"]
        if kv_types["general.alignment"] != "uint32":
            raise InvalidHeaderDeserialization(
                path, f"general.alignment is {kv_types['general.alignment']}, not uint32"
            )
        if alignment == 0 or alignment & (alignment - 1):
            raise InvalidHeaderDeserialization(
                path, f"general.alignment {alignment} is not a power of two"
            )

    names: set[str] = set()
    infos = [_read_tensor_info(src, names) for _ in range(n_tensors)]
    header_end = src.offset
    data_start = -(-header_end // alignment) * alignment
    return _layout(path, size, version, alignment, data_start, kv, kv_types, infos)


def _read_value(src: _Source, vtype: int, key: str) -> Any:
    if vtype not in _VALUE_TYPES:
        raise InvalidHeaderDeserialization(
            src.path, f"metadata {key!r} has unknown value type {vtype}"
        )
    if vtype == _STRING:
        return _read_string(src, key)
    if vtype == _ARRAY:
        return _read_array(src, key)
    fmt = _VALUE_TYPES[vtype][1]
    assert fmt is not None
    raw = src.take(struct.calcsize(fmt), f"value of {key!r}")
    (v,) = struct.unpack(fmt, raw)
    if vtype == _BOOL:
        return v != 0
    return v


def _read_string(src: _Source, key: str) -> str | SkippedString:
    n = src.u64(f"length of {key!r}")
    if n > KEEP_STRING:
        src.skip(n, f"string {key!r}")
        return SkippedString(n)
    raw = src.take(n, f"string {key!r}")
    try:  # strict, as gguf-py's ReaderField.contents() decodes (Python refuses surrogates)
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidHeader(
            src.path, f"metadata {key!r}: string is not valid UTF-8 (byte {e.start})"
        ) from None


def _read_array(src: _Source, key: str) -> GGUFArray:
    itype = src.u32(f"element type of {key!r}")
    n = src.u64(f"length of {key!r}")
    if itype == _ARRAY:
        raise InvalidHeaderDeserialization(
            src.path, f"metadata {key!r} is an array of arrays, which GGUF readers refuse"
        )
    if itype not in _VALUE_TYPES:
        raise InvalidHeaderDeserialization(
            src.path, f"metadata {key!r} is an array of unknown type {itype}"
        )
    tname, fmt = _VALUE_TYPES[itype]
    if itype == _STRING:
        if n > MAX_STRING_ARRAY or n * 8 > src.size - src.offset:
            raise HeaderTooLarge(
                src.path,
                f"metadata {key!r}: string array of {n:,} elements is more than "
                f"the file (or the {MAX_STRING_ARRAY:,} limit) can hold",
            )
        if n <= KEEP_STRING_ARRAY:
            return GGUFArray(tname, n, tuple(str(_read_string(src, key)) for _ in range(n)))
        _skip_strings(src, n, key)
        return GGUFArray(tname, n)
    assert fmt is not None
    width = struct.calcsize(fmt)
    if n * width > src.size - src.offset:
        src._refuse(n * width, f"array {key!r}")
    if n > KEEP_ARRAY:
        src.skip(n * width, f"array {key!r}")
        return GGUFArray(tname, n)
    raw = src.take(n * width, f"array {key!r}")
    values = struct.unpack(f"<{n}{fmt[1]}", raw)
    if itype == _BOOL:
        values = tuple(v != 0 for v in values)
    return GGUFArray(tname, n, tuple(values))


def _skip_strings(src: _Source, n: int, key: str) -> None:
    """Walk past ``n`` strings: the hot loop of a vocabulary, kept tight."""
    unpack, what = _U64.unpack_from, f"string in {key!r}"
    for _ in range(n):
        if src.pos + 8 > len(src.buf):
            src._fill(8, what)
        (length,) = unpack(src.buf, src.pos)
        end = src.pos + 8 + length
        if end <= len(src.buf):
            src.pos = end
        else:
            src.pos += 8
            src.skip(length, what)


def _read_tensor_info(src: _Source, names: set[str]) -> tuple[str, tuple[int, ...], str, int, int]:
    """One tensor info: (name, shape, type name, offset, bytes). Hot: up to a million of them."""
    path = src.path
    name = src.name("tensor name")
    if name in names:
        raise InvalidHeaderDeserialization(path, "duplicate tensor name", name)
    names.add(name)
    n_dims = src.unpack(_U32, "tensor dimension count")
    if n_dims > MAX_DIMS:
        raise InvalidHeaderDeserialization(
            path, f"{n_dims} dimensions; GGUF allows at most {MAX_DIMS}", name
        )
    fields = src.unpack_all(_DIMS_TYPE_OFFSET[n_dims], "tensor dimensions, type and offset")
    shape, type_id, offset = fields[:n_dims], fields[n_dims], fields[n_dims + 1]
    numel = 1
    for d in shape:
        numel *= d
    if numel > _I64_MAX or (shape and max(shape) > _I64_MAX):
        raise ValidationOverflow(
            path, f"shape {list(shape)} overflows GGUF's signed 64-bit element count", name
        )
    sizes = _BLOCKS.get(type_id)
    if sizes is None:
        old = _REMOVED_TYPES.get(type_id)
        why = (
            f"ggml type {type_id} ({old}) was removed from ggml"
            if old
            else f"unknown ggml type {type_id}"
        )
        raise InvalidHeaderDeserialization(path, why, name)
    type_name, block, block_bytes = sizes
    row = shape[0] if shape else 1
    if row % block:
        raise TensorInvalidInfo(
            path, f"{type_name} packs {block} elements a block, but a row holds {row:,}", name
        )
    return name, shape, type_name, offset, numel // block * block_bytes


def _layout(
    path: str,
    size: int,
    version: int,
    alignment: int,
    data_start: int,
    kv: dict[str, Any],
    kv_types: dict[str, str],
    infos: list[tuple[str, tuple[int, ...], str, int, int]],
) -> GGUFFile:
    """Check the offsets (llama.cpp: each exactly where the previous padded tensor ends)."""
    data_size = max(size - data_start, 0)
    tensors = []
    expected = 0
    notes: list[str] = []
    for name, shape, type_name, offset, nbytes in infos:
        if offset % alignment:
            raise InvalidOffset(
                path, f"offset {offset:,} is not a multiple of the {alignment}-byte alignment", name
            )
        if offset != expected:
            why = (
                "overlaps the tensor before it"
                if offset < expected
                else "leaves a gap after the tensor before it"
            )
            raise InvalidOffset(path, f"offset {offset:,} {why} (expected {expected:,})", name)
        if offset + nbytes > data_size:
            raise MetadataIncompleteBuffer(
                path,
                f"data [{offset:,}, {offset + nbytes:,}) runs past the end of the "
                f"{data_size:,}-byte data region (truncated download?)",
                name,
            )
        if len(name) >= LLAMA_CPP_MAX_NAME // 4 and len(name.encode()) >= LLAMA_CPP_MAX_NAME:
            notes.append(
                f"{path}: tensor name {name[:80]!r} is {len(name.encode())} bytes; "
                f"llama.cpp refuses names of {LLAMA_CPP_MAX_NAME} bytes or more"
            )
        tensors.append(TensorInfo(name, type_name, shape, offset, offset + nbytes, path))
        expected = offset + -(-nbytes // alignment) * alignment
    if tensors and data_size > expected:
        notes.append(
            f"{path}: {data_size - expected:,} bytes after the last tensor belong to no tensor"
        )
    # FileHeader.file_size is 8 + header_size + data_size: the 8 bytes are GGUF's magic and version.
    header = FileHeader(
        path=path,
        header_size=min(data_start, size) - 8,
        data_size=data_size,
        tensors=tuple(tensors),
        metadata=metadata_strings(kv, kv_types),
        format="gguf",
    )
    return GGUFFile(
        path,
        version,
        alignment,
        data_start,
        MappingProxyType(kv),
        MappingProxyType(kv_types),
        header,
        tuple(notes),
    )


def _float32_text(v: float) -> str:
    """The shortest decimal that reads back as the same float32: 1e-05, not 9.99999974738e-06."""
    for digits in range(1, 10):
        s = f"{v:.{digits}g}"
        if struct.unpack("<f", struct.pack("<f", float(s)))[0] == v:
            return repr(float(s))
    return repr(v)


def _scalar_text(v: Any, vtype: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if vtype == "float32" and isinstance(v, float) and v == v and abs(v) != float("inf"):
        return _float32_text(v)
    return str(v)


def metadata_strings(kv: Mapping[str, Any], kv_types: Mapping[str, str]) -> Mapping[str, str]:
    """The metadata as strings: scalars as written, long strings and arrays summarised."""
    out = {}
    for k, v in kv.items():
        out[k] = (
            str(v)
            if isinstance(v, (GGUFArray, SkippedString))
            else _scalar_text(v, kv_types.get(k, ""))
        )
    return MappingProxyType(out)
