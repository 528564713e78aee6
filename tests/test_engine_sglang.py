"""SGLang's accounting against its own logs (GitHub issues, quoted) and hand-worked figures
from SGLang's formulas (model_runner_kv_cache_mixin.py at sgl-project/sglang@001ccef0)."""

from __future__ import annotations

from typing import Any

from paramtool import dtypes
from paramtool.memory.dims import ModelDims
from paramtool.memory.engines.base import Device, ModelView, Request
from paramtool.memory.engines.sglang import (
    ENGINE,
    cell_size,
    default_mem_fraction,
    mamba_cache_per_req,
    max_total_num_tokens,
    rest_memory,
)

GIB = 1 << 30
MIB = 1 << 20
BF16 = dtypes.lookup("BF16")
FP8 = dtypes.lookup("fp8_e4m3")

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
LLAMA31_70B: dict[str, Any] = {
    **LLAMA31_8B, "hidden_size": 8192, "intermediate_size": 28672,
    "num_attention_heads": 64, "num_hidden_layers": 80,
}  # fmt: skip
DEEPSEEK_V3: dict[str, Any] = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
    "hidden_size": 7168, "intermediate_size": 18432, "num_attention_heads": 128,
    "num_key_value_heads": 128, "num_hidden_layers": 61, "kv_lora_rank": 512,
    "q_lora_rank": 1536, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128,
    "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8,
    "moe_intermediate_size": 2048, "first_k_dense_replace": 3, "vocab_size": 129280,
    "max_position_embeddings": 163840, "torch_dtype": "bfloat16",
}  # fmt: skip
GPT_OSS_20B: dict[str, Any] = {
    "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "hidden_size": 2880,
    "intermediate_size": 2880, "num_attention_heads": 64, "num_key_value_heads": 8,
    "head_dim": 64, "num_hidden_layers": 24, "sliding_window": 128,
    "layer_types": ["sliding_attention", "full_attention"] * 12, "num_local_experts": 32,
    "num_experts_per_tok": 4, "vocab_size": 201088, "max_position_embeddings": 131072,
}  # fmt: skip
QWEN3_NEXT: dict[str, Any] = {
    "architectures": ["Qwen3NextForCausalLM"], "model_type": "qwen3_next",
    "hidden_size": 2048, "intermediate_size": 5120, "num_attention_heads": 16,
    "num_key_value_heads": 2, "head_dim": 256, "num_hidden_layers": 48,
    "full_attention_interval": 4, "linear_num_key_heads": 16, "linear_num_value_heads": 32,
    "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4,
    "num_experts": 512, "num_experts_per_tok": 10, "moe_intermediate_size": 512,
    "vocab_size": 151936, "max_position_embeddings": 262144,
}  # fmt: skip


def view(config: dict[str, Any], weights: int = 0) -> ModelView:
    dims = ModelDims.from_config(config)
    return ModelView(dims, 0, 0, weights, weights, weight_dtype=BF16)


def request(n: int, total: int = 80 * GIB, **kw: Any) -> Request:
    return Request(devices=tuple(Device("H100 80GB (SXM)", total) for _ in range(n)), **kw)


def test_moe_cell_size_from_a_log() -> None:
    # https://github.com/vllm-project/vllm/issues/21348 (Qwen3-235B-A22B-FP8, SGLang, TP 4):
    # "KV Cache is allocated. #tokens: 367404, K size: 8.23 GB, V size: 8.23 GB".
    # One KV head a GPU x 128 x 94 layers x 2 (K, V) x 2 bytes = 48128 bytes a token.
    fit = ENGINE.plan(view(QWEN3_235B), request(4, context=32768, kv_memory=367404 * 48128))
    assert fit.kv_cache_tokens == 367404
    assert f"{fit.devices[0].kv_cache_bytes / 2 / GIB:.2f}" == "8.23"


