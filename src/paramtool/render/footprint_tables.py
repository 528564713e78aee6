"""The tables of ``paramtool footprint``, drawn from the core's records and sentences."""

from __future__ import annotations

from typing import Any

from paramtool import dtypes
from paramtool.memory.estimate import Footprint, ServingRow
from paramtool.memory.explain import (
    attention_text,
    bits_text,
    cross_text,
    excluded,
    fit_text,
    json_number,
    kv_formula,
    overhead_text,
    size,
    state_text,
    window_text,
)
from paramtool.memory.footprint_json import dims_known
from paramtool.memory.gpu_fit import MAX_GPUS
from paramtool.memory.gpus import GPUS
from paramtool.memory.overhead import DEFAULT_OVERHEAD
from paramtool.memory.training import Training
from paramtool.render.bars import bar
from paramtool.render.fit import FitTable
from paramtool.safe_text import printable
from paramtool.units import human_count


def print_report(console: Any, fp: Footprint, binary: bool = False) -> None:
    """The whole report: header, precisions, KV cache, serving, training, fit, notes."""
    from rich.text import Text

    console.print(_header(fp))
    console.print(precision_table(fp, binary))
    if fp.kv is not None:
        console.print(kv_table(fp, binary))
    if len(fp.rows) == 1 and _show_serving(fp):
        console.print(serving_table(fp.rows[0], fp, binary))
    if fp.training is not None:
        console.print(training_table(fp.training, binary))
        if fp.training_fit is not None:
            console.print(Text(fit_text(fp.training_fit, binary), style="bold"))
    elif len(fp.rows) > 1 and fp.gpu is not None:
        console.print(Text(f"GPU: {fp.gpu.name}, {size(fp.gpu.usable_bytes, binary)} usable"))
    for line in excluded(fp, _show_serving(fp)) + [printable(n) for n in fp.notes]:
        console.print(Text(f"· {line}", style="dim"))


def _header(fp: Footprint) -> Any:
    from rich.text import Text

    text = Text()
    text.append(f"{fp.parameters:,} parameters", style="bold")
    text.append(f" ({human_count(fp.parameters)})")
    if fp.source:
        text.append(" from ")
        text.append(printable(fp.source))
    d = fp.dims
    if d is not None and dims_known(d):
        shape = [
            f"{d.layers} layers" if d.layers else "",
            f"hidden {d.hidden_size}" if d.hidden_size else "",
            f"{d.heads} heads" if d.heads else "",
            f"{d.kv_heads} KV heads" if d.kv_heads and not d.is_mla else "",
            f"head_dim {d.head_dim}" if d.head_dim and not d.is_mla else "",
        ]
        text.append("\n" + ", ".join(s for s in shape if s), style="dim")
    return text


def _show_serving(fp: Footprint) -> bool:
    """Serving totals only when asked about: a context, a GPU or an explicit overhead."""
    asked = fp.kv is not None or fp.gpu is not None or fp.overhead.text != DEFAULT_OVERHEAD
    return asked and fp.training is None


def precision_table(fp: Footprint, binary: bool = False) -> FitTable:
    """Bytes at every precision; when narrow the bar goes first, then the unit not asked
    for (``binary`` picks GiB), then the bits."""
    fit = any(r.fit for r in fp.rows)
    serving = _show_serving(fp)
    t = FitTable(title="Weights", title_justify="left")
    t.add_column("precision")
    t.add_column("bits", justify="right", drop=2)
    t.add_column("bytes", justify="right")
    t.add_column("GB", justify="right", drop=1 if binary else 0)
    t.add_column("GiB", justify="right", drop=0 if binary else 1)
    t.add_column("", decoration=True)
    if serving:
        t.add_column("serving", justify="right")
    if fit:
        t.add_column("GPUs", justify="right")
        t.add_column("headroom/GPU", justify="right")
    top = max((r.precision.weights_bytes for r in fp.rows), default=1) or 1
    for r in fp.rows:
        p = r.precision
        cells = [
            p.dtype.label,
            bits_text(p.bits_per_parameter),
            f"{p.weights_bytes:,}",
            size(p.weights_bytes),
            size(p.weights_bytes, True),
            bar(p.weights_bytes / top),
        ]
        if serving:
            cells.append(size(r.total_bytes, binary))
        if fit and r.fit is not None:
            f = r.fit
            if f.fits:
                cells += [str(f.gpus), size(f.headroom_bytes, binary)]
            elif f.gpus_needed is not None:
                cells += [f"needs {f.gpus_needed}", f"-{size(-f.headroom_bytes, binary)}"]
            else:
                cells += [f"> {MAX_GPUS}", "does not fit"]
        t.add_row(*cells)
        if p.as_stored and len(fp.rows) > 1:
            t.add_section()  # the file's own bytes, then the estimates at each precision
    return t


