"""The bulk fast path of the safetensors header parser against the strict one.

``parse_header`` takes ``_parse_fast`` for a well-formed header and the strict diagnosing
parser for everything else. The strict parser is the oracle (tests/test_header.py checks
it against the safetensors library); here the fast path must, on valid and hostile
headers alike, either decline (None) or return exactly what the strict parser returns,
and ``parse_header`` must give the strict parser's records or its error message.
"""

from __future__ import annotations

import codecs
import copy
import dataclasses
import json
import os
import re
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from layouts import nbytes
from paramtool.errors import ParamtoolError, ShardIndexError
from paramtool.formats.index import parse_index
from paramtool.formats.safetensors import (
    _parse_fast,
    _parse_typed,
    parse_header,
    parse_header_strict,
    read_local_header,
    read_local_header_if,
)
from paramtool.formats.sniff import PREFIX
from paramtool.records import TensorInfo

U64 = 2**64 - 1
DTYPES = ["F64", "F32", "F16", "BF16", "F8_E4M3", "I64", "I8", "U8", "BOOL", "F4", "F6_E2M3"]


class Raw(str):
    """A JSON token written as is (NaN, -0, 1e400, an escaped string)."""


class Pairs(list[tuple[str, Any]]):
    """A JSON object as its pairs, in order, duplicates allowed."""


def emit(v: Any, sep: tuple[str, str], ascii_only: bool) -> str:
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, Pairs):
        items = (
            f"{k if isinstance(k, Raw) else json.dumps(k, ensure_ascii=ascii_only)}{sep[1]}"
            f"{emit(x, sep, ascii_only)}"
            for k, x in v
        )
        return "{" + sep[0].join(items) + "}"
    if isinstance(v, list):
        return "[" + sep[0].join(emit(x, sep, ascii_only) for x in v) + "]"
    return json.dumps(v, ensure_ascii=ascii_only)


def outcome(fn: Any, raw: bytes, data_size: int | None) -> tuple[Any, ...]:
    try:
        h = fn(raw, "m.safetensors", data_size)
    except ParamtoolError as e:
        return ("error", type(e).__name__, str(e))
    # repr tells 1 from True and 0 from -0.0, which == does not
    return ("ok", h, repr(h))


def assert_agree(raw: bytes, data_size: int | None) -> None:
    strict = outcome(parse_header_strict, raw, data_size)
    assert outcome(parse_header, raw, data_size) == strict
    for tier in (_parse_fast, _parse_typed):
        fast = tier(raw, "m.safetensors", data_size)
        if fast is not None:
            assert strict == ("ok", fast, repr(fast)), tier.__name__


HOSTILE: list[Any] = [
    1.5,
    1.0,
    True,
    False,
    None,
    -1,
    0,
    2**64,
    U64,
    2**70,
    "F32",
    "",
    [],
    [1],
    [1, 2, 3],
    [[1]],
    Pairs(),
    Pairs([("a", 1)]),
    Pairs([("0", 1), ("1", 2)]),
    Raw("-0"),
    Raw("NaN"),
    Raw("Infinity"),
    Raw("-Infinity"),
    Raw("1e400"),
    Raw("1E2"),
    Raw("4.0"),
    Raw('"\\u0046\\u0033\\u0032"'),
    Raw('"\\ud800"'),
]
NAMES = st.text(
    alphabet=st.sampled_from(list("abc.:0-_") + ["é", "日", '"', "\\", "\x00", "\U0001f600"]),
    min_size=0,
    max_size=6,
)
MUTATIONS = st.sampled_from(
    [
        "dup_top",
        "dup_top_same",
        "dup_field",
        "dup_meta",
        "extra_field",
        "drop_field",
        "set_field",
        "set_dim",
        "set_offset",
        "bump_offset",
        "escape_name",
        "rename_colon",
        "meta_value",
        "meta_whole",
        "entry_whole",
        "zero_size",
        "dup_via_escape",
        "trailing",
    ]
)


