"""The KV cache: bytes per token and in total, per attention variant and window.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from paramtool import dtypes
from paramtool.dtypes import DType
from paramtool.errors import UsageError
from paramtool.memory.dims import ModelDims

DEFAULT_KV_DTYPE = "BF16"




@dataclass(frozen=True, slots=True)
class KVCache:
    """Keys and values kept for ``context`` tokens of ``batch`` sequences."""

    context: int
    batch: int
    dtype: DType
    layers: int
    attention: str  # mha | gqa | mqa | mla
    elements_per_token_layer: int  # 2*kv_heads*head_dim, or kv_lora_rank+qk_rope_head_dim
    kv_heads: int | None
    head_dim: int | None
    windows: tuple[tuple[int, int], ...]
    bytes: int
    full_context_bytes: int  # the same with every layer keeping the whole context

    @property
    def bytes_per_token(self) -> Fraction:
        """Bytes one more token costs (one sequence, every layer attending to it)."""
        return self.elements_per_token_layer * self.layers * self.dtype.bits_exact / 8

    def shards(self, tensor_parallel: int) -> int:
        """How many ways tensor parallelism splits the cache: by KV head, at most.

        Past ``kv_heads`` GPUs the heads are replicated; an MLA latent is one
        shared "head", so every GPU keeps all of it.
        """
        if self.attention == "mla" or self.kv_heads is None:
            return 1
        return max(1, min(tensor_parallel, self.kv_heads))

    def per_gpu_bytes(self, tensor_parallel: int) -> int:
        return -(-self.bytes // self.shards(tensor_parallel))


def kv_cache(dims: ModelDims, context: int, batch: int = 1, dtype: DType | None = None) -> KVCache:
    """The KV cache for ``context`` tokens and ``batch`` sequences."""
    dtype = dtype or dtypes.lookup(DEFAULT_KV_DTYPE)
    if context < 1 or batch < 1:
        raise UsageError("", "must be at least 1", param=("context", "batch"))
    missing = []  # (the dimension in words, the parameter that gives it)
    if dims.layers is None:
        missing.append(("layers", "layers"))
    if not dims.is_mla:
        if dims.kv_heads is None:
            missing.append(("KV heads", "kv_heads"))
        if dims.head_dim is None:
            missing.append(("head_dim", "head_dim"))
    if missing:
        raise UsageError(
            "",
            lambda p: "the KV cache needs the model's "
            + ", ".join(f"{words} ({p(param)})" for words, param in missing)
            + ": give a checkpoint with a config.json or the flags",
            param="context",
        )
    assert dims.layers is not None
    if dims.is_mla:
        assert dims.kv_lora_rank is not None and dims.qk_rope_head_dim is not None
        per = dims.kv_lora_rank + dims.qk_rope_head_dim
    else:
        assert dims.kv_heads is not None and dims.head_dim is not None
        per = 2 * dims.kv_heads * dims.head_dim
    windowed = min(dims.windowed_layers, dims.layers)
    tokens = (dims.layers - windowed) * context
    for window, n in dims.windows:
        tokens += n * min(context, window)
    attention = dims.attention or "gqa"
    return KVCache(
        context=context,
        batch=batch,
        dtype=dtype,
        layers=dims.layers,
        attention=attention,
        elements_per_token_layer=per,
        kv_heads=None if dims.is_mla else dims.kv_heads,
        head_dim=None if dims.is_mla else dims.head_dim,
        windows=dims.windows,
        bytes=dtype.estimate_nbytes(per * tokens * batch),
        full_context_bytes=dtype.estimate_nbytes(per * dims.layers * context * batch),
    )