def kv_table(fp: Footprint, binary: bool = False) -> Any:
    from rich.table import Table

    kv = fp.kv
    assert kv is not None
    t = Table(title="KV cache", title_justify="left", show_header=False, box=None, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column(overflow="fold")  # a long word (a path) folds, never ends in …
    t.add_row("bytes", f"{kv.bytes:,} ({size(kv.bytes, binary)})")
    t.add_row("formula", kv_formula(kv))
    if fp.dims is not None:
        t.add_row("attention", attention_text(fp.dims))
    windows = window_text(kv)
    if windows:
        t.add_row("windows", windows)
    state = state_text(kv)
    if state:
        t.add_row("fixed state", state)
    cross = cross_text(kv)
    if cross:
        t.add_row("cross-attention", cross)
    if kv.layers:
        t.add_row("per token", f"{float(kv.bytes_per_token):,.0f} bytes per sequence")
    return t


def serving_table(r: ServingRow, fp: Footprint, binary: bool = False) -> Any:
    from rich.table import Table

    t = Table(title="Serving", title_justify="left", show_header=False, box=None, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_column(overflow="fold")
    w = r.precision.weights_bytes
    t.add_row("weights", f"{w:,}", size(w, binary))
    if fp.kv is not None:
        t.add_row("KV cache", f"{r.kv_cache_bytes:,}", size(r.kv_cache_bytes, binary))
    t.add_row("overhead", f"{r.overhead_bytes:,}", overhead_text(fp.overhead))
    t.add_row("total", f"{r.total_bytes:,}", size(r.total_bytes, binary), style="bold")
    if r.fit is not None:
        t.add_row("GPU", "", fit_text(r.fit, binary))
    return t


def training_table(tr: Training, binary: bool = False) -> FitTable:
    title = f"Training: {tr.method}, {tr.optimizer}, {tr.dtype.label}"
    if tr.zero or tr.gpus > 1:
        title += f", ZeRO-{tr.zero} over {tr.gpus} GPU" + ("s" if tr.gpus > 1 else "")
    t = FitTable(title=title, title_justify="left", caption_justify="left")
    t.add_column("component", wrap=True)
    t.add_column("all GPUs", justify="right")
    t.add_column("", justify="right")
    t.add_column("per GPU", justify="right")
    per = tr.per_gpu()
    rows = [
        ("weights", tr.weights_bytes, per["weights"]),
        ("gradients", tr.gradients_bytes, per["gradients"]),
        ("fp32 master weights", tr.master_bytes, per["master"]),
        ("optimizer states", tr.optimizer_bytes, per["optimizer"]),
    ]
    if tr.activations_bytes_per_gpu is not None:
        act = tr.activations_bytes_per_gpu
        rows.append((f"activations ({tr.activations})", act * tr.gpus, act))
    if tr.overhead is not None:
        rows.append((f"overhead ({tr.overhead.text})", per["overhead"] * tr.gpus, per["overhead"]))
    for name, total, one in rows:
        t.add_row(name, f"{total:,}", size(total, binary), size(one, binary))
    t.add_section()
    t.add_row(
        "total",
        f"{tr.total_bytes:,}",
        size(tr.total_bytes, binary),
        size(tr.per_gpu_bytes(), binary),
        style="bold",
    )
    trainable = f"{tr.trainable_parameters:,} trainable"
    if tr.method != "full":
        trainable += f" (LoRA rank {tr.lora_rank} on {','.join(tr.lora_targets)})"
    bpp = json_number(tr.bytes_per_trainable_parameter)
    t.caption = f"{trainable}; {bpp} bytes per trainable parameter"
    return t


def gpus_table(binary: bool = False) -> FitTable:
    t = FitTable(
        title="Known GPUs (usable = total memory the driver reports; Apple: the GPU working set)",
        title_justify="left",
    )
    t.add_column("--gpu")
    t.add_column("name", wrap=True)
    t.add_column("marketed", wrap=True, drop=3)
    t.add_column("usable bytes", justify="right", drop=4)
    t.add_column("usable", justify="right")
    t.add_column("bandwidth", justify="right")
    t.add_column("bf16 dense", justify="right", drop=2)
    t.add_column("source of usable", wrap=True, drop=1)
    for g in GPUS:
        bw = g.bandwidth_bytes_per_s
        bf16 = g.flops.get("bf16")
        t.add_row(
            g.key,
            g.name,
            g.marketed,
            f"{g.usable_bytes:,}",
            size(g.usable_bytes, binary),
            f"{bw / 1e12:.3g} TB/s" if bw else "?",
            f"{bf16 / 1e12:,.4g} TF" if bf16 else "-",
            g.usable_source,
        )
    return t


def dtypes_table() -> FitTable:
    t = FitTable(title="Known dtypes", title_justify="left")
    t.add_column("dtype")
    t.add_column("name", wrap=True)
    t.add_column("kind", drop=1)
    t.add_column("bits", justify="right")
    t.add_column("block", justify="right", drop=2)
    t.add_column("bytes/block", justify="right", drop=2)
    t.add_column("note", wrap=True)
    for d in dtypes.TABLE:
        t.add_row(
            d.label,
            d.name,
            d.kind,
            bits_text(d.bits),
            str(d.block_size),
            str(d.bytes_per_block),
            d.note,
        )
    return t
