"""The one strict safetensors header parser, and the records it returns.

A safetensors file is an 8-byte little-endian header length ``n``, ``n`` bytes
of UTF-8 JSON, then the data region. :func:`parse_header` validates the JSON as
strictly as the reference library (safetensors ``Metadata::validate``): known
dtype, shape of non-negative ints, contiguous ``data_offsets`` from 0 with no
gap or overlap, byte size equal to numel times the dtype size, and the tensors
covering the data region exactly. It is fed by byte sources that read only the
header: :func:`read_local_header` here, and the Hub range reader.
"""

from __future__ import annotations

import gc
import json
import math
import os
import re
import struct
from collections.abc import Callable, Mapping
from itertools import chain, repeat
from operator import attrgetter, floordiv, itemgetter, mod, mul, sub
from types import MappingProxyType
from typing import Any, BinaryIO

from paramtool import dtypes
from paramtool.errors import (
    HeaderTooLarge,
    HeaderTooSmall,
    InvalidHeader,
    InvalidHeaderDeserialization,
    InvalidHeaderLength,
    InvalidOffset,
    MetadataIncompleteBuffer,
    ParamtoolError,
    TensorInvalidInfo,
    UnsupportedFormat,
    ValidationOverflow,
    reading,
)
from paramtool.files import open_binary, open_fd_stat, read_fd
from paramtool.records import FileHeader, TensorInfo

MAX_HEADER_SIZE = 100_000_000  # the reference library's limit, in bytes
MAX_JSON_DEPTH = 127  # serde_json refuses a 128th nested array or object
MAX_JSON_NUMBER = 1e308  # serde_json refuses numbers out of f64 range (rounding near the top)
_U64_MAX = 2**64 - 1
_EMPTY: Mapping[str, str] = MappingProxyType({})
_SAFETENSORS = dtypes.SAFETENSORS
_SURROGATE = re.compile("[\ud800-\udfff]")


def header_length(prefix: bytes, path: str, file_size: int | None = None) -> int:
    """Decode and check the 8-byte length prefix (``file_size`` when known)."""
    if len(prefix) < 8:
        if prefix[:4] == b"GGUF":
            raise UnsupportedFormat(path, "this is a GGUF file, not safetensors")
        raise HeaderTooSmall(
            path,
            f"file is {len(prefix)} bytes; a safetensors file starts with an 8-byte header length",
        )
    n: int = struct.unpack("<Q", prefix[:8])[0]
    if n > MAX_HEADER_SIZE or (file_size is not None and 8 + n > file_size):
        _sniff_foreign(prefix, path)  # only an implausible length can be another format's magic
    if n > MAX_HEADER_SIZE:
        raise HeaderTooLarge(
            path, f"header length {n:,} exceeds the format's {MAX_HEADER_SIZE:,}-byte limit"
        )
    if file_size is not None and 8 + n > file_size:
        raise InvalidHeaderLength(
            path, f"header length {n:,} runs past the end of the {file_size:,}-byte file"
        )
    return n


