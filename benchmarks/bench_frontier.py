"""The frontier-scale speed goals, one row each: paramtool against a baseline, as whole processes.

    python benchmarks/bench_frontier.py                      # every row at full scale
    python benchmarks/bench_frontier.py --only 2 --only 3    # rows by number ...
    python benchmarks/bench_frontier.py --only hub-8b        # ... or by key
    python benchmarks/bench_frontier.py --runs 11            # runs per contender (default 7)
    python benchmarks/bench_frontier.py --quick              # smoke test: small layouts, 3 runs
    python benchmarks/bench_frontier.py --list               # the rows and their goals

Rows (key: paramtool vs baseline, goal):

1. ``inspect-405b``: ``inspect --json``, Llama-3.1-405B (191 shards, 1,137 tensors) vs the
   floor, <= 1.2x
2. ``inspect-dsv3``: the same, DeepSeek-V3 (163 shards, 91,991 tensors), <= 1.5x
3. ``inspect-kimi``: the same, a Kimi-K2-like 1T layout (62 shards, 139,583 tensors), <= 1.5x
4. ``inspect-1m``: the same, one file of 1,000,000 tensors: time and peak RSS, <= 1.5x each
5. ``tensors-kimi``: ``inspect --tensors`` (the table) on the 139,583 tensors: <= 3 s
   (also shown against ``--json`` on the same folder)
6. ``hub-8b``: Hub ``inspect --json``, Llama-3.1-8B, 50 ms a request, vs a minimal client
   (the index, then every shard's header at once on threads), <= 1.5x
7. ``hub-405b``: the same at 405B vs huggingface_hub's ``HfApi().get_safetensors_metadata``,
   <= 0.35x
8. ``hash-1file``: ``hash`` of one 2 GiB safetensors file in the page cache vs
   ``openssl dgst -sha256``, <= 1.05x
9. ``hash-4shards``: ``hash`` of the same bytes in 4 shards vs ``openssl dgst -sha256`` over
   the shards in sequence, <= 0.75x

The floor (rows 1-4) is benchmarks/bench_inspect.py's: a Python process that imports typer
(which the CLI loads anyway), reads each shard's 8-byte length and header and json.loads it.
The Hub rows run tests/hub_emulator.py in this process with ``--latency`` seconds slept at the
start of every request (the LFS shards answer with a redirect to its CDN, as the Hub does),
``HF_ENDPOINT`` pointing at it and a fresh ``HF_HOME`` for every run (a first inspection).

Every run is a whole process: paramtool as users run it (the installed console script, its
bytecode compiled first), A and B interleaved (ABAB..., swapped every other round so drift
hits both), one untimed warm-up of each first. Time is wall clock around the process and
peak RSS its ``ru_maxrss``, both taken by a small launcher process that starts it (see
LAUNCHER). Each row prints the median (min-max) of each side and the median ratio against
its goal; a summary table closes the run.
Layouts are sparse safetensors from tests/layouts.py (headers byte-exact, data a hole), the
hash rows real random bytes; all under a temporary folder (``--tmp``) removed after each row.
Full scale needs about 2.5 GB of disk at a time (a hash row's files) and as much page cache.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from bench_inspect import ENV, FLOOR  # noqa: E402

from hub_emulator import HubEmulator  # noqa: E402
from layouts import (  # noqa: E402
    Layout,
    Tensor,
    deepseek_v3,
    kimi_k2_like,
    llama31_8b,
    llama31_70b,
    llama31_405b,
    million_tensors,
    write_sparse_checkpoint,
)

# The minimal Hub client: two sequential waves, the index and then every shard's header at
# once (one thread and connection per shard; an LFS shard's redirect to the CDN is followed
# inside its thread). Each header is read as the floor reads it: the 8-byte length, the JSON
# (a first 64 kB range holds both for the 8B layout; a longer header costs one more request).
MINIMAL_CLIENT = """
import http.client, json, struct, sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urljoin, urlsplit

endpoint, repo = sys.argv[1], sys.argv[2]
FIRST = 1 << 16  # the first range: the 8-byte length and, for most models, the whole header

def get(url, headers):
    while True:
        u = urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        conn.request("GET", u.path + ("?" + u.query if u.query else ""), headers=headers)
        r = conn.getresponse()
        if r.status in (301, 302, 303, 307, 308):
            url = urljoin(url, r.getheader("Location"))
            r.read()
            conn.close()
            continue
        if r.status not in (200, 206):
            raise SystemExit(f"{url}: HTTP {r.status}")
        return conn, r

