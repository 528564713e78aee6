"""Header-exact checkpoint layouts of real models, and files that hold them.

A :class:`Layout` is the ordered ``(name, dtype, shape)`` list of a real
checkpoint, built from the values of its real ``config.json`` and using its real
Hugging Face tensor names, with the published parameter count it must add up to.

:func:`write_sparse_checkpoint` turns a layout into safetensors files whose
headers are byte-for-byte what the safetensors library would write and whose data
region is a hole, so a 405B checkpoint costs a few kB of disk.
:func:`make_checkpoint` writes small real files through the library itself.

Sources: the ``config.json`` of each Hugging Face repo named in ``Layout.name``;
parameter counts from the model cards, papers and the Hub's safetensors metadata
as noted next to each preset.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

Tensor = tuple[str, str, tuple[int, ...]]

# The safetensors Rust crate's Dtype enum, in declaration order. Its serializer writes
# data sorted by dtype, last in this order first, then by name (checked by the tests).
_DTYPE_ORDER = (
    "BOOL",
    "F4",
    "F6_E2M3",
    "F6_E3M2",
    "U8",
    "I8",
    "F8_E5M2",
    "F8_E4M3",
    "F8_E8M0",
    "F8_E4M3FNUZ",
    "F8_E5M2FNUZ",
    "I16",
    "U16",
    "F16",
    "BF16",
    "I32",
    "U32",
    "F32",
    "C64",
    "F64",
    "I64",
    "U64",
)
_DTYPE_RANK = {name: i for i, name in enumerate(_DTYPE_ORDER)}
BITS: Mapping[str, int] = MappingProxyType(
    {
        "BOOL": 8,
        "F4": 4,
        "F6_E2M3": 6,
        "F6_E3M2": 6,
        "U8": 8,
        "I8": 8,
        "F8_E5M2": 8,
        "F8_E4M3": 8,
        "F8_E8M0": 8,
        "F8_E4M3FNUZ": 8,
        "F8_E5M2FNUZ": 8,
        "I16": 16,
        "U16": 16,
        "F16": 16,
        "BF16": 16,
        "I32": 32,
        "U32": 32,
        "F32": 32,
        "C64": 64,
        "F64": 64,
        "I64": 64,
        "U64": 64,
    }
)
_FLOATS = frozenset(d for d in _DTYPE_ORDER if d[0] == "F" or d == "BF16")
_TORCH_DTYPES = {"bfloat16": "BF16", "float16": "F16", "float32": "F32"}
DEFAULT_METADATA: Mapping[str, str] = MappingProxyType({"format": "pt"})


def numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


def nbytes(dtype: str, shape: Sequence[int]) -> int:
    """Bytes of one tensor; sub-byte dtypes must fill whole bytes, as safetensors requires."""
    bits = numel(shape) * BITS[dtype]
    if bits % 8:
        raise ValueError(f"{dtype} tensor of shape {tuple(shape)} does not fill whole bytes")
    return bits // 8


@dataclass(frozen=True, slots=True)
class Layout:
    """One checkpoint's tensors in state-dict order, and the config they came from."""

    name: str  # the Hugging Face repo it mirrors
    tensors: list[Tensor]
    config: dict[str, Any]
    expected_parameters: int | None = None  # the published count `parameters` must equal
    shards: int = 1  # how many safetensors files the real repo has
    non_parameters: frozenset[str] = frozenset()  # stored buffers and quantization scales
    note: str = ""
    weights_name: str = "model.safetensors"
    config_name: str = "config.json"

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    @property
    def numel(self) -> int:
        """Elements of every stored tensor (what the Hub's "params" figure counts)."""
        return sum(numel(s) for _, _, s in self.tensors)

    @property
    def parameters(self) -> int:
        """Elements of the model's parameters: stored tensors less buffers and scales."""
        skip = self.non_parameters
        return sum(numel(s) for n, _, s in self.tensors if n not in skip)

    @property
    def nbytes(self) -> int:
        return sum(nbytes(d, s) for _, d, s in self.tensors)


class _Acc:
    """Collects (name, dtype, shape) rows in order."""

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype
        self.rows: list[Tensor] = []
        self.extra: set[str] = set()

    def add(self, name: str, *shape: int, dtype: str | None = None, extra: bool = False) -> None:
        self.rows.append((name, dtype or self.dtype, tuple(shape)))
        if extra:
            self.extra.add(name)

    def linear(self, prefix: str, out: int, inp: int, bias: bool = False) -> None:
        self.add(f"{prefix}.weight", out, inp)
        if bias:
            self.add(f"{prefix}.bias", out)

    def norm(self, prefix: str, size: int, bias: bool = False) -> None:
        self.add(f"{prefix}.weight", size)
        if bias:
            self.add(f"{prefix}.bias", size)


# --- Llama family: Llama, Mistral, Mixtral, Qwen2/3 (+MoE), Gemma 2/3, Phi-3 ------------

_TIE_DEFAULT = {"gemma": True, "gemma2": True, "gemma3_text": True}