def _valid_entry(name: str, dtype: str, shape: list[int], start: int) -> tuple[Any, int]:
    size = nbytes(dtype, shape)
    fields = Pairs(
        [("dtype", dtype), ("shape", list(shape)), ("data_offsets", [start, start + size])]
    )
    return (name, fields), size


@st.composite
def headers(draw: st.DrawFn, mutate: bool = True) -> tuple[bytes, int | None]:
    names = draw(st.lists(NAMES, max_size=6, unique=True))
    entries: list[Any] = []
    end = 0
    for name in names:
        dtype = draw(st.sampled_from(DTYPES))
        shape = draw(st.lists(st.integers(1, 6), max_size=3))
        if dtype in ("F4", "F6_E2M3"):  # whole bytes: a count of 4 elements
            shape = [*shape, 4]
        entry, size = _valid_entry(name, dtype, shape, end)
        entries.append(entry)
        end += size
    order = draw(st.permutations(range(len(entries))))
    top: Pairs = Pairs(entries[i] for i in order)
    meta: Any = draw(
        st.none()
        | st.just("absent")
        | st.dictionaries(NAMES, NAMES, max_size=3).map(lambda d: Pairs(d.items()))
    )
    if meta != "absent":
        top.insert(draw(st.integers(0, len(top))), ("__metadata__", meta))
    trailing = ""
    for m in draw(st.lists(MUTATIONS, max_size=3)) if mutate else []:
        tensors = [
            i for i, (k, v) in enumerate(top) if k != "__metadata__" and isinstance(v, Pairs)
        ]
        pick = draw(st.sampled_from(tensors)) if tensors else None
        hostile = copy.deepcopy(draw(st.sampled_from(HOSTILE)))  # HOSTILE stays as is
        if m == "dup_top" and top:
            k, _ = top[draw(st.integers(0, len(top) - 1))]
            top.append((k, _valid_entry(k, "F32", [1], end)[0][1]))
        elif m == "dup_top_same" and top:
            top.append(top[draw(st.integers(0, len(top) - 1))])
        elif m == "trailing":
            trailing = draw(st.sampled_from([" x", "{}", ",", "  ", "\n"]))
        elif m in ("dup_meta", "meta_value", "meta_whole"):
            meta_at = [i for i, (k, _) in enumerate(top) if k == "__metadata__"]
            if not meta_at:
                continue
            i = meta_at[0]
            if m == "meta_whole":
                top[i] = ("__metadata__", hostile)
            elif isinstance(top[i][1], Pairs):
                pairs = top[i][1]
                if m == "dup_meta" and pairs:
                    pairs.append((pairs[0][0], draw(NAMES)))
                else:
                    pairs.append((draw(NAMES), hostile))
        elif pick is None:
            continue
        else:
            name, fields = top[pick]
            if m == "dup_field" and fields:
                k, v = fields[draw(st.integers(0, len(fields) - 1))]
                fields.insert(draw(st.integers(0, len(fields))), (k, v))
            elif m == "extra_field":
                fields.append((draw(st.sampled_from(["extra", "dtype_", "a:b"])), hostile))
            elif m == "drop_field" and fields:
                fields.pop(draw(st.integers(0, len(fields) - 1)))
            elif m == "set_field" and fields:
                i = draw(st.integers(0, len(fields) - 1))
                fields[i] = (fields[i][0], hostile)
            elif m in ("set_dim", "set_offset", "bump_offset"):
                key = "shape" if m == "set_dim" else "data_offsets"
                for i, (k, v) in enumerate(fields):
                    if k == key and isinstance(v, list) and v:
                        j = draw(st.integers(0, len(v) - 1))
                        new = list(v)
                        if m == "bump_offset" and isinstance(new[j], int):
                            new[j] += draw(st.sampled_from([-1, 1, 2**64]))
                        else:
                            new[j] = hostile
                        fields[i] = (k, new)
                        break
            elif m == "zero_size":
                start = end if draw(st.booleans()) else 0
                dims = draw(st.sampled_from([[0], [3, 0], [2**40, 2**40, 0], [0, 2**70]]))
                top[pick] = (
                    name,
                    Pairs([("dtype", "F32"), ("shape", dims), ("data_offsets", [start, start])]),
                )
            elif m == "escape_name":
                top[pick] = (
                    Raw(json.dumps(name, ensure_ascii=True).replace("a", "\\u0061")),
                    fields,
                )
            elif m == "dup_via_escape":
                spelled = Raw('"' + "".join(f"\\u{ord(c):04x}" for c in name) + '"')
                if all(ord(c) < 0x10000 for c in name):
                    top.append((spelled, fields))
            elif m == "rename_colon":
                top[pick] = (name + ":", fields)
            elif m == "entry_whole":
                top[pick] = (name, hostile)
    sep = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " :"), (",\n", ":\t")]))
    text = emit(top, sep, draw(st.booleans())) + trailing
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        raw += b" " * (-len(raw) % 8)
    data_size = draw(st.sampled_from([None, end, end + 1, max(end - 1, 0)]))
    return raw, data_size


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(headers())
def test_fast_path_agrees_with_the_strict_parser(case: tuple[bytes, int | None]) -> None:
    assert_agree(*case)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(headers(mutate=False))
