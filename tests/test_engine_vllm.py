"""vLLM's accounting against its own logs (GitHub issues, quoted) and hand-worked figures."""

from __future__ import annotations

from typing import Any

import pytest

from paramtool import dtypes
from paramtool.memory.dims import ModelDims
from paramtool.memory.engines.base import Device, ModelView, Request
from paramtool.memory.engines.vllm import ENGINE, activation_peak, batch_defaults

GIB = 1 << 30
MIB = 1 << 20

LLAMA31_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 14336, "num_attention_heads": 32, "num_key_value_heads": 8,
    "num_hidden_layers": 32, "vocab_size": 128256, "max_position_embeddings": 131072,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}  # fmt: skip
LLAMA31_8B_BYTES = 16_060_522_496  # tests/layouts.py llama31_8b(): exact tensor bytes
QWEN25_14B: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 5120,
    "intermediate_size": 13824, "num_attention_heads": 40, "num_key_value_heads": 8,
    "num_hidden_layers": 48, "vocab_size": 152064, "max_position_embeddings": 131072,
    "torch_dtype": "bfloat16",
}  # fmt: skip
DEEPSEEK_V2_LITE: dict[str, Any] = {
    "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2",
    "hidden_size": 2048, "intermediate_size": 10944, "num_attention_heads": 16,
    "num_key_value_heads": 16, "num_hidden_layers": 27, "kv_lora_rank": 512,
    "q_lora_rank": None, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
    "v_head_dim": 128, "n_routed_experts": 64, "num_experts_per_tok": 6,
    "n_shared_experts": 2, "moe_intermediate_size": 1408, "first_k_dense_replace": 1,
    "vocab_size": 102400, "max_position_embeddings": 163840, "torch_dtype": "bfloat16",
}  # fmt: skip
GPT_OSS_20B: dict[str, Any] = {
    "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "hidden_size": 2880,
    "intermediate_size": 2880, "num_attention_heads": 64, "num_key_value_heads": 8,
    "head_dim": 64, "num_hidden_layers": 24, "sliding_window": 128,
    "layer_types": ["sliding_attention", "full_attention"] * 12,
    "num_local_experts": 32, "num_experts_per_tok": 4, "vocab_size": 201088,
    "max_position_embeddings": 131072, "torch_dtype": "bfloat16",
}  # fmt: skip
QWEN3_NEXT_80B: dict[str, Any] = {
    "architectures": ["Qwen3NextForCausalLM"], "model_type": "qwen3_next",
    "hidden_size": 2048, "intermediate_size": 5120, "num_attention_heads": 16,
    "num_key_value_heads": 2, "head_dim": 256, "num_hidden_layers": 48,
    "full_attention_interval": 4, "linear_num_key_heads": 16,
    "linear_num_value_heads": 32, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
    "linear_conv_kernel_dim": 4, "num_experts": 512, "num_experts_per_tok": 10,
    "moe_intermediate_size": 512, "shared_expert_intermediate_size": 512,
    "vocab_size": 151936, "max_position_embeddings": 262144, "torch_dtype": "bfloat16",
}  # fmt: skip


def view(config: dict[str, Any], weights: int = 0) -> ModelView:
    dims = ModelDims.from_config(config)
    return ModelView(dims, 0, 0, weights, weights, weight_dtype=dtypes.lookup("BF16"))


def gpu(total: int, name: str = "H100 80GB (SXM)") -> Device:
    return Device(name, total)


def request(n: int = 1, total: int = 80 * GIB, **kw: Any) -> Request:
    return Request(devices=tuple(gpu(total) for _ in range(n)), **kw)


def test_llama_blocks_and_concurrency_from_a_log() -> None:
    # https://github.com/vllm-project/vllm/issues/10517 (Llama-3.1-8B-Instruct, RTX 3090):
    # "GPU blocks: 1952 ... Maximum concurrency for 20000 tokens per request: 1.56x".
    # A block of 16 tokens over 32 layers: 16 x 8 heads x 256 x 2 bytes x 32 = 2 MiB.
    fit = ENGINE.plan(view(LLAMA31_8B), request(context=20000, kv_memory=1952 * 2 * MIB))
    assert fit.kv_cache_tokens == 1952 * 16
    assert f"{fit.max_concurrency:.2f}" == "1.56"
    assert fit.fits
    # the same log's figure in GiB, rounded to 3.81: two blocks short of 1952
    fit = ENGINE.plan(view(LLAMA31_8B), request(context=20000, kv_memory=int(3.81 * GIB)))
    assert fit.kv_cache_tokens == 1950 * 16


