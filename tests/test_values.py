"""Streaming value statistics: planted NaN/Inf/zeros, every dtype, chunk merging, roll-ups."""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from layouts import make_checkpoint
from paramtool import dtypes
from paramtool.errors import MetadataIncompleteBuffer
from paramtool.sources.local import open_local
from paramtool.values.nonfinite import scan_nonfinite
from paramtool.values.reader import CODECS, UNSUPPORTED, ordered_map, tensor_spans, unordered_map
from paramtool.values.stats import Summary, compute_stats


def raw_file(path: Path, tensors: dict[str, tuple[str, list[int], bytes]]) -> Path:
    """A safetensors file written by hand, for dtypes safetensors.numpy cannot write."""
    header: dict[str, object] = {}
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(
        struct.pack("<Q", len(raw)) + raw + b"".join(d for _, _, d in tensors.values())
    )
    return path


def stats_of(path: Path, **kw):
    r = compute_stats(open_local([str(path)]), **kw)
    return {t.tensor.name: t.summary for t in r.tensors}, r


def reference(values: np.ndarray) -> dict[str, float]:
    v = values.astype(np.float64)
    f = v[np.isfinite(v)]
    return {
        "min": f.min(),
        "max": f.max(),
        "mean": f.mean(),
        "std": f.std(),
        "mean_abs": np.abs(f).mean(),
    }


def close(s: Summary, values: np.ndarray, rel: float = 1e-6) -> None:
    ref = reference(values)
    assert s.min == ref["min"] and s.max == ref["max"]  # exact: every decoded value is exact
    assert s.mean == pytest.approx(ref["mean"], rel=rel, abs=1e-12)
    assert s.std == pytest.approx(ref["std"], rel=rel, abs=1e-12)
    assert s.mean_abs == pytest.approx(ref["mean_abs"], rel=rel)


def test_every_safetensors_dtype_is_decoded_or_named_unsupported():
    st = set(dtypes.SAFETENSORS)
    assert (set(CODECS) & st) | set(UNSUPPORTED) == st
    assert not set(CODECS) & set(UNSUPPORTED)
    assert set(CODECS) - st <= set(dtypes.GGUF)  # the rest: GGUF block types gguf decodes


def test_planted_nan_inf_and_zeros_are_counted_exactly(tmp_path):
    x = np.linspace(-3, 3, 1000, dtype=np.float32)
    x[[5, 17, 999]] = np.nan
    x[[100, 101]] = np.inf
    x[200] = -np.inf
    x[[300, 301, 302]] = 0.0
    x[303] = -0.0
    p = make_checkpoint(tmp_path, {"w": x})
    s = stats_of(p)[0]["w"]
    assert (s.count, s.nan, s.posinf, s.neginf, s.finite) == (1000, 3, 2, 1, 994)
    assert s.zeros == 4 + int(np.count_nonzero(np.linspace(-3, 3, 1000, dtype=np.float32) == 0))
    close(s, x)
    assert s.max_abs == 3.0 and s.nonfinite == 6


def test_bf16_values_are_exact(tmp_path):
    known = np.array([1.0, -2.0, 0.5, 0.0, 0.0078125, 65280.0, -1.5], dtype=np.float32)
    p = make_checkpoint(tmp_path, {"b": known.astype(ml_dtypes.bfloat16)})
    s = stats_of(p)[0]["b"]
    assert (s.min, s.max, s.zeros, s.count) == (-2.0, 65280.0, 1, 7)
    assert s.mean == pytest.approx(known.astype(np.float64).mean(), rel=1e-12)
    close(s, known)


@pytest.mark.parametrize(
    ("dtype", "values", "nan", "inf"),
    [
        (ml_dtypes.float8_e4m3fn, [448.0, -448.0, 0.5, 0.0, -0.015625, float("nan")], 1, 0),
        (ml_dtypes.float8_e5m2, [57344.0, -1.0, 0.0, float("inf"), float("-inf"), 2.0**-16], 0, 2),
        (ml_dtypes.float8_e4m3fnuz, [240.0, -0.5, 0.0], 0, 0),
        (ml_dtypes.float8_e5m2fnuz, [57344.0, 1.0, 0.0], 0, 0),
        (ml_dtypes.float8_e8m0fnu, [2.0**-127, 1.0, 2.0**127, float("nan")], 1, 0),
        (np.float16, [65504.0, -1.0, 0.0, float("nan"), float("inf")], 1, 1),
        (np.float64, [1e300, -1e-300, 0.0, 2.5], 0, 0),
    ],
)
def test_float_dtypes_decode_to_known_values(tmp_path, dtype, values, nan, inf):
    arr = np.array(values, dtype=np.float64).astype(dtype)
    assert arr.astype(np.float64).tolist()[:2] == values[:2]  # the values are representable
    p = make_checkpoint(tmp_path, {"t": arr})
    s = stats_of(p)[0]["t"]
    assert (s.count, s.nan, s.posinf + s.neginf) == (len(values), nan, inf)
    finite = np.array([v for v in values if math.isfinite(v)])
    assert s.min == finite.min() and s.max == finite.max()
    assert s.zeros == int(np.count_nonzero(finite == 0))


