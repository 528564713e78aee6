"""The one model description: what the model is, layer by layer, read once.

Every command that needs a model's shape (inspect, footprint, check, the MoE and
quantization analyses) reads it from the :class:`ModelDescription` built here, never
from ``config.json`` itself. It is read from, in order of trust:

1. ``config.json`` (or a GGUF file's metadata mapped onto its keys), with the nested
   ``text_config`` / ``llm_config`` / ``language_config`` of multimodal models, and every
   key family transformers' configuration classes use for the same thing;
2. where a released config leaves a layer pattern to the architecture's defaults (Gemma 3's
   five local layers per global one, Llama 4's chunked attention on three of every four
   layers), the defaults of transformers' configuration class for that model type, noted;
3. the tensor shapes, as a cross-check and where nothing states it (which layers hold
   experts, how many KV heads a ``k_proj`` holds).

Each layer of each stack (encoder, decoder) has a *mixer* (how tokens see each other:
full, sliding-window, chunked or linear attention, a state-space or recurrent mixer, a
convolution, or none) and an FFN kind (dense, MoE, none). The KV cache is priced from
this structure (:mod:`paramtool.memory.kv_cache`).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import field, replace
from typing import Any, Literal

from paramtool.fields import is_int, positive_int
from paramtool.frozen import dataclass
from paramtool.records import TensorInfo

Mixer = Literal[
    "full_attention",  # attends to every earlier token (bidirectional in an encoder)
    "sliding_attention",  # to the last `window` tokens
    "chunked_attention",  # to the tokens of its own `window`-token chunk (Llama 4)
    "linear_attention",  # a fixed-size recurrent state (Gated DeltaNet, lightning attention)
    "state_space",  # Mamba / Mamba2 selective state space: a conv window and an SSM state
    "recurrent",  # RWKV-style time mixing: a fixed state
    "conv",  # a short causal convolution (LFM2): a fixed conv window
    "hybrid",  # attention and a state-space mixer side by side in one layer (Falcon-H1, Zamba)
    "none",  # a block with no token mixer (NemotronH's MLP-only blocks)
]
Ffn = Literal["dense", "moe", "none"]
Kind = Literal["decoder", "encoder", "encoder-decoder"]
ATTENTION_MIXERS = ("full_attention", "sliding_attention", "chunked_attention", "hybrid")
STATE_MIXERS = ("linear_attention", "state_space", "recurrent", "conv", "hybrid")


@dataclass(frozen=True, slots=True)
class Attention:
    """The attention a layer caches: heads, KV heads and head sizes, or an MLA latent."""

    heads: int | None
    kv_heads: int | None
    head_dim: int | None  # of a key
    v_head_dim: int | None = None  # of a value, when it differs from a key's
    kv_lora_rank: int | None = None  # MLA: the compressed latent cached per token
    qk_rope_head_dim: int | None = None  # MLA: the decoupled RoPE key cached beside it
    index_head_dim: int | None = None  # DeepSeek sparse attention: the indexer's key per token

    @property
    def variant(self) -> str | None:
        """``mla``, ``mqa``, ``gqa``, ``mha``, or None when the KV heads are unknown."""
        if self.kv_lora_rank is not None and self.qk_rope_head_dim is not None:
            return "mla"
        if self.kv_heads is None:
            return None
        if self.kv_heads == 1 and self.heads != 1:
            return "mqa"
        if self.heads is not None and self.kv_heads == self.heads:
            return "mha"
        return "gqa"

    @property
    def kv_elements(self) -> int | None:
        """Elements of K and V one token adds to this layer's cache, as transformers keeps
        them (full heads; MLA decompressed)."""
        if self.kv_heads is None or self.head_dim is None:
            return None
        return self.kv_heads * (self.head_dim + (self.v_head_dim or self.head_dim)) + (
            self.index_head_dim or 0
        )

    @property
    def latent_elements(self) -> int | None:
        """MLA only: the latent plus the RoPE key, as vLLM and SGLang cache it."""
        if self.kv_lora_rank is None or self.qk_rope_head_dim is None:
            return None
        return self.kv_lora_rank + self.qk_rope_head_dim + (self.index_head_dim or 0)


@dataclass(frozen=True, slots=True)
class State:
    """A fixed per-sequence state (SSM, convolution, recurrent): elements, not tokens."""

    elements: int
    parts: tuple[tuple[str, int], ...]  # ("conv", n), ("ssm", n), ...
    conv_kernel: int | None = None  # the conv part's width: that part is channels × this

    @property
    def kept_parts(self) -> tuple[tuple[str, int], ...]:
        """The parts as serving engines keep them (vLLM, SGLang, llama.cpp): the conv window
        holds ``conv_kernel - 1`` past columns (the newest input is not cached), where
        ``parts`` counts the whole kernel, as transformers' caches do."""
        k = self.conv_kernel
        return tuple(
            (part, n // k * (k - 1) if part == "conv" and k else n) for part, n in self.parts
        )


@dataclass(frozen=True, slots=True)
class Layer:
    """One block of a stack."""

    index: int
    mixer: str
    ffn: str = "dense"
    window: int | None = None  # sliding_attention: window tokens; chunked_attention: chunk
    attention: Attention | None = None
    state: State | None = None
    cross_attention: Attention | None = None  # a decoder layer of an encoder-decoder
    kv_source: int | None = None  # reads the K/V an earlier layer cached (KV sharing)
    prefix_tokens: int = 0  # learned prompt tokens cached before the input (CPM-Ant)

    @property
    def caches_tokens(self) -> bool:
        return (
            self.attention is not None and self.mixer in ATTENTION_MIXERS and self.kv_source is None
        )


@dataclass(frozen=True, slots=True)
class Stack:
    role: Literal["decoder", "encoder"]
    layers: tuple[Layer, ...]


@dataclass(frozen=True, slots=True)
class Experts:
    """A mixture of experts: routed and shared experts per MoE layer, and ``k``."""

    routed: int | None
    shared: int = 0
    per_token: int | None = None
    intermediate_size: int | None = None  # of one routed expert
    shared_intermediate_size: int | None = None  # of all shared experts together


@dataclass(frozen=True, slots=True)
class ModelDescription:
    """Typed, frozen, documented: the model as every command sees it."""

    kind: str  # decoder | encoder | encoder-decoder
    architecture: str | None = None
    model_type: str | None = None
    hidden_size: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    tie_word_embeddings: bool | None = None
    stacks: tuple[Stack, ...] = ()
    experts: Experts | None = None
    mtp_layers: int = 0  # multi-token-prediction blocks after the decoder (a part of its own)
    max_position_embeddings: int | None = None
    moe_intermediate_size: int | None = None  # as config.json states it
    q_lora_rank: int | None = None  # MLA's query compression (for LoRA and activations)
    qk_nope_head_dim: int | None = None
    quantization_config: Mapping[str, Any] | None = None  # its own, or the text config's
    mlx_quantization: Mapping[str, Any] | None = None  # MLX's ``quantization``
    source: str = "config.json"  # config.json | gguf | tensors | none
    notes: tuple[str, ...] = field(default=())

    # --- convenience views -------------------------------------------------------------
    def stack(self, role: str) -> Stack | None:
        return next((s for s in self.stacks if s.role == role), None)

    @property
    def decoder(self) -> Stack | None:
        return self.stack("decoder")

    @property
    def encoder(self) -> Stack | None:
        return self.stack("encoder")

    @property
    def main(self) -> Stack | None:
        """The stack a decoder generates with, else the encoder."""
        return self.decoder or self.encoder

    @property
    def layers(self) -> int | None:
        """Blocks of the main stack (the decoder's for an encoder-decoder)."""
        return len(self.main.layers) if self.main is not None and self.main.layers else None

    @property
    def attention(self) -> Attention | None:
        """The attention of the first attention layer of the main stack."""
        if self.main is None:
            return None
        return next((layer.attention for layer in self.main.layers if layer.attention), None)

    @property
    def heads(self) -> int | None:
        return self.attention.heads if self.attention else None

    @property
    def kv_heads(self) -> int | None:
        return self.attention.kv_heads if self.attention else None

    @property
    def head_dim(self) -> int | None:
        return self.attention.head_dim if self.attention else None

    @property
    def moe_layers(self) -> tuple[int, ...]:
        main = self.main
        return tuple(la.index for la in main.layers if la.ffn == "moe") if main else ()

    @property
    def quantization(self) -> dict[str, Mapping[str, Any]]:
        """The config's quantization keys, for :func:`paramtool.analysis.quantization.declared`."""
        out = {}
        if self.quantization_config is not None:
            out["quantization_config"] = self.quantization_config
        if self.mlx_quantization is not None:
            out["quantization"] = self.mlx_quantization
        return out

    def to_dict(self) -> dict[str, Any]:
        """The ``model`` object of ``inspect --json``: sizes, and each stack's layers in groups."""
        att = self.attention
        return {
            "kind": self.kind,
            "architecture": self.architecture,
            "model_type": self.model_type,
            "source": self.source,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "vocab_size": self.vocab_size,
            "tie_word_embeddings": self.tie_word_embeddings,
            "layers": self.layers,
            "heads": self.heads,
            "kv_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "attention": att.variant if att else None,
            "experts": None
            if self.experts is None
            else {
                "routed": self.experts.routed,
                "shared": self.experts.shared,
                "per_token": self.experts.per_token,
                "moe_layers": list(self.moe_layers),
            },
            "mtp_layers": self.mtp_layers,
            "stacks": [
                {
                    "role": s.role,
                    "layers": len(s.layers),
                    "groups": [_group_dict(g) for g in layer_groups(s.layers)],
                }
                for s in self.stacks
            ],
            "notes": list(self.notes),
        }


def layer_groups(layers: Sequence[Layer]) -> list[tuple[Layer, list[int]]]:
    """Layers alike in mixer, window, FFN and shapes, with their indices (first-seen order)."""
    groups: dict[tuple[Any, ...], tuple[Layer, list[int]]] = {}
    for layer in layers:
        key = (layer.mixer, layer.window, layer.ffn, layer.attention, layer.state,
               layer.cross_attention, layer.kv_source is None, layer.prefix_tokens)  # fmt: skip
        groups.setdefault(key, (layer, []))[1].append(layer.index)
    return list(groups.values())


def _group_dict(group: tuple[Layer, list[int]]) -> dict[str, Any]:
    layer, indices = group
    att = layer.attention
    return {
        "mixer": layer.mixer,
        "ffn": layer.ffn,
        "window": layer.window,
        "count": len(indices),
        "layers": _ranges(indices),
        "attention": None
        if att is None
        else {
            "variant": att.variant,
            "heads": att.heads,
            "kv_heads": att.kv_heads,
            "head_dim": att.head_dim,
            "v_head_dim": att.v_head_dim or att.head_dim,
            "kv_lora_rank": att.kv_lora_rank,
            "qk_rope_head_dim": att.qk_rope_head_dim,
            "index_head_dim": att.index_head_dim,
        },
        "shares_kv": layer.kv_source is not None,
        "state_elements": layer.state.elements if layer.state else None,
        "cross_attention": layer.cross_attention is not None,
    }


def _ranges(indices: Sequence[int]) -> str:
    """``0-3,8,10-11``."""
    out: list[str] = []
    start = prev = None
    for i in indices:
        if start is None:
            start = prev = i
        elif prev is not None and i == prev + 1:
            prev = i
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = i
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(out)


# --------------------------------------------------------------------------------------
# Reading a config


class _Config:
    """Key lookups over a text config and, as a fallback, its multimodal parent."""

    NESTED = ("text_config", "llm_config", "language_config", "thinker_config", "text_model")

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.top = config
        inner: Mapping[str, Any] | None = None
        for key in self.NESTED:
            nested = config.get(key)
            if isinstance(nested, Mapping):
                deeper = nested.get("text_config")  # thinker_config.text_config (Qwen-Omni)
                inner = deeper if isinstance(deeper, Mapping) else nested
                break
        self.inner = inner
        self.chain: tuple[Mapping[str, Any], ...] = (inner, config) if inner else (config,)

    def get(self, *keys: str) -> Any:
        for src in self.chain:
            for k in keys:
                if k in src and src[k] is not None:
                    return src[k]
        return None

    def num(self, *keys: str) -> int | None:
        for src in self.chain:
            v = positive_int(src, *keys)
            if v is not None:
                return v
        return None

    def own_num(self, *keys: str) -> int | None:
        """Like :meth:`num`, from the text config alone when one is nested."""
        return positive_int(self.chain[0], *keys)

    def count(self, *keys: str) -> int | None:
        """A count that may be 0 (``first_k_dense_replace: 0``)."""
        for src in self.chain:
            for k in keys:
                v = src.get(k)
                if is_int(v) and v >= 0:
                    return v
        return None

    def flag(self, key: str) -> bool | None:
        v = self.get(key)
        return v if isinstance(v, bool) else None

    def ints(self, key: str) -> list[int] | None:
        v = self.get(key)
        if isinstance(v, list) and all(is_int(x) for x in v):
            return list(v)
        return None

    def strings(self, key: str) -> list[str] | None:
        v = self.get(key)
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
            return list(v)
        return None


# Model types whose checkpoints are encoders only: they keep no KV cache.
ENCODER_TYPES = frozenset(
    "albert bert bert-generation big_bird camembert canine convbert data2vec-text deberta "
    "deberta-v2 distilbert electra ernie esm flaubert funnel ibert layoutlm lilt longformer "
    "luke markuplm megatron-bert mobilebert modernbert mpnet mra nezha nomic_bert nystromformer "
    "qdqbert rembert roberta roberta-prelayernorm roc_bert roformer splinter squeezebert "
    "tapas xlm xlm-roberta xlm-roberta-xl xmod yoso jina_bert neobert".split()
)
# The patterns of this module are compiled where first used (the re module keeps them): a
# dense model with a config and a usual architecture name needs none of them.
_DECODER_ARCH = r"(ForCausalLM|LMHeadModel|ForConditionalGeneration)$"
_ENCODER_ARCH = (
    r"(ForMaskedLM|ForSequenceClassification|ForTokenClassification|ForQuestionAnswering|"
    r"ForMultipleChoice|ForPreTraining|Model)$"
)


def describe(
    config: Mapping[str, Any] | None,
    tensors: Sequence[TensorInfo] = (),
    *,
    source: str = "config.json",
    names: Sequence[str] | None = None,
    keys: Sequence[Hashable] | None = None,
) -> ModelDescription:
    """Build the description from a config (None: from the tensors alone; ``names`` and
    ``keys``: their names and :func:`paramtool.analysis.anatomy.shape_keys`, when known)."""
    if not config:
        return _from_tensors(tensors, names, keys)
    cfg = _Config(config)
    notes: list[str] = []
    archs = config.get("architectures")
    arch = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
    model_type = cfg.get("model_type")
    model_type = model_type if isinstance(model_type, str) else None
    kind = _kind(cfg, model_type, arch)
    hidden = cfg.num("hidden_size", "n_embd", "d_model", "dim", "model_dim", "n_embed", "embed_dim")
    vocab = cfg.num("vocab_size", "padded_vocab_size", "n_vocab")
    tie = cfg.flag("tie_word_embeddings")
    if tie is None and config.get("tie_word_embeddings") is None and model_type in ("t5", "mt5"):
        tie = True  # T5's config class defaults to tied
    inter = cfg.num(
        "intermediate_size", "ffn_hidden_size", "n_inner", "ffn_dim", "d_ff",
        "encoder_ffn_dim", "decoder_ffn_dim", "hidden_dim",
    )  # fmt: skip
    if inter is None and cfg.get("ffn_config") and isinstance(cfg.get("ffn_config"), Mapping):
        inter = positive_int(cfg.get("ffn_config"), "ffn_hidden_size")
    experts = _experts(cfg, inter, model_type or "")
    stacks: list[Stack] = []
    enc_sub, dec_sub = _mapping(config.get("encoder")), _mapping(config.get("decoder"))
    if kind == "encoder-decoder" and enc_sub is not None and dec_sub is not None:
        # T5Gemma: a whole decoder-style config for each stack.
        for role, sub in (("encoder", enc_sub), ("decoder", dec_sub)):
            part = describe({**sub, "architectures": ["ForCausalLM"]}, source=source)
            sub_layers = part.main.layers if part.main else ()
            if role == "decoder":
                sub_layers = tuple(replace(la, cross_attention=la.attention or part.attention)
                                   for la in sub_layers)  # fmt: skip
                stacks.append(Stack("decoder", sub_layers))
            else:
                stacks.append(Stack("encoder", sub_layers))
            notes.extend(part.notes)
        hidden = hidden or _Config(dec_sub).num("hidden_size")
        vocab = vocab or _Config(dec_sub).num("vocab_size")
    elif kind == "encoder-decoder":
        enc_n = cfg.num("encoder_layers", "num_encoder_layers", "num_layers")
        dec_n = cfg.num("decoder_layers", "num_decoder_layers") or enc_n
        enc_att = _attention(cfg, hidden, notes, "encoder")
        dec_att = _attention(cfg, hidden, notes, "decoder")
        if enc_n:
            enc_ffn = _sparse_steps(cfg, enc_n, "encoder_sparse_step", experts)
            stacks.append(Stack("encoder", tuple(
                Layer(i, "full_attention", enc_ffn[i], attention=enc_att) for i in range(enc_n)
            )))  # fmt: skip
        if dec_n:
            dec_ffn = _sparse_steps(cfg, dec_n, "decoder_sparse_step", experts)
            stacks.append(Stack("decoder", tuple(
                Layer(i, "full_attention", dec_ffn[i], attention=dec_att, cross_attention=dec_att)
                for i in range(dec_n)
            )))  # fmt: skip
    else:
        n = cfg.num("num_hidden_layers", "n_layer", "num_layers", "n_layers", "n_layers_total",
                    "decoder_layers", "num_decoder_layers", "layers")  # fmt: skip
        if n is None and isinstance(cfg.get("hybrid_override_pattern"), str):
            n = len(cfg.get("hybrid_override_pattern"))
        if n is None:
            types = cfg.strings("layer_types") or cfg.strings("layers_block_type")
            n = len(types) if types else None
        attn = _attention(cfg, hidden, notes, "")
        layers = _decoder_layers(cfg, model_type, n or 0, attn, hidden, experts, notes)
        if kind == "encoder":
            layers = [replace(la, mixer="full_attention", window=None) for la in layers]
            stacks.append(Stack("encoder", tuple(layers)))
        else:
            stacks.append(Stack("decoder", tuple(layers)))
    mtp = cfg.count("num_nextn_predict_layers", "mtp_num_hidden_layers", "num_mtp_modules") or 0
    desc = ModelDescription(
        kind=kind,
        architecture=arch,
        model_type=model_type,
        hidden_size=hidden,
        intermediate_size=inter,
        vocab_size=vocab,
        tie_word_embeddings=tie,
        stacks=tuple(stacks),
        experts=experts,
        mtp_layers=mtp,
        max_position_embeddings=cfg.num("max_position_embeddings", "n_positions", "n_ctx"),
        moe_intermediate_size=cfg.num("moe_intermediate_size") if experts else None,
        q_lora_rank=cfg.num("q_lora_rank"),
        qk_nope_head_dim=cfg.num("qk_nope_head_dim"),
        quantization_config=_mapping(config.get("quantization_config"))
        or _mapping(config.get("compression_config"))  # compressed-tensors' older name
        or _mapping(cfg.inner.get("quantization_config") if cfg.inner else None),
        mlx_quantization=_mapping(config.get("quantization")),
        source=source,
        notes=tuple(notes),
    )
    return _cross_check(desc, tensors)


def _mapping(v: Any) -> Mapping[str, Any] | None:
    return v if isinstance(v, Mapping) else None


def _kind(cfg: _Config, model_type: str | None, arch: str | None) -> str:
    if arch and arch.endswith("ForCausalLM"):
        return "decoder"  # also the decoder half of an encoder-decoder family, alone
    if cfg.flag("is_encoder_decoder") or (
        cfg.get("encoder_layers") is not None and cfg.get("decoder_layers") is not None
    ):
        return "encoder-decoder"
    if model_type in ("t5", "mt5", "umt5", "longt5", "switch_transformers", "bart", "mbart",
                      "fsmt", "pegasus", "marian", "blenderbot", "m2m_100", "nllb_moe",
                      "plbart", "prophetnet", "led", "bigbird_pegasus"):  # fmt: skip
        return "encoder-decoder"
    if model_type in ENCODER_TYPES and not cfg.flag("is_decoder"):
        return "encoder"  # XLMWithLMHeadModel is a masked LM despite its name
    if arch and re.search(_DECODER_ARCH, arch) and not cfg.flag("is_encoder_decoder"):
        return "decoder"
    if arch and arch.endswith("ForMaskedLM") and not cfg.flag("is_decoder"):
        return "encoder"  # a masked-LM head: bidirectional, nothing cached
    if (model_type or "").endswith("_text_model") and not cfg.flag("is_decoder"):
        return "encoder"  # a contrastive model's text tower (CLIP, SigLIP): nothing cached
    if arch and re.search(_ENCODER_ARCH, arch) and cfg.get("type_vocab_size") is not None:
        return "encoder"
    return "decoder"


def _attention(cfg: _Config, hidden: int | None, notes: list[str], stack: str) -> Attention:
    if stack:
        heads = cfg.num(f"{stack}_attention_heads", f"num_{stack}_attention_heads",
                        "num_attention_heads", "num_heads", "n_head", "n_heads",
                        "attention_heads")  # fmt: skip
    else:
        heads = cfg.num("num_attention_heads", "n_head", "num_heads", "n_heads",
                        "attention_heads", "decoder_attention_heads")  # fmt: skip
    kv = cfg.num("num_key_value_heads", "num_kv_heads", "n_head_kv", "n_kv_heads",
                 "multi_query_group_num", "num_query_groups", "n_kv_head")  # fmt: skip
    if cfg.flag("multi_query") and not cfg.flag("new_decoder_architecture"):
        # Falcon and GPT-BigCode: one KV head, whatever num_kv_heads says (FalconAttention).
        kv = 1
    if cfg.get("model_type") == "gpt_bigcode":
        kv = 1 if cfg.flag("multi_query") else heads  # GPTBigCodeConfig has no GQA field
    if kv is None:
        kv = heads  # no GQA field: every head has its own K and V
    # A multimodal parent's head_dim is its own tower's (MusicFlamingo's audio): with a text
    # config nested, only the text config's counts.
    head_dim = cfg.own_num(
        "head_dim", "d_kv", "attention_head_dim", "kv_channels", "head_size", "dim_head"
    )
    kv_lora = cfg.num("kv_lora_rank")
    rope = cfg.num("qk_rope_head_dim")
    v_dim = cfg.num("v_head_dim")
    if kv_lora is not None and rope is not None:
        nope = cfg.num("qk_nope_head_dim")
        head_dim = (nope or 0) + rope if nope else head_dim
    if head_dim is None and hidden and heads:
        if hidden % heads == 0:
            head_dim = hidden // heads
        elif f"hidden_size {hidden} is not a multiple of {heads} heads" not in notes:
            notes.append(f"hidden_size {hidden} is not a multiple of {heads} heads")
    index = cfg.num("index_head_dim") if cfg.num("index_topk") or cfg.num("index_n_heads") else None
    return Attention(
        heads, kv, head_dim, v_dim if v_dim != head_dim else None, kv_lora, rope, index
    )


def _experts(cfg: _Config, inter: int | None, mt: str = "") -> Experts | None:
    ffn = cfg.get("ffn_config")
    routed = cfg.num("num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts",
                     "n_experts")  # fmt: skip
    k = cfg.num("num_experts_per_tok", "num_experts_per_token", "moe_top_k", "top_k",
                "experts_per_token", "num_selected_experts", "moe_topk")  # fmt: skip
    if isinstance(ffn, Mapping):  # DBRX
        routed = routed or positive_int(ffn, "moe_num_experts")
        k = k or positive_int(ffn, "moe_top_k")
    if not routed or routed < 2:
        return None
    moe_inter = cfg.num("moe_intermediate_size", "expert_intermediate_size")
    shared_inter = cfg.num("shared_expert_intermediate_size")
    n_shared = cfg.count("n_shared_experts", "num_shared_experts", "shared_experts") or 0
    if shared_inter and not n_shared:
        n_shared = 1
    if not n_shared and mt.startswith("llama4"):
        n_shared = 1  # Llama4TextMoe always adds one shared expert beside the routed ones
    if n_shared and not shared_inter and (moe_inter or inter):
        shared_inter = n_shared * (moe_inter or inter or 0)
    return Experts(routed, n_shared, k, moe_inter or inter, shared_inter)


def _sparse_steps(cfg: _Config, n: int, key: str, experts: Experts | None) -> list[str]:
    """Switch Transformers: every ``*_sparse_step``-th layer of a stack is MoE."""
    if experts is None:
        return ["dense"] * n
    step = cfg.num(key)
    if step is None:
        return ["moe"] * n
    return ["moe" if (i + 1) % step == 0 else "dense" for i in range(n)]


_LAYER_TYPE = {
    "full_attention": "full_attention",
    "attention": "full_attention",
    "global": "full_attention",
    "sliding_attention": "sliding_attention",
    "local": "sliding_attention",
    "window_attention": "sliding_attention",
    "chunked_attention": "chunked_attention",
    "indexed_attention": "full_attention",  # DeepSeek sparse attention: full K/V + indexer keys
    "linear_attention": "linear_attention",
    "mamba": "state_space",
    "mamba2": "state_space",
    "conv": "conv",
    "hybrid": "hybrid",
    "moe": "none",
    "mlp": "none",
    "sparse": "none",
    "dense": "none",
}


def _decoder_layers(
    cfg: _Config,
    model_type: str | None,
    n: int,
    attn: Attention,
    hidden: int | None,
    experts: Experts | None,
    notes: list[str],
) -> list[Layer]:
    mixers, ffn = _mixers(cfg, model_type, n, notes)
    moe = _moe_layers(cfg, model_type, n, experts, notes)
    window = cfg.num("sliding_window", "window_size", "local_window_size")
    chunk = cfg.num("attention_chunk_size")
    state = _state(cfg, model_type, hidden)
    sources = _kv_sources(cfg, model_type or "", mixers, notes)
    # CpmAntAttention prepends its prompt_length learned prompt tokens to every layer's K/V.
    prefix = (cfg.count("prompt_length") or 0) if model_type == "cpmant" else 0
    out = []
    for i in range(n):
        mixer = mixers[i]
        w = {"sliding_attention": window, "chunked_attention": chunk}.get(mixer)
        if mixer == "sliding_attention" and w is None:
            notes.append("a layer slides but sliding_window is missing: priced as full attention")
            mixer = "full_attention"
        if mixer == "chunked_attention" and w is None:
            mixer = "full_attention"
        f = ffn[i] if ffn is not None and ffn[i] else ("moe" if i in moe else "dense")
        has_attention = mixer in ATTENTION_MIXERS
        out.append(
            Layer(
                i,
                mixer,
                f,
                window=w,
                attention=_layer_attention(cfg, model_type or "", i, mixer, attn)
                if has_attention
                else None,
                state=state.get(mixer) if mixer in STATE_MIXERS else None,
                kv_source=sources[i] if has_attention else None,
                prefix_tokens=prefix if has_attention else 0,
            )
        )
    return out


def _layer_attention(cfg: _Config, mt: str, i: int, mixer: str, attn: Attention) -> Attention:
    """A layer's own attention where the config (or its class) gives layers their own sizes."""
    per_layer = cfg.get("per_layer_config")  # Gemma 4: {"5": {"head_dim": 512}, ...}
    if isinstance(per_layer, Mapping):
        over = per_layer.get(str(i), per_layer.get(i))
        if isinstance(over, Mapping):
            attn = replace(
                attn,
                head_dim=positive_int(over, "head_dim") or attn.head_dim,
                kv_heads=positive_int(over, "num_key_value_heads") or attn.kv_heads,
            )
    elif mt.startswith("gemma4") and mixer == "full_attention":
        # Gemma4TextConfig: global layers get global_head_dim (512) and, with
        # attention_k_eq_v, num_global_key_value_heads.
        kv = cfg.num("num_global_key_value_heads")
        if cfg.flag("attention_k_eq_v") is False:
            kv = None
        head_dim = cfg.num("global_head_dim") or 512
        attn = replace(attn, head_dim=head_dim, kv_heads=kv or attn.kv_heads)
    if mt.startswith("mimo_v2") and mixer == "sliding_attention" and attn.kv_heads:
        attn = replace(attn, kv_heads=2 * attn.kv_heads)  # MiMoV2Attention: SWA doubles KV heads
    indexers = cfg.strings("indexer_types")
    if indexers is None and mt == "hy_v4":  # HYV4Config's default: a full indexer every 4th
        indexers = ["full" if j == 0 or (j - 1) % 4 == 0 else "shared" for j in range(i + 1)]
    if attn.index_head_dim and indexers and i < len(indexers) and indexers[i] == "shared":
        attn = replace(attn, index_head_dim=None)  # reuses an earlier layer's top-k
    rope = cfg.ints("no_rope_layers")
    if attn.kv_lora_rank is not None and rope and i < len(rope) and rope[i] == 0:
        attn = replace(attn, qk_rope_head_dim=0)  # an MLA NoPE layer caches no RoPE key
    return attn


def _kv_sources(cfg: _Config, mt: str, mixers: Sequence[str], notes: list[str]) -> list[int | None]:
    """For each layer, the earlier layer whose K/V it reads, or None when it caches its own."""
    n = len(mixers)
    out: list[int | None] = [None] * n
    src = cfg.ints("kv_source_layers")  # Mistral Large 4
    if src is not None and len(src) == n:
        out = [s if s != i and 0 <= s < i else None for i, s in enumerate(src)]
    shared = cfg.count("num_kv_shared_layers")  # Gemma 3n, Gemma 4: the last N layers reuse
    if shared and 0 < shared <= n:
        first = n - shared
        for i in range(first, n):
            same = [j for j in range(first) if mixers[j] == mixers[i]]
            out[i] = same[-1] if same else None
    if any(s is not None for s in out):
        k = sum(s is not None for s in out)
        notes.append(f"{k} layers reuse an earlier layer's K/V and cache nothing of their own")
    return out


def _mixers(
    cfg: _Config, model_type: str | None, n: int, notes: list[str]
) -> tuple[list[str], list[str] | None]:
    """The mixer of each decoder layer, and the FFN where the pattern says it (NemotronH)."""
    mt = model_type or ""
    types = cfg.strings("layer_types") or cfg.strings("layers_block_type")
    if types and len(types) == n:
        mixers = [_LAYER_TYPE.get(t, "full_attention") for t in types]
        unknown = sorted({t for t in types if t not in _LAYER_TYPE})
        if unknown:
            notes.append(f"layer types {', '.join(unknown)} read as full attention")
        if mt.startswith("zamba") and "hybrid" in types:
            mixers = ["hybrid" if t == "hybrid" else "state_space" for t in types]
        if mt.startswith("nemotron_h") or set(types) <= {"mamba", "attention", "mlp", "moe"}:
            return _nemotron(types)
        if mt.startswith(("mamba", "falcon_mamba")) or mt == "mamba2":
            mixers = ["state_space"] * n
        return mixers, None
    pattern = cfg.get("hybrid_override_pattern")
    if isinstance(pattern, str) and len(pattern) == n:  # NemotronH: M mamba, * attention, - MLP
        names = {"M": "mamba", "*": "attention", "-": "mlp", "E": "moe"}
        return _nemotron([names.get(c, "mlp") for c in pattern])
    if mt in ("mamba", "falcon_mamba", "mamba2"):
        return ["state_space"] * n, None
    if mt.startswith("rwkv"):
        return ["recurrent"] * n, None
    if mt == "falcon_h1":
        return ["hybrid"] * n, None
    period, offset = cfg.num("attn_layer_period"), cfg.count("attn_layer_offset")
    if period is not None and offset is not None:  # Jamba
        return ["full_attention" if i % period == offset else "state_space" for i in range(n)], None
    indices = cfg.ints("attn_layer_indices")
    if indices is not None:  # Bamba
        return ["full_attention" if i in indices else "state_space" for i in range(n)], None
    idxs = cfg.ints("full_attn_idxs")
    if idxs is not None:  # LFM2
        return ["full_attention" if i in idxs else "conv" for i in range(n)], None
    kda = _mapping(cfg.get("linear_attn_config"))
    if kda is not None and isinstance(kda.get("kda_layers"), list):  # Kimi Linear, 1-indexed
        linear = {x - 1 for x in kda["kda_layers"] if is_int(x)}
        return ["linear_attention" if i in linear else "full_attention" for i in range(n)], None
    if mt == "minimax" and not types:  # MiniMaxConfig: lightning attention on odd layers
        return ["full_attention" if (i + 1) % 2 else "linear_attention" for i in range(n)], None
    interval = cfg.num("full_attention_interval")
    if interval is not None and mt.startswith("qwen3_next"):
        return [
            "full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(n)
        ], None
    return _attention_pattern(cfg, mt, n, notes), None


def _nemotron(types: Sequence[str]) -> tuple[list[str], list[str]]:
    mixers, ffn = [], []
    for t in types:
        if t in ("mamba", "linear_attention"):
            mixers.append("state_space")
            ffn.append("none")
        elif t in ("attention", "full_attention"):
            mixers.append("full_attention")
            ffn.append("none")
        else:
            mixers.append("none")
            ffn.append("moe" if t == "moe" else "dense")
    return mixers, ffn


def _attention_pattern(cfg: _Config, mt: str, n: int, notes: list[str]) -> list[str]:
    """Full, sliding or chunked attention per layer, as the config class decides it."""
    window = cfg.num("sliding_window")
    chunk = cfg.num("attention_chunk_size")
    if chunk is not None and mt.startswith("llama4"):
        nope = cfg.ints("no_rope_layers")
        if not nope:  # [] or missing: Llama4TextConfig's default, a NoPE layer every 4th
            interval = cfg.num("no_rope_layer_interval") or 4
            nope = [int((i + 1) % interval != 0) for i in range(n)]
            notes.append(
                f"chunked attention on 3 of every {interval} layers (Llama 4's default "
                "no_rope_layers)"
            )
        return ["chunked_attention" if i < len(nope) and nope[i] else "full_attention"
                for i in range(n)]  # fmt: skip
    if window is None:
        return ["full_attention"] * n
    if cfg.flag("use_sliding_window") is False:
        notes.append("sliding_window ignored: use_sliding_window is false")
        return ["full_attention"] * n
    max_window = cfg.count("max_window_layers")
    if mt == "qwen2_moe":  # Qwen2MoeConfig: odd-numbered layers below max_window_layers slide
        on = cfg.flag("use_sliding_window") is True
        limit = n if max_window is None else max_window
        return ["sliding_attention" if on and (i + 1) % 2 and i < limit else "full_attention"
                for i in range(n)]  # fmt: skip
    if cfg.flag("use_sliding_window") is True and max_window is not None:
        # Qwen2 / Qwen3: layers from max_window_layers on slide.
        return ["sliding_attention" if i >= max_window else "full_attention" for i in range(n)]
    pattern = cfg.num("sliding_window_pattern", "_sliding_window_pattern")
    if pattern is None and mt.startswith("gemma3"):
        pattern = 6
        notes.append("5 sliding layers per global one (Gemma 3's default sliding_window_pattern)")
    if pattern is None and mt.startswith("cohere2"):
        pattern = 4
        notes.append("3 sliding layers per global one (Cohere 2's default)")
    if pattern is not None:
        return ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n)]
    if mt.startswith(("gemma2", "gpt_oss", "vaultgemma", "t5gemma")):
        # Their config classes' default layer_types: even-indexed layers slide.
        if not mt.startswith("gemma2"):
            notes.append("sliding attention on alternate layers (the config class's default)")
        return ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n)]
    if mt.startswith(("qwen2", "qwen3")) and cfg.flag("use_sliding_window") is not True:
        return ["full_attention"] * n  # Qwen: sliding_window is stated but off by default
    return ["sliding_attention"] * n  # Mistral 7B v0.1 and friends: every layer slides


