"""Tables and JSON for ``paramtool footprint``, both built from the core's dataclasses.

``to_json`` and the ``*_json`` helpers are stdlib only; the table functions
import rich lazily, so ``--json`` never loads it.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from paramtool import dtypes
from paramtool.memory.dims import ModelDims
from paramtool.memory.estimate import Footprint, ServingRow
from paramtool.memory.gpu_fit import MAX_GPUS, GpuFit
from paramtool.memory.gpus import GPUS, Gpu
from paramtool.memory.kv_cache import KVCache
from paramtool.memory.overhead import DEFAULT_OVERHEAD, Overhead
from paramtool.memory.training import Training
from paramtool.render.bars import bar
from paramtool.render.safe_text import printable
from paramtool.units import human_bytes, human_count

SCHEMA_VERSION = 1

KV_IGNORED = (
    "KV cache: paged-block rounding, prefix caching, speculative-decoding drafts, "
    "SSM/linear-attention state, cross-attention and image tokens are not counted"
)
SERVING_OVERHEAD = (
    "overhead: one allowance for the CUDA context, activations, CUDA graphs and "
    "allocator fragmentation"
)


def _num(x: Fraction | float | int) -> int | float:
    """A JSON number: an int when whole."""
    if isinstance(x, Fraction):
        return x.numerator if x.denominator == 1 else float(x)
    return x


def _gb(n: int) -> float:
    return round(n / 10**9, 3)


def _gib(n: int) -> float:
    return round(n / 2**30, 3)


def size(n: int, binary: bool = False) -> str:
    """``140 GB``: the human form, decimal unless ``binary``."""
    return human_bytes(n, binary)


# --------------------------------------------------------------------------- sentences


def overhead_text(o: Overhead) -> str:
    if o.bytes_per_gpu is not None:
        return f"{o.bytes_per_gpu:,} bytes per GPU ({o.text})"
    assert o.fraction is not None
    pct = o.fraction * 100
    shown = f"{pct.numerator}" if pct.denominator == 1 else f"{float(pct):g}"
    return f"{shown}% of the weights"


def kv_formula(kv: KVCache) -> str:
    """The formula with this model's numbers in it."""
    if kv.attention == "mla":
        per = f"(latent + rope) {kv.elements_per_token_layer}"
    else:
        per = f"2 × {kv.kv_heads} KV heads × {kv.head_dim} head_dim"
    return (
        f"{per} × {kv.layers} layers × {kv.context:,} tokens × batch {kv.batch} × "
        f"{bits_text(kv.dtype.bits)}/8 bytes ({kv.dtype.label})"
    )


def bits_text(bits: float) -> str:
    """``16``, ``4.5``, ``6.5625``, ``4.12695``: at most five decimals, no trailing zeros."""
    return f"{bits:.5f}".rstrip("0").rstrip(".")


def attention_text(dims: ModelDims) -> str:
    kind = dims.attention
    if kind == "mla":
        return (
            f"MLA: latent {dims.kv_lora_rank} + rope key {dims.qk_rope_head_dim} per token "
            "per layer (as vLLM and SGLang cache it; HF transformers caches full K/V)"
        )
    if kind == "mqa":
        return "MQA: one KV head shared by every query head"
    if kind == "gqa":
        of = f" for {dims.heads} query heads" if dims.heads else ""
        return f"GQA: {dims.kv_heads} KV heads{of}"
    if kind == "mha":
        return f"MHA: {dims.kv_heads} KV heads, one per query head"
    return "attention layout unknown"


def window_text(kv: KVCache) -> str | None:
    if not kv.windows:
        return None
    parts = [f"{n} of {kv.layers} layers attend to a {w:,}-token window" for w, n in kv.windows]
    return (
        "; ".join(parts)
        + " and keep min(context, window) tokens; a runtime that caches them in full needs "
        + f"{kv.full_context_bytes:,} bytes"
    )


def fit_text(fit: GpuFit, binary: bool = False) -> str:
    """One sentence: fits or not, per-GPU load, headroom, what it would take."""
    g = fit.gpu
    what = "tensor parallel" if fit.workload == "serving" else "ZeRO data parallel"
    load = f"{size(fit.per_gpu_bytes, binary)} per GPU of {size(fit.usable_bytes, binary)} usable"
    if fit.fits:
        how = f" ({what} {fit.gpus})" if fit.gpus > 1 else ""
        return (
            f"fits on {fit.gpus} × {g.name}{how}: {load}, "
            f"{size(fit.headroom_bytes, binary)} headroom"
        )
    short = size(-fit.headroom_bytes, binary)
    text = f"does not fit on {fit.gpus} × {g.name}: {load}, short by {short}"
    if fit.gpus_needed is not None:
        text += f"; needs {fit.gpus_needed} GPUs"
    else:
        text += f"; no GPU count up to {MAX_GPUS} is enough"
        if fit.limited_by:
            text += f" ({fit.limited_by})"
    return text


# --------------------------------------------------------------------------- JSON