def header(name):
    url = f"{endpoint}/{repo}/resolve/main/{name}"
    conn, r = get(url, {"Range": f"bytes=0-{FIRST - 1}"})
    head = r.read()
    conn.close()
    n = struct.unpack("<Q", head[:8])[0]
    if 8 + n > len(head):  # a header past the first range: one more request for the rest
        conn, r = get(url, {"Range": f"bytes={len(head)}-{8 + n - 1}"})
        head += r.read()
        conn.close()
    return json.loads(head[8 : 8 + n])

conn, r = get(f"{endpoint}/{repo}/resolve/main/model.safetensors.index.json", {})
shards = sorted(set(json.loads(r.read())["weight_map"].values()))
conn.close()
with ThreadPoolExecutor(len(shards)) as pool:
    headers = list(pool.map(header, shards))
"""
HF_HELPER = "from huggingface_hub import HfApi; HfApi().get_safetensors_metadata({repo!r})"


# ---- measuring ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    seconds: float
    rss: int  # peak resident set size of the process, bytes


@dataclass
class Contender:
    """One side of a comparison: a command, and what each run needs around it."""

    label: str
    cmd: list[str]
    env: Callable[[int], dict[str, str]] = lambda _run: ENV
    after: Callable[[int], None] = lambda _run: None  # after each run (remove a cache)
    samples: list[Sample] = field(default_factory=list)
    requests: int | None = None  # Hub rows: requests the emulator answered in the last run
    bytes_sent: int | None = None

    @property
    def seconds(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def rss(self) -> float:
        return statistics.median(s.rss for s in self.samples)


# Runs argv[2:] and writes "<seconds> <peak RSS in kB>" to argv[1]. A child's ru_maxrss
# includes the image it was forked from (Linux keeps the pre-exec high-water mark), so the
# command is started from this small process, never from the benchmark's own large one; its
# figure is then exact for any command above this launcher's ~10 MB.
LAUNCHER = """
import os, subprocess, sys, time
t = time.perf_counter()
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
seconds = time.perf_counter() - t
proc.returncode = code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as f:
    f.write(f"{seconds!r} {usage.ru_maxrss}")
sys.exit(code)
"""


def run_once(cmd: Sequence[str], env: dict[str, str]) -> Sample:
    """Run ``cmd`` to its end, output discarded: its wall time and peak RSS (by the launcher)."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryDirectory() as d:
        out = Path(d) / "figures"
        launch = [sys.executable, "-c", LAUNCHER, str(out), *cmd]
        proc = subprocess.run(launch, stdout=subprocess.DEVNULL, stderr=err, env=env)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read()[-4000:].decode(errors="replace")
            raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
        seconds, kb = out.read_text().split()
    return Sample(float(seconds), int(kb) * 1024)  # Linux reports kilobytes


def interleave(contenders: Sequence[Contender], runs: int, hub: HubEmulator | None = None) -> None:
    """One untimed warm-up each, then ``runs`` rounds, the order reversed every other round."""
    counter = itertools.count()
    for c in contenders:
        i = next(counter)
        run_once(c.cmd, c.env(i))
        c.after(i)
    for r in range(runs):
        for c in contenders if r % 2 == 0 else reversed(contenders):
            i = next(counter)
            if hub is not None:
                hub.reset_counters()
            c.samples.append(run_once(c.cmd, c.env(i)))
            if hub is not None:
                c.requests, c.bytes_sent = hub.request_count, hub.bytes_sent
            c.after(i)


# ---- reporting ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measure:
    """One figure a row is judged on: ``value`` against ``goal`` (at most), or shown only."""

    name: str
    value: float
    goal: float | None
    unit: str  # "x" (a ratio), "s" or "MB"

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.value <= self.goal

    def text(self, value: float) -> str:
        if self.unit == "x":
            return f"{value:.2f}x"
        return f"{value:.3f} s" if self.unit == "s" else f"{value:,.1f} MB"


