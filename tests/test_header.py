"""The strict safetensors header parser: golden bytes, a malformed corpus judged
against the safetensors library itself, and hypothesis over hostile input."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import safetensors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save, save_file

from helpers import cli, error_line
from paramtool import errors
from paramtool.formats.safetensors import parse_header, read_local_header


def pack(header: object, data: bytes = b"", raw: bytes | None = None) -> bytes:
    body = raw if raw is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(body)) + body + data


def parse_bytes(blob: bytes, tmp_path: Path, name: str = "x.safetensors"):
    p = tmp_path / name
    p.write_bytes(blob)
    return read_local_header(p)


def test_golden_bytes_match_the_reference_serialisation():
    # The reference library's own test vector: one F32 tensor "attn.0" of shape [1, 2, 3].
    data = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    blob = save({"attn.0": data})
    assert blob[:8] == (64).to_bytes(8, "little")
    n = int.from_bytes(blob[:8], "little")
    h = parse_header(blob[8 : 8 + n], "golden", data_size=len(blob) - 8 - n)
    (t,) = h.tensors
    assert (t.name, t.dtype, t.shape, t.start, t.end) == ("attn.0", "F32", (1, 2, 3), 0, 24)
    assert h.header_size == 64 and h.data_size == 24 and h.file_size == len(blob)
    assert t.parameters == 6 and t.nbytes == 24


def test_library_written_file_with_metadata(tmp_path):
    import ml_dtypes

    tensors = {
        "a": np.zeros((3, 5), dtype=ml_dtypes.bfloat16),
        "b": np.zeros((7,), dtype=np.float32),
        "c": np.zeros((2, 2), dtype=ml_dtypes.float8_e4m3fn),
        "empty": np.zeros((0, 4), dtype=np.float16),
    }
    p = tmp_path / "m.safetensors"
    save_file(tensors, p, metadata={"format": "pt", "note": "hello"})
    h = read_local_header(p)
    got = {t.name: (t.dtype, t.shape) for t in h.tensors}
    assert got == {
        "a": ("BF16", (3, 5)),
        "b": ("F32", (7,)),
        "c": ("F8_E4M3", (2, 2)),
        "empty": ("F16", (0, 4)),
    }
    assert dict(h.metadata) == {"format": "pt", "note": "hello"}
    assert h.parameters == 15 + 7 + 4
    assert h.file_size == p.stat().st_size


def _t(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


_E = b'{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'  # one valid entry, as JSON text


# name -> (file bytes, the paramtool error kind expected)
MALFORMED: dict[str, tuple[bytes, type[errors.ParamtoolError]]] = {
    "empty file": (b"", errors.HeaderTooSmall),
    "short prefix": (b"\x01\x02\x03", errors.HeaderTooSmall),
    "huge length": (struct.pack("<Q", 2**63) + b"{}", errors.HeaderTooLarge),
    "just over 100MB": (struct.pack("<Q", 100_000_001) + b"{}", errors.HeaderTooLarge),
    "length past end": (struct.pack("<Q", 500) + b"{}", errors.InvalidHeaderLength),
    "not utf-8": (pack(None, raw=b'{"\xff": 1}'), errors.InvalidHeader),
    "not json": (pack(None, raw=b"{nope"), errors.InvalidHeader),
    "json list": (pack(None, raw=b"[1, 2]"), errors.InvalidHeader),
    "json string": (pack(None, raw=b'"x"'), errors.InvalidHeader),
    "deep nesting": (
        pack(None, raw=b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        errors.InvalidHeader,
    ),
    "garbage": (struct.pack("<Q", 16) + bytes(range(200, 216)), errors.InvalidHeader),
    "gguf": (b"GGUF\x03\x00\x00\x00" + b"\x00" * 32, errors.UnsupportedFormat),
    "zip": (b"PK\x03\x04" + b"\x00" * 40, errors.UnsupportedFormat),
    "pickle": (b"\x80\x02}q\x00." + b"\x00" * 20, errors.UnsupportedFormat),
    "unknown dtype": (pack({"t": _t(dtype="F33")}, b"\0" * 8), errors.InvalidHeaderDeserialization),
    "lowercase dtype": (
        pack({"t": _t(dtype="f32")}, b"\0" * 8),
        errors.InvalidHeaderDeserialization,
    ),
    "negative dim": (pack({"t": _t(shape=(-2,))}, b"\0" * 8), errors.InvalidHeaderDeserialization),
    "float dim": (pack({"t": _t(shape=(2.0,))}, b"\0" * 8), errors.InvalidHeaderDeserialization),
    "bool dim": (
        pack({"t": _t(shape=(True,), offsets=(0, 4))}, b"\0" * 4),
        errors.InvalidHeaderDeserialization,
    ),
    "shape not list": (
        pack({"t": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}}, b"\0" * 8),
        errors.InvalidHeaderDeserialization,
    ),
    "missing offsets": (
        pack({"t": {"dtype": "F32", "shape": [2]}}, b"\0" * 8),
        errors.InvalidHeaderDeserialization,
    ),
    "three offsets": (
        pack({"t": _t(offsets=(0, 8, 8))}, b"\0" * 8),
        errors.InvalidHeaderDeserialization,
    ),
    "entry not object": (pack({"t": [1, 2]}, b""), errors.InvalidHeaderDeserialization),
    "metadata not map": (pack({"__metadata__": ["x"]}), errors.InvalidHeaderDeserialization),
    "metadata int value": (pack({"__metadata__": {"a": 1}}), errors.InvalidHeaderDeserialization),
    "size mismatch": (pack({"t": _t(offsets=(0, 12))}, b"\0" * 12), errors.TensorInvalidInfo),
    "gap": (
        pack({"a": _t(offsets=(0, 8)), "b": _t(offsets=(12, 20))}, b"\0" * 20),
        errors.InvalidOffset,
    ),
    "overlap": (
        pack({"a": _t(offsets=(0, 8)), "b": _t(offsets=(4, 12))}, b"\0" * 12),
        errors.InvalidOffset,
    ),
    "not from zero": (pack({"a": _t(offsets=(4, 12))}, b"\0" * 12), errors.InvalidOffset),
    "backwards": (pack({"a": _t(shape=(0,), offsets=(8, 0))}, b"\0" * 8), errors.InvalidOffset),
    "short data": (pack({"a": _t()}, b"\0" * 4), errors.MetadataIncompleteBuffer),
    "trailing data": (pack({"a": _t()}, b"\0" * 12), errors.MetadataIncompleteBuffer),
    "overflow": (
        pack({"a": _t(shape=(2**40, 2**40), offsets=(0, 8))}, b"\0" * 8),
        errors.ValidationOverflow,
    ),
    "u64 dim": (
        pack({"a": _t(shape=(2**64,), offsets=(0, 8))}, b"\0" * 8),
        errors.InvalidHeaderDeserialization,
    ),
    "f4 misaligned": (
        pack({"a": _t(dtype="F4", shape=(3,), offsets=(0, 2))}, b"\0" * 2),
        errors.TensorInvalidInfo,
    ),
    "f6 misaligned": (
        pack({"a": _t(dtype="F6_E2M3", shape=(2,), offsets=(0, 2))}, b"\0" * 2),
        errors.TensorInvalidInfo,
    ),
    # JSON that Python's json reads and serde_json (the reference library's parser) refuses.
    "lone surrogate in a tensor name": (
        pack(None, raw=b'{"\\ud800":' + _E + b"}", data=b"\0" * 8),
        errors.InvalidHeader,
    ),
    "negative zero offset": (
        pack(None, raw=b'{"t":{"dtype":"F32","shape":[2],"data_offsets":[-0,8]}}', data=b"\0" * 8),
        errors.InvalidHeaderDeserialization,
    ),
    "negative zero dim": (
        pack(None, raw=b'{"t":{"dtype":"F32","shape":[-0],"data_offsets":[0,0]}}'),
        errors.InvalidHeaderDeserialization,
    ),
    "lone low surrogate in a tensor name": (
        pack(None, raw=b'{"a\\udc00b":' + _E + b"}", data=b"\0" * 8),
        errors.InvalidHeader,
    ),
    "surrogates swapped": (
        pack(None, raw=b'{"\\ude00\\ud83d":' + _E + b"}", data=b"\0" * 8),
        errors.InvalidHeader,
    ),
    "lone surrogate in a metadata key": (
        pack(None, raw=b'{"__metadata__":{"\\ud800":"x"},"t":' + _E + b"}", data=b"\0" * 8),
        errors.InvalidHeader,
    ),
    "lone surrogate in a metadata value": (
        pack(None, raw=b'{"__metadata__":{"k":"\\udbff"},"t":' + _E + b"}", data=b"\0" * 8),
        errors.InvalidHeader,
    ),
    "lone surrogate in an extra field": (
        pack(None, raw=b'{"t":' + _E[:-1] + b',"x":["\\ud800"]}}', data=b"\0" * 8),
        errors.InvalidHeader,
    ),
    "float out of range in an extra field": (
        pack(None, raw=b'{"t":' + _E[:-1] + b',"x":1e400}}', data=b"\0" * 8),
        errors.InvalidHeader,
    ),
    "integer out of f64 range in an extra field": (
        pack(None, raw=b'{"t":' + _E[:-1] + b',"x":-1' + b"0" * 309 + b"}}", data=b"\0" * 8),
        errors.InvalidHeader,
    ),
    "128 levels of nesting in an extra field": (
        pack(
            None,
            raw=b'{"t":' + _E[:-1] + b',"x":' + b"[" * 126 + b"]" * 126 + b"}}",
            data=b"\0" * 8,
        ),
        errors.InvalidHeader,
    ),
    "NaN in an extra field": (
        pack(None, raw=b'{"t":' + _E[:-1] + b',"x":NaN}}', data=b"\0" * 8),
        errors.InvalidHeader,
    ),
    "integer written 8.0": (
        pack(None, raw=b'{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8.0]}}', data=b"\0" * 8),
        errors.InvalidHeaderDeserialization,
    ),
    "integer written 8e0": (
        pack(None, raw=b'{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8e0]}}', data=b"\0" * 8),
        errors.InvalidHeaderDeserialization,
    ),
    "integer with a leading zero": (
        pack(None, raw=b'{"t":{"dtype":"F32","shape":[2],"data_offsets":[0,08]}}', data=b"\0" * 8),
        errors.InvalidHeader,
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_corpus_refused_like_the_reference(case, tmp_path):
    blob, kind = MALFORMED[case]
    lib_refuses = True
    try:
        safetensors.deserialize(blob)
        lib_refuses = False
    except Exception:
        pass
    assert lib_refuses, f"the safetensors library accepts {case!r}; the corpus is wrong"
    with pytest.raises(kind) as info:
        parse_bytes(blob, tmp_path)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) in message


def test_accepts_what_the_reference_accepts(tmp_path):
    # Unknown extra fields in a tensor entry, null metadata, trailing padding, an empty header.
    cases = [
        pack({"t": {**_t(), "extra": 1}}, b"\0" * 8),
        pack({"__metadata__": None, "t": _t()}, b"\0" * 8),
        pack(None, raw=b'{"t": {"dtype":"F32","shape":[2],"data_offsets":[0,8]}}     ') + b"\0" * 8,
        pack(None, raw=b"{}      "),
        pack({"a": _t(dtype="F4", shape=(4,), offsets=(0, 2))}, b"\0" * 2),
        pack({"a": _t(dtype="F6_E3M2", shape=(4,), offsets=(0, 3))}, b"\0" * 3),
        # serde_json takes these too: a surrogate pair, -0 and 1e308 where no integer is
        # wanted, 127 levels of nesting, escapes in a dtype.
        pack(None, raw=b'{"\\ud83d\\ude00":' + _E + b"}", data=b"\0" * 8),
        pack(None, raw=b'{"t":' + _E[:-1] + b',"x":[-0,-0.0,1e308,1e-400]}}', data=b"\0" * 8),
        pack(None, raw=b'{"t":' + _E[:-1] + b',"x":' + b"[" * 125 + b"]" * 125 + b"}}") + b"\0" * 8,
        pack(None, raw=b'{"t":{"dtype":"F\\u0033\\u0032","shape":[2],"data_offsets":[0,8]}}')
        + b"\0" * 8,
        pack(None, raw=b'{"__metadata__":{"k":"-0"},"t-0":' + _E + b"}", data=b"\0" * 8),
    ]
    for i, blob in enumerate(cases):
        safetensors.deserialize(blob)  # the reference accepts it
        parse_bytes(blob, tmp_path, f"{i}.safetensors")


def test_duplicate_tensor_names_are_refused(tmp_path):
    # JSON allows duplicate keys; which one wins is up to the reader. Refuse the ambiguity.
    entry = b'{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'
    raw = b'{"a":' + entry + b',"a":' + entry + b"}"
    with pytest.raises(errors.InvalidHeader, match="duplicate"):
        parse_bytes(pack(None, raw=raw) + b"\0" * 8, tmp_path)


def test_error_names_file_and_tensor(tmp_path):
    blob = pack({"layer.0.w": _t(offsets=(0, 12))}, b"\0" * 12)
    with pytest.raises(errors.TensorInvalidInfo) as info:
        parse_bytes(blob, tmp_path, "named.safetensors")
    assert "named.safetensors" in str(info.value) and "'layer.0.w'" in str(info.value)


def test_only_the_header_is_read(tmp_path):
    # A sparse 50 GB file: reading it must cost the header, not the data.
    p = tmp_path / "big.safetensors"
    header = json.dumps(
        {"w": _t(dtype="BF16", shape=(25_000, 1_000_000), offsets=(0, 50_000_000_000))}
    ).encode()
    with open(p, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
    import os

    os.truncate(p, 8 + len(header) + 50_000_000_000)
    h = read_local_header(p)
    assert h.parameters == 25_000_000_000


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300))
def test_random_bytes_never_escape(tmp_path, blob):
    try:
        parse_bytes(blob, tmp_path)
    except errors.ParamtoolError:
        pass


_dim = st.one_of(
    st.integers(0, 5),
    st.just(-1),
    st.just(2**64),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=2),
    st.none(),
)
_entry = st.fixed_dictionaries(
    {},
    optional={
        "dtype": st.sampled_from(
            ["F32", "BF16", "F16", "I8", "F4", "F6_E2M3", "U8", "BOOL", "F8_E4M3", "X", ""]
        ),
        "shape": st.one_of(st.lists(_dim, max_size=3), _dim),
        "data_offsets": st.one_of(st.lists(st.one_of(st.integers(-2, 64), _dim), max_size=3), _dim),
        "extra": st.integers(),
    },
)
_header = st.dictionaries(
    st.one_of(st.text(max_size=6), st.just("__metadata__")),
    st.one_of(
        _entry,
        st.dictionaries(st.text(max_size=3), st.one_of(st.text(max_size=3), st.integers())),
        st.integers(),
        st.none(),
    ),
    max_size=4,
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_header, st.integers(0, 80))
def test_near_valid_headers_agree_with_the_reference(tmp_path, header, data_len):
    blob = pack(header, b"\0" * data_len)
    try:
        safetensors.deserialize(blob)
        lib_ok = True
    except Exception:
        lib_ok = False
    try:
        parse_bytes(blob, tmp_path)
        ours_ok = True
    except errors.ParamtoolError:
        ours_ok = False
    # Never looser than the reference library.
    if not lib_ok:
        assert not ours_ok, f"paramtool accepted what safetensors refuses: {header!r}"


@pytest.mark.parametrize("length", [640, 896, 1152, 1408])
def test_header_lengths_that_look_like_pickle_magic_are_fine(tmp_path, length):
    # A header of 640 bytes starts the file with b"\x80\x02": a pickle's magic, but a valid length.
    name = "w" * (length - len('{"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'))
    raw = json.dumps({name: _t(shape=(1,), offsets=(0, 4))}, separators=(",", ":")).encode()
    assert len(raw) == length
    h = parse_bytes(pack(None, raw=raw) + b"\0" * 4, tmp_path)
    assert h.tensors[0].name == name


def test_lone_surrogate_name_is_one_error_line(tmp_path):
    # Python's json turns "\ud800" into a str that cannot be printed; the parser refuses it.
    p = tmp_path / "s.safetensors"
    p.write_bytes(pack(None, raw=b'{"\\ud800":' + _E + b"}", data=b"\0" * 8))
    for command in (("inspect",), ("inspect", "--json"), ("check", "--max-size", "1GB")):
        line = error_line(cli(*command, str(p)), "lone surrogate", "\\ud800")
        assert "\ud800" not in line


# JSON spellings: numbers and strings as serde_json and Python's json read them differently.
_numbers = st.sampled_from(
    ["0", "-0", "2", "8", "08", "8.0", "8e0", "-8", "1e400", "-1e400", "1" + "0" * 309,
     "1e308", "-0.0", "1e-400", "NaN", "Infinity", "18446744073709551616", "2.5"]
)  # fmt: skip
_strings = st.sampled_from(
    ['"t"', '"\\ud800"', '"x\\udc00"', '"\\ud83d\\ude00"', '"\\ude00\\ud83d"', '"a\\u0000"',
     '"\\u00e9"', '"F32"', '"F\\u00332"', '"\\\\ud800"', '"__metadata__"']
)  # fmt: skip


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


_values = st.recursive(
    st.one_of(_numbers, _strings, st.sampled_from(["null", "true", "{}"])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(_strings, inner), max_size=2).map(
            lambda kv: "{" + ",".join(f"{k}:{v}" for k, v in kv) + "}"
        ),
    ),
    max_leaves=6,
) | st.integers(124, 127).map(_nested)


_SLOTS = {  # slot: (its valid spelling, odd spellings)
    "name": ('"t"', _strings),
    "dtype": ('"F32"', _strings),
    "dim": ("2", _numbers),
    "start": ("0", _numbers),
    "end": ("8", _numbers),
    "extra": ("", st.tuples(_strings, _values).map(lambda kv: f",{kv[0]}:{kv[1]}")),
    "meta": (
        "",
        st.tuples(_strings, st.one_of(_strings, _numbers)).map(
            lambda kv: f'"__metadata__":{{{kv[0]}:{kv[1]}}},'
        ),
    ),
}


@st.composite
def _spelled_header(draw: st.DrawFn) -> bytes:
    """A valid one-tensor header with one or two of its slots spelled oddly."""
    odd = set(draw(st.lists(st.sampled_from(sorted(_SLOTS)), min_size=1, max_size=2)))
    v = {k: draw(bad) if k in odd else good for k, (good, bad) in _SLOTS.items()}
    entry = (
        f'{{"dtype":{v["dtype"]},"shape":[{v["dim"]}],'
        f'"data_offsets":[{v["start"]},{v["end"]}]{v["extra"]}}}'
    )
    return f"{{{v['meta']}{v['name']}:{entry}}}".encode()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_spelled_header(), st.sampled_from([8, 8, 0]))
def test_json_spellings_agree_with_the_reference(tmp_path, raw, data_len):
    blob = pack(None, raw=raw) + b"\0" * data_len
    try:
        safetensors.deserialize(blob)
        lib_ok = True
    except Exception:
        lib_ok = False
    try:
        parse_bytes(blob, tmp_path)
        ours_ok = True
    except errors.ParamtoolError:
        ours_ok = False
    if not lib_ok:  # never looser than the reference library
        assert not ours_ok, f"paramtool accepted what safetensors refuses: {raw!r}"
