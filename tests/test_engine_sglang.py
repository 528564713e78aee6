"""SGLang's accounting against its own logs (GitHub issues, quoted) and hand-worked figures."""

from __future__ import annotations

from typing import Any

from paramtool import dtypes
from paramtool.memory.dims import ModelDims
from paramtool.memory.engines.base import Device, ModelView, Request
from paramtool.memory.engines.sglang import ENGINE, default_mem_fraction

GIB = 1 << 30
MIB = 1 << 20

QWEN3_235B: dict[str, Any] = {
    "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
    "hidden_size": 4096, "intermediate_size": 12288, "num_attention_heads": 64,
    "num_key_value_heads": 4, "head_dim": 128, "num_hidden_layers": 94,
    "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 1536,
    "vocab_size": 151936, "max_position_embeddings": 40960, "torch_dtype": "bfloat16",
}  # fmt: skip
LLAMA31_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8,
    "num_hidden_layers": 32, "vocab_size": 128256, "max_position_embeddings": 131072,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}  # fmt: skip


def view(config: dict[str, Any], weights: int = 0) -> ModelView:
    dims = ModelDims.from_config(config)
    return ModelView(dims, 0, 0, weights, weights, weight_dtype=dtypes.lookup("BF16"))


def request(n: int, total: int = 80 * GIB, **kw: Any) -> Request:
    return Request(devices=tuple(Device("H100 80GB (SXM)", total) for _ in range(n)), **kw)


def test_cell_size_from_a_log() -> None:
    # https://github.com/vllm-project/vllm/issues/21348 (Qwen3-235B-A22B-FP8, SGLang, TP 4):
    # "KV Cache is allocated. #tokens: 367404, K size: 8.23 GB, V size: 8.23 GB".
    # One KV head a GPU x 128 x 94 layers x 2 (K, V) x 2 bytes = 48128 bytes a token.
    fit = ENGINE.plan(view(QWEN3_235B), request(4, context=32768, kv_memory=367404 * 48128))
    assert fit.kv_cache_tokens == 367404
    k_size = fit.devices[0].kv_cache_bytes / 2 / GIB
    assert f"{k_size:.2f}" == "8.23"


def test_default_mem_fraction_static() -> None:
    # server_args.py: an H100 (81559 MiB): chunked_prefill 8192, cuda_graph_max_bs 256 at
    # TP < 4; reserved = 512 + 8192 x 1.5 + 256 x 2 + 1/8 x 1024 = 13440 MiB;
    # round((81559 - 13440) / 81559, 3) = 0.835. TP 8: bs 512, reserved 512 + 12288 + 1024
    # + 1024 = 14848: round(66711 / 81559, 3) = 0.818. A 24 GiB card (24564 MiB): 2048 and
    # 24: 512 + 3072 + 48 + 128 = 3760 -> round(20804 / 24564, 3) = 0.847.
    assert default_mem_fraction(81559, 1) == 0.835
    assert default_mem_fraction(81559, 8) == 0.818
    assert default_mem_fraction(24564, 1) == 0.847


def test_max_total_num_tokens_from_the_fraction() -> None:
    # Llama-3.1-8B on an 80 GiB GPU at mem_fraction_static 0.8, 15 GiB of weights:
    # free before = 80 GiB - 512 MiB = 81408 MiB; rest = 81408 x 0.8 MiB - 15 GiB =
    # 65126.4 - 15360 = 49766.4 MiB; cell 32 x 8 x 128 x 2 x 2 = 131072 bytes:
    # 49766.4 MiB / 128 KiB = 398131 tokens.
    model = view(LLAMA31_8B, 15 * GIB)
    fit = ENGINE.plan(model, request(1, context=131072, mem_fraction_static=0.8))
    assert fit.kv_cache_tokens == 398131
    assert fit.fits
    assert fit.max_model_len == 131072


def test_state_space_hybrids_are_not_modelled() -> None:
    nemotron = {
        "architectures": ["NemotronHForCausalLM"], "model_type": "nemotron_h",
        "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
        "head_dim": 128, "num_hidden_layers": 4, "hybrid_override_pattern": "M-*-",
        "mamba_num_heads": 128, "mamba_head_dim": 64, "ssm_state_size": 128,
        "conv_kernel": 4, "n_groups": 8, "intermediate_size": 21504, "vocab_size": 131072,
    }  # fmt: skip
    assert ENGINE.supports(view(nemotron)) is not None
    assert ENGINE.supports(view(LLAMA31_8B)) is None
