"""Time `paramtool inspect DIR --json` on sparse 70B and 405B layouts against a floor.

    python benchmarks/bench_inspect.py [--runs 7]

The floor is a bare Python process that imports typer (which the CLI must load
anyway), opens each shard, reads its header and json.loads it. Also times
`paramtool --version` against `python -c "import typer"`. Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from layouts import llama31_8b, llama31_70b, llama31_405b, write_sparse_checkpoint

FLOOR = """
import sys, json, struct, pathlib, typer
for p in sorted(pathlib.Path(sys.argv[1]).glob('*.safetensors')):
    with open(p, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        json.loads(f.read(n))
"""


# Measure what users run: an installed package with its bytecode cached. (Some shells set
# PYTHONDONTWRITEBYTECODE, which makes every run recompile the sources of an editable install.)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def best_of(cmd: list[str], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=ENV)
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    py = sys.executable
    # What users type: the installed console script (python -m adds runpy's start-up).
    script = shutil.which("paramtool", path=os.path.dirname(py))
    cli = [script] if script else [py, "-m", "paramtool"]
    import paramtool

    subprocess.run(
        [py, "-m", "compileall", "-q", os.path.dirname(paramtool.__file__)],
        check=True,
        stdout=subprocess.DEVNULL,
        env=ENV,
    )
    with tempfile.TemporaryDirectory() as tmp:
        print(
            f"{'case':<34}{'paramtool':>12}{'floor':>10}{'ratio':>8}"
            f"   (best of {args.runs}, median in brackets)"
        )
        for label, layout, shards in (
            ("Llama-3.1-8B, 4 shards", llama31_8b(), 4),
            ("Llama-3.1-70B, 30 shards", llama31_70b(), 30),
            ("Llama-3.1-405B, 191 shards", llama31_405b(), 191),
        ):
            d = Path(tmp) / label.split(",")[0]
            write_sparse_checkpoint(d, layout, shards=shards)
            ours = best_of([*cli, "inspect", str(d), "--json"], args.runs)
            floor = best_of([py, "-c", FLOOR, str(d)], args.runs)
            print(
                f"{label:<34}{ours[0]:>9.3f} s{floor[0]:>8.3f} s{ours[0] / floor[0]:>7.2f}x"
                f"   [{ours[1]:.3f} / {floor[1]:.3f}]"
            )
        ver = best_of([*cli, "--version"], args.runs)
        typer_only = best_of([py, "-c", "import typer"], args.runs)
        print(
            f"{'paramtool --version':<34}{ver[0]:>9.3f} s{typer_only[0]:>8.3f} s"
            f"{ver[0] / typer_only[0]:>7.2f}x"
            f"   [{ver[1]:.3f} / {typer_only[1]:.3f}]"
        )


if __name__ == "__main__":
    main()
