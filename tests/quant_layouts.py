"""Header-exact layouts of quantized checkpoints, MoE variants and PEFT adapters.

Each builder starts from a real model's layout (``layouts.py``) and rewrites its
linear layers the way the quantizer writes them: names, dtypes and shapes as in the
published checkpoints named below. ``Layout.expected_parameters`` is the *logical*
count (the unquantized model's), which paramtool must recover from the headers.

Sources, per format (the quantizer's own packing code):

- GPTQ (AutoGPTQ / GPTQModel ``QuantLinear``): ``qweight`` int32 [in x bits / 32, out],
  ``qzeros`` int32 [in / group, out x bits / 32], ``scales`` fp16 [in / group, out],
  ``g_idx`` int32 [in]; embeddings, norms and lm_head stay fp16
  (hugging-quants/Meta-Llama-3.1-8B-Instruct-GPTQ-INT4).
- AWQ (AutoAWQ ``WQLinear_GEMM``): ``qweight`` int32 [in, out x bits / 32], ``qzeros`` int32
  [in / group, out x bits / 32], ``scales`` fp16 [in / group, out]; no g_idx
  (hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4).
- bitsandbytes 4-bit (``Params4bit``, ``QuantState.as_dict(packed=True)``): ``weight`` uint8
  [(n + 1) // 2, 1], ``weight.absmax`` (uint8 with double quantization, else fp32) [n / 64],
  ``weight.nested_absmax`` fp32 [n / 64 / 256], ``weight.nested_quant_map`` fp32 [256],
  ``weight.quant_map`` fp32 [16], ``weight.quant_state.bitsandbytes__nf4`` uint8 [JSON length]
  (unsloth/Meta-Llama-3.1-8B-bnb-4bit). 8-bit (``Linear8bitLt``): ``weight`` int8 [out, in],
  ``SCB`` fp32 [out], ``weight_format`` uint8 scalar.
- FP8 (AutoFP8 / llm-compressor static per-tensor): ``weight`` F8_E4M3 [out, in],
  ``weight_scale`` and ``input_scale`` fp32 scalars (neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8);
  DeepSeek-V3's 128x128-block ``weight_scale_inv`` is ``layouts.deepseek_v3(fp8=True)``.
- compressed-tensors ``pack-quantized`` W4A16: ``weight_packed`` int32 [out, in / 8],
  ``weight_scale`` bf16 [out, in / 128], ``weight_shape`` int64 [2]
  (neuralmagic/Meta-Llama-3.1-8B-Instruct-quantized.w4a16).
- NVFP4 (TensorRT Model Optimizer): ``weight`` uint8 [out, in / 2], ``weight_scale`` F8_E4M3
  [out, in / 16], ``weight_scale_2`` and ``input_scale`` fp32 scalars
  (nvidia/Llama-3.1-8B-Instruct-FP4).
- MXFP4 (gpt-oss): ``mlp.experts.gate_up_proj_blocks`` uint8 [experts, 2 x inter, hidden / 32,
  16], ``*_scales`` uint8 [experts, 2 x inter, hidden / 32], ``*_bias`` bf16; attention, router,
  embeddings bf16 (openai/gpt-oss-20b, openai/gpt-oss-120b).
- MLX (``mlx.core.quantize`` through ``mlx.nn.quantize`` / ``mlx_lm.convert -q``): every
  Linear and Embedding whose input width divides by the group size keeps ``weight`` uint32
  [..., out, in x bits / 32] (``mlx/ops.cpp``: ``wq_shape.back() = w.shape(-1) * bits / 32``),
  ``scales`` and, in affine mode, ``biases`` [..., out, in / group] in the model's dtype
  (mxfp4/mxfp8/nvfp4: uint8 scales, no biases); norms stay as they are. MoE experts are stacked
  into ``switch_mlp.{gate,up,down}_proj`` [experts, out, ...] (mlx-lm ``models/mixtral.py``
  ``sanitize``). config.json gains ``quantization`` = ``quantization_config`` =
  ``{"group_size", "bits", "mode"}`` plus a dict per module a predicate set apart
  (mlx-lm ``utils.quantize_model``; ``convert.mixed_quant_predicate_builder`` for the
  ``mixed_*`` recipes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from layouts import Layout, Tensor, llama, llama31_8b, mixtral_8x7b, numel

LLAMA31_8B = 8_030_261_248
_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _is_block_linear(name: str, shape: tuple[int, ...]) -> bool:
    """A linear layer inside a transformer block: what quantizers convert (not lm_head)."""
    return (
        ".layers." in name
        and name.endswith(".weight")
        and len(shape) == 2
        and name.rsplit(".", 2)[-2] in _LINEARS
    )


def _rewrite(
    base: Layout,
    convert: Any,
    *,
    name: str,
    quantization_config: Mapping[str, Any],
    dtype: str,
    torch_dtype: str,
) -> Layout:
    """Each block linear through ``convert(prefix, out, in)`` -> rows; the rest cast to dtype."""
    rows: list[Tensor] = []
    extra: set[str] = set()
    for n, _, shape in base.tensors:
        if _is_block_linear(n, shape):
            prefix = n[: -len(".weight")]
            for row, is_meta in convert(prefix, *shape):
                rows.append(row)
                if is_meta:
                    extra.add(row[0])
        else:
            rows.append((n, dtype, shape))
    config = {
        **base.config,
        "quantization_config": dict(quantization_config),
        "torch_dtype": torch_dtype,
    }
    return Layout(
        name, rows, config, base.expected_parameters, base.shards, non_parameters=frozenset(extra)
    )


def gptq_llama31_8b(bits: int = 4, group_size: int = 128, desc_act: bool = True) -> Layout:
    """Llama-3.1-8B through GPTQ: logical 8,030,261,248; the Hub counts ~2B stored elements."""

    def convert(p: str, out: int, inp: int) -> Iterable[tuple[Tensor, bool]]:
        groups = -(-inp // group_size)
        yield (f"{p}.qweight", "I32", (inp * bits // 32, out)), False
        yield (f"{p}.qzeros", "I32", (groups, out * bits // 32)), True
        yield (f"{p}.scales", "F16", (groups, out)), True
        yield (f"{p}.g_idx", "I32", (inp,)), True

    qc = {
        "bits": bits,
        "checkpoint_format": "gptq",
        "damp_percent": 0.1,
        "desc_act": desc_act,
        "group_size": group_size,
        "model_file_base_name": None,
        "model_name_or_path": None,
        "quant_method": "gptq",
        "static_groups": False,
        "sym": True,
        "true_sequential": True,
    }
    return _rewrite(
        llama31_8b(),
        convert,
        name=f"Llama-3.1-8B-GPTQ-INT{bits}",
        quantization_config=qc,
        dtype="F16",
        torch_dtype="float16",
    )


def awq_llama31_8b(bits: int = 4, group_size: int = 128) -> Layout:
    """Llama-3.1-8B through AutoAWQ GEMM: packing across the output dimension, no g_idx."""

    def convert(p: str, out: int, inp: int) -> Iterable[tuple[Tensor, bool]]:
        groups = inp // group_size
        yield (f"{p}.qweight", "I32", (inp, out * bits // 32)), False
        yield (f"{p}.qzeros", "I32", (groups, out * bits // 32)), True
        yield (f"{p}.scales", "F16", (groups, out)), True

    qc = {
        "bits": bits,
        "group_size": group_size,
        "modules_to_not_convert": None,
        "quant_method": "awq",
        "version": "gemm",
        "zero_point": True,
    }
    return _rewrite(
        llama31_8b(),
        convert,
        name="Llama-3.1-8B-AWQ-INT4",
        quantization_config=qc,
        dtype="F16",
        torch_dtype="float16",
    )


def _bnb_state(out: int, inp: int, double_quant: bool) -> int:
    """Length of the packed quant_state JSON (bitsandbytes ``pack_dict_to_tensor``)."""
    state: dict[str, Any] = {
        "quant_type": "nf4",
        "blocksize": 64,
        "dtype": "bfloat16",
        "shape": [out, inp],
    }
    if double_quant:
        state.update(
            {"nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.021484375}
        )
    return len(json.dumps(state).encode())


def bnb_nf4_llama31_8b(double_quant: bool = True) -> Layout:
    """Llama-3.1-8B in bitsandbytes NF4 (QLoRA's format), as transformers saves it."""

    def convert(p: str, out: int, inp: int) -> Iterable[tuple[Tensor, bool]]:
        n = out * inp
        blocks = -(-n // 64)
        w = f"{p}.weight"
        yield (w, "U8", ((n + 1) // 2, 1)), False
        yield (f"{w}.absmax", "U8" if double_quant else "F32", (blocks,)), True
        if double_quant:
            yield (f"{w}.nested_absmax", "F32", (-(-blocks // 256),)), True
            yield (f"{w}.nested_quant_map", "F32", (256,)), True
        yield (f"{w}.quant_map", "F32", (16,)), True
        yield (
            (f"{w}.quant_state.bitsandbytes__nf4", "U8", (_bnb_state(out, inp, double_quant),)),
            True,
        )

    qc = {
        "_load_in_4bit": True,
        "_load_in_8bit": False,
        "bnb_4bit_compute_dtype": "bfloat16",
        "bnb_4bit_quant_storage": "uint8",
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": double_quant,
        "llm_int8_enable_fp32_cpu_offload": False,
        "llm_int8_has_fp16_weight": False,
        "llm_int8_skip_modules": None,
        "llm_int8_threshold": 6.0,
        "load_in_4bit": True,
        "load_in_8bit": False,
        "quant_method": "bitsandbytes",
    }
    return _rewrite(
        llama31_8b(),
        convert,
        name="Llama-3.1-8B-bnb-4bit",
        quantization_config=qc,
        dtype="BF16",
        torch_dtype="bfloat16",
    )


def bnb_int8_llama31_8b() -> Layout:
    """Llama-3.1-8B in bitsandbytes LLM.int8(): int8 weights, an fp32 SCB per output row."""

    def convert(p: str, out: int, inp: int) -> Iterable[tuple[Tensor, bool]]:
        yield (f"{p}.weight", "I8", (out, inp)), False
        yield (f"{p}.SCB", "F32", (out,)), True
        yield (f"{p}.weight_format", "U8", ()), True

    qc = {
        "load_in_8bit": True,
        "load_in_4bit": False,
        "llm_int8_threshold": 6.0,
        "quant_method": "bitsandbytes",
    }
    return _rewrite(
        llama31_8b(),
        convert,
        name="Llama-3.1-8B-bnb-8bit",
        quantization_config=qc,
        dtype="F16",
        torch_dtype="float16",
    )


def fp8_llama31_8b() -> Layout:
    """Llama-3.1-8B-Instruct-FP8 (AutoFP8, static): F8_E4M3 weights, scalar fp32 scales."""

    def convert(p: str, out: int, inp: int) -> Iterable[tuple[Tensor, bool]]:
        yield (f"{p}.weight", "F8_E4M3", (out, inp)), False
        yield (f"{p}.weight_scale", "F32", ()), True
        yield (f"{p}.input_scale", "F32", ()), True

    qc = {"activation_scheme": "static", "ignored_layers": ["lm_head"], "quant_method": "fp8"}
    return _rewrite(
        llama31_8b(),
        convert,
        name="Llama-3.1-8B-Instruct-FP8",
        quantization_config=qc,
        dtype="BF16",
        torch_dtype="bfloat16",
    )


def w4a16_llama31_8b(group_size: int = 128) -> Layout:
    """compressed-tensors pack-quantized W4A16 (llm-compressor GPTQ, symmetric, group 128)."""

    def convert(p: str, out: int, inp: int) -> Iterable[tuple[Tensor, bool]]:
        yield (f"{p}.weight_packed", "I32", (out, inp // 8)), False
        yield (f"{p}.weight_scale", "BF16", (out, inp // group_size)), True
        yield (f"{p}.weight_shape", "I64", (2,)), True

    qc = {"config_groups": {"group_0": {
              "input_activations": None, "output_activations": None, "targets": ["Linear"],
              "weights": {"actorder": None, "block_structure": None, "dynamic": False,
                          "group_size": group_size, "num_bits": 4, "observer": "minmax",
                          "observer_kwargs": {}, "strategy": "group", "symmetric": True,
                          "type": "int"}}},
          "format": "pack-quantized", "global_compression_ratio": 1.89, "ignore": ["lm_head"],
          "kv_cache_scheme": None, "quant_method": "compressed-tensors",
          "quantization_status": "compressed"}  # fmt: skip
    return _rewrite(
        llama31_8b(),
        convert,
        name="Llama-3.1-8B-quantized.w4a16",
        quantization_config=qc,
        dtype="BF16",
        torch_dtype="bfloat16",
    )


def nvfp4_llama31_8b() -> Layout:
    """NVFP4 from TensorRT Model Optimizer: two FP4 values a byte, an FP8 scale per 16."""

    def convert(p: str, out: int, inp: int) -> Iterable[tuple[Tensor, bool]]:
        yield (f"{p}.weight", "U8", (out, inp // 2)), False
        yield (f"{p}.weight_scale", "F8_E4M3", (out, inp // 16)), True
        yield (f"{p}.weight_scale_2", "F32", ()), True
        yield (f"{p}.input_scale", "F32", ()), True

    qc = {
        "exclude_modules": ["lm_head"],
        "group_size": 16,
        "kv_cache_quant_algo": None,
        "quant_algo": "NVFP4",
        "quant_method": "modelopt",
    }
    return _rewrite(
        llama31_8b(),
        convert,
        name="Llama-3.1-8B-Instruct-FP4",
        quantization_config=qc,
        dtype="BF16",
        torch_dtype="bfloat16",
    )


# --- gpt-oss (MXFP4 experts) -------------------------------------------------------------

_GPT_OSS_COMMON: dict[str, Any] = {
    "architectures": ["GptOssForCausalLM"], "attention_bias": True, "attention_dropout": 0.0,
    "eos_token_id": 200002, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2880,
    "initial_context_length": 4096, "initializer_range": 0.02, "intermediate_size": 2880,
    "max_position_embeddings": 131072, "model_type": "gpt_oss", "num_attention_heads": 64,
    "num_key_value_heads": 8, "pad_token_id": 199999,
    "quantization_config": {
        "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                                   "model.embed_tokens", "lm_head"],
        "quant_method": "mxfp4"},
    "rms_norm_eps": 1e-05, "rope_theta": 150000, "router_aux_loss_coef": 0.9,
    "sliding_window": 128, "swiglu_limit": 7.0, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": 201088,
}  # fmt: skip


def gpt_oss(size: str = "20b", mxfp4: bool = True) -> Layout:
    """openai/gpt-oss-20b (24 layers, 32 experts) or -120b (36 layers, 128 experts), k = 4.

    OpenAI's model card: 20.91B total / 3.61B active and 116.83B / 5.13B; its "active"
    leaves out the input embedding table (a lookup), ours counts it (see test_moe).
    ``mxfp4=False``: the same model with bf16 fused experts (as transformers dequantizes it).
    """
    layers, experts = {"20b": (24, 32), "120b": (36, 128)}[size]
    c = {
        **_GPT_OSS_COMMON,
        "num_hidden_layers": layers,
        "num_local_experts": experts,
        "num_experts_per_tok": 4,
        "experts_per_token": 4,
    }
    if not mxfp4:
        c = {k: v for k, v in c.items() if k != "quantization_config"}
    hidden, inter, vocab = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    q_out, kv_out = (
        c["num_attention_heads"] * c["head_dim"],
        c["num_key_value_heads"] * c["head_dim"],
    )
    rows: list[Tensor] = [("model.embed_tokens.weight", "BF16", (vocab, hidden))]
    extra: set[str] = set()
    for i in range(layers):
        p = f"model.layers.{i}"
        rows.append((f"{p}.input_layernorm.weight", "BF16", (hidden,)))
        for proj, out, inp in (
            ("q_proj", q_out, hidden),
            ("k_proj", kv_out, hidden),
            ("v_proj", kv_out, hidden),
            ("o_proj", hidden, q_out),
        ):
            rows.append((f"{p}.self_attn.{proj}.weight", "BF16", (out, inp)))
            rows.append((f"{p}.self_attn.{proj}.bias", "BF16", (out,)))
        rows.append((f"{p}.self_attn.sinks", "BF16", (c["num_attention_heads"],)))
        rows.append((f"{p}.post_attention_layernorm.weight", "BF16", (hidden,)))
        rows.append((f"{p}.mlp.router.weight", "BF16", (experts, hidden)))
        rows.append((f"{p}.mlp.router.bias", "BF16", (experts,)))
        e = f"{p}.mlp.experts"
        for proj, out, inp in (("gate_up_proj", 2 * inter, hidden), ("down_proj", hidden, inter)):
            if mxfp4:
                rows.append((f"{e}.{proj}_blocks", "U8", (experts, out, inp // 32, 16)))
                rows.append((f"{e}.{proj}_scales", "U8", (experts, out, inp // 32)))
                extra.add(f"{e}.{proj}_scales")
            else:  # transformers' dequantized layout: [experts, in, out]
                rows.append((f"{e}.{proj}", "BF16", (experts, inp, out)))
            rows.append((f"{e}.{proj}_bias", "BF16", (experts, out)))
    rows.append(("model.norm.weight", "BF16", (hidden,)))
    rows.append(("lm_head.weight", "BF16", (vocab, hidden)))
    expected = {"20b": 20_914_757_184, "120b": 116_829_156_672}[size]
    return Layout(
        f"openai/gpt-oss-{size}", rows, c, expected, shards=3, non_parameters=frozenset(extra)
    )


# --- MLX (mlx-lm) ------------------------------------------------------------------------

LLAMA32_1B = 1_235_814_400  # meta-llama/Llama-3.2-1B(-Instruct), the Hub's safetensors count
_LLAMA32_1B_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64,
    "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
    "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": False,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
    "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0", "use_cache": True, "vocab_size": 128256,
}  # fmt: skip
# (group size, bits, mode) for one module; None leaves it as it was.
MLXSetting = tuple[int, int, str] | None


def mlx_quantize(
    base: Layout,
    setting: Any,
    quantization: Mapping[str, Any],
    *,
    name: str,
    scale_dtype: str = "BF16",
) -> Layout:
    """Rewrite a layout as ``mlx_lm.convert -q`` saves it.

    ``setting(module, shape)`` -> (group size, bits, mode) or None for each ``*.weight`` of
    two or more dimensions; ``quantization`` is what config.json gets under both
    ``quantization`` and ``quantization_config``. Expected: the base's logical count.
    """
    rows: list[Tensor] = []
    extra: set[str] = set()
    for n, dtype, shape in base.tensors:
        module = n.removesuffix(".weight")
        s = setting(module, shape) if n.endswith(".weight") and len(shape) >= 2 else None
        if s is None or shape[-1] % s[0]:
            rows.append((n, dtype, shape))
            continue
        group, bits, mode = s
        *lead, inp = shape
        assert inp * bits % 32 == 0
        rows.append((n, "U32", (*lead, inp * bits // 32)))
        rows.append((f"{module}.scales", scale_dtype if mode == "affine" else "U8",
                     (*lead, inp // group)))  # fmt: skip
        extra.add(f"{module}.scales")
        if mode == "affine":
            rows.append((f"{module}.biases", scale_dtype, (*lead, inp // group)))
            extra.add(f"{module}.biases")
    config = {
        **base.config,
        "quantization": dict(quantization),
        "quantization_config": dict(quantization),
    }
    return Layout(
        name, rows, config, base.expected_parameters, base.shards, non_parameters=frozenset(extra)
    )


def llama32_1b() -> Layout:
    """meta-llama/Llama-3.2-1B-Instruct: 1,235,814,400 parameters, tied embeddings, bf16."""
    return llama(
        _LLAMA32_1B_CONFIG,
        name="meta-llama/Llama-3.2-1B-Instruct",
        expected_parameters=LLAMA32_1B,
    )


def mlx_llama32_1b(bits: int = 4, group_size: int = 64, mode: str = "affine") -> Layout:
    """mlx-community/Llama-3.2-1B-Instruct-4bit and its kin: every linear and the (tied)
    embedding quantized alike, ``quantization: {group_size, bits, mode}``."""
    return mlx_quantize(
        llama32_1b(),
        lambda module, shape: (group_size, bits, mode),
        {"group_size": group_size, "bits": bits, "mode": mode},
        name=f"mlx-community/Llama-3.2-1B-Instruct-{bits}bit-g{group_size}-{mode}",
    )


def _more_bits(layer: int, layers: int) -> bool:
    """mlx-lm's mixed recipes (after llama.cpp's Q4_K_M): the layers given the high bits."""
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def mlx_llama32_1b_mixed(low: int = 3, high: int = 6, group_size: int = 64) -> Layout:
    """``mlx_lm.convert -q --quant-predicate mixed_3_6``: v_proj and down_proj of the layers
    ``_more_bits`` picks (and lm_head) at ``high`` bits, the rest at ``low``. Every module
    gets its own entry; the top level stays mlx's default 4-bit, which no module uses."""
    layers = _LLAMA32_1B_CONFIG["num_hidden_layers"]
    per_module: dict[str, dict[str, Any]] = {}

    def setting(module: str, shape: tuple[int, ...]) -> MLXSetting:
        parts = module.split(".")
        layer = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 0
        high_bits = ("v_proj" in module or "down_proj" in module) and _more_bits(layer, layers)
        bits = high if high_bits or "lm_head" in module else low
        per_module[module] = {"group_size": group_size, "bits": bits, "mode": "affine"}
        return group_size, bits, "affine"

    layout = mlx_quantize(
        llama32_1b(),
        setting,
        {},
        name=f"mlx-community/Llama-3.2-1B-Instruct-mixed_{low}_{high}",
    )
    q = {"group_size": group_size, "bits": 4, "mode": "affine", **per_module}
    config = {**layout.config, "quantization": q, "quantization_config": q}
    return Layout(layout.name, layout.tensors, config, LLAMA32_1B,
                  non_parameters=layout.non_parameters)  # fmt: skip


def stack_experts(base: Layout, experts: int) -> Layout:
    """Mixtral's numbered experts stacked as mlx-lm's ``sanitize`` does: ``experts.E.w1/w2/w3``
    -> ``switch_mlp.gate_proj/down_proj/up_proj`` [experts, out, in]."""
    rows: list[Tensor] = []
    names = {"w1": "gate_proj", "w2": "down_proj", "w3": "up_proj"}
    for n, dtype, shape in base.tensors:
        if ".experts." not in n:
            rows.append((n, dtype, shape))
            continue
        head, rest = n.split(".experts.", 1)
        e, w, _ = rest.split(".")
        if e == "0":
            rows.append((f"{head}.switch_mlp.{names[w]}.weight", dtype, (experts, *shape)))
    return Layout(base.name, rows, base.config, base.expected_parameters, base.shards)


def mlx_mixtral_8x7b(router_bits: int | None = None) -> Layout:
    """mlx-community/Mixtral-8x7B-Instruct-v0.1 style: 4-bit g64, experts in switch_mlp.

    ``router_bits``: keep each ``block_sparse_moe.gate`` at other bits, as mlx-lm's per-model
    ``quant_predicate`` does for MoE routers (``{"group_size": 64, "bits": 8}``), recorded
    per module; ``lm_head`` is then also left unquantized (``false``).
    """
    overrides: dict[str, Any] = {}

    def setting(module: str, shape: tuple[int, ...]) -> MLXSetting:
        if router_bits is not None and module.endswith("block_sparse_moe.gate"):
            overrides[module] = {"group_size": 64, "bits": router_bits}
            return 64, router_bits, "affine"
        if router_bits is not None and module == "lm_head":
            overrides[module] = False
            return None
        return 64, 4, "affine"

    layout = mlx_quantize(
        stack_experts(mixtral_8x7b(), 8),
        setting,
        {},
        name="mlx-community/Mixtral-8x7B-v0.1-4bit",
    )
    q = {"group_size": 64, "bits": 4, "mode": "affine", **overrides}
    config = {**layout.config, "quantization": q, "quantization_config": q}
    return Layout(layout.name, layout.tensors, config, layout.expected_parameters, 4,
                  non_parameters=layout.non_parameters)  # fmt: skip


GROK1 = 316_490_127_360  # xAI's architecture (run.py) with an untied lm_head: 316.5B


def grok1() -> Layout:
    """xai-org/grok-1 ("314B parameters") from its ``run.py``: vocab 128 x 1024, embedding
    48 x 128, 64 layers, 48 query / 8 KV heads of 128, 8 experts (2 per token), expert width
    ``ffn_size(6144, 8)`` = 32768 (``model.py``), four RMSNorms a layer. Counted with its
    output head stored apart, as the Hugging Face conversions keep it (TevunahAi/Grok-1-BF16:
    "316.5B total"). Names follow mlx-lm's (``models/mixtral.py``), which has no Grok module.
    """
    vocab, hidden, layers, inter, experts = 131072, 6144, 64, 32768, 8
    q_out, kv_out = 48 * 128, 8 * 128
    config = {
        "architectures": ["Grok1ModelForCausalLM"], "model_type": "grok-1",
        "hidden_size": hidden, "intermediate_size": inter, "num_hidden_layers": layers,
        "num_attention_heads": 48, "num_key_value_heads": 8, "head_dim": 128,
        "num_local_experts": experts, "num_experts_per_tok": 2, "vocab_size": vocab,
        "max_position_embeddings": 8192, "rope_theta": 10000.0, "rms_norm_eps": 1e-05,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    }  # fmt: skip
    rows: list[Tensor] = [("model.embed_tokens.weight", "BF16", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}"
        for proj, out in (("q_proj", q_out), ("k_proj", kv_out), ("v_proj", kv_out)):
            rows.append((f"{p}.self_attn.{proj}.weight", "BF16", (out, hidden)))
        rows.append((f"{p}.self_attn.o_proj.weight", "BF16", (hidden, q_out)))
        rows.append((f"{p}.block_sparse_moe.gate.weight", "BF16", (experts, hidden)))
        m = f"{p}.block_sparse_moe.switch_mlp"
        rows.append((f"{m}.gate_proj.weight", "BF16", (experts, inter, hidden)))
        rows.append((f"{m}.up_proj.weight", "BF16", (experts, inter, hidden)))
        rows.append((f"{m}.down_proj.weight", "BF16", (experts, hidden, inter)))
        for norm in ("pre_attn_norm", "post_attn_norm", "pre_moe_norm", "post_moe_norm"):
            rows.append((f"{p}.{norm}.weight", "BF16", (hidden,)))
    rows.append(("model.norm.weight", "BF16", (hidden,)))
    rows.append(("lm_head.weight", "BF16", (vocab, hidden)))
    assert sum(numel(s) for _, _, s in rows) == GROK1
    return Layout("xai-org/grok-1", rows, config, GROK1, shards=17)


def mlx_grok1(bits: int = 8, group_size: int = 64) -> Layout:
    """Grok-1 through ``mlx_lm.convert -q --q-bits 8``: ~89B stored elements for 316.5B."""
    return mlx_quantize(
        grok1(),
        lambda module, shape: (group_size, bits, "affine"),
        {"group_size": group_size, "bits": bits},
        name=f"grok-1-{bits}bit-mlx",
    )


# --- MoE variants ------------------------------------------------------------------------


def qwen15_moe_a27b() -> Layout:
    """Qwen/Qwen1.5-MoE-A2.7B: 60 routed experts (k = 4) and one gated shared expert.

    Qwen's release: "14.3B parameters in total and 2.7B activated parameters during runtime".
    """
    config = {
        "architectures": ["Qwen2MoeForCausalLM"], "attention_dropout": 0.0,
        "bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151643,
        "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
        "intermediate_size": 5632, "max_position_embeddings": 8192, "max_window_layers": 21,
        "model_type": "qwen2_moe", "moe_intermediate_size": 1408, "norm_topk_prob": False,
        "num_attention_heads": 16, "num_experts": 60, "num_experts_per_tok": 4,
        "num_hidden_layers": 24, "num_key_value_heads": 16, "output_router_logits": False,
        "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001,
        "shared_expert_intermediate_size": 5632, "sliding_window": 32768,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": True,
        "use_sliding_window": False, "vocab_size": 151936,
    }  # fmt: skip
    return llama(
        config, name="Qwen/Qwen1.5-MoE-A2.7B", expected_parameters=14_315_784_192, shards=8
    )


def mixtral_8x7b_fused(gguf_order: bool = False) -> Layout:
    """Mixtral-8x7B with each layer's experts fused into 3-D tensors (transformers v5 layout).

    ``gate_up_proj`` [8, 2 x 14336, 4096] and ``down_proj`` [8, 4096, 14336]; ``gguf_order``
    puts the expert dimension last, as GGUF's ``ne`` lists it.
    """
    base = mixtral_8x7b()
    rows: list[Tensor] = []
    inter, hidden, n = 14336, 4096, 8
    for name, dtype, shape in base.tensors:
        if ".experts." in name:
            if name.endswith("experts.0.w1.weight"):
                p = name.split(".experts.")[0] + ".experts"
                gate_up, down = (n, 2 * inter, hidden), (n, hidden, inter)
                if gguf_order:
                    gate_up, down = gate_up[1:] + (n,), down[1:] + (n,)
                rows.append((f"{p}.gate_up_proj", dtype, gate_up))
                rows.append((f"{p}.down_proj", dtype, down))
            continue
        rows.append((name, dtype, shape))
    return Layout(
        base.name + " (fused experts)", rows, base.config, base.expected_parameters, base.shards
    )


# --- PEFT --------------------------------------------------------------------------------


def lora_layout(
    modules: Mapping[str, tuple[int, int, int]],
    config: Mapping[str, Any],
    *,
    dtype: str = "F32",
    magnitude: bool = False,
    name: str = "lora",
) -> Layout:
    """An adapter from {module path: (rank, out, in)}, named as PEFT saves it."""
    rows: list[Tensor] = []
    for module, (rank, out, inp) in modules.items():
        p = f"base_model.model.{module}"
        rows.append((f"{p}.lora_A.weight", dtype, (rank, inp)))
        rows.append((f"{p}.lora_B.weight", dtype, (out, rank)))
        if magnitude:
            rows.append((f"{p}.lora_magnitude_vector", dtype, (out,)))
    return Layout(
        name,
        rows,
        dict(config),
        weights_name="adapter_model.safetensors",
        config_name="adapter_config.json",
    )


GPT2_CONV1D = {  # GPT-2's Conv1D modules (block-relative path -> (out, in)), n_embd 768
    "attn.c_attn": (3 * 768, 768),
    "attn.c_proj": (768, 768),
    "mlp.c_fc": (4 * 768, 768),
    "mlp.c_proj": (768, 4 * 768),
}


def lora_gpt2(
    targets: Iterable[str] = ("attn.c_attn",), r: int = 8, fan_in_fan_out: bool | None = True
) -> Layout:
    """A PEFT LoRA on openai-community/gpt2 (GPT2LMHeadModel, 12 blocks ``transformer.h.N``).

    transformers' Conv1D keeps its weight [in, out] (``c_attn`` [768, 2304]); PEFT's LoRA
    layer still saves A [r, in] and B [out, r] and sets ``fan_in_fan_out`` for Conv1D targets
    (peft ``tuners/lora/layer.py``). ``fan_in_fan_out=None`` leaves the key out.
    """
    targets = tuple(targets)
    modules = {f"transformer.h.{i}.{t}": (r, *GPT2_CONV1D[t]) for i in range(12) for t in targets}
    config: dict[str, Any] = {
        "base_model_name_or_path": "openai-community/gpt2", "bias": "none",
        "lora_alpha": 2 * r, "lora_dropout": 0.05, "peft_type": "LORA", "r": r,
        "target_modules": sorted({t.rsplit(".", 1)[-1] for t in targets}),
        "task_type": "CAUSAL_LM",
    }  # fmt: skip
    if fan_in_fan_out is not None:
        config["fan_in_fan_out"] = fan_in_fan_out
    return lora_layout(modules, config, name="gpt2-lora")


# --- GGUF (llama.cpp) --------------------------------------------------------------------


def _gguf_tensor(w: Any, name: str, qtype: Any, shape: tuple[int, ...]) -> None:
    """A zero tensor of GGUF ``shape`` (ne0 first); quantized types as raw block bytes."""
    import gguf
    import numpy as np

    q = gguf.GGMLQuantizationType
    numpy_shape = tuple(reversed(shape))
    if qtype in (q.F32, q.F16):
        w.add_tensor(name, np.zeros(numpy_shape, np.float32 if qtype == q.F32 else np.float16))
        return
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    byte_shape = (*numpy_shape[:-1], numpy_shape[-1] // block * size)
    w.add_tensor(name, np.zeros(byte_shape, np.uint8), raw_dtype=qtype)


def write_gguf(path: Any, kind: str = "moe", *, hidden: int = 256, ffn: int = 512,
               experts: int = 4, used: int = 2, layers: int = 2, vocab: int = 1000,
               rank: int = 8) -> dict[str, tuple[int, ...]]:  # fmt: skip
    """A tiny llama.cpp GGUF, as ``gguf.GGUFWriter`` writes it; returns {name: ne shape}.

    ``moe``: a Mixtral-style model (``ffn_*_exps`` [n_embd, n_ff, n_expert], Q4_K/Q6_K).
    ``dense``: the same without experts (the base of ``lora``).
    ``lora``: a llama.cpp LoRA adapter on attn_q/attn_v (A ne [in, r], B ne [r, out], F32).
    """
    import gguf

    q = gguf.GGMLQuantizationType
    w = gguf.GGUFWriter(path, "llama")
    w.add_type("adapter" if kind == "lora" else "model")
    tensors: dict[str, tuple[Any, tuple[int, ...]]] = {}
    if kind == "lora":
        w.add_string("adapter.type", "lora")
        w.add_float32("adapter.lora.alpha", 2.0 * rank)
        for i in range(layers):
            for proj in ("attn_q", "attn_v"):
                tensors[f"blk.{i}.{proj}.weight.lora_a"] = (q.F32, (hidden, rank))
                tensors[f"blk.{i}.{proj}.weight.lora_b"] = (q.F32, (rank, hidden))
    else:
        w.add_block_count(layers)
        w.add_context_length(4096)
        w.add_embedding_length(hidden)
        w.add_feed_forward_length(ffn)
        w.add_head_count(4)
        w.add_head_count_kv(4)
        w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
        if kind == "moe":
            w.add_expert_count(experts)
            w.add_expert_used_count(used)
        tensors["token_embd.weight"] = (q.F16, (hidden, vocab))
        for i in range(layers):
            b = f"blk.{i}"
            tensors[f"{b}.attn_norm.weight"] = (q.F32, (hidden,))
            for proj in ("attn_q", "attn_k", "attn_v", "attn_output"):
                tensors[f"{b}.{proj}.weight"] = (q.Q4_K, (hidden, hidden))
            tensors[f"{b}.ffn_norm.weight"] = (q.F32, (hidden,))
            if kind == "moe":
                tensors[f"{b}.ffn_gate_inp.weight"] = (q.F32, (hidden, experts))
                tensors[f"{b}.ffn_gate_exps.weight"] = (q.Q4_K, (hidden, ffn, experts))
                tensors[f"{b}.ffn_up_exps.weight"] = (q.Q4_K, (hidden, ffn, experts))
                tensors[f"{b}.ffn_down_exps.weight"] = (q.Q6_K, (ffn, hidden, experts))
            else:
                tensors[f"{b}.ffn_gate.weight"] = (q.Q4_K, (hidden, ffn))
                tensors[f"{b}.ffn_up.weight"] = (q.Q4_K, (hidden, ffn))
                tensors[f"{b}.ffn_down.weight"] = (q.Q6_K, (ffn, hidden))
        tensors["output_norm.weight"] = (q.F32, (hidden,))
        tensors["output.weight"] = (q.Q6_K, (hidden, vocab))
    for name, (qtype, shape) in tensors.items():
        _gguf_tensor(w, name, qtype, shape)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {name: shape for name, (_, shape) in tensors.items()}
