"""The dimensions of a model that the memory formulas need, from its config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paramtool.fields import positive_int


@dataclass(frozen=True, slots=True)
class ModelDims:
    """The sizes the KV cache, LoRA and activation formulas need, from config.json or flags."""

    layers: int | None = None
    hidden_size: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    tie_word_embeddings: bool = True
    # DeepSeek MLA: the cache holds a compressed latent plus a decoupled RoPE key.
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    q_lora_rank: int | None = None
    qk_nope_head_dim: int | None = None
    v_head_dim: int | None = None
    # Mixture of experts (for LoRA on MLP experts).
    experts: int = 0
    moe_intermediate_size: int | None = None
    shared_intermediate_size: int = 0  # all shared experts together
    dense_layers: int = 0  # leading layers with a dense MLP (DeepSeek first_k_dense_replace)
    # Windowed layers: (window tokens, number of layers); the rest attend to everything.
    windows: tuple[tuple[int, int], ...] = ()
    model_type: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None and self.qk_rope_head_dim is not None

    @property
    def attention(self) -> str | None:
        """``mla``, ``mqa``, ``gqa``, ``mha`` or None when the KV heads are unknown."""
        if self.is_mla:
            return "mla"
        if self.kv_heads is None:
            return None
        if self.kv_heads == 1:
            return "mqa"
        if self.heads is not None and self.kv_heads == self.heads:
            return "mha"
        return "gqa"

    @property
    def windowed_layers(self) -> int:
        return sum(n for _, n in self.windows)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, **flags: int | None) -> ModelDims:
        """Read a HF ``config.json`` (nested ``text_config`` too); flags win over it."""
        cfg = _flatten_config(config or {})
        notes: list[str] = []
        layers = positive_int(cfg, "num_hidden_layers", "n_layer", "n_layers", "num_layers")
        heads = positive_int(cfg, "num_attention_heads", "n_head", "n_heads", "num_heads")
        hidden = positive_int(cfg, "hidden_size", "n_embd", "d_model", "dim")
        kv_heads = positive_int(
            cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv", "n_kv_heads",
            "multi_query_group_num",
        )  # fmt: skip
        if kv_heads is None and cfg.get("multi_query") is True:
            kv_heads = 1
        head_dim = positive_int(cfg, "head_dim", "kv_channels")
        inter = positive_int(cfg, "intermediate_size", "ffn_hidden_size", "n_inner", "ffn_dim")
        vocab = positive_int(cfg, "vocab_size", "padded_vocab_size")
        tie = cfg.get("tie_word_embeddings")
        model_type = cfg.get("model_type") if isinstance(cfg.get("model_type"), str) else None

        # Flags override the config, one by one.
        layers = flags.get("layers") or layers
        heads = flags.get("heads") or heads
        hidden = flags.get("hidden_size") or hidden
        kv_heads = flags.get("kv_heads") or kv_heads
        head_dim = flags.get("head_dim") or head_dim
        inter = flags.get("intermediate_size") or inter
        if kv_heads is None and heads is not None:
            kv_heads = heads  # no GQA field: every head has its own K and V
        if head_dim is None and hidden is not None and heads:
            if hidden % heads == 0:
                head_dim = hidden // heads
            else:
                notes.append(f"hidden_size {hidden} is not a multiple of {heads} heads")

        experts = positive_int(cfg, "num_local_experts", "n_routed_experts", "num_experts") or 0
        moe_inter = positive_int(cfg, "moe_intermediate_size")
        shared = positive_int(cfg, "shared_expert_intermediate_size") or 0
        n_shared = positive_int(cfg, "n_shared_experts")
        if not shared and n_shared and (moe_inter or inter):
            shared = n_shared * (moe_inter or inter or 0)
        dense = (positive_int(cfg, "first_k_dense_replace") or 0) if experts else 0

        windows = _windows(cfg, layers, notes)
        return cls(
            layers=layers,
            hidden_size=hidden,
            heads=heads,
            kv_heads=kv_heads,
            head_dim=head_dim,
            intermediate_size=inter,
            vocab_size=vocab,
            tie_word_embeddings=tie if isinstance(tie, bool) else True,
            kv_lora_rank=positive_int(cfg, "kv_lora_rank"),
            qk_rope_head_dim=positive_int(cfg, "qk_rope_head_dim"),
            q_lora_rank=positive_int(cfg, "q_lora_rank"),
            qk_nope_head_dim=positive_int(cfg, "qk_nope_head_dim"),
            v_head_dim=positive_int(cfg, "v_head_dim"),
            experts=experts,
            moe_intermediate_size=moe_inter,
            shared_intermediate_size=shared,
            dense_layers=min(dense, layers or 0),
            windows=windows,
            model_type=model_type,
            notes=tuple(notes),
        )


def _flatten_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A multimodal config keeps the language model's sizes in a nested dict; those win."""
    flat = {k: v for k, v in config.items() if not isinstance(v, Mapping)}
    for key in ("text_config", "llm_config", "language_config"):
        nested = config.get(key)
        if isinstance(nested, Mapping):
            flat.update({k: v for k, v in nested.items() if not isinstance(v, Mapping)})
            break
    return flat


def _windows(cfg: Mapping[str, Any], layers: int | None, notes: list[str]) -> tuple:
    """Which layers attend only to a window of recent tokens, as transformers decides it."""
    window = positive_int(cfg, "sliding_window")
    chunk = positive_int(cfg, "attention_chunk_size")
    types = cfg.get("layer_types")
    if isinstance(types, list) and types and all(isinstance(t, str) for t in types):
        out = []
        sliding = sum(1 for t in types if t == "sliding_attention")
        chunked = sum(1 for t in types if t == "chunked_attention")
        if sliding and window:
            out.append((window, sliding))
        elif sliding:
            notes.append("layer_types names sliding layers but sliding_window is missing")
        if chunked and chunk:
            out.append((chunk, chunked))
        return tuple(out)
    if window is None or not layers:
        return ()
    if cfg.get("use_sliding_window") is False:
        notes.append("sliding_window ignored: use_sliding_window is false")
        return ()
    max_window_layers = positive_int(cfg, "max_window_layers")
    if cfg.get("use_sliding_window") is True and max_window_layers is not None:
        # Qwen2: layers from max_window_layers on use the window.
        n = max(0, layers - max_window_layers)
    elif (pattern := positive_int(cfg, "sliding_window_pattern")) is not None:
        # Gemma 3 / Cohere 2: every pattern-th layer is global, the others slide.
        n = sum(1 for i in range(layers) if (i + 1) % pattern)
    elif str(cfg.get("model_type", "")).startswith("gemma2"):
        n = (layers + 1) // 2  # Gemma 2: even layers slide, odd layers are global
    else:
        n = layers  # Mistral 7B v0.1 and friends: every layer slides
    return ((window, n),) if n else ()
