"""Values of GGUF block types: ``check --no-nan/--no-inf`` scans them, ``stats`` summarises them.

Files come from ``gguf.GGUFWriter``; Q8_0 and Q4_0 blocks from ``gguf.quants.quantize``,
Q4_K blocks (which gguf cannot quantize) by hand with finite f16 scales. The reference
for the statistics is numpy over gguf's own ``dequantize`` of the bytes written, not
paramtool's reading of the file. A NaN or infinite f16 block scale (``d``) must be found.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf.quants import dequantize, quantize

from helpers import cli, cli_json, strict_json

Q = gguf.GGMLQuantizationType
ROWS, COLS = 8, 256  # ggml shape (256, 8): one Q4_K block per row, 8 Q8_0/Q4_0 blocks per row


def _f16(v: float) -> np.ndarray:
    return np.array([v], dtype=np.float16).view(np.uint8)


def _blocks(scale: dict[str, float] | None = None) -> dict[str, tuple[Q, np.ndarray]]:
    """The quantized tensors as the bytes written; ``scale`` sets the first block's d."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    k = rng.integers(0, 256, size=(ROWS, 144), dtype=np.uint8)
    k[:, 0:2] = _f16(0.01)  # d
    k[:, 2:4] = _f16(0.02)  # dmin
    out = {
        "q8": (Q.Q8_0, quantize(x, Q.Q8_0)),
        "q4": (Q.Q4_0, quantize(x, Q.Q4_0)),
        "q4k": (Q.Q4_K, k),
    }
    for name, value in (scale or {}).items():
        out[name][1][0, 0:2] = _f16(value)  # every block type here starts with its f16 d
    return out