@dataclass
class Outcome:
    row: Row
    contenders: list[Contender]
    measures: list[Measure]


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def report(o: Outcome) -> None:
    for c in o.contenders:
        times = [s.seconds for s in c.samples]
        line = (
            f"    {c.label:<38}{c.seconds:>8.3f} s  ({min(times):.3f}-{max(times):.3f})"
            f"   peak RSS {mb(c.rss):>10}"
        )
        if c.requests is not None:
            line += f"   {c.requests:,} requests, {c.bytes_sent or 0:,} bytes"
        print(line)
    for m in o.measures:
        verdict = "" if m.met is None else ("met" if m.met else "NOT MET")
        goal = "" if m.goal is None else f"goal <= {m.text(m.goal)}"
        print(f"    {m.name:<38}{m.text(m.value):>10}   {goal:<18}{verdict}")
    print(flush=True)


def summary(outcomes: Sequence[Outcome]) -> None:
    head = f"{'row':<4}{'key':<14}{'measure':<40}{'value':>10}{'goal':>10}  verdict"
    print(head)
    print("-" * len(head))
    for o in outcomes:
        for m in o.measures:
            if m.goal is None:
                continue
            verdict = "met" if m.met else "not met"
            print(
                f"{o.row.number:<4}{o.row.key:<14}{m.name:<40}{m.text(m.value):>10}"
                f"{m.text(m.goal):>10}  {verdict}"
            )


# ---- the rows ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    cli: list[str]  # how users run paramtool
    py: str
    tmp: Path
    runs: int
    quick: bool
    latency: float


@dataclass(frozen=True)
class Row:
    number: int
    key: str
    title: str
    goal: str
    run: Callable[[Context, Row], Outcome]


def shrunk(layout: Layout, quick: bool, tensors: int, shards: int) -> Layout:
    """The layout itself, or under ``--quick`` its first ``tensors`` in ``shards`` files."""
    if not quick:
        return layout
    rows = layout.tensors[:tensors]
    return dataclasses.replace(layout, tensors=rows, shards=min(shards, len(rows)))


def describe(layout: Layout) -> str:
    return f"{layout.name}: {layout.shards} shard(s), {len(layout):,} tensors"


@contextmanager
def folder(ctx: Context, name: str) -> Iterator[Path]:
    path = ctx.tmp / name
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _vs_floor(
    ctx: Context, row: Row, layout: Layout, *, single_file: bool = False, rss_goal: bool = False
) -> Outcome:
    print(f"    layout {describe(layout)}", flush=True)
    with folder(ctx, row.key) as d:
        paths = write_sparse_checkpoint(d, layout)
        target = str(paths[0]) if single_file else str(d)
        ours = Contender("paramtool inspect --json", [*ctx.cli, "inspect", target, "--json"])
        floor = Contender("floor", [ctx.py, "-c", FLOOR, str(d)])
        interleave([ours, floor], ctx.runs)
    goal = 1.2 if row.number == 1 else 1.5
    measures = [Measure("time vs the floor", ours.seconds / floor.seconds, goal, "x")]
    if rss_goal:
        measures.append(Measure("peak RSS vs the floor", ours.rss / floor.rss, 1.5, "x"))
    return Outcome(row, [ours, floor], measures)


def row_inspect_405b(ctx: Context, row: Row) -> Outcome:
    layout = llama31_70b() if ctx.quick else llama31_405b()
    return _vs_floor(ctx, row, layout)


def row_inspect_dsv3(ctx: Context, row: Row) -> Outcome:
    return _vs_floor(ctx, row, shrunk(deepseek_v3(), ctx.quick, 4_600, 8))


def row_inspect_kimi(ctx: Context, row: Row) -> Outcome:
    return _vs_floor(ctx, row, shrunk(kimi_k2_like(), ctx.quick, 7_000, 4))


def row_inspect_1m(ctx: Context, row: Row) -> Outcome:
    layout = million_tensors(50_000 if ctx.quick else 1_000_000)
    return _vs_floor(ctx, row, layout, single_file=True, rss_goal=True)


def row_tensors_kimi(ctx: Context, row: Row) -> Outcome:
    layout = shrunk(kimi_k2_like(), ctx.quick, 2_000, 4)
    print(f"    layout {describe(layout)}", flush=True)
    with folder(ctx, row.key) as d:
        write_sparse_checkpoint(d, layout)
        table = Contender("paramtool inspect --tensors", [*ctx.cli, "inspect", str(d), "--tensors"])
        js = Contender("paramtool inspect --json", [*ctx.cli, "inspect", str(d), "--json"])
        interleave([table, js], ctx.runs)
    return Outcome(
        row,
        [table, js],
        [
            Measure("--tensors, seconds", table.seconds, 3.0, "s"),
            Measure("--tensors vs --json (shown)", table.seconds / js.seconds, None, "x"),
            Measure("--tensors peak RSS (shown)", table.rss / 1e6, None, "MB"),
        ],
    )