def gpu_json(g: Gpu) -> dict[str, Any]:
    return {
        "key": g.key,
        "name": g.name,
        "vendor": g.vendor,
        "aliases": list(g.aliases),
        "marketed": g.marketed,
        "marketed_bytes": g.marketed_bytes,
        "usable_bytes": g.usable_bytes,
        "usable_gb": _gb(g.usable_bytes),
        "usable_gib": _gib(g.usable_bytes),
        "marketed_source": g.marketed_source,
        "usable_source": g.usable_source,
    }


def gpus_json() -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "usable_rule": "total memory the driver reports (nvidia-smi memory.total; rocm-smi VRAM "
        "Total Memory), ECC at its default",
        "gpus": [gpu_json(g) for g in GPUS],
    }


def dtype_json(d: dtypes.DType) -> dict[str, Any]:
    return {
        "dtype": d.label,
        "name": d.name,
        "aliases": list(d.aliases),
        "kind": d.kind,
        "bits_per_parameter": d.bits,
        "block_size": d.block_size,
        "bytes_per_block": d.bytes_per_block,
        "safetensors": d.safetensors,
        "gguf": d.gguf,
        "note": d.note,
    }


def dtypes_json() -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "dtypes": [dtype_json(d) for d in dtypes.TABLE]}


def fit_json(fit: GpuFit) -> dict[str, Any]:
    return {
        "gpu": fit.gpu.key,
        "workload": fit.workload,
        "gpus": fit.gpus,
        "gpus_requested": fit.requested,
        "per_gpu_bytes": fit.per_gpu_bytes,
        "usable_bytes": fit.usable_bytes,
        "headroom_bytes": fit.headroom_bytes,
        "fits": fit.fits,
        "gpus_needed": fit.gpus_needed,
        "explanation": fit_text(fit),
    }


def _row_json(r: ServingRow) -> dict[str, Any]:
    p = r.precision
    return {
        "dtype": p.dtype.label,
        "name": p.dtype.name,
        "kind": p.dtype.kind,
        "bits_per_parameter": p.bits_per_parameter,
        "weights_bytes": p.weights_bytes,
        "weights_gb": _gb(p.weights_bytes),
        "weights_gib": _gib(p.weights_bytes),
        "serving_bytes": r.total_bytes,
        "note": p.dtype.note,
        "gpu_fit": fit_json(r.fit) if r.fit else None,
    }


def dims_json(d: ModelDims) -> dict[str, Any]:
    return {
        "model_type": d.model_type,
        "layers": d.layers,
        "hidden_size": d.hidden_size,
        "heads": d.heads,
        "kv_heads": d.kv_heads,
        "head_dim": d.head_dim,
        "intermediate_size": d.intermediate_size,
        "vocab_size": d.vocab_size,
        "attention": d.attention,
        "kv_lora_rank": d.kv_lora_rank,
        "qk_rope_head_dim": d.qk_rope_head_dim,
        "experts": d.experts,
        "windows": [{"window": w, "layers": n} for w, n in d.windows],
    }


def kv_json(kv: KVCache) -> dict[str, Any]:
    return {
        "context": kv.context,
        "batch": kv.batch,
        "dtype": kv.dtype.label,
        "bits_per_element": kv.dtype.bits,
        "layers": kv.layers,
        "attention": kv.attention,
        "kv_heads": kv.kv_heads,
        "head_dim": kv.head_dim,
        "elements_per_token_per_layer": kv.elements_per_token_layer,
        "bytes_per_token": _num(kv.bytes_per_token),
        "windows": [{"window": w, "layers": n} for w, n in kv.windows],
        "bytes": kv.bytes,
        "full_context_bytes": kv.full_context_bytes,
        "formula": kv_formula(kv),
    }


def training_json(t: Training, fit: GpuFit | None) -> dict[str, Any]:
    return {
        "method": t.method,
        "optimizer": t.optimizer,
        "dtype": t.dtype.label,
        "zero": t.zero,
        "gpus": t.gpus,
        "trainable_parameters": t.trainable_parameters,
        "frozen_parameters": t.frozen_parameters,
        "lora_rank": t.lora_rank,
        "lora_targets": list(t.lora_targets),
        "weights_bytes": t.weights_bytes,
        "gradients_bytes": t.gradients_bytes,
        "master_weights_bytes": t.master_bytes,
        "optimizer_bytes": t.optimizer_bytes,
        "activations": t.activations,
        "activations_bytes_per_gpu": t.activations_bytes_per_gpu,
        "bytes_per_trainable_parameter": _num(t.bytes_per_trainable_parameter),
        "total_bytes": t.total_bytes,
        "per_gpu": t.per_gpu(),
        "per_gpu_bytes": t.per_gpu_bytes(),
        "gpu_fit": fit_json(fit) if fit else None,
    }


def excluded(fp: Footprint, serving: bool = True) -> list[str]:
    """What the estimate leaves out, said plainly."""
    out = [SERVING_OVERHEAD] if serving else []
    if fp.kv is not None:
        out.append(KV_IGNORED)
    t = fp.training
    if t is not None:
        if t.activations == "none":
            out.append("training: activations are not included (add --activations and --context)")
        out.append(
            "training: logits and loss buffers, CUDA context, communication buffers and "
            "fragmentation are not included"
        )
    return out