def llama(
    config: Mapping[str, Any],
    *,
    name: str = "llama",
    expected_parameters: int | None = None,
    shards: int = 1,
    note: str = "",
) -> Layout:
    """A Llama-style decoder from its config.json, with the names transformers uses.

    ``model_type`` selects the variants: ``mixtral`` (block_sparse_moe experts w1/w2/w3),
    ``qwen2`` (q/k/v biases), ``qwen3`` (q/k norms), ``qwen2_moe``/``qwen3_moe`` (mlp.gate
    router, experts, Qwen2-MoE's shared expert), ``gemma2``/``gemma3_text`` (sandwich norms,
    q/k norms in Gemma 3), ``phi3`` (fused qkv_proj and gate_up_proj).
    """
    c = config
    kind = c.get("model_type", "llama")
    acc = _Acc(_TORCH_DTYPES[c.get("torch_dtype", "bfloat16")])
    hidden, vocab = c["hidden_size"], c["vocab_size"]
    heads = c["num_attention_heads"]
    kv = c.get("num_key_value_heads") or heads
    head_dim = c.get("head_dim") or hidden // heads
    q_out, kv_out = heads * head_dim, kv * head_dim
    attn_bias = bool(c.get("attention_bias", False))
    qkv_bias = attn_bias or kind == "qwen2" or kind == "qwen2_moe"
    qk_norm = kind in ("qwen3", "qwen3_moe", "gemma3_text", "olmo2")
    sandwich = kind in ("gemma2", "gemma3_text")
    mlp_bias = bool(c.get("mlp_bias", False))
    tie = c.get("tie_word_embeddings", _TIE_DEFAULT.get(kind, False))
    experts = c.get("num_local_experts") or c.get("num_experts") or 0
    acc.add("model.embed_tokens.weight", vocab, hidden)
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}"
        if kind == "phi3":
            acc.linear(f"{p}.self_attn.qkv_proj", q_out + 2 * kv_out, hidden, attn_bias)
        else:
            acc.linear(f"{p}.self_attn.q_proj", q_out, hidden, qkv_bias)
            acc.linear(f"{p}.self_attn.k_proj", kv_out, hidden, qkv_bias)
            acc.linear(f"{p}.self_attn.v_proj", kv_out, hidden, qkv_bias)
        acc.linear(f"{p}.self_attn.o_proj", hidden, q_out, attn_bias)
        if qk_norm:
            acc.add(f"{p}.self_attn.q_norm.weight", head_dim)
            acc.add(f"{p}.self_attn.k_norm.weight", head_dim)
        if kind == "mixtral":
            acc.add(f"{p}.block_sparse_moe.gate.weight", experts, hidden)
            inter = c["intermediate_size"]
            for e in range(experts):
                q = f"{p}.block_sparse_moe.experts.{e}"
                acc.add(f"{q}.w1.weight", inter, hidden)
                acc.add(f"{q}.w2.weight", hidden, inter)
                acc.add(f"{q}.w3.weight", inter, hidden)
        elif experts and _is_moe_layer(c, i):
            acc.add(f"{p}.mlp.gate.weight", experts, hidden)
            for e in range(experts):
                _glu(acc, f"{p}.mlp.experts.{e}", hidden, c["moe_intermediate_size"], False)
            if c.get("shared_expert_intermediate_size"):
                _glu(
                    acc,
                    f"{p}.mlp.shared_expert",
                    hidden,
                    c["shared_expert_intermediate_size"],
                    False,
                )
                acc.add(f"{p}.mlp.shared_expert_gate.weight", 1, hidden)
        elif kind == "phi3":
            acc.linear(f"{p}.mlp.gate_up_proj", 2 * c["intermediate_size"], hidden, mlp_bias)
            acc.linear(f"{p}.mlp.down_proj", hidden, c["intermediate_size"], mlp_bias)
        else:
            _glu(acc, f"{p}.mlp", hidden, c["intermediate_size"], mlp_bias)
        acc.add(f"{p}.input_layernorm.weight", hidden)
        acc.add(f"{p}.post_attention_layernorm.weight", hidden)
        if sandwich:
            acc.add(f"{p}.pre_feedforward_layernorm.weight", hidden)
            acc.add(f"{p}.post_feedforward_layernorm.weight", hidden)
    acc.add("model.norm.weight", hidden)
    if not tie:
        acc.add("lm_head.weight", vocab, hidden)
    return Layout(name, acc.rows, dict(c), expected_parameters, shards, note=note)


def tiny_llama(layers: int = 4) -> Layout:
    """A Llama-shaped layout small enough to write for real, with the names transformers uses."""
    return llama(
        {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": 64,
            "intermediate_size": 172,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "num_hidden_layers": layers,
            "vocab_size": 512,
            "torch_dtype": "bfloat16",
        },
        name="org/tiny",
    )


def _is_moe_layer(c: Mapping[str, Any], i: int) -> bool:
    """Qwen MoE: every ``decoder_sparse_step``-th layer, except those in ``mlp_only_layers``."""
    step = c.get("decoder_sparse_step", 1) or 1
    return i not in c.get("mlp_only_layers", ()) and (i + 1) % step == 0


def _glu(acc: _Acc, prefix: str, hidden: int, inter: int, bias: bool) -> None:
    acc.linear(f"{prefix}.gate_proj", inter, hidden, bias)
    acc.linear(f"{prefix}.up_proj", inter, hidden, bias)
    acc.linear(f"{prefix}.down_proj", hidden, inter, bias)


_LLAMA31_COMMON: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 8.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.43.0.dev0",
    "use_cache": True,
    "vocab_size": 128256,
}


def llama31_8b() -> Layout:
    """meta-llama/Llama-3.1-8B: 8,030,261,248 parameters (Hub metadata), 4 shards."""
    config = {
        **_LLAMA31_COMMON,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
    }
    return llama(
        config, name="meta-llama/Llama-3.1-8B", expected_parameters=8_030_261_248, shards=4
    )


def llama31_70b() -> Layout:
    """meta-llama/Llama-3.1-70B: 70,553,706,496 parameters, 30 shards."""
    config = {
        **_LLAMA31_COMMON,
        "hidden_size": 8192,
        "intermediate_size": 28672,
        "num_attention_heads": 64,
        "num_hidden_layers": 80,
    }
    return llama(
        config, name="meta-llama/Llama-3.1-70B", expected_parameters=70_553_706_496, shards=30
    )


def llama31_405b() -> Layout:
    """meta-llama/Llama-3.1-405B: 405,853,388,800 parameters, 191 shards."""
    config = {
        **_LLAMA31_COMMON,
        "hidden_size": 16384,
        "intermediate_size": 53248,
        "num_attention_heads": 128,
        "num_hidden_layers": 126,
    }
    return llama(
        config, name="meta-llama/Llama-3.1-405B", expected_parameters=405_853_388_800, shards=191
    )


def mixtral_8x7b() -> Layout:
    """mistralai/Mixtral-8x7B-v0.1: 46,702,792,704 parameters, 19 shards."""
    config = {
        "architectures": ["MixtralForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 4096,
        "initializer_range": 0.02,
        "intermediate_size": 14336,
        "max_position_embeddings": 32768,
        "model_type": "mixtral",
        "num_attention_heads": 32,
        "num_experts_per_tok": 2,
        "num_hidden_layers": 32,
        "num_key_value_heads": 8,
        "num_local_experts": 8,
        "output_router_logits": False,
        "rms_norm_eps": 1e-05,
        "rope_theta": 1000000.0,
        "router_aux_loss_coef": 0.02,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.36.0.dev0",
        "use_cache": True,
        "vocab_size": 32000,
    }
    return llama(
        config, name="mistralai/Mixtral-8x7B-v0.1", expected_parameters=46_702_792_704, shards=19
    )


def qwen2_7b() -> Layout:
    """Qwen/Qwen2-7B: 7,615,616,512 parameters ("7.62B"; q/k/v carry biases), 4 shards."""
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151643,
        "hidden_act": "silu",
        "hidden_size": 3584,
        "initializer_range": 0.02,
        "intermediate_size": 18944,
        "max_position_embeddings": 131072,
        "max_window_layers": 28,
        "model_type": "qwen2",
        "num_attention_heads": 28,
        "num_hidden_layers": 28,
        "num_key_value_heads": 4,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 131072,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.37.2",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 152064,
    }
    return llama(config, name="Qwen/Qwen2-7B", expected_parameters=7_615_616_512, shards=4)