def _hub_row(ctx: Context, row: Row, layout: Layout, baseline: str) -> Outcome:
    print(f"    layout {describe(layout)}, {ctx.latency * 1000:.0f} ms a request", flush=True)
    with folder(ctx, row.key) as d, HubEmulator(d / "hub", latency=ctx.latency) as hub:
        repo_dir = d / "repo"
        write_sparse_checkpoint(repo_dir, layout)
        repo = f"org/{layout.name.split('/')[-1]}"
        hub.add_repo(repo, repo_dir, card_data={"license": "other"})
        base = {k: v for k, v in ENV.items() if not k.startswith(("HF_", "HUGGING"))}
        base.update(
            HF_ENDPOINT=hub.url or "",
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            HF_HUB_DISABLE_UPDATE_CHECK="1",
            HF_HUB_OFFLINE="0",
        )

        def fresh_home(tag: str) -> tuple[Callable[[int], dict[str, str]], Callable[[int], None]]:
            def env(i: int) -> dict[str, str]:
                return {**base, "HF_HOME": str(d / f"home-{tag}-{i}")}

            def after(i: int) -> None:
                shutil.rmtree(d / f"home-{tag}-{i}", ignore_errors=True)

            return env, after

        ours = Contender(
            "paramtool inspect REPO --json",
            [*ctx.cli, "inspect", repo, "--json"],
            *fresh_home("ours"),
        )
        if baseline == "minimal":
            label, cmd = "minimal client", [ctx.py, "-c", MINIMAL_CLIENT, hub.url or "", repo]
        else:
            label, cmd = (
                "HfApi.get_safetensors_metadata",
                [ctx.py, "-c", HF_HELPER.format(repo=repo)],
            )
        theirs = Contender(label, cmd, *fresh_home("theirs"))
        interleave([ours, theirs], ctx.runs, hub)
    goal = 1.5 if baseline == "minimal" else 0.35
    ratio = Measure(f"time vs {label}", ours.seconds / theirs.seconds, goal, "x")
    return Outcome(row, [ours, theirs], [ratio])


def row_hub_8b(ctx: Context, row: Row) -> Outcome:
    return _hub_row(ctx, row, llama31_8b(), "minimal")


def row_hub_405b(ctx: Context, row: Row) -> Outcome:
    return _hub_row(ctx, row, llama31_8b() if ctx.quick else llama31_405b(), "hf")


def hash_tensors(total: int) -> list[Tensor]:
    """Llama-named BF16 matrices of 16 MiB each, ``total`` bytes in all."""
    names = ("gate_proj", "up_proj", "down_proj", "o_proj")
    count = total // (16 << 20)
    return [
        (f"model.layers.{i // 4}.mlp.{names[i % 4]}.weight", "BF16", (1024, 8192))
        for i in range(count)
    ]


def fill_random(paths: Sequence[Path], seed: int = 0) -> None:
    """Overwrite each file's data region (after its header) with random bytes, then read
    every file once so that it sits in the page cache."""
    rng = np.random.default_rng(seed)
    for p in paths:
        size = p.stat().st_size
        with open(p, "r+b") as f:
            start = 8 + struct.unpack("<Q", f.read(8))[0]
            f.seek(start)
            left = size - start
            while left > 0:
                n = min(left, 64 << 20)
                f.write(rng.bytes(n))
                left -= n
    for p in paths:
        with open(p, "rb") as f:
            while f.read(64 << 20):
                pass


def _hash_row(ctx: Context, row: Row, shards: int) -> Outcome:
    if shutil.which("openssl") is None:
        raise SystemExit("the hash rows need openssl on PATH")
    tensors = hash_tensors((64 << 20) if ctx.quick else (2 << 30))
    with folder(ctx, row.key) as d:
        paths = write_sparse_checkpoint(d, tensors, shards=shards)
        fill_random(paths)
        total = sum(p.stat().st_size for p in paths)
        print(f"    {len(tensors)} tensors, {shards} file(s), {total:,} bytes", flush=True)
        target = str(paths[0]) if shards == 1 else str(d)
        ours = Contender("paramtool hash", [*ctx.cli, "hash", target])
        label = "openssl dgst -sha256" + (" (in sequence)" if shards > 1 else "")
        theirs = Contender(label, ["openssl", "dgst", "-sha256", *map(str, paths)])
        interleave([ours, theirs], ctx.runs)
    goal = 1.05 if shards == 1 else 0.75
    return Outcome(
        row, [ours, theirs], [Measure("time vs openssl", ours.seconds / theirs.seconds, goal, "x")]
    )


