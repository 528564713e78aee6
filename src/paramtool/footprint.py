"""What a model costs to hold: weights at every precision, KV cache, serving, training, GPU fit.

Pure arithmetic over exact integers (``Fraction`` where a rate is not whole);
no typer, no rich. Every formula and default is documented in
``docs/footprint.md`` with its source; the short form:

* weights  = ceil(parameters * bits_per_weight / 8)          (``dtypes`` table)
* KV cache = 2 * layers * kv_heads * head_dim * tokens * batch * bytes
  (MLA: (kv_lora_rank + qk_rope_head_dim) instead of 2 * kv_heads * head_dim;
  sliding-window layers hold min(context, window) tokens)
* serving  = weights + KV cache + overhead (default 20% of the weights:
  EleutherAI, "Transformer Math 101": inference memory ~ 1.2 x model memory)
* training = weights + gradients + fp32 master copy + optimizer states per
  trainable parameter (16 bytes for bf16 mixed-precision AdamW), ZeRO-sharded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

from paramtool import dtypes
from paramtool.dtypes import DType
from paramtool.errors import UsageError
from paramtool.gpus import Gpu
from paramtool.units import parse_size

# The precisions listed when no --dtype is given (issue 3), in the table's names.
DEFAULT_PRECISIONS: tuple[str, ...] = (
    "F32", "TF32", "F16", "BF16", "F8_E4M3", "F8_E5M2", "I8", "INT4",
    "NF4", "NF4-DQ", "FP4",
    "INT4-G32", "INT4-G32-ZP", "INT4-G64", "INT4-G64-ZP", "INT4-G128", "INT4-G128-ZP",
    "MXFP4", "NVFP4",
    "Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K", "IQ4_XS",
)  # fmt: skip

DEFAULT_OVERHEAD = "20%"
DEFAULT_KV_DTYPE = "BF16"
DEFAULT_LORA_RANK = 16
DEFAULT_LORA_TARGETS = "all-linear"
MAX_GPUS = 4096  # how far the search for "GPUs needed" goes

TRAIN_METHODS = ("full", "lora", "qlora")
OPTIMIZERS = ("adamw", "adamw8bit", "sgd")
ACTIVATIONS = ("none", "full", "flash", "recompute")

# Optimizer state bytes per trainable parameter (EleutherAI, Transformer Math 101):
# AdamW keeps momentum and variance in fp32; bitsandbytes 8-bit Adam one byte each
# (its per-block absmax, < 0.01 byte/param, not counted); SGD with momentum one fp32.
OPTIMIZER_STATE_BYTES = {"adamw": 8, "adamw8bit": 2, "sgd": 4}

LORA_MODULES = ("q", "k", "v", "o", "gate", "up", "down")
LORA_PRESETS = {
    "all-linear": LORA_MODULES,
    "attention": ("q", "k", "v", "o"),
    "mlp": ("gate", "up", "down"),
    "qv": ("q", "v"),
}


# --------------------------------------------------------------------------- model dims


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
        layers = _first_int(cfg, "num_hidden_layers", "n_layer", "n_layers", "num_layers")
        heads = _first_int(cfg, "num_attention_heads", "n_head", "n_heads", "num_heads")
        hidden = _first_int(cfg, "hidden_size", "n_embd", "d_model", "dim")
        kv_heads = _first_int(
            cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv", "n_kv_heads",
            "multi_query_group_num",
        )  # fmt: skip
        if kv_heads is None and cfg.get("multi_query") is True:
            kv_heads = 1
        head_dim = _first_int(cfg, "head_dim", "kv_channels")
        inter = _first_int(cfg, "intermediate_size", "ffn_hidden_size", "n_inner", "ffn_dim")
        vocab = _first_int(cfg, "vocab_size", "padded_vocab_size")
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

        experts = _first_int(cfg, "num_local_experts", "n_routed_experts", "num_experts") or 0
        moe_inter = _first_int(cfg, "moe_intermediate_size")
        shared = _first_int(cfg, "shared_expert_intermediate_size") or 0
        n_shared = _first_int(cfg, "n_shared_experts")
        if not shared and n_shared and (moe_inter or inter):
            shared = n_shared * (moe_inter or inter or 0)
        dense = (_first_int(cfg, "first_k_dense_replace") or 0) if experts else 0

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
            kv_lora_rank=_first_int(cfg, "kv_lora_rank"),
            qk_rope_head_dim=_first_int(cfg, "qk_rope_head_dim"),
            q_lora_rank=_first_int(cfg, "q_lora_rank"),
            qk_nope_head_dim=_first_int(cfg, "qk_nope_head_dim"),
            v_head_dim=_first_int(cfg, "v_head_dim"),
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


def _first_int(cfg: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = cfg.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _windows(cfg: Mapping[str, Any], layers: int | None, notes: list[str]) -> tuple:
    """Which layers attend only to a window of recent tokens, as transformers decides it."""
    window = _first_int(cfg, "sliding_window")
    chunk = _first_int(cfg, "attention_chunk_size")
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
    max_window_layers = _first_int(cfg, "max_window_layers")
    if cfg.get("use_sliding_window") is True and max_window_layers is not None:
        # Qwen2: layers from max_window_layers on use the window.
        n = max(0, layers - max_window_layers)
    elif (pattern := _first_int(cfg, "sliding_window_pattern")) is not None:
        # Gemma 3 / Cohere 2: every pattern-th layer is global, the others slide.
        n = sum(1 for i in range(layers) if (i + 1) % pattern)
    elif str(cfg.get("model_type", "")).startswith("gemma2"):
        n = (layers + 1) // 2  # Gemma 2: even layers slide, odd layers are global
    else:
        n = layers  # Mistral 7B v0.1 and friends: every layer slides
    return ((window, n),) if n else ()


# --------------------------------------------------------------------------- precisions


@dataclass(frozen=True, slots=True)
class PrecisionRow:
    """The weights of ``parameters`` at one precision."""

    dtype: DType
    parameters: int

    @property
    def bits_per_parameter(self) -> float:
        return self.dtype.bits

    @property
    def weights_bytes(self) -> int:
        return self.dtype.estimate_nbytes(self.parameters)


def precision_rows(parameters: int, names: Sequence[str] | None = None) -> tuple[PrecisionRow, ...]:
    """One row per precision: the issue's list by default, or the named ones."""
    chosen = [dtypes.lookup(n) for n in (names or DEFAULT_PRECISIONS)]
    return tuple(PrecisionRow(d, parameters) for d in chosen)