def test_mla_cell_size_from_a_log() -> None:
    # https://github.com/kvcache-ai/ktransformers/issues/1804 (SGLang, DeepSeek-V3, TP 2,
    # --max-total-tokens 10000): "KV Cache is allocated. #tokens: 10000, KV size: 0.65 GB".
    # (512 + 64) x 61 layers x 2 bytes = 70272 bytes a token, not split by TP.
    assert cell_size(view(DEEPSEEK_V3), BF16, 2)[0] == 70272
    fit = ENGINE.plan(view(DEEPSEEK_V3), request(2, context=8192, kv_memory=10000 * 70272 + 99))
    assert fit.kv_cache_tokens == 10000
    assert f"{fit.devices[0].kv_cache_bytes / GIB:.2f}" == "0.65"


def test_sliding_window_off_the_allowlist_and_fp8() -> None:
    # https://github.com/sgl-project/sglang/pull/39310: Spark2_5ForCausalLM (27 sliding and
    # 9 full layers, 4 KV heads of 256, fp8 KV) is not on is_hybrid_swa_model's list, so
    # "per_token_bytes = 2 * 36 layers * 4 kv_heads * 256 head_dim * 1 byte (fp8) = 73,728 B".
    spark = {
        "architectures": ["Spark2_5ForCausalLM"], "model_type": "qwen3",
        "hidden_size": 4096, "intermediate_size": 12288, "num_attention_heads": 32,
        "num_key_value_heads": 4, "head_dim": 256, "num_hidden_layers": 36,
        "sliding_window": 512, "vocab_size": 151936, "max_position_embeddings": 32768,
        "layer_types": (["sliding_attention"] * 3 + ["full_attention"]) * 9,
    }  # fmt: skip
    total, _, swa_cell, _, swa = cell_size(view(spark), FP8, 1)
    assert (total, swa_cell, swa) == (73728, 0, 0)


def test_hybrid_swa_split_gpt_oss() -> None:
    # Hand-worked from set_num_tokens_hybrid_swa: gpt-oss-20b, 12 full + 12 sliding layers,
    # 8 KV heads x (64 + 64) x 2 bytes = 2048 bytes a layer; cell 24 x 2048 = 49152.
    # A pool of 100000 tokens: full = int(100000 x 49152 / (2048 x 12 + 0.8 x 2048 x 12))
    # = int(111111.1) = 111111; swa = int(111111 x 0.8) = 88888.
    model = view(GPT_OSS_20B)
    assert cell_size(model, BF16, 1) == (49152, 2048, 2048, 12, 12)
    fit = ENGINE.plan(model, request(1, context=8192, kv_memory=100000 * 49152))
    assert fit.kv_cache_tokens == 111111
    assert fit.devices[0].kv_cache_bytes == 111111 * 2048 * 12 + 88888 * 2048 * 12
    assert any("88888 sliding-layer" in n for n in fit.notes)


def test_default_mem_fraction_static() -> None:
    # server_args.py: an H100 (81559 MiB): chunked_prefill 8192, cuda_graph_max_bs 256 at
    # TP < 4; reserved = 512 + 8192 x 1.5 + 256 x 2 + 1/8 x 1024 = 13440 MiB;
    # round((81559 - 13440) / 81559, 3) = 0.835. TP 8: bs 512, reserved 512 + 12288 + 1024
    # + 1024 = 14848: round(66711 / 81559, 3) = 0.818. A 24 GiB card (24564 MiB): 2048 and
    # 24: 512 + 3072 + 48 + 128 = 3760 -> round(20804 / 24564, 3) = 0.847.
    assert default_mem_fraction(81559, 1) == 0.835
    assert default_mem_fraction(81559, 8) == 0.818
    assert default_mem_fraction(24564, 1) == 0.847


def test_profile_max_num_token_exact() -> None:
    # profile_max_num_token with the two free-memory readings (hand-worked): 78.5 GiB free
    # before loading, 63.5 GiB after, fraction 0.835: rest = 63.5 - 78.5 x 0.165 = 50.5475 GiB;
    # / 131072 bytes (Llama-3.1-8B) = 50.5475 x 8192 = 414085.12 -> 414085; page 16: 414080.
    rest = rest_memory(int(78.5 * GIB), int(63.5 * GIB), 0.835)
    assert max_total_num_tokens(rest, 131072) == 414085
    assert max_total_num_tokens(rest, 131072, page_size=16) == 414080
    assert max_total_num_tokens(rest_memory(10 * GIB, 1 * GIB, 0.8), 131072) == 0


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