def test_valid_headers_without_escapes_take_the_fast_path(case: tuple[bytes, int | None]) -> None:
    raw, _ = case
    strict = outcome(parse_header_strict, raw, None)
    assert_agree(raw, None)
    fast = _parse_fast(raw, "m.safetensors", None)
    plain = b"\\" not in raw and b"-0" not in raw
    if strict[0] == "ok" and plain and strict[1].tensors:
        assert fast is not None  # the fast path is the one taken, not only a decliner
        if raw.startswith(b'{"__metadata__":{') or b'"__metadata__"' not in raw:
            assert _parse_typed(raw, "m.safetensors", None) is not None


def _entry(dtype: str = "F32", shape: str = "[1]", offsets: str = "[0,4]", extra: str = "") -> str:
    return f'{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offsets}{extra}}}'


E = _entry()
LITERAL = [
    # duplicates, at each depth, and with colons that could balance a count of pairs
    (f'{{"a":{E},"a":{E}}}', 4),
    (f'{{"a":{E},"b":{E},"a":{_entry(offsets="[4,8]")}}}', 8),
    ('{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4),
    (
        '{"__metadata__":{"k":":"},"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
        4,
    ),
    ('{"__metadata__":{"k":"v","k":"w"},"a":' + E + "}", 4),
    ('{"__metadata__":{"k":"v"},"__metadata__":{"k":"v"},"a":' + E + "}", 4),
    (f'{{"x:":{E},"x:":{E}}}', 4),
    ('{"a":' + E + ',"\\u0061":' + E + "}", 4),
    ('{"a":' + _entry(extra=',"x":{"k":1,"k":2}') + "}", 4),
    ('{"a":' + _entry(extra=',"x":":"') + "}", 4),  # an extra field: the strict parser takes it
    ('{"a:b":' + E + ',"__metadata__":{"c:d":"e:f"}}', 4),
    # leaves that are not ints, and ints that are not u64
    ('{"a":' + _entry(shape="[true]") + "}", 4),
    ('{"a":' + _entry(shape="[1.0]") + "}", 4),
    ('{"a":' + _entry(shape="[-0]") + "}", 0),
    ('{"a":' + _entry(shape="[-0, 1]") + "}", 0),
    ('{"a":' + _entry(shape="[-1,-1]") + "}", 4),
    ('{"a":' + _entry(shape="{}") + "}", 4),
    ('{"a":' + _entry(shape='""') + "}", 4),
    ('{"a":' + _entry(shape="[[1]]") + "}", 4),
    ('{"a":' + _entry(offsets="[0,4.0]") + "}", 4),
    ('{"a":' + _entry(offsets="[false,4]") + "}", 4),
    ('{"a":' + _entry(offsets='{"0":0,"1":4}') + "}", 4),
    ('{"a":' + _entry(offsets='"04"') + "}", 4),
    ('{"a":' + _entry(offsets="[0,4,8]") + "}", 4),
    ('{"a":' + _entry(offsets="[-0,4]") + "}", 4),
    ('{"a":' + _entry(dtype="F33") + "}", 4),
    ('{"a":{"dtype":["F32"],"shape":[1],"data_offsets":[0,4]}}', 4),
    ('{"a":{"dtype":{"x":1},"shape":[1],"data_offsets":[0,4]}}', 4),
    ('{"a":{"dtype":null,"shape":[1],"data_offsets":[0,4]}}', 4),
    ('{"a":[1,2,3]}', 0),
    ('{"a":"abc"}', 0),
    ('{"a":NaN}', 0),
    ('{"__metadata__":{"k":NaN},"a":' + E + "}", 4),
    ('{"__metadata__":{"k":1},"a":' + E + "}", 4),
    ('{"__metadata__":null,"a":' + E + "}", 4),
    ('{"__metadata__":[],"a":' + E + "}", 4),
    ('{"__metadata__":{"k":"\\ud800"},"a":' + E + "}", 4),
    # sizes: zero-sized tensors, overflow, packed dtypes
    ('{"a":' + _entry(shape="[0]", offsets="[0,0]") + ',"b":' + _entry(offsets="[0,4]") + "}", 4),
    ('{"a":' + _entry(shape="[4294967296,4294967296,0]", offsets="[0,0]") + "}", 0),
    ('{"a":' + _entry(dtype="F4", shape="[3]", offsets="[0,1]") + "}", 1),
    ('{"a":' + _entry(dtype="F4", shape="[4]", offsets="[0,2]") + "}", 2),
    ('{"a":' + _entry(dtype="F6_E2M3", shape=f"[{2**63}]", offsets=f"[0,{3 * 2**61}]") + "}", None),
    ('{"a":' + _entry(dtype="F4", shape=f"[{2**64}]", offsets=f"[0,{2**63}]") + "}", None),
    ('{"a":' + _entry(shape=f"[{2**62}]", offsets=f"[0,{2**64}]") + "}", None),
    ('{"a":' + _entry(shape=f"[{2**62 - 1}]", offsets=f"[0,{2**64 - 4}]") + "}", None),
    ('{"a":' + _entry(shape="[1]", offsets=f"[{U64 - 3},{U64 + 1}]") + "}", None),
    # offsets: out of order (valid), gaps, overlaps, reversed
    ('{"b":' + _entry(offsets="[4,8]") + ',"a":' + E + "}", 8),
    ('{"b":' + _entry(offsets="[8,12]") + ',"a":' + E + "}", 12),
    ('{"b":' + _entry(offsets="[2,6]") + ',"a":' + E + "}", 6),
    ('{"a":' + _entry(offsets="[4,0]") + "}", 4),
    ('{"a":' + _entry(offsets="[4,8]") + "}", 8),
    ('{"a":' + E + ',"b":' + _entry(offsets="[0,4]") + "}", 4),
    ('{"a":' + E + "}", 5),
    ('{"a":' + E + "}", None),
    # no tensors, odd spellings
    ("{}", 0),
    ('{"__metadata__":{}}', 0),
    ("{ }", 1),
    ("[]", 0),
    ('{"a":' + E + "} x", 4),
    (' {"a":' + E + "}", 4),
    ('{"a":' + E + "}\x00", 4),
    ('{"a":' + _entry(shape="[1e0]") + "}", 4),
    # the typed tier's metadata cut: a '}' or ':' inside it, nesting, another place, twice
    ('{"__metadata__":{"k":"}"},"a":' + E + "}", 4),
    ('{"__metadata__":{"k}":"v","w":"x:"},"a":' + E + "}", 4),
    ('{"__metadata__":{"k":{"n":"v"}},"a":' + E + "}", 4),
    ('{"__metadata__":{"k":"v"},"a":' + E + ',"__metadata__":{"k":"w"}}', 4),
    ('{"__metadata__":{"k":"v"},"__metadata__":{"k":"w"},"a":' + E + "}", 4),
    ('{"a":' + E + ',"__metadata__":{"k":"v"}}', 4),
    ('{"__metadata__":{"k":"v","k":"v"},"a":' + E + "}", 4),
    ('{"__metadata__":{"k":"v"} ,"a":' + E + "}", 4),
    ('{"__metadata__":{"k":3},"a":' + E + "}", 4),
    ('{"__metadata__":{},"a":' + E + "}", 4),
    ('{"__metadata__":{"k":"v"}}', 0),
    ('{"__metadata__":{"k":"v"},"a":' + _entry(shape="[-0]") + "}", 4),
    ('{"a":' + _entry(shape=f"[{2**64}]", offsets=f"[0,{2**66}]") + "}", None),
    ('{"a":' + _entry(dtype="F4", shape=f"[{2**65}]", offsets=f"[0,{2**64}]") + "}", None),
    ('{"a:b}":' + E + ',"c":' + _entry(offsets="[4,8]") + "}", 8),
    ('{"a":' + _entry(extra=',"x":1') + "}", 4),
    ('{"a":' + _entry(offsets="[0,4,4]") + "}", 4),
    ('{"a":' + _entry(dtype="f32") + "}", 4),
]


@pytest.mark.parametrize(("text", "data_size"), LITERAL)
def test_literal_cases_agree(text: str, data_size: int | None) -> None:
    assert_agree(text.encode("utf-8", "surrogatepass"), data_size)


def test_crafted_cases_are_refused_by_both() -> None:
    for text, size in LITERAL[:9]:
        raw = text.encode()
        assert _parse_fast(raw, "m.safetensors", size) is None
        with pytest.raises(ParamtoolError, match="duplicate key"):
            parse_header(raw, "m.safetensors", size)
    with pytest.raises(ParamtoolError, match="unknown dtype"):  # once a TypeError
        parse_header(LITERAL[26][0].encode(), "m.safetensors", 4)


def test_records_are_the_plain_dataclass() -> None:
    raw = (
        '{"__metadata__":{"format":"pt"},"w":' + _entry("BF16", "[2,3]", "[0,12]") + "}"
    ).encode()
    h = parse_header(raw, "m.safetensors", 12)
    assert _parse_fast(raw, "m.safetensors", 12) == h
    (t,) = h.tensors
    assert t == TensorInfo("w", "BF16", (2, 3), 0, 12, "m.safetensors")
    assert hash(t) == hash(TensorInfo("w", "BF16", (2, 3), 0, 12, "m.safetensors"))
    assert (t.stored, t.strides, t.parameters, t.nbytes, t.stored_bytes) == (None, None, 6, 12, 12)
    assert dataclasses.asdict(t)["shape"] == (2, 3)
    assert dataclasses.replace(t, start=1).start == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.name = "x"  # type: ignore[misc]
    assert dict(h.metadata) == {"format": "pt"}


def test_from_columns_equals_the_constructor() -> None:
    got = TensorInfo.from_columns(["a", "b"], ["F32", "I8"], [(1,), ()], [0, 4], [4, 5], "f")
    assert got == [TensorInfo("a", "F32", (1,), 0, 4, "f"), TensorInfo("b", "I8", (), 4, 5, "f")]
    with pytest.raises(ValueError, match="lengths"):
        TensorInfo.from_columns(["a"], [], [], [], [], "f")


# One open a shard: the local reader that sniffs the first bytes, then reads the header
# from the same open file, must give what the two-open way gives, errors included.


def _file(tmp_path: Any, name: str, data: bytes) -> Any:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _header_bytes(tensors: dict[str, Any], pad: int = 0) -> bytes:
    head = json.dumps(tensors, separators=(",", ":")).encode() + b" " * pad
    return struct.pack("<Q", len(head)) + head


@pytest.mark.parametrize(
    "data",
    [
        _header_bytes({}),  # a 2-byte header: the whole file is shorter than the sniffed bytes
        _header_bytes({"a": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}) + b"\0" * 4,
        _header_bytes({"a": {"dtype": "U8", "shape": [3], "data_offsets": [0, 3]}}, 5) + b"abc",
        b"\x05\0\0",  # shorter than the length prefix
        struct.pack("<Q", 7) + b"{}",  # the length runs past the end
        struct.pack("<Q", 2) + b"[]",  # not an object
        b"GGUF\x03\0\0\0" + b"\0" * 40,  # another format's magic
    ],
)
def test_one_open_reader_equals_the_two_open_one(tmp_path: Any, data: bytes) -> None:
    p = _file(tmp_path, "m.safetensors", data)

    def run(fn: Any) -> tuple[Any, ...]:
        try:
            return ("ok", fn())
        except ParamtoolError as e:
            return ("error", type(e).__name__, str(e))

    two = run(lambda: read_local_header(p, "shown"))
    one = run(lambda: read_local_header_if(p, "shown", PREFIX, lambda first: True))
    assert one == two


def test_one_open_reader_declines_without_reading_the_header(tmp_path: Any) -> None:
    p = _file(tmp_path, "m.safetensors", b"PK\x03\x04" + b"\0" * 60)
    seen: list[bytes] = []

    def accept(first: bytes) -> bool:
        seen.append(first)
        return False

    assert read_local_header_if(p, "shown", PREFIX, accept) is None
    assert seen == [(b"PK\x03\x04" + b"\0" * 60)[:PREFIX]]
    assert read_local_header_if(tmp_path / "missing.safetensors", "x", PREFIX, accept) is None
    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    assert read_local_header_if(fifo, "x", PREFIX, accept) is None  # refused, never opened
    assert len(seen) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b'{"weight_map": {"a": "x.safetensors"}}',
        codecs.BOM_UTF8 + b'{"weight_map": {"a": "x.safetensors"}}',
        '{"weight_map": {"\u00e9": "x.safetensors"}}'.encode("utf-16-le"),
        '{"weight_map": {"a": "x.safetensors"}}'.encode("utf-32"),
        b'{"weight_map": {"\xed\xa0\x80": "x.safetensors"}}',  # an encoded surrogate
        b'{"weight_map": {"a": "x.safetensors", "a": "y.safetensors"}}',
    ],
)
def test_index_is_read_as_json_loads_reads_its_bytes(raw: bytes) -> None:
    weight_map, _ = parse_index(raw, "i.json")
    assert weight_map == json.loads(raw)["weight_map"]