def gemma2_2b() -> Layout:
    """google/gemma-2-2b: 2,614,341,888 parameters, float32, tied embeddings (no lm_head).

    The config has no ``tie_word_embeddings`` key: Gemma2Config defaults it to true.
    Shards: 3 (10.5 GB of float32 at the 5 GB default shard size).
    """
    config = {
        "architectures": ["Gemma2ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "attn_logit_softcapping": 50.0,
        "bos_token_id": 2,
        "cache_implementation": "hybrid",
        "eos_token_id": 1,
        "final_logit_softcapping": 30.0,
        "head_dim": 256,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": 2304,
        "initializer_range": 0.02,
        "intermediate_size": 9216,
        "max_position_embeddings": 8192,
        "model_type": "gemma2",
        "num_attention_heads": 8,
        "num_hidden_layers": 26,
        "num_key_value_heads": 4,
        "pad_token_id": 0,
        "query_pre_attn_scalar": 256,
        "rms_norm_eps": 1e-06,
        "rope_theta": 10000.0,
        "sliding_window": 4096,
        "torch_dtype": "float32",
        "transformers_version": "4.42.4",
        "use_cache": True,
        "vocab_size": 256000,
    }
    return llama(config, name="google/gemma-2-2b", expected_parameters=2_614_341_888, shards=3)


def phi3_mini() -> Layout:
    """microsoft/Phi-3-mini-4k-instruct: 3,821,079,552 parameters, fused qkv/gate_up, 2 shards."""
    config = {
        "architectures": ["Phi3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "embd_pdrop": 0.0,
        "eos_token_id": 32000,
        "hidden_act": "silu",
        "hidden_size": 3072,
        "initializer_range": 0.02,
        "intermediate_size": 8192,
        "max_position_embeddings": 4096,
        "model_type": "phi3",
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "num_key_value_heads": 32,
        "original_max_position_embeddings": 4096,
        "pad_token_id": 32000,
        "resid_pdrop": 0.0,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 10000.0,
        "sliding_window": 2047,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.40.2",
        "use_cache": True,
        "vocab_size": 32064,
    }
    return llama(
        config, name="microsoft/Phi-3-mini-4k-instruct", expected_parameters=3_821_079_552, shards=2
    )


# --- GPT-2, GPT-NeoX, Falcon -----------------------------------------------------------


def gpt2(buffers: bool = True) -> Layout:
    """openai-community/gpt2: 124,439,808 parameters, float32, one file.

    The Hub file also stores each block's causal-mask buffer ``h.N.attn.bias``
    (1x1x1024x1024 F32): 12,582,912 more elements, hence the Hub's "137M params" and
    548 MB. They are listed in ``non_parameters``; ``buffers=False`` leaves them out.
    Conv1D weights are stored [in, out].
    """
    config = {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": 50256,
        "embd_pdrop": 0.1,
        "eos_token_id": 50256,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "gpt2",
        "n_ctx": 1024,
        "n_embd": 768,
        "n_head": 12,
        "n_layer": 12,
        "n_positions": 1024,
        "resid_pdrop": 0.1,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
        "vocab_size": 50257,
    }
    d, ctx = config["n_embd"], config["n_positions"]
    inner = 4 * d
    acc = _Acc("F32")
    acc.add("wte.weight", config["vocab_size"], d)
    acc.add("wpe.weight", ctx, d)
    for i in range(config["n_layer"]):
        p = f"h.{i}"
        acc.norm(f"{p}.ln_1", d, bias=True)
        if buffers:
            acc.add(f"{p}.attn.bias", 1, 1, ctx, ctx, extra=True)
        acc.add(f"{p}.attn.c_attn.weight", d, 3 * d)
        acc.add(f"{p}.attn.c_attn.bias", 3 * d)
        acc.add(f"{p}.attn.c_proj.weight", d, d)
        acc.add(f"{p}.attn.c_proj.bias", d)
        acc.norm(f"{p}.ln_2", d, bias=True)
        acc.add(f"{p}.mlp.c_fc.weight", d, inner)
        acc.add(f"{p}.mlp.c_fc.bias", inner)
        acc.add(f"{p}.mlp.c_proj.weight", inner, d)
        acc.add(f"{p}.mlp.c_proj.bias", d)
    acc.norm("ln_f", d, bias=True)
    return Layout(
        "openai-community/gpt2",
        acc.rows,
        config,
        124_439_808,
        non_parameters=frozenset(acc.extra),
        note="lm_head is tied to wte and not stored",
    )


def pythia_160m() -> Layout:
    """EleutherAI/pythia-160m: 162,322,944 parameters (Pythia README), float16, one file.

    Parameters only: the rotary ``inv_freq`` and mask buffers that older GPT-NeoX
    checkpoints also carried are left out.
    """
    config = {
        "architectures": ["GPTNeoXForCausalLM"],
        "bos_token_id": 0,
        "eos_token_id": 0,
        "hidden_act": "gelu",
        "hidden_size": 768,
        "initializer_range": 0.02,
        "intermediate_size": 3072,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 2048,
        "model_type": "gpt_neox",
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "rotary_emb_base": 10000,
        "rotary_pct": 0.25,
        "tie_word_embeddings": False,
        "torch_dtype": "float16",
        "transformers_version": "4.24.0",
        "use_cache": True,
        "use_parallel_residual": True,
        "vocab_size": 50304,
    }
    d, inter, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    acc = _Acc("F16")
    acc.add("gpt_neox.embed_in.weight", vocab, d)
    for i in range(config["num_hidden_layers"]):
        p = f"gpt_neox.layers.{i}"
        acc.norm(f"{p}.input_layernorm", d, bias=True)
        acc.norm(f"{p}.post_attention_layernorm", d, bias=True)
        acc.linear(f"{p}.attention.query_key_value", 3 * d, d, bias=True)
        acc.linear(f"{p}.attention.dense", d, d, bias=True)
        acc.linear(f"{p}.mlp.dense_h_to_4h", inter, d, bias=True)
        acc.linear(f"{p}.mlp.dense_4h_to_h", d, inter, bias=True)
    acc.norm("gpt_neox.final_layer_norm", d, bias=True)
    acc.add("embed_out.weight", vocab, d)
    return Layout("EleutherAI/pythia-160m", acc.rows, config, 162_322_944)


def falcon_7b() -> Layout:
    """tiiuae/falcon-7b: multi-query attention, parallel attention/MLP, bfloat16, 2 shards.

    7,217,189,760 is the Hub's figure ("7.22B"): it counts ``lm_head.weight``, stored
    although tied to the word embeddings; the distinct parameters are 6,921,720,704.
    """
    config = {
        "alibi": False,
        "apply_residual_connection_post_layernorm": False,
        "architectures": ["FalconForCausalLM"],
        "attention_dropout": 0.0,
        "bias": False,
        "bos_token_id": 11,
        "eos_token_id": 11,
        "hidden_dropout": 0.0,
        "hidden_size": 4544,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "model_type": "falcon",
        "multi_query": True,
        "new_decoder_architecture": False,
        "num_attention_heads": 71,
        "num_hidden_layers": 32,
        "parallel_attn": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.27.4",
        "use_cache": True,
        "vocab_size": 65024,
    }
    d, heads = config["hidden_size"], config["num_attention_heads"]
    head_dim = d // heads
    acc = _Acc("BF16")
    acc.add("transformer.word_embeddings.weight", config["vocab_size"], d)
    for i in range(config["num_hidden_layers"]):
        p = f"transformer.h.{i}"
        acc.add(f"{p}.self_attention.query_key_value.weight", (heads + 2) * head_dim, d)
        acc.add(f"{p}.self_attention.dense.weight", d, d)
        acc.add(f"{p}.mlp.dense_h_to_4h.weight", 4 * d, d)
        acc.add(f"{p}.mlp.dense_4h_to_h.weight", d, 4 * d)
        acc.norm(f"{p}.input_layernorm", d, bias=True)
    acc.norm("transformer.ln_f", d, bias=True)
    acc.add("lm_head.weight", config["vocab_size"], d)
    return Layout("tiiuae/falcon-7b", acc.rows, config, 7_217_189_760, shards=2)


# --- Encoders and encoder-decoders -------------------------------------------------------


def bert_base(heads: bool = True) -> Layout:
    """bert-base-uncased, float32. ``heads=False``: BertModel, 109,482,240 parameters.

    ``heads=True`` (the Hub file, BertForPreTraining): ``bert.``-prefixed names plus the
    MLM transform, the MLM output bias and the next-sentence classifier; the MLM decoder
    weight is tied to the word embeddings and not stored. 110,106,428 is computed here
    (the card says "110M"), not a published exact figure.
    """
    config = {
        "architectures": ["BertForMaskedLM"],
        "attention_probs_dropout_prob": 0.1,
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 768,
        "initializer_range": 0.02,
        "intermediate_size": 3072,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512,
        "model_type": "bert",
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "transformers_version": "4.6.0.dev0",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": 30522,
    }
    d, inter = config["hidden_size"], config["intermediate_size"]
    acc = _Acc("F32")
    b = "bert." if heads else ""
    acc.add(f"{b}embeddings.word_embeddings.weight", config["vocab_size"], d)
    acc.add(f"{b}embeddings.position_embeddings.weight", config["max_position_embeddings"], d)
    acc.add(f"{b}embeddings.token_type_embeddings.weight", config["type_vocab_size"], d)
    acc.norm(f"{b}embeddings.LayerNorm", d, bias=True)
    for i in range(config["num_hidden_layers"]):
        p = f"{b}encoder.layer.{i}"
        for proj in ("query", "key", "value"):
            acc.linear(f"{p}.attention.self.{proj}", d, d, bias=True)
        acc.linear(f"{p}.attention.output.dense", d, d, bias=True)
        acc.norm(f"{p}.attention.output.LayerNorm", d, bias=True)
        acc.linear(f"{p}.intermediate.dense", inter, d, bias=True)
        acc.linear(f"{p}.output.dense", d, inter, bias=True)
        acc.norm(f"{p}.output.LayerNorm", d, bias=True)
    acc.linear(f"{b}pooler.dense", d, d, bias=True)
    if heads:
        acc.add("cls.predictions.bias", config["vocab_size"])
        acc.linear("cls.predictions.transform.dense", d, d, bias=True)
        acc.norm("cls.predictions.transform.LayerNorm", d, bias=True)
        acc.linear("cls.seq_relationship", 2, d, bias=True)
    return Layout(
        "google-bert/bert-base-uncased", acc.rows, config, 110_106_428 if heads else 109_482_240
    )


def t5_small() -> Layout:
    """google-t5/t5-small: 60,506,624 parameters, float32; ``shared`` is also the LM head."""
    config = {
        "architectures": ["T5ForConditionalGeneration"],
        "d_ff": 2048,
        "d_kv": 64,
        "d_model": 512,
        "decoder_start_token_id": 0,
        "dropout_rate": 0.1,
        "eos_token_id": 1,
        "initializer_factor": 1.0,
        "is_encoder_decoder": True,
        "layer_norm_epsilon": 1e-06,
        "model_type": "t5",
        "n_positions": 512,
        "num_heads": 8,
        "num_layers": 6,
        "output_past": True,
        "pad_token_id": 0,
        "relative_attention_num_buckets": 32,
        "vocab_size": 32128,
    }
    d, ff = config["d_model"], config["d_ff"]
    inner = config["num_heads"] * config["d_kv"]
    buckets = config["relative_attention_num_buckets"]
    acc = _Acc("F32")
    acc.add("shared.weight", config["vocab_size"], d)
    for stack in ("encoder", "decoder"):
        blocks = (
            config["num_layers"]
            if stack == "encoder"
            else config.get("num_decoder_layers", config["num_layers"])
        )
        for i in range(blocks):
            p = f"{stack}.block.{i}.layer"
            attns = (
                ["SelfAttention"] if stack == "encoder" else ["SelfAttention", "EncDecAttention"]
            )
            for j, attn in enumerate(attns):
                for proj in ("q", "k", "v"):
                    acc.add(f"{p}.{j}.{attn}.{proj}.weight", inner, d)
                acc.add(f"{p}.{j}.{attn}.o.weight", d, inner)
                if i == 0 and attn == "SelfAttention":
                    acc.add(
                        f"{p}.{j}.{attn}.relative_attention_bias.weight",
                        buckets,
                        config["num_heads"],
                    )
                acc.add(f"{p}.{j}.layer_norm.weight", d)
            j = len(attns)
            acc.add(f"{p}.{j}.DenseReluDense.wi.weight", ff, d)
            acc.add(f"{p}.{j}.DenseReluDense.wo.weight", d, ff)
            acc.add(f"{p}.{j}.layer_norm.weight", d)
        acc.add(f"{stack}.final_layer_norm.weight", d)
    return Layout("google-t5/t5-small", acc.rows, config, 60_506_624)


# --- DeepSeek-V3 ------------------------------------------------------------------------

_DEEPSEEK_V3_CONFIG: dict[str, Any] = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "aux_loss_alpha": 0.001,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "ep_size": 1,
    "first_k_dense_replace": 3,
    "hidden_act": "silu",
    "hidden_size": 7168,
    "initializer_range": 0.02,
    "intermediate_size": 18432,
    "kv_lora_rank": 512,
    "max_position_embeddings": 163840,
    "model_type": "deepseek_v3",
    "moe_intermediate_size": 2048,
    "moe_layer_freq": 1,
    "n_group": 8,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "norm_topk_prob": True,
    "num_attention_heads": 128,
    "num_experts_per_tok": 8,
    "num_hidden_layers": 61,
    "num_key_value_heads": 128,
    "num_nextn_predict_layers": 1,
    "pretraining_tp": 1,
    "q_lora_rank": 1536,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "quantization_config": {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "quant_method": "fp8",
        "weight_block_size": [128, 128],
    },
    "rms_norm_eps": 1e-06,
    "rope_scaling": {
        "beta_fast": 32,
        "beta_slow": 1,
        "factor": 40,
        "mscale": 1.0,
        "mscale_all_dim": 1.0,
        "original_max_position_embeddings": 4096,
        "type": "yarn",
    },
    "rope_theta": 10000,
    "routed_scaling_factor": 2.5,
    "scoring_func": "sigmoid",
    "seq_aux": True,
    "tie_word_embeddings": False,
    "topk_group": 4,
    "topk_method": "noaux_tc",
    "torch_dtype": "bfloat16",
    "transformers_version": "4.33.1",
    "use_cache": True,
    "v_head_dim": 128,
    "vocab_size": 129280,
}


def _deepseek_v3_blocks(c: Mapping[str, Any], *, mtp: bool, fp8: bool) -> _Acc:
    """The tensors of a DeepseekV3ForCausalLM checkpoint with config ``c``, in order."""
    acc = _Acc("BF16")
    hidden, vocab, heads = c["hidden_size"], c["vocab_size"], c["num_attention_heads"]
    q_head = c["qk_nope_head_dim"] + c["qk_rope_head_dim"]
    block = c["quantization_config"]["weight_block_size"]

    def linear(prefix: str, out: int, inp: int) -> None:
        acc.add(f"{prefix}.weight", out, inp, dtype="F8_E4M3" if fp8 else "BF16")
        if fp8:
            acc.add(
                f"{prefix}.weight_scale_inv",
                -(-out // block[0]),
                -(-inp // block[1]),
                dtype="F32",
                extra=True,
            )

    def glu(prefix: str, inter: int) -> None:
        linear(f"{prefix}.gate_proj", inter, hidden)
        linear(f"{prefix}.up_proj", inter, hidden)
        linear(f"{prefix}.down_proj", hidden, inter)

    acc.add("model.embed_tokens.weight", vocab, hidden)
    layers = c["num_hidden_layers"] + (c["num_nextn_predict_layers"] if mtp else 0)
    for i in range(layers):
        p = f"model.layers.{i}"
        if i >= c["num_hidden_layers"]:  # MTP module: its own embedding, norms and head
            acc.add(f"{p}.embed_tokens.weight", vocab, hidden)
            acc.add(f"{p}.enorm.weight", hidden)
            acc.add(f"{p}.hnorm.weight", hidden)
            acc.add(f"{p}.eh_proj.weight", hidden, 2 * hidden)
            acc.add(f"{p}.shared_head.norm.weight", hidden)
            acc.add(f"{p}.shared_head.head.weight", vocab, hidden)
        a = f"{p}.self_attn"
        linear(f"{a}.q_a_proj", c["q_lora_rank"], hidden)
        acc.add(f"{a}.q_a_layernorm.weight", c["q_lora_rank"])
        linear(f"{a}.q_b_proj", heads * q_head, c["q_lora_rank"])
        linear(f"{a}.kv_a_proj_with_mqa", c["kv_lora_rank"] + c["qk_rope_head_dim"], hidden)
        acc.add(f"{a}.kv_a_layernorm.weight", c["kv_lora_rank"])
        linear(
            f"{a}.kv_b_proj", heads * (c["qk_nope_head_dim"] + c["v_head_dim"]), c["kv_lora_rank"]
        )
        linear(f"{a}.o_proj", hidden, heads * c["v_head_dim"])
        if i < c["first_k_dense_replace"]:
            glu(f"{p}.mlp", c["intermediate_size"])
        else:
            for e in range(c["n_routed_experts"]):
                glu(f"{p}.mlp.experts.{e}", c["moe_intermediate_size"])
            acc.add(f"{p}.mlp.gate.weight", c["n_routed_experts"], hidden)
            acc.add(f"{p}.mlp.gate.e_score_correction_bias", c["n_routed_experts"], dtype="F32")
            glu(f"{p}.mlp.shared_experts", c["moe_intermediate_size"] * c["n_shared_experts"])
        acc.add(f"{p}.input_layernorm.weight", hidden)
        acc.add(f"{p}.post_attention_layernorm.weight", hidden)
    acc.add("model.norm.weight", hidden)
    acc.add("lm_head.weight", vocab, hidden)
    return acc


def deepseek_v3(mtp: bool = True, fp8: bool = True) -> Layout:
    """deepseek-ai/DeepSeek-V3: MLA, 256 routed + 1 shared expert, first 3 layers dense.

    Main model (61 layers, ``mtp=False``): 671,026,419,200 parameters, the technical
    report's "671B". The Hub checkpoint also stores the multi-token-prediction module as
    ``model.layers.61`` (a full MoE block plus embed_tokens, enorm, hnorm, eh_proj and
    shared_head): 13,463,426,304 more, 684,489,845,504 in all (computed). With ``fp8``
    (as on the Hub) every linear layer in the blocks is F8_E4M3 with a 128x128-block F32
    ``weight_scale_inv``; embeddings, heads, norms, router, eh_proj stay BF16 (bias F32).
    Counting the scales too gives the Hub's "685B params". 163 shards.
    """
    c = _DEEPSEEK_V3_CONFIG
    acc = _deepseek_v3_blocks(c, mtp=mtp, fp8=fp8)
    expected = 684_489_845_504 if mtp else 671_026_419_200
    config = dict(c) if fp8 else {k: v for k, v in c.items() if k != "quantization_config"}
    return Layout(
        "deepseek-ai/DeepSeek-V3",
        acc.rows,
        config,
        expected,
        shards=163,
        non_parameters=frozenset(acc.extra),
    )


# moonshotai/Kimi-K2-Instruct: DeepSeek-V3's architecture (its config names
# DeepseekV3ForCausalLM) at other sizes: 384 routed experts, 64 heads, one dense layer,
# a 163,840-token vocabulary, no multi-token-prediction layer.
_KIMI_K2_CONFIG: dict[str, Any] = {
    **_DEEPSEEK_V3_CONFIG,
    "bos_token_id": 163584,
    "eos_token_id": 163585,
    "first_k_dense_replace": 1,
    "max_position_embeddings": 131072,
    "model_type": "kimi_k2",
    "n_group": 1,
    "n_routed_experts": 384,
    "num_attention_heads": 64,
    "num_key_value_heads": 64,
    "num_nextn_predict_layers": 0,
    "rope_scaling": {
        "beta_fast": 1.0,
        "beta_slow": 1.0,
        "factor": 32.0,
        "mscale": 1.0,
        "mscale_all_dim": 1.0,
        "original_max_position_embeddings": 4096,
        "type": "yarn",
    },
    "rope_theta": 50000.0,
    "routed_scaling_factor": 2.827,
    "topk_group": 1,
    "transformers_version": "4.48.3",
    "vocab_size": 163840,
}


def kimi_k2_like() -> Layout:
    """A Kimi-K2-like 1T layout: DeepSeek-V3's blocks at Kimi K2's sizes, FP8, 62 shards.

    61 layers (the first dense), 384 routed + 1 shared expert of 2048, hidden 7168, 64 MLA
    heads (q_lora_rank 1536, kv_lora_rank 512, qk_nope 128, qk_rope 64, v_head 128), vocab
    163,840, F8_E4M3 linears with 128x128-block F32 scales as DeepSeek-V3's: 139,583 tensors,
    1,026,408,232,448 parameters (computed; Moonshot publishes "1T total"). For the speed
    benchmarks (a frontier-sized header set), not a recorded checkpoint.
    """
    acc = _deepseek_v3_blocks(_KIMI_K2_CONFIG, mtp=False, fp8=True)
    return Layout(
        "moonshotai/Kimi-K2-Instruct",
        acc.rows,
        dict(_KIMI_K2_CONFIG),
        None,
        shards=62,
        non_parameters=frozenset(acc.extra),
        note="Kimi-K2-like: DeepSeek-V3's blocks at Kimi K2's config sizes",
    )


def million_tensors(count: int = 1_000_000) -> Layout:
    """A synthetic single-file layout of ``count`` small tensors (speed benchmarks only).

    An MoE-shaped model with short names: per layer 4 attention projections, 2 norms, a
    router and 3 tiny BF16 matrices for each of 3,331 experts (10,000 tensors), layers
    until ``count`` is reached (the last one cut short). Shapes are small so the header,
    about 94 bytes a tensor (94.3 MB at 1M), stays under safetensors' 100,000,000-byte limit.
    """
    acc = _Acc("BF16")
    hidden, experts = 64, 3331
    i = 0
    while len(acc.rows) < count:
        p = f"layers.{i}"
        for k in ("q", "k", "v", "o"):
            acc.add(f"{p}.attn.{k}.weight", hidden, hidden)
        acc.add(f"{p}.norm1.weight", hidden)
        acc.add(f"{p}.norm2.weight", hidden)
        acc.add(f"{p}.router.weight", experts, hidden)
        for e in range(experts):
            for w in ("w1", "w2", "w3"):
                acc.add(f"{p}.experts.{e}.{w}", 8, 8)
        i += 1
    return Layout("synthetic/million-tensors", acc.rows[:count], {}, None, shards=1)


# --- PEFT -------------------------------------------------------------------------------

_LLAMA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# Qwen/Qwen3-Next-80B-A3B-Instruct.
QWEN3_NEXT: dict[str, Any] = {
    "architectures": ["Qwen3NextForCausalLM"], "model_type": "qwen3_next",
    "hidden_size": 2048, "intermediate_size": 5120, "num_hidden_layers": 48,
    "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 256,
    "linear_num_key_heads": 16, "linear_num_value_heads": 32, "linear_key_head_dim": 128,
    "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4, "full_attention_interval": 4,
    "num_experts": 512, "num_experts_per_tok": 10, "moe_intermediate_size": 512,
    "shared_expert_intermediate_size": 512, "decoder_sparse_step": 1, "mlp_only_layers": [],
    "vocab_size": 151936, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "max_position_embeddings": 262144,
}  # fmt: skip


def _qwen3_next_block(acc: _Acc, p: str, c: dict[str, Any], full: bool) -> None:
    h = c["hidden_size"]
    if full:
        hd = c["head_dim"]
        acc.add(f"{p}.self_attn.q_proj.weight", 2 * c["num_attention_heads"] * hd, h)  # + gate
        acc.add(f"{p}.self_attn.k_proj.weight", c["num_key_value_heads"] * hd, h)
        acc.add(f"{p}.self_attn.v_proj.weight", c["num_key_value_heads"] * hd, h)
        acc.add(f"{p}.self_attn.o_proj.weight", h, c["num_attention_heads"] * hd)
        acc.add(f"{p}.self_attn.q_norm.weight", hd)
        acc.add(f"{p}.self_attn.k_norm.weight", hd)
    else:
        kh, vh = c["linear_num_key_heads"], c["linear_num_value_heads"]
        kd, vd = c["linear_key_head_dim"], c["linear_value_head_dim"]
        la = f"{p}.linear_attn"
        acc.add(f"{la}.in_proj_qkvz.weight", 2 * kh * kd + 2 * vh * vd, h)
        acc.add(f"{la}.in_proj_ba.weight", 2 * vh, h)
        acc.add(f"{la}.conv1d.weight", 2 * kh * kd + vh * vd, 1, c["linear_conv_kernel_dim"])
        acc.add(f"{la}.A_log", vh)
        acc.add(f"{la}.dt_bias", vh)
        acc.add(f"{la}.norm.weight", vd)
        acc.add(f"{la}.out_proj.weight", h, vh * vd)
    m, inter = f"{p}.mlp", c["moe_intermediate_size"]
    acc.add(f"{m}.gate.weight", c["num_experts"], h)
    for e in range(c["num_experts"]):
        acc.add(f"{m}.experts.{e}.gate_proj.weight", inter, h)
        acc.add(f"{m}.experts.{e}.up_proj.weight", inter, h)
        acc.add(f"{m}.experts.{e}.down_proj.weight", h, inter)
    s = c["shared_expert_intermediate_size"]
    acc.add(f"{m}.shared_expert.gate_proj.weight", s, h)
    acc.add(f"{m}.shared_expert.up_proj.weight", s, h)
    acc.add(f"{m}.shared_expert.down_proj.weight", h, s)
    acc.add(f"{m}.shared_expert_gate.weight", 1, h)
    acc.add(f"{p}.input_layernorm.weight", h)
    acc.add(f"{p}.post_attention_layernorm.weight", h)


def qwen3_next_80b() -> Layout:
    """Qwen3-Next-80B-A3B as released: 36 Gated DeltaNet + 12 attention layers, 512
    experts, and its multi-token-prediction block."""
    c = QWEN3_NEXT
    h = c["hidden_size"]
    acc = _Acc("BF16")
    acc.add("model.embed_tokens.weight", c["vocab_size"], h)
    for i in range(c["num_hidden_layers"]):
        _qwen3_next_block(acc, f"model.layers.{i}", c, full=(i + 1) % 4 == 0)
    acc.add("model.norm.weight", h)
    acc.add("lm_head.weight", c["vocab_size"], h)
    # The released checkpoint's multi-token-prediction block (one full-attention layer).
    acc.add("mtp.fc.weight", h, 2 * h)
    acc.add("mtp.pre_fc_norm_embedding.weight", h)
    acc.add("mtp.pre_fc_norm_hidden.weight", h)
    _qwen3_next_block(acc, "mtp.layers.0", c, full=True)
    acc.add("mtp.norm.weight", h)
    return Layout("Qwen/Qwen3-Next-80B-A3B-Instruct", acc.rows, QWEN3_NEXT)


def lora_llama31_8b(
    rank: int = 16, targets: Iterable[str] = ("q_proj", "v_proj"), use_dora: bool = False
) -> Layout:
    """A PEFT LoRA adapter for Llama-3.1-8B as ``adapter_model.safetensors`` stores it.

    r=16 on q_proj and v_proj: 6,815,744 trainable parameters (what PEFT's
    ``print_trainable_parameters`` reports). Float32, PEFT's default adapter dtype.
    DoRA adds ``lora_magnitude_vector`` (one value per output feature).
    """
    base = llama31_8b().config
    hidden, inter = base["hidden_size"], base["intermediate_size"]
    kv_out = base["num_key_value_heads"] * hidden // base["num_attention_heads"]
    shapes = {  # module -> (out, in)
        "q_proj": (hidden, hidden),
        "k_proj": (kv_out, hidden),
        "v_proj": (kv_out, hidden),
        "o_proj": (hidden, hidden),
        "gate_proj": (inter, hidden),
        "up_proj": (inter, hidden),
        "down_proj": (hidden, inter),
    }
    wanted = set(targets)
    unknown = wanted - set(_LLAMA_MODULES)
    if unknown:
        raise ValueError(f"unknown LoRA target(s): {sorted(unknown)}")
    acc = _Acc("F32")
    for i in range(base["num_hidden_layers"]):
        for module in _LLAMA_MODULES:
            if module not in wanted:
                continue
            parent = "self_attn" if module in _LLAMA_MODULES[:4] else "mlp"
            p = f"base_model.model.model.layers.{i}.{parent}.{module}"
            out, inp = shapes[module]
            acc.add(f"{p}.lora_A.weight", rank, inp)
            acc.add(f"{p}.lora_B.weight", out, rank)
            if use_dora:
                acc.add(f"{p}.lora_magnitude_vector", out)
    config = {
        "alpha_pattern": {},
        "auto_mapping": None,
        "base_model_name_or_path": "meta-llama/Llama-3.1-8B",
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layers_pattern": None,
        "layers_to_transform": None,
        "lora_alpha": 2 * rank,
        "lora_dropout": 0.05,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": rank,
        "rank_pattern": {},
        "revision": None,
        "target_modules": [m for m in _LLAMA_MODULES if m in wanted],
        "task_type": "CAUSAL_LM",
        "use_dora": use_dora,
        "use_rslora": False,
    }
    default = rank == 16 and wanted == {"q_proj", "v_proj"} and not use_dora
    return Layout(
        f"lora-r{rank}-Llama-3.1-8B",
        acc.rows,
        config,
        6_815_744 if default else None,
        weights_name="adapter_model.safetensors",
        config_name="adapter_config.json",
    )


PRESETS = {
    "llama31_8b": llama31_8b,
    "llama31_70b": llama31_70b,
    "llama31_405b": llama31_405b,
    "mixtral_8x7b": mixtral_8x7b,
    "qwen2_7b": qwen2_7b,
    "gemma2_2b": gemma2_2b,
    "phi3_mini": phi3_mini,
    "gpt2": gpt2,
    "pythia_160m": pythia_160m,
    "falcon_7b": falcon_7b,
    "bert_base": bert_base,
    "t5_small": t5_small,
    "deepseek_v3": deepseek_v3,
    "lora_llama31_8b": lora_llama31_8b,
}


# --- Files ------------------------------------------------------------------------------


def safetensors_header(
    tensors: Iterable[Tensor], metadata: Mapping[str, str] | None = DEFAULT_METADATA
) -> tuple[bytes, int]:
    """The bytes before the data (length prefix + padded JSON) and the data size.

    As the safetensors serializer writes them: ``__metadata__`` first, tensors by
    descending dtype (its enum order) then name, offsets contiguous from 0, compact JSON,
    padded with spaces to a multiple of 8. Metadata keys are sorted (the crate's map
    order is unspecified; any order is valid).
    """
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = dict(sorted(metadata.items()))
    offset = 0
    for name, dtype, shape in sorted(tensors, key=lambda t: (-_DTYPE_RANK[t[1]], t[0])):
        if name in header:
            raise ValueError(f"duplicate tensor name {name!r}")
        size = nbytes(dtype, shape)
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, offset


def write_sparse_file(
    path: str | os.PathLike[str],
    tensors: Iterable[Tensor],
    metadata: Mapping[str, str] | None = DEFAULT_METADATA,
) -> Path:
    """One safetensors file: the real header, then a hole as long as the data."""
    path = Path(path)
    head, size = safetensors_header(tensors, metadata)
    with open(path, "wb") as f:
        f.write(head)
    os.truncate(path, len(head) + size)
    return path


def split_shards(tensors: Sequence[Tensor], shards: int) -> list[list[Tensor]]:
    """Cut ``tensors`` into ``shards`` consecutive, non-empty runs of about equal bytes."""
    if not 1 <= shards <= max(len(tensors), 1):
        raise ValueError(f"cannot split {len(tensors)} tensors into {shards} shards")
    sizes = [nbytes(d, s) for _, d, s in tensors]
    total = sum(sizes) or 1
    starts = [0]
    cum = 0
    for i, size in enumerate(sizes):  # shard k opens at the tensor whose midpoint passes k/N
        while len(starts) < shards and (2 * cum + size) * shards >= 2 * len(starts) * total:
            starts.append(i)
        cum += size
    starts += [len(tensors)] * (shards - len(starts))
    for k in range(1, shards):  # no empty shard: push starts apart, forwards then backwards
        starts[k] = max(starts[k], starts[k - 1] + 1)
    for k in range(shards - 1, 0, -1):
        starts[k] = min(starts[k], len(tensors) - (shards - k))
    bounds = [*starts, len(tensors)]
    return [list(tensors[bounds[k] : bounds[k + 1]]) for k in range(shards)]


def write_sparse_checkpoint(
    dirpath: str | os.PathLike[str],
    layout: Layout | Sequence[Tensor],
    shards: int | None = None,
    dtype_override: str | None = None,
    metadata: Mapping[str, str] | None = DEFAULT_METADATA,
) -> list[Path]:
    """Write a layout as Hugging Face would lay it out, with sparse data; return the shards.

    One file is ``model.safetensors`` (``adapter_model.safetensors`` for adapters); N > 1
    are ``model-0000k-of-0000N.safetensors`` plus ``model.safetensors.index.json``.
    ``config.json`` (or ``adapter_config.json``) is written when the layout has a config.
    ``dtype_override`` replaces the dtype of every floating-point tensor.
    """
    folder = Path(dirpath)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(layout, Layout):
        tensors, config, default_shards = layout.tensors, layout.config, layout.shards
        weights_name, config_name = layout.weights_name, layout.config_name
    else:
        tensors, config, default_shards = list(layout), None, 1
        weights_name, config_name = "model.safetensors", "config.json"
    if dtype_override is not None:
        if dtype_override not in BITS:
            raise ValueError(f"unknown safetensors dtype {dtype_override!r}")
        tensors = [(n, dtype_override if d in _FLOATS else d, s) for n, d, s in tensors]
    count = shards or default_shards
    groups = split_shards(tensors, count)
    stem = weights_name.removesuffix(".safetensors")
    if count == 1:
        names = [weights_name]
    else:
        names = [f"{stem}-{k:05d}-of-{count:05d}.safetensors" for k in range(1, count + 1)]
    paths = [write_sparse_file(folder / n, g, metadata) for n, g in zip(names, groups, strict=True)]
    if count > 1:
        index = {
            "metadata": {"total_size": sum(nbytes(d, s) for _, d, s in tensors)},
            "weight_map": {t[0]: fname for fname, g in zip(names, groups, strict=True) for t in g},
        }
        _write_json(folder / f"{weights_name}.index.json", index)
    if config is not None:
        _write_json(folder / config_name, config)
    return paths


def _write_json(path: Path, obj: Any) -> None:
    """As transformers writes its JSON files: indent 2, sorted keys, trailing newline."""
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# --- Small real files -------------------------------------------------------------------

NUMPY_DTYPES: Mapping[str, Any] = MappingProxyType(
    {
        "F64": np.float64,
        "F32": np.float32,
        "F16": np.float16,
        "BF16": ml_dtypes.bfloat16,
        "F8_E4M3": ml_dtypes.float8_e4m3fn,
        "F8_E5M2": ml_dtypes.float8_e5m2,
        "F8_E4M3FNUZ": ml_dtypes.float8_e4m3fnuz,
        "F8_E5M2FNUZ": ml_dtypes.float8_e5m2fnuz,
        "F8_E8M0": ml_dtypes.float8_e8m0fnu,
        "C64": np.complex64,
        "I64": np.int64,
        "U64": np.uint64,
        "I32": np.int32,
        "U32": np.uint32,
        "I16": np.int16,
        "U16": np.uint16,
        "I8": np.int8,
        "U8": np.uint8,
        "BOOL": np.bool_,
    }
)


def random_array(
    dtype: str, shape: Sequence[int], rng: np.random.Generator | None = None
) -> np.ndarray:
    """Random values of a safetensors dtype (small integers, normal floats, E8M0 powers of 2)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    try:
        np_type = NUMPY_DTYPES[dtype]
    except KeyError:
        raise ValueError(f"safetensors.numpy cannot write {dtype}; use write_sparse_file") from None
    shape = tuple(shape)
    if dtype == "BOOL":
        values = rng.random(shape) < 0.5
    elif dtype == "F8_E8M0":  # exponent-only: powers of two
        values = np.exp2(rng.integers(-8, 8, shape))
    elif dtype == "C64":
        values = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    elif dtype[0] in "IU":
        values = rng.integers(0 if dtype[0] == "U" else -100, 100, shape)
    else:
        values = rng.standard_normal(shape)
    return np.asarray(values).astype(np_type)  # asarray: shape () gives a 0-d array


def make_checkpoint(
    path: str | os.PathLike[str],
    tensors: Mapping[str, tuple[str, Sequence[int]] | np.ndarray],
    metadata: Mapping[str, str] | None = None,
    seed: int = 0,
    *,
    shards: int | None = None,
    reverse: bool = False,
) -> Path:
    """Small real safetensors files written by the library.

    ``tensors`` maps names to ``(dtype, shape)`` (random data) or to arrays.

    Without ``shards``: one file, whose path is returned; a folder ``path`` gets
    ``model.safetensors`` inside it.

    With ``shards``: ``path`` is a folder (made if missing) that gets ``model.safetensors``
    (one shard) or ``model-0000k-of-0000N.safetensors`` and ``model.safetensors.index.json``,
    as transformers lays them out; the names, sorted (``reverse``: backwards), are dealt to
    the shards in turn. The folder is returned.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    arrays = {
        name: spec if isinstance(spec, np.ndarray) else random_array(spec[0], spec[1], rng)
        for name, spec in tensors.items()
    }
    meta = dict(metadata) if metadata is not None else None
    if shards is None:
        if path.is_dir():
            path = path / "model.safetensors"
        save_file(arrays, path, metadata=meta)
        return path
    path.mkdir(parents=True, exist_ok=True)
    names = sorted(arrays, reverse=reverse)
    if shards == 1:
        save_file({n: arrays[n] for n in names}, path / "model.safetensors", metadata=meta)
        return path
    weight_map = {}
    for k in range(shards):
        part = names[k::shards]
        fname = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: arrays[n] for n in part}, path / fname, metadata=meta)
        weight_map.update({n: fname for n in part})
    total = sum(a.nbytes for a in arrays.values())
    (path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
    )
    return path


def tiny_model(
    seed: int = 0, layers: int = 2, *, scale: float = 1.0, buffers: bool = True
) -> dict[str, np.ndarray]:
    """A tiny Llama-named model: bf16 matrices (normal values times ``scale``), f32 norms,
    and (``buffers``) an int64 ``model.rotary.inv_freq`` buffer."""
    rng = np.random.default_rng(seed)

    def bf16(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(ml_dtypes.bfloat16)

    out = {"model.embed_tokens.weight": bf16(64, 16)}
    for i in range(layers):
        p = f"model.layers.{i}"
        for k in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out[f"{p}.self_attn.{k}.weight"] = bf16(16, 16)
        for k, shape in (("gate_proj", (40, 16)), ("up_proj", (40, 16)), ("down_proj", (16, 40))):
            out[f"{p}.mlp.{k}.weight"] = bf16(*shape)
        out[f"{p}.input_layernorm.weight"] = np.ones(16, np.float32)
        out[f"{p}.post_attention_layernorm.weight"] = np.ones(16, np.float32)
    out["model.norm.weight"] = np.ones(16, np.float32)
    out["lm_head.weight"] = bf16(64, 16)
    if buffers:
        out["model.rotary.inv_freq"] = np.arange(8, dtype=np.int64)
    return out