def test_llama_refused_when_one_request_does_not_fit() -> None:
    # the same issue, 29k: "# GPU blocks: 1478 ... Maximum concurrency for 29000 tokens per
    # request: 0.82x ... larger than the maximum number of tokens that can be stored in KV
    # cache (23648)".
    fit = ENGINE.plan(view(LLAMA31_8B), request(context=29000, kv_memory=1478 * 2 * MIB))
    assert fit.kv_cache_tokens == 23648
    assert f"{fit.max_concurrency:.2f}" == "0.82"
    assert not fit.fits
    assert fit.max_model_len == 23648
    assert fit.why_not is not None and "23648" in fit.why_not


def test_estimated_maximum_model_length_message() -> None:
    # A published startup error (Qwen2.5-14B, vLLM v1): "To serve at least one request with
    # the models's max seq len (131072), 24.00 GiB KV cache is needed, which is larger than
    # the available KV cache memory (10.91 GiB) ... the estimated maximum model length is
    # 59584". 48 layers x 8 heads x 128 x 2 x 2 bytes = 192 KiB a token, 3 MiB a block;
    # 59584 tokens = 3724 blocks = 10.9102 GiB (the log's 10.91).
    fit = ENGINE.plan(view(QWEN25_14B), request(kv_memory=3724 * 3 * MIB))
    assert not fit.fits
    assert fit.max_model_len == 59584
    layout, _ = ENGINE.layout(view(QWEN25_14B), request())
    assert layout.request_bytes(131072, 2048) == 24 * GIB


def test_tensor_parallel_splits_kv_heads_and_replicates_past_them() -> None:
    # 8 KV heads: TP 2 gives 4 a GPU (a block 1 MiB); TP 16 still 1 head (256 KiB)
    layout2, _ = ENGINE.layout(view(LLAMA31_8B), request(2))
    assert layout2.block_bytes == 1 * MIB
    layout16, _ = ENGINE.layout(view(LLAMA31_8B), request(16))
    assert layout16.block_bytes == 256 * 1024


def test_fp8_kv_cache_halves_the_page() -> None:
    layout, _ = ENGINE.layout(view(LLAMA31_8B), request(kv_dtype=dtypes.lookup("F8_E4M3")))
    assert layout.block_bytes == 1 * MIB


def test_mla_caches_the_latent_unsplit() -> None:
    # DeepSeek-V2-Lite: (512 + 64) x 2 bytes x 16 tokens = 18432 bytes a layer's block, 27
    # layers: 497664 bytes a block, on every GPU whatever the TP. 10 GiB: 10737418240 //
    # 18432 // 27 = 21575 blocks = 345200 tokens; 163840 tokens a request = 10240 blocks.
    for tp in (1, 2):
        fit = ENGINE.plan(view(DEEPSEEK_V2_LITE), request(tp, kv_memory=10 * GIB))
        assert fit.kv_cache_tokens == 345200
        assert fit.max_concurrency == pytest.approx(21575 / 10240)
        assert fit.devices[0].kv_cache_bytes == 21575 * 497664