def test_70b_tensor_parallel_default_fraction() -> None:
    # Llama-3.1-70B, TP 4 on 81559 MiB H100s, 131.5 GiB of weights (32.875 GiB a GPU):
    # fraction: bs 512 at TP 4, reserved 512 + 12288 + 1024 + 512 = 14336 MiB ->
    # round(67223 / 81559, 3) = 0.824; free before 81047 MiB; rest = 81047 x 0.824 - 33664
    # = 33118.728 MiB; cell 2 KV heads x 256 x 80 x 2 bytes = 81920: 423919 tokens.
    model = view(LLAMA31_70B, int(131.5 * GIB))
    fit = ENGINE.plan(model, request(4, total=81559 * MIB, context=131072))
    assert any("0.824" in n for n in fit.notes)
    assert fit.kv_cache_tokens == 423919
    assert fit.fits
    # The same with fp8 KV halves the cell: twice the tokens (847839).
    fp8 = ENGINE.plan(model, request(4, total=81559 * MIB, context=131072, kv_dtype=FP8))
    assert fp8.kv_cache_tokens == 847839


def test_mamba_hybrid_split_qwen3_next() -> None:
    # Hand-worked from handle_max_mamba_cache, Qwen3-Next-80B-A3B at TP 4: 36 Gated DeltaNet
    # layers, a state of conv (2 x 16 x 128 + 32 x 128) x (4 - 1) / 4 = 6144 bf16 (d_conv - 1
    # columns) and recurrent 32 x 128 x 128 / 4 = 131072 float32: 536576 bytes a layer,
    # 19316736 a request. 10 GiB: mamba = int(10 GiB x 0.9 / 1.9 // 19316736) = 263 states;
    # left 10737418240 - 263 x 19316736 = 5657116672; cell 1 KV head x 512 x 12 layers x 2 =
    # 12288: 460377.
    model = view(QWEN3_NEXT)
    assert ENGINE.supports(model) is None
    assert mamba_cache_per_req(model, 4) == 19316736
    fit = ENGINE.plan(model, request(4, context=32768, kv_memory=10 * GIB))
    assert fit.kv_cache_tokens == 460377
    assert fit.max_concurrency == 460377 / 32768
    # At 1024 tokens the pool holds 449.6 sequences, but max_running_requests = min(2048,
    # 263 // 3 = 87): the states bound the concurrency.
    short = ENGINE.plan(model, request(4, context=1024, kv_memory=10 * GIB))
    assert short.max_concurrency == 87.0


def test_full_estimate_within_tolerance() -> None:
    # The full estimate against the Llama-3.1-8B figure above with the CUDA context unknown:
    # SGLang's free-before reading on an H100 is 0.4-1.0 GiB under the total; at 0.8 that
    # moves max_total_num_tokens by at most 0.8 x 1 GiB / 128 KiB = 6554 tokens (1.6 %).
    fit = ENGINE.plan(view(LLAMA31_8B, 15 * GIB), request(1, context=8192,
                                                          mem_fraction_static=0.8))  # fmt: skip
    assert abs(fit.kv_cache_tokens - 398131) <= 6554


def test_recurrent_models_are_not_modelled() -> None:
    rwkv = {
        "architectures": ["RwkvForCausalLM"], "model_type": "rwkv", "hidden_size": 2048,
        "num_hidden_layers": 24, "attention_hidden_size": 2048, "vocab_size": 50277,
    }  # fmt: skip
    assert ENGINE.supports(view(rwkv)) is not None
    assert ENGINE.supports(view(LLAMA31_8B)) is None


# ---------------------------------------------------------------- what shares the GPU
# Hand-worked from server_args.py _handle_gpu_memory_settings (reserved_mem += 6 GiB for a
# STANDALONE draft, 2 GiB for EAGLE / EAGLE-MTP; adjust_mem_fraction_for_vlm) and
# model_runner_kv_cache_mixin.py init_memory at 001ccef0: the draft worker's pool holds
# draft_runner_cache_size = the target's max_total_num_tokens over the draft's layers
# (MTP: num_nextn_predict_layers), allocated after the target's, outside the fraction.