INDEXES = [
    b'{"weight_map": {"a": "x.safetensors"}}',
    b'{"metadata": {"total_size": 4}, "weight_map": {"a": "x.safetensors"}}',
    b'{"metadata": {"total_size": 1e999, "n": NaN}, "weight_map": {"a": "x"}}',
    b'{"metadata": null, "weight_map": {"a": "x"}}',
    b'{"metadata": [1], "weight_map": {"a": "x"}}',
    b'{"weight_map": {"a": "x"}, "weight_map": {"b": "y"}}',
    b'{"weight_map": {"a": "x", "a": "y"}}',
    b'{"weight_map": {"a": "x"}, "other": 1}',
    b'{"weight_map": {"a": 3}}',
    b'{"weight_map": {"a": "x"}} x',
    b'  {"weight_map": {"a": "x"}}  ',
    rb'{"weight_map": {"a\u00e9": "x"}}',
    rb'{"weight_map": {"\ud800": "x"}}',
    b'{"weight_map": {"\xed\xa0\x80": "x"}}',
    b'{"weight_map": {"a\x01": "x"}}',
    b'{"metadata": ' + b"[" * 5000 + b"]" * 5000 + b', "weight_map": {}}',
    b"[]",
]


@pytest.mark.parametrize("raw", INDEXES)
def test_typed_index_reads_what_json_reads(raw: bytes, monkeypatch: Any) -> None:
    """msgspec's tier (indexes past 1 MiB) reads an index as json does, or declines."""
    from paramtool.formats import index

    typed = index._parse_typed(raw)
    if typed is not None:
        obj = json.loads(raw)
        assert typed == {"weight_map": obj["weight_map"], "metadata": obj.get("metadata")}

    def outcome(threshold: int) -> tuple[str, Any]:
        monkeypatch.setattr(index, "TYPED_FROM_BYTES", threshold)
        try:
            wm, meta = parse_index(raw, "i.json")
            return "ok", (wm, dict(meta))
        except ShardIndexError as e:
            return "error", str(e)

    assert outcome(0) == outcome(1 << 62)


