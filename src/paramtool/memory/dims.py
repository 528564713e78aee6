"""The dimensions of a model that the memory formulas need, from its config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from paramtool.analysis.model import Attention, Layer, ModelDescription, describe
from paramtool.frozen import dataclass


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
    description: ModelDescription | None = None
    overridden: bool = False  # a flag changed the layers' shape

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

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, **flags: int | None) -> ModelDims:
        """Read a HF ``config.json`` through the model description; flags win over it."""
        return cls.from_description(describe(config) if config else None, **flags)

    @classmethod
    def from_description(
        cls, desc: ModelDescription | None, **flags: int | None
    ) -> ModelDims:
        """The sizes of ``desc`` (None: only what the flags give), flags winning one by one."""
        notes: list[str] = list(desc.notes) if desc else []
        att = desc.attention if desc else None
        layers = flags.get("layers") or (desc.layers if desc else None)
        heads = flags.get("heads") or (att.heads if att else None)
        hidden = flags.get("hidden_size") or (desc.hidden_size if desc else None)
        kv_heads = flags.get("kv_heads") or (att.kv_heads if att else None)
        head_dim = flags.get("head_dim") or (att.head_dim if att else None)
        inter = flags.get("intermediate_size") or (desc.intermediate_size if desc else None)
        if kv_heads is None and heads is not None:
            kv_heads = heads  # no GQA field: every head has its own K and V
        if head_dim is None and hidden is not None and heads:
            if hidden % heads == 0:
                head_dim = hidden // heads
            elif not any("is not a multiple" in n for n in notes):
                notes.append(f"hidden_size {hidden} is not a multiple of {heads} heads")
        experts = desc.experts if desc else None
        main = desc.main if desc else None
        windows: dict[int, int] = {}
        for la in main.layers if main else ():
            if la.window is not None and la.attention is not None:
                windows[la.window] = windows.get(la.window, 0) + 1
        dense = 0
        if experts is not None and main is not None:
            for la in main.layers:
                if la.ffn == "moe":
                    break
                dense += 1
        return cls(
            layers=layers,
            hidden_size=hidden,
            heads=heads,
            kv_heads=kv_heads,
            head_dim=head_dim,
            intermediate_size=inter,
            vocab_size=desc.vocab_size if desc else None,
            tie_word_embeddings=desc.tie_word_embeddings
            if desc and desc.tie_word_embeddings is not None
            else True,
            kv_lora_rank=att.kv_lora_rank if att else None,
            qk_rope_head_dim=att.qk_rope_head_dim if att else None,
            q_lora_rank=desc.q_lora_rank if desc else None,
            qk_nope_head_dim=desc.qk_nope_head_dim if desc else None,
            v_head_dim=att.v_head_dim if att and att.kv_lora_rank else None,
            experts=(experts.routed or 0) if experts else 0,
            moe_intermediate_size=desc.moe_intermediate_size if desc else None,
            shared_intermediate_size=(experts.shared_intermediate_size or 0) if experts else 0,
            dense_layers=min(dense, layers or 0),
            windows=tuple(windows.items()),
            model_type=desc.model_type if desc else None,
            notes=tuple(notes),
            description=desc,
            overridden=any(flags.get(k) for k in ("layers", "heads", "kv_heads", "head_dim")),
        )

    @property
    def kind(self) -> str:
        return self.description.kind if self.description else "decoder"

    def plan(self) -> tuple[Layer, ...]:
        """The layers the KV cache is priced over: the description's main stack, or (with a
        flag overriding its shape, or no description) ``layers`` uniform attention layers."""
        desc = self.description
        att = Attention(
            self.heads, self.kv_heads, self.head_dim,
            self.v_head_dim if self.is_mla else None,
            self.kv_lora_rank, self.qk_rope_head_dim,
        )  # fmt: skip
        main = desc.main if desc else None
        if main is not None and main.layers and not self.overridden:
            return main.layers
        if not self.layers:
            return ()
        if main is not None and len(main.layers) == self.layers:
            return tuple(
                replace(la, attention=att if la.attention is not None else None,
                        cross_attention=att if la.cross_attention is not None else None)
                for la in main.layers
            )  # fmt: skip
        return tuple(Layer(i, "full_attention", attention=att) for i in range(self.layers))