def to_json(fp: Footprint, binary: bool = False) -> dict[str, Any]:
    """The ``--json`` document (schema in docs/footprint.md)."""
    kv = fp.kv
    o = fp.overhead
    return {
        "schema_version": SCHEMA_VERSION,
        "parameters": fp.parameters,
        "source": fp.source,
        "units": "gib" if binary else "gb",
        "model": dims_json(fp.dims) if fp.dims is not None and _known(fp.dims) else None,
        "precisions": [_row_json(r) for r in fp.rows],
        "kv_cache_bytes": kv.bytes if kv else None,
        "kv_cache": kv_json(kv) if kv else None,
        "overhead": {
            "rule": o.text,
            "fraction_of_weights": float(o.fraction) if o.fraction is not None else None,
            "bytes_per_gpu": o.bytes_per_gpu,
            "description": overhead_text(o),
        },
        "training": training_json(fp.training, fp.training_fit) if fp.training else None,
        "gpu": gpu_json(fp.gpu) if fp.gpu else None,
        "excluded": excluded(fp),
        "notes": [printable(n) for n in fp.notes],
    }


def _known(d: ModelDims) -> bool:
    return any(v is not None for v in (d.layers, d.hidden_size, d.heads, d.kv_heads, d.head_dim))


# --------------------------------------------------------------------------- tables


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
    if d is not None and _known(d):
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


def precision_table(fp: Footprint, binary: bool = False) -> Any:
    from rich.table import Table

    fit = any(r.fit for r in fp.rows)
    serving = _show_serving(fp)
    t = Table(title="Weights", title_justify="left")
    t.add_column("precision", no_wrap=True)
    t.add_column("bits", justify="right")
    t.add_column("bytes", justify="right")
    t.add_column("GB", justify="right")
    t.add_column("GiB", justify="right")
    t.add_column("", no_wrap=True)
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
    return t


def kv_table(fp: Footprint, binary: bool = False) -> Any:
    from rich.table import Table

    kv = fp.kv
    assert kv is not None
    t = Table(title="KV cache", title_justify="left", show_header=False, box=None, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    t.add_row("bytes", f"{kv.bytes:,} ({size(kv.bytes, binary)})")
    t.add_row("formula", kv_formula(kv))
    if fp.dims is not None:
        t.add_row("attention", attention_text(fp.dims))
    windows = window_text(kv)
    if windows:
        t.add_row("windows", windows)
    t.add_row("per token", f"{float(kv.bytes_per_token):,.0f} bytes per sequence")
    return t


def serving_table(r: ServingRow, fp: Footprint, binary: bool = False) -> Any:
    from rich.table import Table

    t = Table(title="Serving", title_justify="left", show_header=False, box=None, padding=(0, 2))
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_column()
    w = r.precision.weights_bytes
    t.add_row("weights", f"{w:,}", size(w, binary))
    if fp.kv is not None:
        t.add_row("KV cache", f"{r.kv_cache_bytes:,}", size(r.kv_cache_bytes, binary))
    t.add_row("overhead", f"{r.overhead_bytes:,}", overhead_text(fp.overhead))
    t.add_row("total", f"{r.total_bytes:,}", size(r.total_bytes, binary), style="bold")
    if r.fit is not None:
        t.add_row("GPU", "", fit_text(r.fit, binary))
    return t


def training_table(tr: Training, binary: bool = False) -> Any:
    from rich.table import Table

    title = f"Training: {tr.method}, {tr.optimizer}, {tr.dtype.label}"
    if tr.zero or tr.gpus > 1:
        title += f", ZeRO-{tr.zero} over {tr.gpus} GPU" + ("s" if tr.gpus > 1 else "")
    t = Table(title=title, title_justify="left")
    t.add_column("component")
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
    t.caption = (
        f"{trainable}; {_num(tr.bytes_per_trainable_parameter)} bytes per trainable parameter"
    )
    t.caption_justify = "left"
    return t


def gpus_table(binary: bool = False) -> Any:
    from rich.table import Table

    t = Table(title="Known GPUs (usable = total memory the driver reports)", title_justify="left")
    for name, just in (
        ("--gpu", "left"),
        ("name", "left"),
        ("marketed", "left"),
        ("usable bytes", "right"),
        ("usable", "right"),
        ("source of usable", "left"),
    ):
        t.add_column(name, justify=just)  # type: ignore[arg-type]
    for g in GPUS:
        t.add_row(
            g.key,
            g.name,
            g.marketed,
            f"{g.usable_bytes:,}",
            size(g.usable_bytes, binary),
            g.usable_source,
        )
    return t


def dtypes_table() -> Any:
    from rich.table import Table

    t = Table(title="Known dtypes", title_justify="left")
    for name, just in (
        ("dtype", "left"),
        ("name", "left"),
        ("kind", "left"),
        ("bits", "right"),
        ("block", "right"),
        ("bytes/block", "right"),
        ("note", "left"),
    ):
        t.add_column(name, justify=just)  # type: ignore[arg-type]
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