def test_typed_index_takes_a_written_index() -> None:
    from paramtool.formats import index

    weight_map = {f"w{i}": "a.safetensors" for i in range(9)}
    written = {"metadata": {"total_size": 8}, "weight_map": weight_map}
    for indent in (None, 2):
        raw = json.dumps(written, indent=indent).encode()
        assert index._parse_typed(raw) == written


def test_index_refusals_are_unchanged() -> None:
    cases = {
        b'{"weight_map": {"a": ["x"]}}': "weight_map['a'] is not a file name",
        b'{"weight_map": {"a": "x.safetensors", "b": 3}}': "weight_map['b'] is not a file name",
        b'{"weight_map": {"a": "../x.safetensors"}}': "points outside the checkpoint folder",
        b'{"weight_map": {"a": "x.safetensors"}': "not valid JSON",
        b'\xff{"weight_map": {}}': "not valid JSON",
    }
    for raw, why in cases.items():
        with pytest.raises(ShardIndexError, match=re.escape(why)):
            parse_index(raw, "i.json")


def _sharded(tmp_path: Any, shards: dict[str, list[str]], weight_map: dict[str, str]) -> str:
    for shard, names in shards.items():
        entry = {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}
        tensors = {n: {**entry, "data_offsets": [i, i + 1]} for i, n in enumerate(names)}
        _file(tmp_path, shard, _header_bytes(tensors) + b"\0" * len(names))
    index = {"metadata": {}, "weight_map": weight_map}
    _file(tmp_path, "model.safetensors.index.json", json.dumps(index).encode())
    return str(tmp_path)


@pytest.mark.parametrize(
    ("shards", "weight_map", "why"),
    [
        (  # one name in two shards, indexed in one of them
            {"s1.safetensors": ["a", "b"], "s2.safetensors": ["b", "c"]},
            {"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"},
            "tensor 'b' is indexed in 's1.safetensors' but found in 's2.safetensors'",
        ),
        (
            {"s1.safetensors": ["a"], "s2.safetensors": ["c"]},
            {
                "a": "s1.safetensors",
                "b": "s2.safetensors",
                "c": "s2.safetensors",
                "d": "s1.safetensors",
            },
            "indexed tensor 'b' is not in its shard 's2.safetensors' (and 1 more)",
        ),
        (
            {"s1.safetensors": ["a", "x"]},
            {"a": "s1.safetensors"},
            "shard 's1.safetensors' holds tensor 'x', which the index does not name",
        ),
    ],
)
def test_index_against_the_shards(
    tmp_path: Any, shards: dict[str, list[str]], weight_map: dict[str, str], why: str
) -> None:
    from paramtool.sources.local import open_local

    folder = _sharded(tmp_path, shards, weight_map)
    with pytest.raises(ShardIndexError, match=re.escape(why)):
        open_local([folder])
