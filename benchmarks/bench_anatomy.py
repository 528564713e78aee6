"""Anatomy over DeepSeek-V3's 92k tensor names: names alone against the two-pass classify_all.

    python benchmarks/bench_anatomy.py [--runs 5]

``classify`` reads each name alone; ``classify_all`` adds the structural pass (shapes
against the model's widths) that settles what names leave open. Where every name is
known, the second pass should cost little. Prints the best of ``--runs`` (caches cleared
before each run). Prints figures only.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from layouts import deepseek_v3
from paramtool.analysis import anatomy
from paramtool.analysis.anatomy import classify, classify_all
from paramtool.records import TensorInfo


def best(f: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        anatomy._resolve.cache_clear()
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    runs = ap.parse_args().runs
    layout = deepseek_v3()
    tensors = [TensorInfo(n, d, tuple(s), 0, 0) for n, d, s in layout.tensors]
    alone = best(lambda: [classify(t.name) for t in tensors], runs)
    whole = best(lambda: classify_all(tensors, num_hidden_layers=61), runs)
    print(f"{len(tensors):,} tensors (DeepSeek-V3 with its MTP layer)")
    print(f"classify, name by name  {alone * 1e3:8.1f} ms")
    print(f"classify_all, two pass  {whole * 1e3:8.1f} ms  ({whole / alone:.2f}x)")


if __name__ == "__main__":
    main()