# --------------------------------------------------------------------------- KV cache


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
        raise UsageError("--context/--batch", "must be at least 1")
    missing = []
    if dims.layers is None:
        missing.append("layers (--layers)")
    if not dims.is_mla:
        if dims.kv_heads is None:
            missing.append("KV heads (--kv-heads)")
        if dims.head_dim is None:
            missing.append("head_dim (--head-dim)")
    if missing:
        raise UsageError(
            "--context",
            "the KV cache needs the model's "
            + ", ".join(missing)
            + ": give a checkpoint with a config.json or the flags",
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


# --------------------------------------------------------------------------- overhead


@dataclass(frozen=True, slots=True)
class Overhead:
    """What serving needs beyond weights and KV cache: CUDA context, activations, fragmentation.

    Either a fraction of the weights (it shards with them) or a fixed size per GPU.
    """

    fraction: Fraction | None = None
    bytes_per_gpu: int | None = None
    text: str = DEFAULT_OVERHEAD

    def per_gpu(self, weights_bytes: int, gpus: int = 1) -> int:
        if self.bytes_per_gpu is not None:
            return self.bytes_per_gpu
        assert self.fraction is not None
        return -(-self.fraction.numerator * weights_bytes // (self.fraction.denominator * gpus))


def parse_overhead(text: str) -> Overhead:
    """``20%`` (of the weights), ``0.2`` (the same), ``2GB`` or ``1.5GiB`` (per GPU)."""
    t = (text or "").strip()
    if t.endswith("%") or _is_plain_number(t):
        try:
            value = (
                Fraction(Decimal(t[:-1].strip())) / 100 if t.endswith("%") else Fraction(Decimal(t))
            )
        except (InvalidOperation, ValueError, OverflowError):
            raise UsageError(f"--overhead {text!r}", "write it like 20%, 2GB or 1.5GiB") from None
        if not 0 <= value <= 10:
            raise UsageError(f"--overhead {text!r}", "a share of the weights between 0% and 1000%")
        return Overhead(fraction=value, text=t)
    try:
        size = parse_size(t)
    except UsageError:
        raise UsageError(f"--overhead {text!r}", "write it like 20%, 2GB or 1.5GiB") from None
    return Overhead(bytes_per_gpu=size, text=t)


def _is_plain_number(t: str) -> bool:
    try:
        value = Decimal(t)
    except InvalidOperation:
        return False
    return value.is_finite() and value <= 10 and "e" not in t.lower()


# --------------------------------------------------------------------------- training


@dataclass(frozen=True, slots=True)
class Training:
    """Memory to train: full fine-tuning, LoRA or QLoRA, optionally ZeRO-sharded."""

    method: str  # full | lora | qlora
    optimizer: str
    dtype: DType  # trained weights (full) or the frozen base (lora, qlora)
    zero: int
    gpus: int
    trainable_parameters: int
    frozen_parameters: int
    lora_rank: int | None
    lora_targets: tuple[str, ...]
    weights_bytes: int  # every weight: frozen base and trainable
    gradients_bytes: int
    master_bytes: int  # fp32 copy of trainable 16-bit weights
    optimizer_bytes: int
    activations: str  # none | full | flash | recompute
    activations_bytes_per_gpu: int | None
    trainable_weights_bytes: int  # the part of weights_bytes that is trained
    notes: tuple[str, ...] = ()

    @property
    def states_bytes(self) -> int:
        """Weights, gradients, master copy and optimizer states over all GPUs."""
        return self.weights_bytes + self.gradients_bytes + self.master_bytes + self.optimizer_bytes

    @property
    def total_bytes(self) -> int:
        """Everything over all GPUs (activations: one micro-batch per GPU)."""
        return self.states_bytes + (self.activations_bytes_per_gpu or 0) * self.gpus

    @property
    def bytes_per_trainable_parameter(self) -> Fraction:
        """Trained weight + gradient + master + optimizer, per trainable parameter."""
        if not self.trainable_parameters:
            return Fraction(0)
        trained = (
            self.trainable_weights_bytes + self.gradients_bytes + self.master_bytes
            + self.optimizer_bytes
        )  # fmt: skip
        return Fraction(trained, self.trainable_parameters)

    def per_gpu(self, gpus: int | None = None) -> dict[str, int]:
        """Bytes on each GPU by component, ZeRO stage applied (Rajbhandari et al. 2020).

        Stage 1 shards optimizer states and the fp32 master copy, stage 2 also the
        gradients, stage 3 also the weights (frozen ones included).
        """
        n = gpus or self.gpus

        def shard(b: int, stage: int) -> int:
            return -(-b // n) if self.zero >= stage else b

        out = {
            "weights": shard(self.weights_bytes, 3),
            "gradients": shard(self.gradients_bytes, 2),
            "master": shard(self.master_bytes, 1),
            "optimizer": shard(self.optimizer_bytes, 1),
            "activations": self.activations_bytes_per_gpu or 0,
        }
        return out

    def per_gpu_bytes(self, gpus: int | None = None) -> int:
        return sum(self.per_gpu(gpus).values())


def lora_parameters(dims: ModelDims, rank: int, targets: Sequence[str]) -> int:
    """Adapter parameters: ``rank * (d_in + d_out)`` per targeted linear, over all layers.

    LoRA (Hu et al. 2021) adds A (r x d_in) and B (d_out x r) beside each frozen W.
    """
    need: dict[str, int | None] = {"layers": dims.layers, "hidden_size": dims.hidden_size}
    attn = [t for t in targets if t in ("q", "k", "v", "o")]
    mlp = [t for t in targets if t in ("gate", "up", "down")]
    if attn:
        need["heads"] = dims.heads
    if attn and not dims.is_mla:
        need.update(kv_heads=dims.kv_heads, head_dim=dims.head_dim)
    if mlp:
        need["intermediate_size"] = dims.intermediate_size or dims.moe_intermediate_size
    missing = [k.replace("_", "-") for k, v in need.items() if v is None]
    if missing:
        raise UsageError(
            "--train lora/qlora",
            "the adapter size needs the model's "
            + ", ".join(missing)
            + ": give a checkpoint with a config.json or --"
            + ", --".join(missing),
        )
    layers, h = dims.layers or 0, dims.hidden_size or 0
    per_layer_attn = 0
    for t in attn:
        per_layer_attn += sum(rank * (i + o) for i, o in _attention_linears(dims, t))
    total = layers * per_layer_attn
    if mlp:
        per_mlp = len(mlp) * rank  # each of gate, up, down: r * (h + inter)
        dense_inter = dims.intermediate_size or dims.moe_intermediate_size or 0
        if dims.experts:
            moe_inter = dims.moe_intermediate_size or dense_inter
            moe_layers = layers - dims.dense_layers
            per_moe_layer = dims.experts * per_mlp * (h + moe_inter)
            if dims.shared_intermediate_size:
                per_moe_layer += per_mlp * (h + dims.shared_intermediate_size)
            total += moe_layers * per_moe_layer + dims.dense_layers * per_mlp * (h + dense_inter)
        else:
            total += layers * per_mlp * (h + dense_inter)
    return total


def _attention_linears(dims: ModelDims, target: str) -> list[tuple[int, int]]:
    """(d_in, d_out) of the projections a LoRA target adapts in one layer."""
    h, heads = dims.hidden_size or 0, dims.heads or 0
    if dims.is_mla:
        rope, latent = dims.qk_rope_head_dim or 0, dims.kv_lora_rank or 0
        nope = dims.qk_nope_head_dim or 0
        v_dim = dims.v_head_dim or nope
        qk = nope + rope
        if target == "q":  # q_a_proj + q_b_proj, or q_proj without a q latent
            if dims.q_lora_rank:
                return [(h, dims.q_lora_rank), (dims.q_lora_rank, heads * qk)]
            return [(h, heads * qk)]
        if target == "k":  # kv_a_proj_with_mqa
            return [(h, latent + rope)]
        if target == "v":  # kv_b_proj
            return [(latent, heads * (nope + v_dim))]
        return [(heads * v_dim, h)]  # o_proj
    hd, kv = dims.head_dim or 0, dims.kv_heads or 0
    return {
        "q": [(h, heads * hd)],
        "k": [(h, kv * hd)],
        "v": [(h, kv * hd)],
        "o": [(heads * hd, h)],
    }[target]


def parse_lora_targets(text: str) -> tuple[str, ...]:
    """``all-linear``, ``attention``, ``mlp``, ``qv`` or a list such as ``q,k,v,o``."""
    t = (text or "").strip().lower()
    if t in LORA_PRESETS:
        return LORA_PRESETS[t]
    parts = [p.strip().removesuffix("_proj") for p in t.split(",") if p.strip()]
    bad = [p for p in parts if p not in LORA_MODULES]
    if not parts or bad:
        raise UsageError(
            f"--lora-targets {text!r}",
            "use all-linear, attention, mlp, qv or a list of " + ",".join(LORA_MODULES),
        )
    return tuple(m for m in LORA_MODULES if m in parts)


def embedding_parameters(dims: ModelDims) -> int | None:
    """Input embedding plus (untied) output head: what bitsandbytes leaves unquantized."""
    if dims.vocab_size is None or dims.hidden_size is None:
        return None
    return dims.vocab_size * dims.hidden_size * (1 if dims.tie_word_embeddings else 2)


def activation_bytes(dims: ModelDims, mode: str, seq: int, batch: int) -> int:
    """Activations kept for the backward pass, per GPU (Korthikanti et al. 2022, eq. 1).

    Per layer, 16-bit, no tensor or sequence parallelism: ``s*b*h*(34 + 5*a*s/h)``
    bytes; ``flash`` drops the attention-matrix term ``5*a*s^2*b`` (FlashAttention
    recomputes it), ``recompute`` keeps only each layer's input, ``2*s*b*h``.
    """
    if dims.layers is None or dims.hidden_size is None or (mode == "full" and not dims.heads):
        raise UsageError(
            f"--activations {mode}",
            "needs the model's layers, hidden size and heads: a config.json or the flags",
        )
    s, b, h, a, n = seq, batch, dims.hidden_size, dims.heads or 0, dims.layers
    if mode == "recompute":
        return n * 2 * s * b * h
    per_layer = 34 * s * b * h
    if mode == "full":
        per_layer += 5 * a * s * s * b
    return n * per_layer


def training(
    parameters: int,
    method: str,
    *,
    dims: ModelDims | None = None,
    dtype: DType | None = None,
    optimizer: str = "adamw",
    zero: int = 0,
    gpus: int = 1,
    lora_rank: int = DEFAULT_LORA_RANK,
    lora_targets: Sequence[str] = LORA_PRESETS[DEFAULT_LORA_TARGETS],
    activations: str = "none",
    seq: int | None = None,
    batch: int = 1,
) -> Training:
    """Training memory for ``method`` (full, lora, qlora) with ``optimizer``."""
    if method not in TRAIN_METHODS:
        raise UsageError(f"--train {method!r}", "use full, lora or qlora")
    if optimizer not in OPTIMIZERS:
        raise UsageError(f"--optimizer {optimizer!r}", "use adamw, adamw8bit or sgd")
    if zero not in (0, 1, 2, 3):
        raise UsageError(f"--zero {zero}", "ZeRO stages are 0, 1, 2 and 3")
    if activations not in ACTIVATIONS:
        raise UsageError(f"--activations {activations!r}", "use none, full, flash or recompute")
    dims = dims or ModelDims()
    notes: list[str] = []
    if dtype is None:
        dtype = dtypes.lookup("NF4" if method == "qlora" else "BF16")
    state = OPTIMIZER_STATE_BYTES[optimizer]

    if method == "full":
        if dtype.name not in ("F32", "TF32", "F16", "BF16"):
            raise UsageError(
                f"--dtype {dtype.label}",
                "full fine-tuning trains fp32, bf16 or fp16 weights; for a quantized base "
                "use --train qlora",
            )
        wbytes = dtype.bytes_per_block  # per parameter: block of one
        weights = parameters * wbytes
        grads = parameters * wbytes
        master = parameters * 4 if wbytes == 2 else 0
        opt = parameters * state
        trainable, frozen, trainable_w = parameters, 0, weights
        rank = None
        targets: tuple[str, ...] = ()
    else:
        targets = tuple(lora_targets)
        trainable = lora_parameters(dims, lora_rank, targets)
        frozen = parameters
        rank = lora_rank
        base = _frozen_base_bytes(parameters, dims, dtype, method, notes)
        # PEFT upcasts adapter weights to fp32 (autocast_adapter_dtype=True): fp32
        # adapter weights and gradients, no separate master copy.
        trainable_w = trainable * 4
        weights = base + trainable_w
        grads = trainable * 4
        master = 0
        opt = trainable * state

    act = None
    if activations != "none":
        if seq is None:
            raise UsageError(
                f"--activations {activations}", "give the sequence length with --context"
            )
        act = activation_bytes(dims, activations, seq, batch)
    return Training(
        method=method,
        optimizer=optimizer,
        dtype=dtype,
        zero=zero,
        gpus=gpus,
        trainable_parameters=trainable,
        frozen_parameters=frozen,
        lora_rank=rank,
        lora_targets=targets,
        weights_bytes=weights,
        gradients_bytes=grads,
        master_bytes=master,
        optimizer_bytes=opt,
        activations=activations,
        activations_bytes_per_gpu=act,
        trainable_weights_bytes=trainable_w,
        notes=tuple(notes),
    )


def _frozen_base_bytes(
    parameters: int, dims: ModelDims, dtype: DType, method: str, notes: list[str]
) -> int:
    """The frozen base: all at ``dtype``; for QLoRA the embeddings stay 16-bit."""
    if method == "qlora":
        emb = embedding_parameters(dims)
        if emb is not None and emb < parameters:
            notes.append(
                f"QLoRA: {emb:,} embedding/output-head parameters stay bf16 "
                "(bitsandbytes quantizes linear layers only, and not lm_head)"
            )
            return dtype.estimate_nbytes(parameters - emb) + 2 * emb
        notes.append("QLoRA: every parameter counted at the 4-bit dtype (vocab size unknown)")
    return dtype.estimate_nbytes(parameters)


# --------------------------------------------------------------------------- GPU fit


@dataclass(frozen=True, slots=True)
class GpuFit:
    """Whether a workload fits on ``gpus`` of one GPU model, and how many it needs."""

    gpu: Gpu
    workload: str  # serving | training
    gpus: int  # the count evaluated
    requested: bool  # the count came from --gpus
    per_gpu_bytes: int
    gpus_needed: int | None  # smallest count that fits (serving: a power of two); None: none
    limited_by: str = ""  # why more GPUs do not help, when they do not

    @property
    def usable_bytes(self) -> int:
        return self.gpu.usable_bytes

    @property
    def headroom_bytes(self) -> int:
        """Usable minus needed, per GPU; negative when it does not fit."""
        return self.usable_bytes - self.per_gpu_bytes

    @property
    def fits(self) -> bool:
        return self.per_gpu_bytes <= self.usable_bytes


def serving_per_gpu(
    weights_bytes: int, kv: KVCache | None, overhead: Overhead, tensor_parallel: int
) -> int:
    """One GPU's share with tensor parallelism: weights and overhead split, KV by head."""
    kv_part = kv.per_gpu_bytes(tensor_parallel) if kv is not None else 0
    return (
        -(-weights_bytes // tensor_parallel)
        + kv_part
        + overhead.per_gpu(weights_bytes, tensor_parallel)
    )


def fit_serving(
    gpu: Gpu, weights_bytes: int, kv: KVCache | None, overhead: Overhead, gpus: int | None = None
) -> GpuFit:
    """Tensor-parallel serving: the smallest power-of-two GPU count that holds it."""
    needed = None
    tp = 1
    while tp <= MAX_GPUS:
        if serving_per_gpu(weights_bytes, kv, overhead, tp) <= gpu.usable_bytes:
            needed = tp
            break
        tp *= 2
    limited = ""
    if needed is None:
        floor = (kv.per_gpu_bytes(MAX_GPUS) if kv else 0) + (overhead.bytes_per_gpu or 0)
        if floor > gpu.usable_bytes:
            limited = "the KV cache share and fixed overhead alone exceed one GPU"
    count = gpus if gpus is not None else (needed or 1)
    return GpuFit(
        gpu=gpu,
        workload="serving",
        gpus=count,
        requested=gpus is not None,
        per_gpu_bytes=serving_per_gpu(weights_bytes, kv, overhead, count),
        gpus_needed=needed,
        limited_by=limited,
    )


def fit_training(
    gpu: Gpu, train: Training, extra_per_gpu: int = 0, gpus: int | None = None
) -> GpuFit:
    """Data-parallel training with ZeRO: the smallest GPU count that holds it.

    ``extra_per_gpu`` is a fixed allowance (``--overhead 2GB``) added on every GPU.
    """

    def load(n: int) -> int:
        return train.per_gpu_bytes(n) + extra_per_gpu

    needed = None
    if load(MAX_GPUS) <= gpu.usable_bytes:
        lo, hi = 1, MAX_GPUS
        while lo < hi:  # per-GPU load never grows with more GPUs
            mid = (lo + hi) // 2
            if load(mid) <= gpu.usable_bytes:
                hi = mid
            else:
                lo = mid + 1
        needed = lo
    limited = ""
    if needed is None or (needed > 1 and train.zero == 0):
        limited = {
            0: "ZeRO-0 keeps every byte on every GPU; shard with --zero 1/2/3",
            1: "ZeRO-1 shards only optimizer states; --zero 2 or 3 shards more",
            2: "ZeRO-2 keeps the weights on every GPU; --zero 3 shards them",
            3: "activations are per GPU and do not shard",
        }[train.zero]
    count = gpus if gpus is not None else (needed or train.gpus)
    return GpuFit(
        gpu=gpu,
        workload="training",
        gpus=count,
        requested=gpus is not None,
        per_gpu_bytes=load(count),
        gpus_needed=needed,
        limited_by=limited if needed is None else "",
    )


# --------------------------------------------------------------------------- the whole answer


@dataclass(frozen=True, slots=True)
class ServingRow:
    """One precision served: weights, KV cache and overhead, and the GPU fit if asked."""

    precision: PrecisionRow
    kv_cache_bytes: int
    overhead_bytes: int  # on one GPU
    fit: GpuFit | None = None

    @property
    def total_bytes(self) -> int:
        return self.precision.weights_bytes + self.kv_cache_bytes + self.overhead_bytes


@dataclass(frozen=True, slots=True)
class Footprint:
    """Everything ``paramtool footprint`` reports, for the tables and the JSON alike."""

    parameters: int
    source: str | None
    dims: ModelDims | None
    rows: tuple[ServingRow, ...]
    kv: KVCache | None
    overhead: Overhead
    training: Training | None
    training_fit: GpuFit | None
    gpu: Gpu | None
    gpus: int | None
    notes: tuple[str, ...]

    @property
    def precisions(self) -> tuple[PrecisionRow, ...]:
        return tuple(r.precision for r in self.rows)


def estimate(
    parameters: int,
    *,
    source: str | None = None,
    dims: ModelDims | None = None,
    dtype_names: Sequence[str] | None = None,
    context: int | None = None,
    batch: int = 1,
    kv_dtype: DType | None = None,
    overhead: Overhead | None = None,
    train: str | None = None,
    optimizer: str = "adamw",
    zero: int = 0,
    gpus: int | None = None,
    lora_rank: int = DEFAULT_LORA_RANK,
    lora_targets: Sequence[str] = LORA_PRESETS[DEFAULT_LORA_TARGETS],
    activations: str = "none",
    gpu: Gpu | None = None,
) -> Footprint:
    """Compute every section the options ask for."""
    if parameters < 1:
        raise UsageError("--params", "must be greater than zero")
    if batch < 1:
        raise UsageError(f"--batch {batch}", "must be at least 1")
    if gpus is not None and not 1 <= gpus <= MAX_GPUS:
        raise UsageError(f"--gpus {gpus}", f"must be between 1 and {MAX_GPUS}")
    if train is None and (zero or activations != "none"):
        raise UsageError("--zero/--activations", "only apply to --train")
    if lora_rank < 1:
        raise UsageError(f"--lora-rank {lora_rank}", "must be at least 1")
    notes: list[str] = list(dims.notes) if dims else []
    overhead = overhead or parse_overhead(DEFAULT_OVERHEAD)
    if train is not None:
        # Training: one dtype (the trained weights, or the frozen base); --context is
        # the sequence length for activations, not a KV cache.
        train_dtype = dtypes.lookup(dtype_names[0]) if dtype_names else None

        def build(n: int) -> Training:
            return training(
                parameters,
                train,
                dims=dims,
                dtype=train_dtype,
                optimizer=optimizer,
                zero=zero,
                gpus=n,
                lora_rank=lora_rank,
                lora_targets=lora_targets,
                activations=activations,
                seq=context,
                batch=batch,
            )

        tr = build(gpus or 1)
        tfit = None
        if gpu is not None:
            tfit = fit_training(gpu, tr, overhead.bytes_per_gpu or 0, gpus)
            if gpus is None and tfit.gpus != tr.gpus:
                tr = build(tfit.gpus)  # show the per-GPU split at the count that fits
        notes.extend(tr.notes)
        row = ServingRow(PrecisionRow(tr.dtype, parameters), 0, 0)
        return Footprint(
            parameters=parameters,
            source=source,
            dims=dims,
            rows=(row,),
            kv=None,
            overhead=overhead,
            training=tr,
            training_fit=tfit,
            gpu=gpu,
            gpus=gpus,
            notes=tuple(notes),
        )

    kv = None
    if context is not None:
        kv = kv_cache(dims or ModelDims(), context, batch, kv_dtype)
    rows = []
    for p in precision_rows(parameters, dtype_names):
        fit = None
        if gpu is not None:
            fit = fit_serving(gpu, p.weights_bytes, kv, overhead, gpus)
        rows.append(
            ServingRow(
                precision=p,
                kv_cache_bytes=kv.bytes if kv else 0,
                overhead_bytes=overhead.per_gpu(p.weights_bytes, 1),
                fit=fit,
            )
        )
    return Footprint(
        parameters=parameters,
        source=source,
        dims=dims,
        rows=tuple(rows),
        kv=kv,
        overhead=overhead,
        training=None,
        training_fit=None,
        gpu=gpu,
        gpus=gpus,
        notes=tuple(notes),
    )