def test_sliding_window_groups_and_concurrency() -> None:
    # gpt-oss-20b: 12 sliding (128) + 12 full layers, 8 KV heads x 64: a page of 16 x 8 x
    # 128 x 2 = 32768 bytes in both; two groups of 12 layers sharing block ids.
    # 20 GiB: 21474836480 // 32768 // 12 = 54613 blocks; tokens = 54613 // 2 x 16 = 436896.
    # One request of 131072 at max_num_batched_tokens 8192: 8192 full blocks + sliding
    # cdiv(min(127 + 8192, 131072), 16) + 1 = 521: 8713 blocks, 54613 / 8713 = 6.268x.
    fit = ENGINE.plan(
        view(GPT_OSS_20B),
        request(context=131072, kv_memory=20 * GIB, max_num_batched_tokens=8192),
    )
    assert fit.kv_cache_tokens == 436896
    assert f"{fit.max_concurrency:.2f}" == "6.27"
    assert fit.devices[0].kv_cache_bytes == 54613 * 32768 * 12
    # largest max_model_len: 12 x 32768 x (cdiv(L, 16) + 521) <= 20 GiB -> 54613 - 521 =
    # 54092 full blocks -> L = 865472 (capped at the model's 131072 unless asked for more)
    layout, _ = ENGINE.layout(view(GPT_OSS_20B), request())
    assert layout.max_model_len(20 * GIB, 10**6, 8192) == 865472


def test_hybrid_mamba_raises_the_attention_block() -> None:
    # Qwen3-Next-80B-A3B: 12 full-attention layers (2 KV heads x 256, 2048 bytes a token)
    # and 36 Gated DeltaNet layers: state (2x16x128 + 32x128) x 4 conv + 32x128x128 =
    # 557056 elements, 1114112 bytes at bf16. Block: 16 x cdiv(1114112, 16 x 2048) = 544
    # tokens (vLLM logs "Setting attention block size to 544 tokens"); page 1114112 bytes.
    # Groups of 12: 1 attention + 3 state groups. 30 GiB: 32212254720 // 1114112 // 12 =
    # 2409 blocks; tokens = 2409 // 4 x 544 = 602 x 544 = 327488. A 262144-token
    # request: 482 attention blocks + 3 state blocks = 485: 2409 / 485 = 4.97x.
    fit = ENGINE.plan(view(QWEN3_NEXT_80B), request(context=262144, kv_memory=30 * GIB))
    assert any("544 tokens" in n for n in fit.notes)
    assert fit.kv_cache_tokens == 327488
    assert f"{fit.max_concurrency:.2f}" == "4.97"


def test_defaults_follow_the_device() -> None:
    assert batch_defaults(80 * GIB, "H100 80GB (SXM)") == (8192, 1024)
    assert batch_defaults(80 * GIB, "A100 80GB") == (2048, 256)
    assert batch_defaults(24 * GIB, "RTX 4090") == (2048, 256)


def test_profiled_budget_against_a_log() -> None:
    # https://github.com/vllm-project/vllm/pull/10511 (Meta-Llama-3-8B, H100, 0.90):
    # "the current vLLM instance can use 71.29GiB; model weights take 14.96GiB;
    # non_torch_memory 1.79GiB; PyTorch activation peak memory 1.26GiB;
    # available_kv_cache_memory 53.29GiB" (max_num_batched_tokens 8192, 256 sequences).
    model = view(LLAMA31_8B, LLAMA31_8B_BYTES)
    total = int(79.22 * GIB)
    fit = ENGINE.plan(model, Request(devices=(gpu(total),), context=8192))
    plan = fit.devices[0]
    assert plan.budget_bytes / GIB == pytest.approx(71.29, abs=0.01)
    assert plan.weights_bytes / GIB == pytest.approx(14.96, abs=0.01)
    # the activation estimate is a lower bound of the measured peak, within 40 %
    act = activation_peak(model, 8192, 256, 1)
    assert 0.6 * 1.26 * GIB <= act <= 1.26 * GIB
    # the pool: 53.29 GiB measured; the estimate counts less non-torch memory (the release
    # followed takes its snapshot after NCCL and the CUDA context), so it is larger
    assert 53.29 * GIB <= plan.kv_cache_bytes <= 56 * GIB
    assert fit.fits


def test_refuses_when_weights_do_not_fit() -> None:
    fit = ENGINE.plan(view(LLAMA31_8B, LLAMA31_8B_BYTES), request(total=16 * GIB))
    assert not fit.fits and fit.why_not is not None
    assert "no memory for the KV cache" in fit.why_not


def test_gguf_is_not_modelled() -> None:
    model = view(LLAMA31_8B)
    from dataclasses import replace

    assert ENGINE.supports(replace(model, format="gguf")) is not None
    assert ENGINE.supports(model) is None