def _moe_layers(
    cfg: _Config, mt: str | None, n: int, experts: Experts | None, notes: list[str]
) -> set[int]:
    if experts is None:
        return set()
    only_dense = set(cfg.ints("mlp_only_layers") or [])
    step = cfg.num("decoder_sparse_step")
    if step is not None:  # Qwen2-MoE / Qwen3-MoE
        return {i for i in range(n) if (i + 1) % step == 0 and i not in only_dense}
    k = cfg.count("first_k_dense_replace")
    freq = cfg.num("moe_layer_freq")
    if k is not None or freq is not None:  # DeepSeek
        return {i for i in range(n) if i >= (k or 0) and i % (freq or 1) == 0}
    inter = cfg.num("interleave_moe_layer_step")
    if inter is not None:  # Llama 4
        layers = cfg.ints("moe_layers")
        return set(layers) if layers else set(range(inter - 1, n, inter))
    period, offset = cfg.num("expert_layer_period"), cfg.count("expert_layer_offset")
    if period is not None and offset is not None:  # Jamba
        return {i for i in range(n) if i % period == offset}
    return set(range(n)) - only_dense


def _state(cfg: _Config, mt: str | None, hidden: int | None) -> dict[str, State]:
    """Per-sequence state elements of each stateful mixer kind (one layer's)."""
    out: dict[str, State] = {}
    h = hidden or 0
    mt = mt or ""
    # Mamba-2 style (Mamba2, Bamba, Falcon-H1, NemotronH, Zamba2): heads x head_dim x state.
    m_heads = (
        cfg.num("mamba_n_heads", "mamba_num_heads")
        or (
            cfg.num("n_mamba_heads") if mt == "zamba2" else None  # Zamba (v1) is Mamba-1 style
        )
        or (cfg.num("num_heads") if mt == "mamba2" else None)
    )
    m_head_dim = cfg.num("mamba_d_head", "mamba_head_dim", "mamba_headdim") or (
        cfg.num("head_dim") if mt == "mamba2" else None
    )
    d_state = cfg.num("mamba_d_state", "ssm_state_size", "state_size")
    d_conv = cfg.num("mamba_d_conv", "conv_kernel", "d_conv")
    expand = cfg.num("mamba_expand", "expand")
    groups = cfg.num("mamba_n_groups", "n_groups", "mamba_ngroups") or 1
    d_ssm = cfg.num("mamba_d_ssm")
    if m_heads and not m_head_dim and expand and h and (expand * h) % m_heads == 0:
        m_head_dim = expand * h // m_heads  # mamba_d_head "auto"
    inner = d_ssm or (m_heads * m_head_dim if m_heads and m_head_dim else None)
    if inner is None and expand:
        inner = expand * h
    if mt == "mamba":
        inner = cfg.num("intermediate_size") or inner
    if d_state and d_conv and inner:
        if m_heads and m_head_dim:  # Mamba2: conv over x, B and C; SSM per head
            conv = (inner + 2 * groups * d_state) * d_conv
            ssm = m_heads * m_head_dim * d_state
        else:  # Mamba (Jamba's too): conv over x; SSM per channel
            conv = inner * d_conv
            ssm = inner * d_state
        out["state_space"] = State(conv + ssm, (("conv", conv), ("ssm", ssm)))
        out["hybrid"] = out["state_space"]
    # Gated DeltaNet (Qwen3-Next): conv over q, k, v; a k_dim x v_dim state per value head.
    kh, vh = cfg.num("linear_num_key_heads"), cfg.num("linear_num_value_heads")
    kd, vd = cfg.num("linear_key_head_dim"), cfg.num("linear_value_head_dim")
    ck = cfg.num("linear_conv_kernel_dim")
    if kh and vh and kd and vd and ck:
        conv = (2 * kh * kd + vh * vd) * ck
        rec = vh * kd * vd
        out["linear_attention"] = State(conv + rec, (("conv", conv), ("recurrent", rec)))
    # Kimi Delta Attention: short convs over q, k and v; a head_dim x head_dim state per head.
    kda = _mapping(cfg.get("linear_attn_config")) or {}
    lh = cfg.num("linear_num_heads") or positive_int(kda, "num_heads")
    ld = cfg.num("linear_head_dim") or positive_int(kda, "head_dim")
    lk = ck or positive_int(kda, "short_conv_kernel_size")
    if "linear_attention" not in out and lh and ld and lk:
        conv, rec = 3 * lh * ld * lk, lh * ld * ld
        out["linear_attention"] = State(conv + rec, (("conv", conv), ("recurrent", rec)))
    if mt == "minimax":  # lightning attention: a head_dim x head_dim state per head
        heads = cfg.num("num_attention_heads")
        hd = cfg.num("head_dim") or (h // heads if heads and h % heads == 0 else None)
        if heads and hd:
            out["linear_attention"] = State(heads * hd * hd, (("recurrent", heads * hd * hd),))
    if "linear_attention" not in out and "state_space" in out:
        out["linear_attention"] = out["state_space"]  # transformers 5 calls Mamba layers so
    lc = cfg.num("conv_L_cache")
    if lc and h:  # LFM2 short convolutions
        out["conv"] = State(h * lc, (("conv", h * lc),))
    if mt.startswith("rwkv") and h:
        att = cfg.num("attention_hidden_size") or h
        # RWKV v4: the shifted input of time and channel mixing, and the WKV numerator,
        # denominator and running maximum: five vectors per layer.
        out["recurrent"] = State(2 * h + 3 * att, (("shift", 2 * h), ("wkv", 3 * att)))
    own = {"state_space": d_conv, "hybrid": d_conv, "conv": lc, "linear_attention": ck or lk}
    if out.get("linear_attention") is out.get("state_space"):
        own["linear_attention"] = d_conv
    return {
        k: replace(s, conv_kernel=own.get(k)) if any(p == "conv" for p, _ in s.parts) else s
        for k, s in out.items()
    }


# --------------------------------------------------------------------------------------
# Tensors: a cross-check, and the description when there is no config

_LAYER = r"(?:^|\.)(?:layers|h|blocks|layer|blk|block)\.(\d+)\."
_EXPERT = r"(?:^|\.)(?:experts|block_sparse_moe|moe|ffn_(?:gate|up|down)_exps)(?:\.|$)"
_MAMBA = r"(?:^|\.)(?:mamba|mixer\.A_log|A_log|ssm_a|conv1d|ssm_conv1d)(?:\.|$)"
_ATTN = r"(?:^|\.)(?:self_attn|attention|attn|self_attention|attn_q|attn_qkv)(?:\.|$)"


def _from_tensors(
    tensors: Sequence[TensorInfo],
    names: Sequence[str] | None = None,
    keys: Sequence[Hashable] | None = None,
) -> ModelDescription:
    """No config: what the tensors say (layers, which hold experts or attention).

    The patterns read a name's digits only as digits (``conv1d``'s too, a shape of its own:
    :func:`paramtool.analysis.anatomy.shape_keys`): names of one shape match alike, at one
    place, so each shape is matched once, at its first name."""
    from paramtool.analysis.anatomy import shape_keys

    if names is None or keys is None:
        names = [t.name for t in tensors]
        keys = shape_keys(names)
    shapes = keys
    layer, expert, mamba, attn = map(re.compile, (_LAYER, _EXPERT, _MAMBA, _ATTN))
    cut: dict[Hashable, slice] = {}
    kinds: dict[Hashable, tuple[bool, bool, bool]] = {}
    for shape, name in dict(zip(reversed(shapes), reversed(names), strict=True)).items():
        m = layer.search(name)
        cut[shape] = slice(*m.span(1)) if m else _NOTHING
        kinds[shape] = (
            bool(expert.search(name)),
            bool(mamba.search(name)),
            bool(attn.search(name)),
        )
    by_layer: dict[int, list[tuple[bool, bool, bool]]] = {}
    texts = map(str.__getitem__, names, map(cut.__getitem__, shapes))
    for text, shape in dict.fromkeys(zip(texts, shapes, strict=True)):
        if text:
            by_layer.setdefault(int(text), []).append(kinds[shape])
    if not by_layer:
        return ModelDescription(kind="decoder", source="none")
    layers = []
    for i in sorted(by_layer):
        found = by_layer[i]
        moe = any(k[0] for k in found)
        if any(k[1] for k in found):
            mixer = "hybrid" if any(k[2] for k in found) else "state_space"
        elif any(k[2] for k in found):
            mixer = "full_attention"
        else:
            mixer = "none"
        layers.append(Layer(i, mixer, "moe" if moe else "dense"))
    return ModelDescription(
        kind="decoder",
        stacks=(Stack("decoder", tuple(layers)),),
        source="tensors",
        notes=("no config.json: layers read from the tensor names",),
    )


_NOTHING = slice(0, 0)


def _expert_layer_span(name: str) -> tuple[int, int] | None:
    """Where the layer number of an expert's tensor sits in ``name``; None if not one."""
    if not re.search(_EXPERT, name):
        return None
    m = re.search(_LAYER, name)
    return m.span(1) if m else None


def _cross_check(
    desc: ModelDescription,
    tensors: Sequence[TensorInfo],
    names: Sequence[str] | None = None,
    keys: Sequence[Hashable] | None = None,
) -> ModelDescription:
    """Where the config says nothing about experts, the tensors decide which layers hold them.

    ``names`` and ``keys``: the tensors' names and their shapes
    (:func:`paramtool.analysis.anatomy.shape_keys`), when the caller has them."""
    if not tensors or desc.main is None or desc.experts is None:
        return desc
    if names is None or keys is None:
        from paramtool.analysis.anatomy import shape_keys

        names = [t.name for t in tensors]
        keys = shape_keys(names)
    # The layers holding a tensor named as an expert's. Both patterns read a name's digits
    # only as digits: names alike but for them (one shape) match alike, at one place, so
    # each shape is matched once, at its first name; the layer numbers as written are
    # then cut from every name of the shapes that match (in C), and read once each.
    cut = {}
    for key, name in dict(zip(reversed(keys), reversed(names), strict=True)).items():
        span = _expert_layer_span(name)
        cut[key] = _NOTHING if span is None else slice(*span)
    texts = set(map(str.__getitem__, names, map(cut.__getitem__, keys)))
    texts.discard("")
    found = {int(text) for text in texts}
    stated = set(desc.moe_layers)
    n = len(desc.main.layers)
    found = {i for i in found if i < n}
    if not found or found == stated:
        return desc
    layers = tuple(
        replace(la, ffn="moe" if la.index in found else ("dense" if la.ffn == "moe" else la.ffn))
        for la in desc.main.layers
    )
    stacks = tuple(replace(s, layers=layers) if s is desc.main else s for s in desc.stacks)
    note = (
        f"the tensors hold experts in {len(found)} layers, the config implies {len(stated)}: "
        "the tensors are followed"
    )
    return replace(desc, stacks=stacks, notes=(*desc.notes, note))