def write_gguf(path: Path, tensors: dict[str, tuple[Q, np.ndarray]], plain: bool = True) -> Path:
    w = gguf.GGUFWriter(path, "llama")
    for name, (qtype, raw) in tensors.items():
        w.add_tensor(name, raw, raw_dtype=qtype)
    if plain:
        w.add_tensor("output_norm.weight", np.ones(COLS, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _rule(doc: dict, name: str) -> dict:
    return next(r for r in doc["rules"] if r["name"] == name)


def test_clean_quantized_gguf_passes_and_every_tensor_is_scanned(tmp_path):
    p = write_gguf(tmp_path / "m.gguf", _blocks())
    doc = cli_json("check", str(p), "--no-nan", "--no-inf")
    assert _rule(doc, "no_nan")["message"] == "0 NaN values in 4 floating-point tensors"
    assert _rule(doc, "no_inf")["message"] == "0 infinite values in 4 floating-point tensors"


@pytest.mark.parametrize("tensor", ["q8", "q4", "q4k"])
def test_nan_block_scale_fails_no_nan(tmp_path, tensor):
    p = write_gguf(tmp_path / "m.gguf", _blocks({tensor: math.nan}))
    r = cli("check", str(p), "--no-nan")
    assert r.exit_code == 1, (r.stdout, r.stderr)
    rule = _rule(strict_json(cli("check", str(p), "--no-nan", "--json").stdout), "no_nan")
    # Q8_0/Q4_0: one block of 32 values; Q4_K: d scales all 256 values of its block.
    count = 256 if tensor == "q4k" else 32
    assert (rule["status"], rule["measured"]) == ("fail", count)
    assert rule["message"] == f"{count} NaN values in 4 floating-point tensors ({tensor})"


def test_infinite_block_scale_fails_no_inf_not_no_nan(tmp_path):
    blocks = _blocks({"q8": math.inf})
    blocks["q8"][1][0, 2:34] = 1  # every quant of the block non-zero: +Inf, no Inf * 0 = NaN
    p = write_gguf(tmp_path / "m.gguf", blocks)
    doc = cli_json("check", str(p), "--no-nan", "--no-inf", code=1)
    assert _rule(doc, "no_nan")["status"] == "pass"
    assert (_rule(doc, "no_inf")["status"], _rule(doc, "no_inf")["measured"]) == ("fail", 32)


def test_a_type_gguf_cannot_decode_is_not_a_silent_pass(tmp_path):
    tensors = dict(_blocks())
    tensors["q8k"] = (Q.Q8_K, np.zeros((ROWS, 292), dtype=np.uint8))  # no dequantizer in gguf
    tensors["q8k.2"] = (Q.Q8_K, np.zeros((ROWS, 292), dtype=np.uint8))
    p = write_gguf(tmp_path / "m.gguf", tensors)
    r = cli("check", str(p), "--no-nan")
    assert r.exit_code == 1
    rule = _rule(strict_json(cli("check", str(p), "--no-nan", "--json").stdout), "no_nan")
    assert rule["status"] == "unavailable" and rule["passed"] is False
    assert rule["message"].startswith(
        "0 NaN values in 4 floating-point tensors; 2 tensors not scanned "
        "(q8k (Q8_K), q8k.2 (Q8_K): gguf "
    )
    assert "has no dequantizer for Q8_K" in rule["message"]
    assert rule["message"].endswith(", so the gate fails")
    stats = cli_json("stats", str(p))
    assert [(u["name"], u["dtype"]) for u in stats["unsupported"]] == [
        ("q8k", "Q8_K"),
        ("q8k.2", "Q8_K"),
    ]
    assert stats["tensor_count"] == 4
    warned = cli("stats", str(p)).stderr.splitlines()  # one line for the dtype, not per tensor
    assert len(warned) == 1, warned
    assert warned[0].startswith("paramtool: warning: 2 Q8_K tensors not read ('q8k', 'q8k.2'): ")


def test_stats_match_numpy_over_gguf_dequantize(tmp_path):
    blocks = _blocks()
    p = write_gguf(tmp_path / "m.gguf", blocks)
    r = cli("stats", str(p), "--json")
    assert r.exit_code == 0 and r.stderr == "", r.stderr  # no "not read" warning per tensor
    doc = strict_json(r.stdout)
    assert doc["unsupported"] == [] and doc["tensor_count"] == 4
    got = {t["name"]: t for t in doc["tensors"]}
    every = []
    for name, (qtype, raw) in blocks.items():
        ref = dequantize(raw, qtype).astype(np.float64).ravel()
        every.append(ref)
        t = got[name]
        assert (t["dtype"], t["count"], t["nan"]) == (qtype.name, ROWS * COLS, 0)
        assert (t["min"], t["max"]) == (ref.min(), ref.max())  # float32 values: exact
        assert t["mean"] == pytest.approx(ref.mean(), rel=1e-6, abs=1e-12)
        assert t["std"] == pytest.approx(ref.std(), rel=1e-6)  # float32 moments
        assert t["mean_abs"] == pytest.approx(np.abs(ref).mean(), rel=1e-6)
        assert t["zeros"] == int(np.count_nonzero(ref == 0))
    every.append(np.ones(COLS))
    total = np.concatenate(every)
    assert doc["total"]["count"] == 3 * ROWS * COLS + COLS
    assert doc["total"]["mean"] == pytest.approx(total.mean(), rel=1e-6)
    assert doc["total"]["std"] == pytest.approx(total.std(), rel=1e-6)


def test_stats_count_a_nan_scale(tmp_path):
    p = write_gguf(tmp_path / "m.gguf", _blocks({"q4": math.nan}))
    t = {t["name"]: t for t in cli_json("stats", str(p))["tensors"]}["q4"]
    assert (t["count"], t["finite"], t["nan"]) == (2048, 2016, 32)


def test_diff_of_quantized_tensors_compares_values(tmp_path):
    a = write_gguf(tmp_path / "a.gguf", _blocks())
    b_blocks = _blocks()
    b_blocks["q8"][1][0, 2] ^= 1  # one quant of one block: one value changes
    b = write_gguf(tmp_path / "b.gguf", b_blocks)
    doc = cli_json("diff", str(a), str(b), code=1)
    changed = {t["name"]: t for t in doc["tensors"] if not t["identical"]}
    assert list(changed) == ["q8"] and changed["q8"]["changed_elements"] == 1
    d = float(b_blocks["q8"][1][0, 0:2].view(np.float16)[0])  # that block's scale
    assert changed["q8"]["max_abs"] == d  # the quant moved by one step


def _sparse_q8_0(path: Path, nblocks: int) -> Path:
    """One Q8_0 tensor of ``nblocks`` zero blocks (a sparse file), the last with a NaN scale."""
    w = gguf.GGUFWriter(path, "llama")
    w.add_tensor_info("big", (nblocks // 128, 128 * 34), np.dtype(np.uint8), nblocks * 34, Q.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    start = -(-os.path.getsize(path) // 32) * 32
    with open(path, "r+b") as f:
        f.truncate(start + nblocks * 34)
        f.seek(start + (nblocks - 1) * 34)
        f.write(_f16(math.nan).tobytes())
    return path


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in kilobytes: Linux")
def test_memory_stays_bounded_on_a_large_quantized_tensor(tmp_path):
    # 2^21 blocks: 64 Mi values, 68 MiB of Q8_0; dequantized whole, 256 MiB of float32.
    p = _sparse_q8_0(tmp_path / "big.gguf", 1 << 21)
    code = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run([sys.executable, '-m', 'paramtool', 'check', sys.argv[1], "
        "'--no-nan', '--json'], capture_output=True, text=True)\n"
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "print(r.stdout)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(p)], capture_output=True, text=True, timeout=60
    ).stdout
    head, _, body = out.partition("\n")
    rc, peak_kb = (int(v) for v in head.split())
    assert rc == 1
    rule = _rule(strict_json(body), "no_nan")
    assert rule["measured"] == 32  # the very last block, found
    assert peak_kb < 160 * 1024, peak_kb