def _sniff_foreign(prefix: bytes, path: str) -> None:
    """Name the format when a file is clearly something else than safetensors."""
    magic = {
        b"GGUF": "a GGUF file",
        b"PK\x03\x04": "a zip archive (a PyTorch .bin/.pt pickle checkpoint?)",
        b"\x89HDF": "an HDF5 file (Keras/TensorFlow weights?)",
        b"\x93NUMPY": "a NumPy .npy file",
    }
    for sig, what in magic.items():
        if prefix.startswith(sig):
            raise UnsupportedFormat(path, f"this is {what}, not safetensors")
    if prefix[:1] == b"\x80" and prefix[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise UnsupportedFormat(
            path,
            "this is a Python pickle, not safetensors (paramtool reads pickles by their own "
            "name: .bin, .pt, .pth, .ckpt)",
        )


def _reject_constant(token: str) -> object:
    raise ValueError(f"non-standard JSON constant {token}")


def _pairs_no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {_shown(k)}")
        out[k] = v
    return out


def _float(token: str) -> float:
    v = float(token)
    if not -MAX_JSON_NUMBER <= v <= MAX_JSON_NUMBER:  # inf too
        raise ValueError(f"number {token[:40]} is out of range")
    return v


def _int_or_negative_zero(token: str) -> int | float:
    # serde_json reads -0 as the float -0.0: no integer field (shape, data_offsets) takes it.
    return -0.0 if token == "-0" else int(token)


def _shown(s: str) -> str:
    """A name for a message: cut, with escapes for what a terminal cannot print (surrogates)."""
    return ascii(s[:80] + ("..." if len(s) > 80 else ""))


def _loads(text: str) -> object:
    """``json.loads`` made as strict as serde_json, which the reference library uses."""
    return json.loads(
        text,
        object_pairs_hook=_pairs_no_duplicates,
        parse_constant=_reject_constant,
        parse_float=_float,
        parse_int=_int_or_negative_zero if "-0" in text else None,
    )


def _serde_check(value: object, depth: int) -> None:
    """Refuse what serde_json refuses and Python's json takes: lone surrogates (from a
    ``\\ud800`` escape), nesting deeper than 127, integers out of f64 range."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise ValueError(f"string {_shown(value)} holds a lone surrogate escape")
    elif isinstance(value, int):
        if abs(value) > MAX_JSON_NUMBER:
            raise ValueError(f"number {str(value)[:40]}... is out of range")
    elif isinstance(value, (dict, list)):
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, dict):
            for k, v in value.items():
                _serde_check(k, depth)
                _serde_check(v, depth + 1)
        else:
            for v in value:
                _serde_check(v, depth + 1)


def _serde_strict(obj: dict[str, object], text: str) -> None:
    """Walk only what can hold serde_json's refusals: everything when the text has a
    ``\\u`` escape (the only way to a lone surrogate), else the tensor entries'
    unknown extra fields (the only place deep nesting or huge numbers are not refused anyway)."""
    if "\\u" in text:
        _serde_check(obj, 1)
        return
    for info in obj.values():
        if type(info) is dict and len(info) > 3:
            _serde_check(info, 2)


def _is_u64(x: object) -> bool:
    return type(x) is int and 0 <= x <= _U64_MAX


def parse_header(raw: bytes, path: str, data_size: int | None = None) -> FileHeader:
    """Parse and validate the JSON header ``raw`` (the ``n`` bytes after the prefix).

    ``data_size`` is the size of the data region when the file size is known;
    the tensors must then cover it exactly (safetensors' MetadataIncompleteBuffer).

    A well-formed header takes a fast tier, which accepts only what
    :func:`parse_header_strict` accepts, read the same: :func:`_parse_typed` (msgspec,
    types checked while parsing) once this process has read ``TYPED_FROM_BYTES`` of
    headers, else or where it declines :func:`_parse_fast` (the C ``json`` scanner and
    bulk checks). Anything else, and every refusal, goes through the strict parser, so
    each error message is its.
    """
    collecting = gc.isenabled()  # its objects hold no cycles: no collection while made
    if collecting:
        gc.disable()
    try:
        if _seen[0] < TYPED_FROM_BYTES:
            _seen[0] += len(raw)
        header = _parse_typed(raw, path, data_size) if _seen[0] >= TYPED_FROM_BYTES else None
        if header is None:
            header = _parse_fast(raw, path, data_size)
    finally:
        if collecting:
            gc.enable()
    return header if header is not None else parse_header_strict(raw, path, data_size)


def parse_header_strict(raw: bytes, path: str, data_size: int | None = None) -> FileHeader:
    """The strict diagnosing parser: one entry at a time, saying exactly what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidHeader(path, f"header is not valid UTF-8 (byte {e.start})") from None
    if not text.startswith("{"):
        raise InvalidHeader(path, "header is not a JSON object (it must start with '{')")
    try:
        obj = _loads(text)
        if isinstance(obj, dict):
            _serde_strict(obj, text)
    except RecursionError:
        raise InvalidHeader(path, "header JSON is nested too deeply") from None
    except ValueError as e:
        raise InvalidHeader(path, f"header is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise InvalidHeader(path, "header is not a JSON object")

    metadata = _parse_metadata(obj.pop("__metadata__", None), path)
    tensors = [_parse_tensor(name, info, path) for name, info in obj.items()]

    by_offset = sorted(tensors, key=lambda t: (t.start, t.end))
    end = 0
    for t in by_offset:
        if t.start != end or t.end < t.start:
            why = "overlaps the tensor before it" if t.start < end else "leaves a gap before it"
            if t.end < t.start:
                why = "ends before it starts"
            raise InvalidOffset(
                path, f"data_offsets [{t.start}, {t.end}] {why} (expected start {end})", t.name
            )
        end = t.end
    if data_size is not None and end != data_size:
        raise MetadataIncompleteBuffer(
            path, f"tensors cover {end:,} bytes but the data region holds {data_size:,}"
        )
    return FileHeader(
        path=path,
        header_size=len(raw),
        data_size=end if data_size is None else data_size,
        tensors=tuple(tensors),
        metadata=metadata,
    )


_FAST_DTYPE = itemgetter("dtype")
_FAST_SHAPE = itemgetter("shape")
_FAST_OFFSETS = itemgetter("data_offsets")
_FIRST = itemgetter(0)
_SECOND = itemgetter(1)
_CANONICAL = {k: d.name for k, d in _SAFETENSORS.items()}  # one str object per dtype name
_BYTES_PER_BLOCK = {k: d.bytes_per_block for k, d in _SAFETENSORS.items()}
_BLOCK = {k: d.block_size for k, d in _SAFETENSORS.items()}
_PACKED = frozenset(k for k, d in _SAFETENSORS.items() if d.block_size != 1)
_INT = {int}
_STR = {str}
_LIST = {list}
_TWO = {2}


def _parse_fast(raw: bytes, path: str, data_size: int | None) -> FileHeader | None:
    """The common well-formed header, validated in bulk; None whenever anything is off.

    It parses with the C ``json`` scanner and no Python hooks, then checks the parsed
    values column by column in C. Why it accepts only what the strict parser accepts, and
    reads it the same (tests/test_header_fast.py checks the two agree on hostile input):

    - No backslash in the header: no escape, so every string is its raw bytes between two
      quotes, no two differently spelled keys decode equal, and no lone surrogate exists.
    - No duplicate key at any depth, and no entry with more fields than ``dtype``,
      ``shape`` and ``data_offsets`` (each entry is a dict holding those three, or getting
      them fails): JSON has one colon outside strings per key/value pair, so the header's
      colons count its pairs ``P`` plus the colons inside its strings ``C``. The parsed
      tree has ``K <= P`` keys (a repeated key keeps one) and its strings, each one of the
      header's (no escapes), hold ``c <= C`` colons; the count expected, with three keys an
      entry, is ``E <= K``. ``P + C == E + c`` holds only when ``P == K == E``.
    - Only ints and strings as leaves: dims and offsets must be ints by type (not a bool,
      a float, ``NaN``, ``null``, a list), so the strict parser's number and constant hooks
      cannot differ; ``-0`` is parsed with the strict parser's own int hook (a float, so
      refused); a ``__metadata__`` value must be a string.
    - A known dtype, no negative dim, no zero-sized tensor (a zero dim can hide an
      overflowing partial product), ``end - start`` equal to the dtype's bytes for the
      shape, the last end u64: so every dim, offset and byte size is u64 (the byte size
      checked before the division for the packed dtypes).
    - The spans tile ``[0, end)``: all spans being non-empty, that holds exactly when the
      smallest start is 0 and the sorted starts after it equal the sorted ends before the
      last (the entry with the smallest end must start at 0; remove it and repeat); in
      header order when the header lists them so, as writers do.
    """
    if b"\\" in raw or not raw.startswith(b"{"):
        return None
    try:
        text = raw.decode("utf-8")
        obj = json.loads(text, parse_int=_int_or_negative_zero if "-0" in text else None)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    del text
    if type(obj) is not dict:
        return None
    pairs = len(obj)
    meta = obj.pop("__metadata__", None)
    colons = 0  # colons inside the parsed strings: the metadata's; the names' if needed
    if meta is None:
        metadata = _EMPTY
    elif type(meta) is dict:
        values = list(meta.values())
        if values and set(map(type, values)) != _STR:
            return None
        colons += sum(map(str.count, meta, repeat(":")))
        colons += sum(map(str.count, values, repeat(":")))
        pairs += len(meta)
        metadata = MappingProxyType(dict(meta))
    else:
        return None
    names = list(obj)
    infos = list(obj.values())
    del obj
    if not _colons_balance(raw, names, pairs + 3 * len(names), colons):
        return None  # a duplicate key somewhere, or an entry with other fields
    try:
        dtypes = list(map(_CANONICAL.__getitem__, map(_FAST_DTYPE, infos)))
        shapes = list(map(_FAST_SHAPE, infos))
        offsets = list(map(_FAST_OFFSETS, infos))
        del infos
        if set(map(type, shapes)) != _LIST or set(map(len, offsets)) != _TWO:
            return None
    except (KeyError, TypeError):  # not a dict, a field missing, an unknown or unhashable
        return None  # dtype, offsets without a length
    dims = list(chain.from_iterable(shapes))
    if dims and (set(map(type, dims)) != _INT or min(dims) < 0):
        return None
    del dims
    flat = list(chain.from_iterable(offsets))
    del offsets
    if set(map(type, flat)) != _INT:
        return None
    starts = flat[0::2]
    ends = flat[1::2]
    del flat
    return _from_columns(raw, path, data_size, metadata, names, dtypes, shapes, starts, ends)


# The typed tier's decoders (msgspec), built on first use; worth their import (~15 ms) once
# this process has read this many header bytes (a checkpoint past ~10k tensors).
TYPED_FROM_BYTES = 1 << 20
_Decoders = tuple[Callable[..., dict[str, Any]], Callable[..., dict[str, str]], type[Exception]]
_seen = [0]  # header bytes parsed so far in this process
_typed: list[_Decoders] = []  # the decoders, once first used
_META_OPEN = b'{"__metadata__":{'
_META_KEY = b'"__metadata__"'


def _typed_decoders() -> _Decoders:
    from typing import Annotated, Literal

    import msgspec

    u64 = Annotated[int, msgspec.Meta(ge=0)]  # the bound: the spans end within u64 (below)
    entry = msgspec.defstruct(
        "Entry",
        [
            ("dtype", Literal[tuple(_SAFETENSORS)]),
            ("shape", tuple[u64, ...]),
            ("data_offsets", tuple[u64, u64]),
        ],
        forbid_unknown_fields=True,
        gc=False,
    )
    header = msgspec.json.Decoder(dict[str, entry]).decode  # type: ignore[valid-type]
    meta = msgspec.json.Decoder(dict[str, str]).decode
    return header, meta, msgspec.DecodeError


_TYPED_DTYPE = attrgetter("dtype")
_TYPED_SHAPE = attrgetter("shape")
_TYPED_OFFSETS = attrgetter("data_offsets")


def _parse_typed(raw: bytes, path: str, data_size: int | None) -> FileHeader | None:
    """:func:`_parse_fast` with the types checked while parsing: a msgspec decoder reads each
    entry as exactly ``dtype`` (a known name), ``shape`` (u64s) and ``data_offsets`` (two
    u64s), in C, so only the sizes and spans are left to check in bulk. None whenever
    anything is off, as the JSON tier; why it accepts and reads the same:

    - No backslash, and no ``-0`` (which the strict parser reads as a float, msgspec as 0).
    - ``__metadata__`` is either the first key, written ``{"__metadata__":{`` as the
      reference writer does, or absent. Its object ends at the header's first ``}`` after
      it: a ``}`` inside one of its strings leaves that string open, so the cut there does
      not decode; a nested value is no string and does not decode either. The metadata is
      decoded on its own (strings only) and blanked to spaces for the entries' decoder.
    - Duplicates: the colon count of :func:`_parse_fast`, over the whole header.
    - msgspec refuses what the strict parser refuses here (invalid UTF-8, encoded
      surrogates, control characters, NaN, trailing data), and any refusal only declines.
    """
    if b"\\" in raw or not raw.startswith(b"{") or b"-0" in raw:
        return None
    if not _typed:
        _typed.append(_typed_decoders())
    decode, decode_meta, failed = _typed[0]
    body: bytes | bytearray = raw
    pairs = colons = 0
    metadata: Mapping[str, str] = _EMPTY
    if raw.startswith(_META_OPEN):
        end = raw.find(b"}", len(_META_OPEN))
        if end < 0 or raw[end + 1 : end + 2] != b"," or raw.find(_META_KEY, end) >= 0:
            return None
        try:
            meta = decode_meta(raw[len(_META_OPEN) - 1 : end + 1])
        except failed:
            return None
        pairs += 1 + len(meta)
        colons += sum(map(str.count, meta, repeat(":")))
        colons += sum(map(str.count, meta.values(), repeat(":")))
        metadata = MappingProxyType(meta)
        body = bytearray(raw)
        body[1 : end + 2] = b" " * (end + 1)
    elif _META_KEY in raw:
        return None
    try:
        obj = decode(body)
    except failed:
        return None
    del body
    names = list(obj)
    entries = list(obj.values())
    del obj
    if not _colons_balance(raw, names, pairs + 4 * len(names), colons):
        return None  # a duplicate key somewhere
    dtypes = list(map(_CANONICAL.__getitem__, map(_TYPED_DTYPE, entries)))
    shapes = list(map(_TYPED_SHAPE, entries))
    offsets = list(map(_TYPED_OFFSETS, entries))
    del entries
    starts = list(map(_FIRST, offsets))
    ends = list(map(_SECOND, offsets))
    del offsets
    return _from_columns(raw, path, data_size, metadata, names, dtypes, shapes, starts, ends)


def _colons_balance(raw: bytes, names: list[str], pairs: int, colons: int) -> bool:
    """Whether the header's colons are its ``pairs`` key/value pairs plus the ``colons``
    inside its parsed strings (the names' counted only if needed), with at least one
    tensor: :func:`_parse_fast`'s proof that no key is repeated and no entry has more."""
    if not names:
        return False
    found = raw.count(b":")
    return found == pairs + colons or found == pairs + colons + sum(
        map(str.count, names, repeat(":"))
    )


def _from_columns(
    raw: bytes,
    path: str,
    data_size: int | None,
    metadata: Mapping[str, str],
    names: list[str],
    dtypes: list[str],
    shapes: list[list[int]] | list[tuple[int, ...]],
    starts: list[int],
    ends: list[int],
) -> FileHeader | None:
    """The fast paths' common end: sizes and spans checked in bulk, then the records; None
    when anything is off. Every dim, offset and dtype is already known to be well typed."""
    numels = list(map(math.prod, shapes))
    if 0 in numels:
        return None
    nbytes = list(map(mul, numels, map(_BYTES_PER_BLOCK.__getitem__, dtypes)))
    del numels
    if not _PACKED.isdisjoint(dtypes):
        if max(nbytes) > _U64_MAX:
            return None
        blocks = list(map(_BLOCK.__getitem__, dtypes))
        if any(map(mod, nbytes, blocks)):
            return None
        nbytes = list(map(floordiv, nbytes, blocks))
    if list(map(sub, ends, starts)) != nbytes:
        return None
    del nbytes
    if starts[0] != 0 or starts[1:] != ends[:-1]:  # not in header order: by offset
        first = sorted(starts)
        last = sorted(ends)
        if first[0] != 0 or first[1:] != last[:-1]:
            return None
        end = last[-1]
    else:
        end = ends[-1]
    if end > _U64_MAX or (data_size is not None and end != data_size):
        return None
    if type(shapes[0]) is list:
        shapes = list(map(tuple, shapes))
    tensors = TensorInfo.from_columns(names, dtypes, shapes, starts, ends, path)  # type: ignore[arg-type]
    return FileHeader(
        path=path,
        header_size=len(raw),
        data_size=end if data_size is None else data_size,
        tensors=tuple(tensors),
        metadata=metadata,
    )


def _parse_metadata(meta: object, path: str) -> Mapping[str, str]:
    if meta is None:
        return _EMPTY
    if not isinstance(meta, dict):
        raise InvalidHeaderDeserialization(path, "__metadata__ must be a map of strings to strings")
    for k, v in meta.items():
        if not isinstance(v, str):
            raise InvalidHeaderDeserialization(
                path, f"__metadata__[{k!r}] is {type(v).__name__}, not a string"
            )
    return MappingProxyType(dict(meta))


def _parse_tensor(name: str, info: object, path: str) -> TensorInfo:
    """Validate one header entry; the common well-formed case takes the fast path."""
    if type(info) is dict:
        name_of = info.get("dtype")
        dt = _SAFETENSORS.get(name_of) if type(name_of) is str else None
        shape = info.get("shape")
        offsets = info.get("data_offsets")
        if (
            dt is not None
            and type(shape) is list
            and type(offsets) is list
            and len(offsets) == 2
            and all(type(d) is int and 0 <= d <= _U64_MAX for d in shape)
            and type(offsets[0]) is int
            and type(offsets[1]) is int
        ):
            numel = math.prod(shape)
            start, end = offsets
            if (
                numel  # a zero dimension can hide an overflowing partial product: slow path
                and numel * dt.bytes_per_block <= _U64_MAX
                and 0 <= start <= end <= _U64_MAX
                and (numel * dt.bytes_per_block) % dt.block_size == 0
                and end - start == numel * dt.bytes_per_block // dt.block_size
            ):
                return TensorInfo(name, dt.name, tuple(shape), start, end, path)
    return _diagnose_tensor(name, info, path)


def _diagnose_tensor(name: str, info: object, path: str) -> TensorInfo:
    """The slow path: say exactly what is wrong with an entry (or accept an unusual valid one)."""
    if not isinstance(info, dict):
        raise InvalidHeaderDeserialization(path, "entry is not an object", name)
    for key in ("dtype", "shape", "data_offsets"):
        if key not in info:
            raise InvalidHeaderDeserialization(path, f"missing field {key!r}", name)
    dtype_name = info["dtype"]
    dt = _SAFETENSORS.get(dtype_name) if isinstance(dtype_name, str) else None
    if dt is None:
        raise InvalidHeaderDeserialization(path, f"unknown dtype {dtype_name!r}", name)
    shape = info["shape"]
    if not isinstance(shape, list) or not all(_is_u64(d) for d in shape):
        raise InvalidHeaderDeserialization(
            path, "shape must be a list of non-negative integers", name
        )
    offsets = info["data_offsets"]
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_u64(o) for o in offsets):
        raise InvalidHeaderDeserialization(
            path, "data_offsets must be two non-negative integers", name
        )
    numel = 1
    for d in shape:
        numel *= d
        if numel > _U64_MAX:
            raise ValidationOverflow(path, f"shape {shape} overflows 64 bits", name)
    if numel * dt.bytes_per_block > _U64_MAX:
        raise ValidationOverflow(path, f"byte size of shape {shape} overflows 64 bits", name)
    start, end = offsets
    expected = dt.exact_nbytes(numel)
    if expected is None:
        raise TensorInvalidInfo(
            path, f"{numel} {dtype_name} elements do not end on a byte boundary", name
        )
    if end >= start and end - start != expected:
        raise TensorInvalidInfo(
            path,
            f"data_offsets span {end - start:,} bytes but {dtype_name} {shape} needs {expected:,}",
            name,
        )
    return TensorInfo(name, dtype_name, tuple(shape), start, end, path)


def read_local_header(path: str | os.PathLike[str], display: str | None = None) -> FileHeader:
    """Read and validate the header of a local safetensors file; no tensor data is read.

    Only a regular file is opened (:func:`paramtool.files.open_binary`), and at most
    ``8 + MAX_HEADER_SIZE`` bytes of it are read.
    """
    shown = display if display is not None else os.fspath(path)
    with open_binary(path, shown) as f:
        return read_open_header(f, shown)


def read_local_header_if(
    path: str | os.PathLike[str], shown: str, want: int, accept: Callable[[bytes], bool]
) -> FileHeader | None:
    """:func:`read_local_header` with one open, when the caller must first see the file's
    first ``want`` bytes: None when the file does not open (the caller's own way then says
    why) or when ``accept`` refuses those bytes (another format's)."""
    try:
        fd, st = open_fd_stat(path, shown)
    except ParamtoolError:
        return None
    # The descriptor read as it is (no buffered file object: that costs an fstat, an ioctl
    # and a buffer a file, 191 of each for a 405B checkpoint's shards).
    try:
        with reading(shown):
            first = read_fd(fd, want)
            if not accept(first):
                return None
            return _read_header(lambda n: read_fd(fd, n), st.st_size, shown, first)
    finally:
        os.close(fd)


def read_open_header(f: BinaryIO, shown: str, first: bytes = b"") -> FileHeader:
    """:func:`read_local_header` on a file opened by :func:`paramtool.files.open_binary`, of
    which ``first`` (the file's first bytes, as many as the caller sniffed) is already read."""
    return _read_header(f.read, os.fstat(f.fileno()).st_size, shown, first)


def _read_header(read: Callable[[int], bytes], size: int, shown: str, first: bytes) -> FileHeader:
    """The header of a file of ``size`` bytes whose ``first`` bytes are read; ``read(n)``:
    up to ``n`` more, fewer only at the end."""
    if len(first) < 8:
        first += read(8 - len(first))
    n = header_length(first[:8], shown, size)
    raw = first[8 : 8 + n]
    if len(raw) < n:
        raw += read(n - len(raw))
    if len(raw) != n:
        raise InvalidHeaderLength(shown, "file shrank while its header was read")
    return parse_header(raw, shown, data_size=size - 8 - n)