@pytest.mark.parametrize(
    "dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]
)
def test_integers_give_exact_integer_min_and_max(tmp_path, dtype):
    info = np.iinfo(dtype)
    values = np.array([info.min, info.max, 0, 1, 0], dtype=dtype)
    p = make_checkpoint(tmp_path, {"i": values})
    s = stats_of(p)[0]["i"]
    assert (s.min, s.max) == (int(info.min), int(info.max))
    assert type(s.min) is int and type(s.max) is int
    assert (s.zeros, s.nan, s.finite) == (2 + (info.min == 0), 0, 5)
    # float64 holds 53 bits: 64-bit extremes are off by one unit in the mean, not more
    assert s.mean == pytest.approx((int(info.min) + int(info.max) + 1) / 5, rel=1e-12, abs=1.0)


def test_bool(tmp_path):
    p = make_checkpoint(tmp_path, {"m": np.array([True, False, True, True])})
    s = stats_of(p)[0]["m"]
    assert (s.min, s.max, s.zeros, s.mean) == (0, 1, 1, 0.75)
    assert s.std == pytest.approx(math.sqrt(0.75 * 0.25), rel=1e-7)


def test_f4_unpacks_low_nibble_first(tmp_path):
    # codes: 0x2 = 1.0, 0xF = -6.0, 0x0 = 0, 0x7 = 6.0 -> bytes 0xF2, 0x70
    p = raw_file(tmp_path / "f4.safetensors", {"q": ("F4", [2, 2], bytes([0xF2, 0x70]))})
    s = stats_of(p)[0]["q"]
    assert (s.count, s.min, s.max, s.zeros, s.mean) == (4, -6.0, 6.0, 1, 0.25)


def test_unsupported_dtypes_are_skipped_with_a_reason(tmp_path):
    p = raw_file(
        tmp_path / "x.safetensors",
        {
            "six": ("F6_E2M3", [4], bytes(3)),
            "cplx": ("C64", [1], struct.pack("<ff", 1.0, 2.0)),
            "ok": ("F32", [1], struct.pack("<f", 1.5)),
        },
    )
    stats, report = stats_of(p)
    assert list(stats) == ["ok"]
    assert {(s.tensor.name, s.reason) for s in report.skipped} == {
        ("six", UNSUPPORTED["F6_E2M3"]),
        ("cplx", UNSUPPORTED["C64"]),
    }
    assert {s.tensor.name for s in scan_nonfinite(open_local([str(p)])).skipped} == {"six", "cplx"}


def test_chunks_merge_to_the_whole_and_threads_do_not_change_a_bit(tmp_path):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(10_007) * 0.02 + 1.0).astype(np.float32)  # a norm-like tensor
    x[[3, 4000, 9999]] = [np.nan, np.inf, -np.inf]
    y = rng.standard_normal((37, 101)).astype(ml_dtypes.bfloat16)
    p = make_checkpoint(tmp_path, {"model.norm.weight": x, "model.layers.0.mlp.up_proj.weight": y})
    one, _ = stats_of(p, chunk=1000, workers=1)
    many, _ = stats_of(p, chunk=1000, workers=3)
    whole, _ = stats_of(p, chunk=1 << 20, workers=1)
    assert one == many
    for name, values in (("model.norm.weight", x), ("model.layers.0.mlp.up_proj.weight", y)):
        close(one[name], values.reshape(-1), rel=1e-7)
        assert one[name].nan == whole[name].nan and one[name].zeros == whole[name].zeros
        assert one[name].std == pytest.approx(whole[name].std, rel=1e-7)


def test_rollups_per_category_layer_and_total(tmp_path):
    rng = np.random.default_rng(2)
    t = {
        "model.embed_tokens.weight": rng.standard_normal((16, 8)).astype(np.float32),
        "model.layers.0.self_attn.q_proj.weight": rng.standard_normal((8, 8)).astype(np.float32),
        "model.layers.1.self_attn.q_proj.weight": rng.standard_normal((8, 8)).astype(np.float32),
        "model.layers.1.mlp.up_proj.weight": rng.standard_normal((8, 8)).astype(np.float32),
        "model.layers.1.input_layernorm.weight": np.ones(8, np.float32),
    }
    _, r = stats_of(make_checkpoint(tmp_path, t))
    attn = np.concatenate([t[k].ravel() for k in t if "self_attn" in k])
    close(r.by_category["attention"], attn, rel=1e-6)
    assert r.by_category["attention"].tensors == 2 and r.by_category["adapter"].tensors == 0
    layer1 = np.concatenate([t[k].ravel() for k in t if ".1." in k])
    assert [i for i, _ in r.by_layer] == [0, 1]
    close(r.by_layer[1][1], layer1, rel=1e-6)
    close(r.total, np.concatenate([v.ravel() for v in t.values()]), rel=1e-6)
    assert r.total.tensors == 5
    assert r.top_abs(1)[0].summary.max_abs == max(float(np.abs(v).max()) for v in t.values())


