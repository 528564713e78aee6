"""Inspect sparse Llama 3.1 layouts on an emulated Hub: paramtool against huggingface_hub.

    python benchmarks/bench_hub.py [--runs 5] [--latency 0.05] [--only 405b]

Starts the test suite's Hub emulator (tests/hub_emulator.py) with ``--latency``
seconds added to every request, publishes the 8B (4 shards), 70B (30) and 405B
(191) layouts of tests/layouts.py as header-exact sparse repos, and runs, as
whole processes with ``HF_ENDPOINT`` pointing at the emulator and a fresh
``HF_HOME`` each time (a first inspection, nothing cached):

- ``paramtool inspect org/NAME --json``
- ``python -c "HfApi().get_safetensors_metadata('org/NAME')"``, huggingface_hub's
  own helper (a fixed 100 kB range per shard)

alternately, and prints the best wall time (median in brackets), the requests
the emulator answered and the body bytes it sent, against the bytes that must
be read: the shard headers (8-byte prefix included), the index and config.json.
``paramtool (cached)`` is a second run with the same HF_HOME (index and config
come from the cache). Prints figures only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from hub_emulator import HubEmulator  # noqa: E402
from layouts import llama31_8b, llama31_70b, llama31_405b, write_sparse_checkpoint  # noqa: E402

LAYOUTS = {
    "8b": ("Llama-3.1-8B", llama31_8b),
    "70b": ("Llama-3.1-70B", llama31_70b),
    "405b": ("Llama-3.1-405B", llama31_405b),
}
HF_HELPER = "from huggingface_hub import HfApi; HfApi().get_safetensors_metadata({repo!r})"
HF = "hf get_safetensors_metadata"


@dataclass
class Runs:
    times: list[float] = field(default_factory=list)
    requests: int = 0
    bytes: int = 0

    def row(self) -> str:
        return f"{min(self.times):.3f} s [{statistics.median(self.times):.3f}]"


def needed_bytes(folder: Path) -> tuple[int, int, int]:
    """(shard headers with their 8-byte prefix, index + config.json, shard count) of a layout."""
    headers = shards = 0
    for p in folder.glob("*.safetensors"):
        with open(p, "rb") as f:
            headers += 8 + struct.unpack("<Q", f.read(8))[0]
        shards += 1
    small = sum(p.stat().st_size for p in folder.glob("*.json"))
    return headers, small, shards


def run_once(hub: HubEmulator, cmd: list[str], env: dict[str, str], into: Runs) -> None:
    hub.reset_counters()
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    into.times.append(time.perf_counter() - t)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    into.requests, into.bytes = hub.request_count, hub.bytes_sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds added to every request")
    ap.add_argument("--only", choices=sorted(LAYOUTS), action="append", help="layouts to run")
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp, HubEmulator(Path(tmp) / "hub") as hub:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        base_env.update(
            HF_ENDPOINT=hub.url or "",
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            HF_HUB_DISABLE_UPDATE_CHECK="1",
        )
        print(
            f"Hub emulator at {hub.url}, {args.latency * 1000:.0f} ms per request, best of "
            f"{args.runs} (median in brackets), fresh HF_HOME per run\n"
        )
        head = (
            f"{'layout':<16}{'shards':>7}{'headers':>10}{'idx+cfg':>9}  {'tool':<28}"
            f"{'wall':>18}{'vs hf':>7}{'requests':>10}{'bytes':>12}{'/needed':>9}"
        )
        print(head)
        print("-" * len(head))
        for key in args.only or list(LAYOUTS):
            name, layout = LAYOUTS[key]
            folder = Path(tmp) / name
            write_sparse_checkpoint(folder, layout())
            repo = f"org/{name}"
            hub.add_repo(repo, folder, card_data={"license": "llama3.1"})
            headers, small, shards = needed_bytes(folder)
            ours = [py, "-m", "paramtool", "inspect", repo, "--json"]
            theirs = [py, "-c", HF_HELPER.format(repo=repo)]
            results = {"paramtool": Runs(), "paramtool (cached)": Runs(), HF: Runs()}
            hub.latency = 0.0
            for cmd in (ours, theirs):  # warm the emulator's own caches (hashes, headers)
                run_once(hub, cmd, {**base_env, "HF_HOME": str(Path(tmp) / "warmup")}, Runs())
            hub.latency = args.latency
            for i in range(args.runs):
                home = Path(tmp) / f"home-{key}-{i}"
                env = {**base_env, "HF_HOME": str(home)}
                run_once(hub, ours, env, results["paramtool"])
                run_once(hub, ours, env, results["paramtool (cached)"])
                shutil.rmtree(home, ignore_errors=True)
                run_once(hub, theirs, {**base_env, "HF_HOME": f"{home}-hf"}, results[HF])
                shutil.rmtree(f"{home}-hf", ignore_errors=True)
            hf_best = min(results[HF].times)
            for j, (tool, r) in enumerate(results.items()):
                lead = f"{name:<16}{shards:>7}{headers:>10,}{small:>9,}" if j == 0 else " " * 42
                print(
                    f"{lead}  {tool:<28}{r.row():>18}{min(r.times) / hf_best:>6.2f}x"
                    f"{r.requests:>10,}{r.bytes:>12,}{r.bytes / (headers + small):>8.3f}x"
                )
        print(
            "\n/needed: bytes sent / (shard headers + index + config.json); the model-info "
            "answer and any over-read count against it."
        )


if __name__ == "__main__":
    main()
