"""Time `paramtool stats` and `paramtool hash` on a ~2 GB bf16 checkpoint in the page cache.

    python benchmarks/bench_values.py [--runs 3] [--shards 1] [--layers 4] [--dir DIR]

Writes a Llama-2-7B-shaped checkpoint with ``--layers`` blocks (4: 1.07G bf16
weights, 2.14 GB) into a temporary folder, reads it once so that it sits in the
page cache, then times, as separate processes (interpreter start-up included on
both sides):

- ``paramtool stats DIR --json`` against a bare numpy pass over the same bytes:
  for each tensor, ``np.memmap`` -> ``astype(float32)`` -> ``sum()``;
- ``paramtool hash DIR --json`` (file SHA-256 *and* every tensor digest) against
  ``sha256sum`` of the same files (and, for information, ``openssl dgst -sha256``: one
  thread of OpenSSL's SHA-256, the implementation hashlib uses);
- ``paramtool diff DIR DIR --json`` (identical: a byte compare per span), for information.

Peak resident memory is ``ru_maxrss`` of ``getrusage(RUSAGE_CHILDREN)`` taken in a
small wrapper process around each run, so that each figure is that run's own.
Targets from issue 6: stats >= 0.5x the bare pass, hash >= 0.9x sha256sum, stats
peak RSS < 512 MB. The folder is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

BARE = """
import json, struct, sys, pathlib
import numpy as np, ml_dtypes
total = 0.0
for p in sorted(pathlib.Path(sys.argv[1]).glob('*.safetensors')):
    with open(p, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
    header.pop('__metadata__', None)
    mm = np.memmap(p, dtype=np.uint8, mode='r', offset=8 + n)
    for t in header.values():
        a, b = t['data_offsets']
        total += float(mm[a:b].view(ml_dtypes.bfloat16).astype(np.float32).sum())
    del mm
print(total)
"""

# Runs a command and prints its wall time and peak RSS (KiB on Linux) as JSON.
WRAPPER = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"wall": wall, "maxrss_kib": peak, "rc": p.returncode}))
"""


def shapes(layers: int) -> list[tuple[str, tuple[int, ...]]]:
    hidden, inter, vocab = 4096, 11008, 32000
    out = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}"
        for k in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out.append((f"{p}.self_attn.{k}.weight", (hidden, hidden)))
        out.append((f"{p}.mlp.gate_proj.weight", (inter, hidden)))
        out.append((f"{p}.mlp.up_proj.weight", (inter, hidden)))
        out.append((f"{p}.mlp.down_proj.weight", (hidden, inter)))
        out.append((f"{p}.input_layernorm.weight", (hidden,)))
        out.append((f"{p}.post_attention_layernorm.weight", (hidden,)))
    out += [("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]
    return out


def write_checkpoint(folder: Path, layers: int, shards: int) -> list[Path]:
    """Random bf16 weights (normal, std 0.02), streamed to disk tensor by tensor."""
    import ml_dtypes
    import numpy as np

    rng = np.random.default_rng(0)
    block = (rng.standard_normal(1 << 24, dtype=np.float32) * 0.02).astype(ml_dtypes.bfloat16)
    tensors = shapes(layers)
    per = -(-len(tensors) // shards)
    groups = [tensors[k : k + per] for k in range(0, len(tensors), per)]
    paths = []
    weight_map = {}
    for k, group in enumerate(groups):
        name = (
            "model.safetensors"
            if len(groups) == 1
            else f"model-{k + 1:05d}-of-{len(groups):05d}.safetensors"
        )
        header: dict[str, object] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for t, shape in group:
            n = 1
            for d in shape:
                n *= d
            header[t] = {
                "dtype": "BF16",
                "shape": list(shape),
                "data_offsets": [offset, offset + 2 * n],
            }
            offset += 2 * n
            weight_map[t] = name
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        with open(folder / name, "wb") as f:
            f.write(struct.pack("<Q", len(raw)) + raw)
            for i, (_, shape) in enumerate(group):
                n = 1
                for d in shape:
                    n *= d
                start = (i * 7919) % block.size  # vary the data from tensor to tensor
                done = 0
                while done < n:
                    take = min(n - done, block.size - start)
                    f.write(block[start : start + take].tobytes())
                    done += take
                    start = 0
        paths.append(folder / name)
    if len(groups) > 1:
        index = {
            "metadata": {"total_size": sum(p.stat().st_size for p in paths)},
            "weight_map": weight_map,
        }
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return paths


def warm(paths: list[Path]) -> None:
    buf = bytearray(16 << 20)
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def measure(cmd: list[str], runs: int) -> dict[str, float]:
    walls, rss = [], []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", WRAPPER, *cmd],
            capture_output=True,
            text=True,
            env=ENV,
            check=True,
        )
        r = json.loads(out.stdout)
        if r["rc"] not in (0, 1):
            raise SystemExit(f"{' '.join(cmd[:5])} failed with exit code {r['rc']}: {out.stderr}")
        walls.append(r["wall"])
        rss.append(r["maxrss_kib"] * 1024)
    return {"best": min(walls), "median": statistics.median(walls), "rss": max(rss)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--dir", help="where to write the checkpoint (default: a temporary folder)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="paramtool-bench-", dir=args.dir))
    try:
        t = time.perf_counter()
        paths = write_checkpoint(tmp, args.layers, args.shards)
        size = sum(p.stat().st_size for p in paths)
        took = time.perf_counter() - t
        print(
            f"wrote {size / 1e9:.2f} GB in {len(paths)} file(s) in {took:.1f} s; "
            f"{os.cpu_count()} CPUs"
        )
        warm(paths)
        pt = [sys.executable, "-m", "paramtool"]
        rows = {
            "bare numpy pass": measure([sys.executable, "-c", BARE, str(tmp)], args.runs),
            "paramtool stats": measure([*pt, "stats", str(tmp), "--json"], args.runs),
            "sha256sum": measure(["sha256sum", *map(str, paths)], args.runs),
            "paramtool hash": measure([*pt, "hash", str(tmp), "--json"], args.runs),
            **(
                {
                    "openssl dgst -sha256": measure(
                        ["openssl", "dgst", "-sha256", *map(str, paths)], args.runs
                    )
                }
                if shutil.which("openssl")
                else {}
            ),
            "paramtool diff (same)": measure(
                [*pt, "diff", str(tmp), str(tmp), "--json"], args.runs
            ),
        }
        print(f"\n{'command':24} {'best s':>8} {'median s':>9} {'GB/s':>7} {'peak RSS':>10}")
        for name, r in rows.items():
            gbs = size / r["best"] / 1e9 * (2 if "diff" in name else 1)
            print(
                f"{name:24} {r['best']:8.2f} {r['median']:9.2f} {gbs:7.2f} "
                f"{r['rss'] / 2**20:8.0f} MiB"
            )
        stats_ratio = rows["bare numpy pass"]["best"] / rows["paramtool stats"]["best"]
        hash_ratio = rows["sha256sum"]["best"] / rows["paramtool hash"]["best"]
        rss = rows["paramtool stats"]["rss"]
        print()
        print(
            f"stats throughput vs bare numpy pass: {stats_ratio:.2f}x (target >= 0.5) "
            f"{'PASS' if stats_ratio >= 0.5 else 'FAIL'}"
        )
        print(
            f"hash throughput vs sha256sum:        {hash_ratio:.2f}x (target >= 0.9) "
            f"{'PASS' if hash_ratio >= 0.9 else 'FAIL'}"
        )
        print(
            f"stats peak RSS: {rss / 2**20:.0f} MiB (target < 512 MB) "
            f"{'PASS' if rss < 512e6 else 'FAIL'}"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
