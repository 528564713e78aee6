"""Speed as an upper bound from physics: the memory and compute roofline.

Decoding one token reads every weight it uses and the KV cache once, so it cannot
beat the time the memory takes to deliver those bytes; prefill is a matmul over many
tokens at once and cannot beat the peak FLOP/s. These are ceilings ("speed of light"),
not predictions: kernels, launch overhead, communication and batching all come below.
Sources (and the derivation, with a worked example) in ``docs/devices.md``: Kipply,
"Transformer Inference Arithmetic" (2022); Chen, "LLM inference speed of light" (2024).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from paramtool.memory.engines.base import Device


def decode_tokens_per_s_max(
    reads: Sequence[tuple[int, int | None]], *, parallel: bool
) -> float | None:
    """The most tokens/s one sequence can decode, from the bytes each device reads.

    ``reads`` pairs, per device, the bytes read for one decoded token with that device's
    memory bandwidth in bytes/s. ``parallel``: tensor parallel, every device reads its
    share at once, so the slowest sets the pace: 1 / max(b_i / bw_i). Otherwise the
    layers run one device after another (llama.cpp's layer split, a CPU part included):
    1 / sum(b_i / bw_i). Devices that read nothing are left out; None when a device that
    reads has no known bandwidth, or nothing is read at all.
    """
    times: list[Fraction] = []
    for nbytes, bandwidth in reads:
        if nbytes <= 0:
            continue
        if bandwidth is None or bandwidth <= 0:
            return None
        times.append(Fraction(nbytes, bandwidth))
    if not times:
        return None
    seconds = max(times) if parallel else sum(times, Fraction(0))
    return float(1 / seconds)


def flops_per_token(
    active_parameters: int, *, layers: int = 0, heads: int = 0, head_dim: int = 0, context: int = 0
) -> int:
    """Forward FLOPs per token: 2 per active parameter (a multiply and an add), plus the
    attention over the context: QK^T and AV take 2 x 2 x heads x head_dim per layer per
    token attended; a causal prompt of ``context`` tokens attends to context / 2 on
    average, so 2 x layers x context x heads x head_dim (Kipply's 2·n_layers·n_ctx·d_attn
    per token, halved for the causal mask)."""
    return 2 * active_parameters + 2 * layers * context * heads * head_dim


def prefill_tokens_per_s_max(
    flops_per_token: int, devices: Sequence[Device], dtype_key: str
) -> float | None:
    """The most prompt tokens/s the devices' peak compute allows: sum of peak FLOP/s at
    ``dtype_key`` (``bf16``, ``fp8``...) over ``flops_per_token``. None when a device lacks
    that dtype's figure, or there is nothing to compute."""
    if flops_per_token <= 0 or not devices:
        return None
    key = dtype_key.strip().lower()
    total = 0
    for d in devices:
        peak = d.flops.get(key)
        if peak is None or peak <= 0:
            return None
        total += peak
    return float(Fraction(total, flops_per_token))