def row_hash_1file(ctx: Context, row: Row) -> Outcome:
    return _hash_row(ctx, row, 1)


def row_hash_4shards(ctx: Context, row: Row) -> Outcome:
    return _hash_row(ctx, row, 4)


ROWS = (
    Row(1, "inspect-405b", "local inspect --json, Llama-3.1-405B, vs the floor", "<= 1.2x",
        row_inspect_405b),
    Row(2, "inspect-dsv3", "local inspect --json, DeepSeek-V3 (92k tensors), vs the floor",
        "<= 1.5x", row_inspect_dsv3),
    Row(3, "inspect-kimi", "local inspect --json, Kimi-K2-like 1T (140k), vs the floor",
        "<= 1.5x", row_inspect_kimi),
    Row(4, "inspect-1m", "local inspect --json, one file of 1,000,000 tensors, vs the floor",
        "<= 1.5x time and peak RSS", row_inspect_1m),
    Row(5, "tensors-kimi", "inspect --tensors (table), Kimi-K2-like 140k tensors", "<= 3 s",
        row_tensors_kimi),
    Row(6, "hub-8b", "Hub inspect, Llama-3.1-8B, vs a minimal client", "<= 1.5x", row_hub_8b),
    Row(7, "hub-405b", "Hub inspect, Llama-3.1-405B, vs HfApi.get_safetensors_metadata",
        "<= 0.35x", row_hub_405b),
    Row(8, "hash-1file", "hash, one 2 GiB file in the page cache, vs openssl", "<= 1.05x",
        row_hash_1file),
    Row(9, "hash-4shards", "hash, 2 GiB in 4 shards, vs openssl over them in sequence",
        "<= 0.75x", row_hash_4shards),
)  # fmt: skip


def pick(only: Sequence[str] | None) -> list[Row]:
    if not only:
        return list(ROWS)
    by = {str(r.number): r for r in ROWS} | {r.key: r for r in ROWS}
    unknown = [o for o in only if o not in by]
    if unknown:
        raise SystemExit(f"unknown row(s) {', '.join(unknown)}; --list shows them")
    return sorted({by[o].number: by[o] for o in only}.values(), key=lambda r: r.number)


def paramtool_cli(py: str) -> list[str]:
    """The installed console script (what users type), its package's bytecode compiled."""
    import paramtool

    subprocess.run(
        [py, "-m", "compileall", "-q", os.path.dirname(paramtool.__file__)],
        check=True,
        stdout=subprocess.DEVNULL,
        env=ENV,
    )
    script = shutil.which("paramtool", path=os.path.dirname(py))
    return [script] if script else [py, "-m", "paramtool"]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--only", action="append", metavar="ROW", help="a row's number or key")
    ap.add_argument("--runs", type=int, help="timed runs per contender (default 7; 3 --quick)")
    ap.add_argument("--quick", action="store_true", help="small layouts: a smoke test")
    ap.add_argument("--latency", type=float, default=0.05, help="Hub rows: seconds a request")
    ap.add_argument("--tmp", type=Path, help="where the files go (default: the system's)")
    ap.add_argument("--list", action="store_true", help="list the rows and exit")
    args = ap.parse_args(argv)
    if args.list:
        for r in ROWS:
            print(f"{r.number}  {r.key:<14}{r.title}  (goal {r.goal})")
        return
    rows = pick(args.only)
    runs = args.runs or (3 if args.quick else 7)
    py = sys.executable
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="paramtool-bench-", dir=args.tmp) as tmp:
        ctx = Context(paramtool_cli(py), py, Path(tmp), runs, args.quick, args.latency)
        scale = "QUICK (small layouts; the ratios mean little)" if args.quick else "full scale"
        print(f"{scale}; {runs} interleaved runs per contender; median (min-max)\n")
        for r in rows:
            print(f"[{r.number}] {r.key}: {r.title} (goal {r.goal})", flush=True)
            outcomes.append(r.run(ctx, r))
            report(outcomes[-1])
    summary(outcomes)


if __name__ == "__main__":
    main()