def test_top_nonfinite_ranks_by_nan(tmp_path):
    a = np.zeros(10, np.float32)
    a[:3] = np.nan
    b = np.zeros(10, np.float32)
    b[0] = np.nan
    b[1] = np.inf
    c = np.ones(10, np.float32)
    _, r = stats_of(make_checkpoint(tmp_path, {"a": a, "b": b, "c": c}))
    assert [t.tensor.name for t in r.top_nonfinite(5)] == ["a", "b"]
    assert [t.tensor.name for t in r.top_nonfinite(1)] == ["a"]


def test_empty_scalar_and_all_nan_tensors(tmp_path):
    p = make_checkpoint(
        tmp_path,
        {
            "empty": np.zeros((0, 4), np.float32),
            "scalar": np.array(2.5, np.float32),
            "nans": np.full(3, np.nan, np.float32),
        },
    )
    s, _ = stats_of(p)
    assert s["empty"].count == 0 and s["empty"].mean is None and s["empty"].std is None
    assert (s["scalar"].count, s["scalar"].mean, s["scalar"].std) == (1, 2.5, 0.0)
    assert (s["nans"].nan, s["nans"].finite, s["nans"].min, s["nans"].mean_abs) == (
        3,
        0,
        None,
        None,
    )


def test_filter_selects_tensors(tmp_path):
    import re

    p = make_checkpoint(tmp_path, {"a.weight": ("F32", (4,)), "b.bias": ("F32", (4,))})
    s, r = stats_of(p, pattern=re.compile(r"weight$"))
    assert list(s) == ["a.weight"] and r.pattern == "weight$"


def test_large_f32_values_fall_back_to_float64(tmp_path):
    x = np.array([3e38, 3e38, -1e38, 1.0], np.float32)  # float32 sums overflow
    s = stats_of(make_checkpoint(tmp_path, {"x": x}))[0]["x"]
    assert s.nan == s.posinf == 0 and s.finite == 4
    close(s, x, rel=1e-12)


def test_scan_nonfinite_counts_and_skips_integers(tmp_path):
    x = np.arange(20, dtype=np.float32)
    x[[1, 2]] = np.nan
    x[3] = -np.inf
    p = make_checkpoint(
        tmp_path,
        {
            "x": x.astype(ml_dtypes.bfloat16),
            "ok": np.ones(5, np.float32),
            "ids": np.arange(4, dtype=np.int64),
        },
    )
    r = scan_nonfinite(open_local([str(p)]))
    assert [(t.name, t.nan, t.posinf, t.neginf) for t in r.tensors] == [("x", 2, 0, 1)]
    assert (r.nan, r.inf, r.scanned) == (2, 1, 2)


def test_spans_cover_a_tensor_exactly(tmp_path):
    p = make_checkpoint(tmp_path, {"w": ("BF16", (1000, 3))})
    ck = open_local([str(p)])
    (f,) = ck.files
    (t,) = f.tensors
    spans = list(tensor_spans(0, f, t, chunk=1024))
    assert [s.count for s in spans] == [1024, 1024, 952]
    assert sum(s.nbytes for s in spans) == t.nbytes and spans[-1].last and not spans[0].last
    assert spans[0].offset == 8 + f.header_size + t.start


def test_a_truncated_file_is_an_error_not_a_wrong_answer(tmp_path):
    p = make_checkpoint(tmp_path, {"w": ("F32", (1000,))})
    ck = open_local([str(p)])
    os.truncate(p, p.stat().st_size - 100)
    with pytest.raises(MetadataIncompleteBuffer, match="inside a tensor"):
        compute_stats(ck)


@pytest.mark.parametrize("mapper", [ordered_map, unordered_map])
def test_thread_maps_bound_the_work_in_flight_and_pass_errors_on(mapper):
    pulled = 0

    def source():
        nonlocal pulled
        for i in range(200):
            pulled += 1
            yield i

    yielded = 0
    results = {}
    for item, value in mapper(lambda i: i * i, source(), 3):
        yielded += 1
        assert pulled - yielded <= 2 * 3
        results[item] = value
    assert results == {i: i * i for i in range(200)}
    if mapper is ordered_map:
        assert list(results) == list(range(200))

    def boom(i: int) -> int:
        if i == 17:
            raise ValueError("boom")
        return i

    with pytest.raises(ValueError, match="boom"):
        list(mapper(boom, range(100), 2))


@pytest.mark.parametrize("nbytes", [0, 1, 4096, (1 << 20) + 3])
def test_read_buffers_start_on_a_page_boundary(nbytes: int) -> None:
    """Data is read into page-aligned buffers (a large bytearray starts 16 bytes past a
    page, where the kernel's copies run several times slower on some CPUs)."""
    import ctypes
    import mmap

    from paramtool.values.reader import Scratch, page_aligned

    for buf in (page_aligned(nbytes), Scratch().buffer("x", nbytes)):
        assert len(buf) == nbytes and not buf.readonly
        assert bytes(buf) == b"\0" * nbytes
        if nbytes:
            assert ctypes.addressof(ctypes.c_char.from_buffer(buf)) % mmap.PAGESIZE == 0
