"""The sentences ``footprint`` says about an estimate, shared by its tables and its JSON."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from paramtool.memory.dims import ModelDims
from paramtool.memory.gpu_fit import MAX_GPUS, GpuFit
from paramtool.memory.kv_cache import KVCache
from paramtool.memory.overhead import Overhead
from paramtool.units import human_bytes

if TYPE_CHECKING:
    from paramtool.memory.estimate import Footprint

KV_IGNORED = (
    "KV cache: paged-block rounding, prefix caching, speculative-decoding drafts "
    "and image tokens are not counted"
)
SERVING_OVERHEAD = (
    "overhead: one allowance for the CUDA context, activations, CUDA graphs and "
    "allocator fragmentation"
)


def json_number(x: Fraction | float | int) -> int | float:
    """A JSON number: an int when whole."""
    if isinstance(x, Fraction):
        return x.numerator if x.denominator == 1 else float(x)
    return x


def decimal_gb(n: int) -> float:
    return round(n / 10**9, 3)


def binary_gib(n: int) -> float:
    return round(n / 2**30, 3)


def size(n: int, binary: bool = False) -> str:
    """``140 GB``: the human form, decimal unless ``binary``."""
    return human_bytes(n, binary)


def overhead_text(o: Overhead) -> str:
    if o.bytes_per_gpu is not None:
        return f"{o.bytes_per_gpu:,} bytes per GPU ({o.text})"
    assert o.fraction is not None
    pct = o.fraction * 100
    shown = f"{pct.numerator}" if pct.denominator == 1 else f"{float(pct):g}"
    return f"{shown}% of the weights"


def kv_formula(kv: KVCache) -> str:
    """The formula with this model's numbers in it."""
    if kv.reason is not None and not kv.bytes:
        return kv.reason
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


def excluded(fp: Footprint, serving: bool = True) -> list[str]:
    """What the estimate leaves out, said plainly."""
    out = [SERVING_OVERHEAD] if serving else []
    if fp.kv is not None:
        out.append(KV_IGNORED)
    t = fp.training
    if t is not None:
        if t.activations == "none":
            out.append("training: activations are not included (add --activations and --context)")
        if t.overhead is None:
            out.append(
                "training: logits and loss buffers, CUDA context, communication buffers and "
                "fragmentation are not included (--overhead adds an allowance per GPU)"
            )
        else:
            out.append(
                "training: logits and loss buffers are not included; CUDA context, "
                "communication buffers and fragmentation only as far as the overhead "
                f"({overhead_text(t.overhead)}) allows"
            )
    return out


def state_text(kv: KVCache) -> str | None:
    """The fixed per-sequence state of state-space, linear-attention and recurrent layers."""
    groups = [g for g in kv.groups if g.stack == "state"]
    if not groups:
        return None
    parts = [
        f"{g.layers} {g.mixer.replace('_', ' ')} layers × {g.elements_per_token:,}" for g in groups
    ]
    return (
        f"{kv.state_bytes:,} bytes fixed per batch of {kv.batch}: "
        + " + ".join(parts)
        + f" state elements at {kv.dtype.label}, whatever the context"
    )


def cross_text(kv: KVCache) -> str | None:
    """An encoder-decoder's cross-attention K/V over the encoder's input."""
    if not kv.cross_bytes or kv.encoder_length is None:
        return None
    return (
        f"{kv.cross_bytes:,} bytes: cross-attention K/V over {kv.encoder_length:,} encoder tokens "
        "(--encoder-length)"
    )
