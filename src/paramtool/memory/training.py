"""Training memory: weights, gradients, optimizer states and activations.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from paramtool import dtypes
from paramtool.dtypes import DType
from paramtool.errors import UsageError
from paramtool.frozen import dataclass
from paramtool.memory.dims import ModelDims
from paramtool.memory.overhead import Overhead

DEFAULT_LORA_RANK = 16
DEFAULT_LORA_TARGETS = "all-linear"

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
    overhead: Overhead | None = None  # --overhead, when given: added on every GPU

    @property
    def states_bytes(self) -> int:
        """Weights, gradients, master copy and optimizer states over all GPUs."""
        return self.weights_bytes + self.gradients_bytes + self.master_bytes + self.optimizer_bytes

    @property
    def total_bytes(self) -> int:
        """Everything over all GPUs (activations and overhead: per GPU, on each)."""
        per_gpu_extra = (self.activations_bytes_per_gpu or 0) + self.overhead_per_gpu()
        return self.states_bytes + per_gpu_extra * self.gpus

    def overhead_per_gpu(self, gpus: int | None = None) -> int:
        """The ``--overhead`` allowance on one GPU: a fixed size, or a share of the weights
        that GPU holds (all of them, or 1/N under ZeRO-3); 0 when none was given."""
        if self.overhead is None:
            return 0
        n = gpus or self.gpus
        return self.overhead.per_gpu(self.weights_bytes, n if self.zero >= 3 else 1)

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
            "overhead": self.overhead_per_gpu(n),
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
    missing = [k for k, v in need.items() if v is None]
    if missing:
        raise UsageError(
            "lora/qlora",
            lambda p: "the adapter size needs the model's "
            + ", ".join(k.replace("_", "-") for k in missing)
            + ": give a checkpoint with a config.json or "
            + ", ".join(p(k) for k in missing),
            param="train",
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
            repr(text),
            "use all-linear, attention, mlp, qv or a list of " + ",".join(LORA_MODULES),
            param="lora_targets",
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
            mode,
            "needs the model's layers, hidden size and heads: a config.json or the flags",
            param="activations",
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
    overhead: Overhead | None = None,
) -> Training:
    """Training memory for ``method`` (full, lora, qlora) with ``optimizer``; ``overhead``
    (none by default) is added on every GPU."""
    if method not in TRAIN_METHODS:
        raise UsageError(repr(method), "use full, lora or qlora", param="train")
    if optimizer not in OPTIMIZERS:
        raise UsageError(repr(optimizer), "use adamw, adamw8bit or sgd", param="optimizer")
    if zero not in (0, 1, 2, 3):
        raise UsageError(str(zero), "ZeRO stages are 0, 1, 2 and 3", param="zero")
    if activations not in ACTIVATIONS:
        raise UsageError(
            repr(activations), "use none, full, flash or recompute", param="activations"
        )
    dims = dims or ModelDims()
    notes: list[str] = []
    if dtype is None:
        dtype = dtypes.lookup("NF4" if method == "qlora" else "BF16")
    state = OPTIMIZER_STATE_BYTES[optimizer]

    if method == "full":
        if dtype.name not in ("F32", "TF32", "F16", "BF16"):
            raise UsageError(
                dtype.label,
                lambda p: "full fine-tuning trains fp32, bf16 or fp16 weights; for a quantized "
                f"base use {p('train')} qlora",
                param="dtype",
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
                activations,
                lambda p: f"give the sequence length with {p('context')}",
                param="activations",
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
        overhead=overhead,
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
