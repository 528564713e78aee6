"""The tables of ``paramtool fit``, drawn from the :class:`~paramtool.memory.fit.Fit` record.

Renderers render: every figure here is one the record holds; nothing is recomputed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from paramtool.memory.engines.base import DevicePlan
from paramtool.memory.fit import Fit
from paramtool.render.fit import FitTable
from paramtool.safe_text import printable
from paramtool.units import human_bytes, human_count


def print_report(console: Any, r: Fit, binary: bool = False) -> None:
    """The whole report: the header, the budget per device, the answers, the notes."""
    from rich.text import Text

    console.print(_header(r, binary))
    console.print(budget_table(r, binary))
    console.print(answers_table(r, binary))
    solves = solves_table(r)
    if solves.row_count:
        console.print(solves)
    for line in r.notes:
        console.print(Text(f"· {printable(line)}", style="dim"))


def _size(n: int, binary: bool) -> str:
    return f"-{human_bytes(-n, binary)}" if n < 0 else human_bytes(n, binary)


def _header(r: Fit, binary: bool) -> Any:
    from rich.text import Text

    m = r.model
    text = Text()
    text.append(printable(r.source or "the model"), style="bold")
    text.append(f": {human_count(m.parameters)} parameters")
    if m.active_parameters != m.parameters:
        text.append(f" ({human_count(m.active_parameters)} active)")
    dtype = m.weight_dtype.label if m.weight_dtype is not None else "as stored"
    text.append(f", weights {_size(m.weights_bytes, binary)} ({dtype})")
    engine = f"\nengine {r.engine}, following {printable(r.version_followed)}"
    if r.fallback:
        engine += f" (in place of {r.requested_engine})"
    text.append(engine, style="dim")
    return text


def budget_table(r: Fit, binary: bool = False) -> FitTable:
    """One row per device (and one for system RAM when it holds anything): the budget and
    what takes it. When narrow the total column goes first."""
    t = FitTable(title="Memory per device", title_justify="left")
    t.add_column("device", name=True)
    t.add_column("total", justify="right", drop=1)
    t.add_column("budget", justify="right")
    t.add_column("weights", justify="right")
    t.add_column("activations", justify="right")
    t.add_column("runtime", justify="right")
    t.add_column("KV pool", justify="right")
    t.add_column("free", justify="right")
    for d in r.devices:
        t.add_row(*_device_cells(d, binary), style=None if d.free_bytes >= 0 else "red")
    ram = r.ram
    if ram.total_bytes:
        t.add_row(
            "system RAM",
            "",
            _size(r.request.ram_bytes, binary) if r.request.ram_bytes else "",
            _size(ram.weights_bytes, binary),
            _size(ram.activation_bytes, binary),
            "",
            _size(ram.kv_cache_bytes, binary),
            _size(r.request.ram_bytes - ram.total_bytes, binary) if r.request.ram_bytes else "",
        )
    return t


def _device_cells(d: DevicePlan, binary: bool) -> list[str]:
    return [
        printable(d.name),
        _size(d.total_bytes, binary),
        _size(d.budget_bytes, binary),
        _size(d.weights_bytes, binary),
        _size(d.activation_bytes, binary),
        _size(d.runtime_bytes, binary),
        _size(d.kv_cache_bytes, binary),
        _size(d.free_bytes, binary),
    ]


def answers_table(r: Fit, binary: bool = False) -> FitTable:
    """Fits or not, the KV pool in bytes and tokens, max context, concurrency, speed."""
    t = _pairs("Answer")
    t.add_row("fits", "yes" if r.fits else f"no: {printable(r.why_not or 'over budget')}")
    t.add_row(
        "KV pool",
        f"{_size(r.kv_cache_bytes, binary)} = {r.kv_cache_tokens:,} tokens "
        f"({r.kv_cache_bytes:,} bytes)",
    )
    t.add_row("max context", f"{r.max_model_len:,} tokens" if r.max_model_len else "none fits")
    if r.max_concurrency is not None:
        t.add_row("concurrency", f"{r.max_concurrency:.2f}x sequences of {r.context:,} tokens")
    decode = r.decode_tokens_per_s_max
    t.add_row(
        "decode",
        f"at most {decode:,.1f} tokens/s (one sequence at {r.context:,} tokens, memory "
        "bandwidth bound)"
        if decode is not None
        else "no bound (a memory bandwidth is not known)",
    )
    prefill = r.prefill_tokens_per_s_max
    if prefill is not None:
        t.add_row("prefill", f"at most {prefill:,.0f} tokens/s (peak dense compute bound)")
    return t


def _pairs(title: str) -> FitTable:
    """A two-column table of labelled answers."""
    t = FitTable(
        title=title,
        title_justify="left",
        show_header=False,
        box=None,
        padding=(0, 2, 0, 0),
        pad_edge=False,
    )
    t.add_column("", style="bold")
    t.add_column("", wrap=True)
    return t


def solves_table(r: Fit) -> FitTable:
    """The inverse answers: what is the most that fits, and what to change when none does."""
    s = r.solves
    t = _pairs("What fits")
    # llama.cpp places layers by what fits (-ngl auto): a longer context or more sequences
    # may fit with fewer layers on the GPU than the placement above.
    moved = " (with fewer layers on the GPU)" if r.engine == "llama.cpp" else ""
    if s.max_context is not None:
        capped = " (the model's limit)" if s.max_context == s.context_cap else ""
        if s.max_context != r.max_model_len and not capped:
            capped = moved
        t.add_row("largest context", f"{s.max_context:,} tokens at batch {s.batch}{capped}")
    else:
        t.add_row("largest context", f"none at batch {s.batch}")
    more = (
        moved
        if r.max_concurrency is not None and (s.max_batch or 0) > int(r.max_concurrency)
        else ""
    )
    t.add_row(
        "most sequences",
        f"{s.max_batch:,} of {s.context:,} tokens{more}"
        if s.max_batch
        else f"none of {s.context:,}",
    )
    answers: dict[str, tuple[str, Callable[[int], str]]] = {
        "tensor_parallel": ("tensor parallel", lambda n: f"--tensor-parallel {n}"),
        "gpus": ("devices", lambda n: f"{n} x {printable(r.request.devices[0].name)}"),
        "gpu_layers": ("offload", lambda n: f"--gpu-layers {n}"),
        "cpu_moe": ("CPU experts", lambda n: f"--cpu-moe {n}"),
    }
    for key in s.searched:
        label, text = answers[key]
        value = getattr(s, key)
        t.add_row(f"fits with: {label}", text(value) if value is not None else "none found")
    return t