LLAMA32_1B: dict[str, Any] = {
    **LLAMA31_8B, "hidden_size": 2048, "intermediate_size": 8192,
    "num_attention_heads": 32, "head_dim": 64, "num_hidden_layers": 16,
    "tie_word_embeddings": True,
}  # fmt: skip


def test_standalone_draft_lowers_the_fraction_and_gets_its_own_pool() -> None:
    # Llama-3.1-70B TP 4 on 81559 MiB H100s (131.5 GiB of weights, 33664 MiB a GPU) with a
    # Llama-3.2-1B draft (2471628800 bytes): reserved 14336 + 6144 = 20480 MiB ->
    # round(61079 / 81559, 3) = 0.749. rest = 81047 x 0.749 - 33664 = 27040.203 MiB;
    # / 81920 bytes a token = 346114 tokens. Draft pool: 346114 x (2 KV heads x 128 x 16
    # layers x 2 bytes = 8192) = 2835365888 bytes; draft weights ceil(2471628800 / 4) =
    # 617907200. Outside the fraction: 81047 x 0.251 = 20342.797 MiB, 6006.797 MiB beside
    # the 14336 MiB activation / graph reserve: the draft's 3453273088 bytes fit.
    model = view(LLAMA31_70B, int(131.5 * GIB))
    draft = view(LLAMA32_1B, 2_471_628_800)
    fit = ENGINE.plan(model, request(4, total=81559 * MIB, context=131072, draft=draft))
    assert any("0.749" in n and "STANDALONE" in n for n in fit.notes)
    assert fit.kv_cache_tokens == 346114
    d = fit.devices[0]
    assert d.kv_cache_bytes == 346114 * 81920 + 2_835_365_888
    assert d.weights_bytes == 33664 * MIB + 617_907_200
    assert d.budget_bytes == 81047 * MIB  # all the free memory: the draft sits outside
    assert fit.fits
    assert not any("CUDA-graph capture" in n for n in fit.notes)


def test_mtp_head_is_an_eagle_draft_worker_with_one_layer() -> None:
    # DeepSeek-V3, TP 2, pool given (10 GiB): 10737418240 // 70272 = 152797 tokens; the
    # NextN draft worker's pool: 152797 x 1 layer x (512 + 64) x 2 = 176022144 bytes.
    # Weights: the MTP part less its embedding and head (set_embed_and_head shares the
    # target's): (1000 - 400) / 2 = 300 bytes a GPU. Default fraction on 80 GiB (81920
    # MiB): reserved max(512 + 12288 + 512 + 256, 10240) = 13568 + 2048 EAGLE = 15616 ->
    # round(66304 / 81920, 3) = 0.809.
    from dataclasses import replace

    model = replace(view(DEEPSEEK_V3), mtp_bytes=1000, mtp_shared_bytes=400)
    fit = ENGINE.plan(model, request(2, context=8192, kv_memory=10 * GIB, mtp=True))
    assert fit.kv_cache_tokens == 152797
    assert fit.devices[0].kv_cache_bytes == 152797 * 70272 + 176_022_144
    assert fit.devices[0].weights_bytes == 300
    assert any("0.809" in n and "EAGLE" in n for n in fit.notes)
    off = ENGINE.plan(model, request(2, context=8192, kv_memory=10 * GIB))
    assert off.devices[0].kv_cache_bytes == 152797 * 70272


def test_multimodal_models_lower_the_default_fraction() -> None:
    # adjust_mem_fraction_for_vlm: a ViT of twice ViT-L/14's L x H^2 (its weights
    # 2 x 12 x 24 x 1024^2 parameters at bf16 = 1207959552 bytes): 0.95 x (1 - 0.1 x 1)
    # = 0.855; on an H100 at TP 1: 0.835 x 0.855 = 0.713925.
    from dataclasses import replace

    model = replace(view(LLAMA31_8B, 15 * GIB), vision_bytes=1_207_959_552)
    fit = ENGINE.plan(model, request(1, total=81559 * MIB, context=8192))
    assert any("0.7139" in n and "multimodal" in n for n in fit.notes)
    plain = ENGINE.plan(view(LLAMA31_8B, 15 * GIB), request(1, total=81559 * MIB, context=8192))
    assert fit.kv_cache_tokens < plain.kv_cache_tokens
