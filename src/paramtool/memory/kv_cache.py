"""The KV cache, from the model's layer structure: only what the model really caches.

Each layer of the description (:mod:`paramtool.analysis.model`) is priced by its mixer:

* full attention keeps K and V for every token: ``kv_heads × (head_dim + v_head_dim)``
  elements per token (an MLA layer: its latent ``kv_lora_rank + qk_rope_head_dim``, as
  vLLM and SGLang cache it; transformers decompresses it to full heads);
* sliding-window attention keeps ``min(context, W)`` tokens and chunked attention
  ``min(context, chunk)`` (the convention here is a window of W tokens: the W the model
  attends to, the current one included; transformers' ``DynamicSlidingWindowLayer`` keeps
  W - 1 past tokens, and ``convention="transformers"`` counts that way);
* state-space, linear-attention, recurrent and convolution mixers keep a fixed state per
  sequence (conv window and SSM state elements from the config), reported beside the
  per-token K/V, never as K/V;
* encoder layers keep nothing (an encoder-only model has no KV cache); a decoder layer of
  an encoder-decoder also keeps cross-attention K/V over the encoder's tokens.

Every figure is an exact integer: elements × tokens × batch at the cache dtype's bytes.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Literal

from paramtool import dtypes
from paramtool.analysis.model import Attention, Layer
from paramtool.dtypes import DType
from paramtool.errors import UsageError
from paramtool.frozen import dataclass
from paramtool.memory.dims import ModelDims

DEFAULT_KV_DTYPE = "BF16"
DEFAULT_ENCODER_LENGTH = 512  # T5's and BART's usual input length, when none is given
Convention = Literal["engine", "transformers"]


@dataclass(frozen=True, slots=True)
class KVGroup:
    """Layers of one stack cached alike: their count, tokens kept and bytes."""

    stack: str  # decoder | cross (the decoder's cross-attention) | state
    mixer: str
    layers: int
    window: int | None
    tokens: int  # kept per sequence per layer (0 for a fixed state)
    elements_per_token: int  # per layer (for a state: its elements per sequence)
    bytes: int


@dataclass(frozen=True, slots=True)
class KVCache:
    """Keys and values kept for ``context`` tokens of ``batch`` sequences."""

    context: int
    batch: int
    dtype: DType
    layers: int  # layers that cache K/V per token
    attention: str  # mha | gqa | mqa | mla | none
    elements_per_token_layer: int  # of the first caching layer
    kv_heads: int | None
    head_dim: int | None
    windows: tuple[tuple[int, int], ...]
    bytes: int  # everything kept: K/V, cross-attention K/V, fixed states
    full_context_bytes: int  # the same with every attention layer keeping the whole context
    groups: tuple[KVGroup, ...] = ()
    state_bytes: int = 0  # fixed per-sequence states, included in ``bytes``
    cross_bytes: int = 0  # cross-attention K/V over the encoder input, included in ``bytes``
    encoder_length: int | None = None
    convention: str = "engine"
    reason: str | None = None  # why nothing is cached (an encoder-only model)

    @property
    def bytes_per_token(self) -> Fraction:
        """Bytes one more token costs (one sequence, every caching layer attending to it)."""
        per = sum(g.elements_per_token * g.layers for g in self.groups if g.stack == "decoder")
        return per * self.dtype.bits_exact / 8

    def shards(self, tensor_parallel: int) -> int:
        """How many ways tensor parallelism splits the cache: by KV head, at most.

        Past ``kv_heads`` GPUs the heads are replicated; an MLA latent is one
        shared "head", so every GPU keeps all of it.
        """
        if self.attention in ("mla", "none") or self.kv_heads is None:
            return 1
        return max(1, min(tensor_parallel, self.kv_heads))

    def per_gpu_bytes(self, tensor_parallel: int) -> int:
        return -(-self.bytes // self.shards(tensor_parallel))


def _elements(att: Attention, convention: Convention) -> int | None:
    """K/V elements one token adds to a layer: an MLA layer's latent (vLLM, SGLang and
    transformers 5 all cache it compressed), else full keys and values."""
    if att.latent_elements is not None:
        return att.latent_elements
    return att.kv_elements


def _kept(layer: Layer, context: int, convention: Convention) -> int:
    """Tokens a layer keeps: a window (or chunk) of W, or W - 1 past tokens as transformers'
    ``DynamicSlidingWindowLayer`` keeps them (it serves chunked layers too)."""
    if layer.window is None or layer.mixer not in ("sliding_attention", "chunked_attention"):
        return context + layer.prefix_tokens
    window = layer.window - 1 if convention == "transformers" else layer.window
    return min(context, window) + layer.prefix_tokens


def kv_cache(
    dims: ModelDims,
    context: int,
    batch: int = 1,
    dtype: DType | None = None,
    *,
    encoder_length: int | None = None,
    convention: Convention = "engine",
) -> KVCache:
    """The KV cache for ``context`` tokens and ``batch`` sequences."""
    dtype = dtype or dtypes.lookup(DEFAULT_KV_DTYPE)
    if context < 1 or batch < 1:
        raise UsageError("", "must be at least 1", param=("context", "batch"))
    if dims.kind == "encoder":
        return KVCache(
            context, batch, dtype, 0, "none", 0, None, None, (), 0, 0,
            reason="an encoder-only model: it reads its whole input at once and keeps no KV cache",
        )  # fmt: skip
    plan = dims.plan()
    missing = []  # (the dimension in words, the parameter that gives it)
    if not plan:
        missing.append(("layers", "layers"))
    if not plan or any(
        la.attention is not None and _elements(la.attention, convention) is None for la in plan
    ):
        if dims.kv_heads is None and not dims.is_mla:
            missing.append(("KV heads", "kv_heads"))
        if dims.head_dim is None and not dims.is_mla:
            missing.append(("head_dim", "head_dim"))
    if missing:
        raise UsageError(
            "",
            lambda p: (
                "the KV cache needs the model's "
                + ", ".join(f"{words} ({p(param)})" for words, param in missing)
                + ": give a checkpoint with a config.json or the flags"
            ),
            param="context",
        )
    enc = encoder_length or DEFAULT_ENCODER_LENGTH
    groups: dict[tuple[str, str, int | None, int], list[int]] = {}
    elements_total = full_total = state_total = cross_total = 0
    for la in plan:
        if la.attention is not None and la.caches_tokens:
            per = _elements(la.attention, convention) or 0
            kept = _kept(la, context, convention)
            groups.setdefault(("decoder", la.mixer, la.window, per), []).append(kept)
            elements_total += per * kept
            full_total += per * (context + la.prefix_tokens)
        if la.cross_attention is not None:
            per = _elements(la.cross_attention, convention) or 0
            groups.setdefault(("cross", "cross_attention", None, per), []).append(enc)
            cross_total += per * enc
        if la.state is not None:
            groups.setdefault(("state", la.mixer, None, la.state.elements), []).append(0)
            state_total += la.state.elements
    out_groups = []
    for (stack, mixer, window, per), counts in groups.items():
        n = len(counts)
        elements = per * n if stack == "state" else per * sum(counts)
        out_groups.append(
            KVGroup(
                stack, mixer, n, window, counts[0], per, dtype.estimate_nbytes(elements * batch)
            )
        )
    caching = [la for la in plan if la.attention is not None and la.caches_tokens]
    first = caching[0].attention if caching else None
    windows: dict[int, int] = {}
    for la in caching:
        if la.window is not None and la.mixer in ("sliding_attention", "chunked_attention"):
            windows[la.window] = windows.get(la.window, 0) + 1
    state_bytes = dtype.estimate_nbytes(state_total * batch)
    cross_bytes = dtype.estimate_nbytes(cross_total * batch)
    kv_only = dtype.estimate_nbytes(elements_total * batch)
    return KVCache(
        context=context,
        batch=batch,
        dtype=dtype,
        layers=len(caching),
        attention=(first.variant or "gqa") if first is not None else "none",
        elements_per_token_layer=(_elements(first, convention) or 0) if first else 0,
        kv_heads=None if first is None or first.variant == "mla" else first.kv_heads,
        head_dim=None if first is None or first.variant == "mla" else first.head_dim,
        windows=tuple(windows.items()),
        bytes=kv_only + state_bytes + cross_bytes,
        full_context_bytes=dtype.estimate_nbytes(full_total * batch) + state_bytes + cross_bytes,
        groups=tuple(out_groups),
        state_bytes=state_bytes,
        cross_bytes=cross_bytes,
        encoder_length=enc if cross_total else None,
        convention=convention,
        reason=None if caching or state_total or cross_total else "no layer caches anything",
    )
