"""llama.cpp's accounting against its own load logs and hand-worked figures.

Every expected value is a literal: from a published llama.cpp log (URL beside it) or
worked out by hand from llama.cpp's formula (written out in the comment).
"""

from __future__ import annotations

from typing import Any

import pytest

from engine_views import engine_view
from layouts import deepseek_v3, gemma2_2b, llama31_8b, qwen3_next_80b
from paramtool.errors import UsageError
from paramtool.memory.engines.base import Device, ModelView, Request
from paramtool.memory.engines.llamacpp import ENGINE, placement

MIB = 1 << 20
GIB = 1 << 30
# Q4_K token embeddings of Llama 3 8B: 128256 x 4096 elements, 144 bytes per 256.
Q4K_EMBD = 128256 * 4096 * 144 // 256  # 295,501,824 B = "281.81 MiB"


def view(config: dict[str, Any], *, layer: int, embd: int, output: int, **kw: Any) -> ModelView:
    return engine_view(config, layer, embd, output, format="gguf", **kw)


def llama3_8b(ctx_train: int = 8192) -> ModelView:
    config = {**llama31_8b().config, "max_position_embeddings": ctx_train}
    return view(config, layer=128 * MIB, embd=Q4K_EMBD, output=200 * MIB)


def gpu(gib: int, name: str = "GPU") -> Device:
    return Device(name=name, total_bytes=gib * GIB)


def test_published_log_llama3_8b_q4_k_m_n_ctx_512() -> None:
    # https://github.com/developer0hye/llama-3-korean-bllossom-8b-q4-docker (README):
    # RTX 3070, 33/33 layers, n_ctx 512, n_ubatch 512, flash_attn 0:
    #   CPU buffer size = 281.81 MiB; CUDA0 KV buffer size = 64.00 MiB;
    #   CUDA_Host output buffer size = 0.49 MiB; CUDA0 compute buffer size = 258.50 MiB;
    #   CUDA_Host compute buffer size = 9.01 MiB
    fit = ENGINE.plan(llama3_8b(), Request(devices=(gpu(8),), context=512, flash_attention=False))
    (dev,) = fit.devices
    assert fit.ram.weights_bytes == 295_501_824  # 281.81 MiB
    assert dev.kv_cache_bytes == 64 * MIB
    assert dev.activation_bytes == 271_056_896  # 258.50 MiB: logits 128256x512x4 + 4096x512x4
    # host: inp_embd 8 MiB + mask 1 MiB (log: 9.01) + output buffer 128256 x 4 (log: 0.49)
    assert fit.ram.activation_bytes == 9 * MIB + 513_024
    assert fit.ram.kv_cache_bytes == 0
    assert dev.weights_bytes == 32 * 128 * MIB + 200 * MIB
    assert fit.kv_cache_tokens == 512
    assert fit.fits


def test_llama3_8b_n_ctx_8192_kv_and_compute() -> None:
    # KV: 32 layers x 8 KV heads x 128 x (K+V) x 2 B (f16) x 8192 = 1,073,741,824 ("1024.00 MiB")
    # compute (no FA): K·Q scores 32 heads x 8192 x 512 x 4 B = 512 MiB (the formula in
    # https://github.com/ikawrakow/ik_llama.cpp/pull/235: n_ctx x n_head x n_ubatch x 4),
    # + the mask copy 8192 x 512 x 4 = 16 MiB + 4 x (4096 x 512 x 4) = 32 MiB: 560.00 MiB,
    # the figure llama.cpp logs for Llama 3 8B at -c 8192 (host: 8 + 16 = 24 MiB, log 24.01)
    fit = ENGINE.plan(llama3_8b(), Request(devices=(gpu(24),), context=8192, flash_attention=False))
    (dev,) = fit.devices
    assert dev.kv_cache_bytes == 1_073_741_824
    assert dev.activation_bytes == 560 * MIB
    assert fit.ram.activation_bytes == 24 * MIB + 513_024
    # flash attention: no scores; the logits peak wins: 250.5 + 8 = 258.5 MiB
    fa = ENGINE.plan(llama3_8b(), Request(devices=(gpu(24),), context=8192, flash_attention=True))
    assert fa.devices[0].activation_bytes == 271_056_896


def test_n_ctx_padded_to_256() -> None:
    # llama_context: n_ctx = GGML_PAD(n_ctx, 256): 1000 -> 1024 cells
    fit = ENGINE.plan(llama3_8b(), Request(devices=(gpu(24),), context=1000))
    assert fit.kv_cache_tokens == 1024
    assert fit.devices[0].kv_cache_bytes == 32 * 4096 * 1024  # 128 MiB
    assert fit.max_model_len is not None and fit.max_model_len % 256 == 0


def test_partial_offload_ngl_20() -> None:
    # i_gpu_start = 33 - 20 = 13: layers 13..31 (19) and the output on the GPU, 0..12 on CPU.
    # KV per layer at 8192: 8 x 128 x 2 x 2 B x 8192 = 32 MiB
    fit = ENGINE.plan(llama3_8b(), Request(devices=(gpu(24),), context=8192, gpu_layers=20))
    (dev,) = fit.devices
    assert dev.weights_bytes == 19 * 128 * MIB + 200 * MIB
    assert dev.kv_cache_bytes == 19 * 32 * MIB
    assert fit.ram.weights_bytes == 13 * 128 * MIB + Q4K_EMBD
    assert fit.ram.kv_cache_bytes == 13 * 32 * MIB
    assert fit.kv_cache_bytes == 32 * 32 * MIB


def test_ngl_0_keeps_everything_in_ram() -> None:
    fit = ENGINE.plan(llama3_8b(), Request(devices=(gpu(24),), context=4096, gpu_layers=0))
    assert fit.devices[0].weights_bytes == 0
    assert fit.devices[0].kv_cache_bytes == 0
    assert fit.ram.weights_bytes == 32 * 128 * MIB + Q4K_EMBD + 200 * MIB


def test_placement_matches_load_tensors() -> None:
    # -ngl 1: only the output slot; -ngl 32 of 32 layers: layer 0 stays on the CPU
    assert placement(4, 1, [1.0]) == [-1, -1, -1, -1, 0]
    assert placement(4, 4, [1.0]) == [-1, 0, 0, 0, 0]
    # split 1:1 over 5 slots: x = 0, .2, .4 -> GPU 0; .6, .8 -> GPU 1
    assert placement(4, 5, [1.0, 1.0]) == [0, 0, 0, 1, 1]


def test_two_heterogeneous_gpus_split_by_free_memory() -> None:
    # splits 24:12 -> cumulative [2/3, 1]; slot il goes to GPU 0 while il/33 < 2/3: il 0..21
    fit = ENGINE.plan(
        llama3_8b(),
        Request(devices=(gpu(24, "4090"), gpu(12, "3060")), context=8192, flash_attention=True),
    )
    a, b = fit.devices
    assert a.weights_bytes == 22 * 128 * MIB
    assert b.weights_bytes == 10 * 128 * MIB + 200 * MIB
    assert a.kv_cache_bytes == 22 * 32 * MIB
    assert b.kv_cache_bytes == 10 * 32 * MIB
    assert b.activation_bytes == 271_056_896  # the output layer's logits peak is on GPU 1
    assert a.activation_bytes < b.activation_bytes


MIXTRAL_LIKE = {
    "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 4096,
    "num_attention_heads": 32, "num_key_value_heads": 8, "num_hidden_layers": 32,
    "intermediate_size": 14336, "vocab_size": 32000, "num_local_experts": 8,
    "num_experts_per_tok": 2, "max_position_embeddings": 32768, "tie_word_embeddings": False,
}  # fmt: skip


def mixtral() -> ModelView:
    return view(
        MIXTRAL_LIKE, layer=800 * MIB, embd=70 * MIB, output=100 * MIB,
        routed_expert_bytes=(768 * MIB,) * 32,
    )  # fmt: skip


def test_moe_n_cpu_moe_moves_routed_experts_to_ram() -> None:
    # --n-cpu-moe 10: the routed experts of layers 0..9 (10 x 768 MiB) in system memory
    fit = ENGINE.plan(mixtral(), Request(devices=(gpu(80),), context=4096, cpu_moe=10))
    (dev,) = fit.devices
    assert dev.weights_bytes == 32 * 800 * MIB - 10 * 768 * MIB + 100 * MIB
    assert fit.ram.weights_bytes == 70 * MIB + 10 * 768 * MIB
    assert dev.kv_cache_bytes == 32 * 8 * 128 * 2 * 2 * 4096  # 512 MiB


def test_moe_fit_moves_experts_before_layers() -> None:
    # 25 GiB: all 32 layers (25,700 MiB of weights) do not fit; --fit keeps every layer
    # offloaded and moves the experts of the first layers to system memory
    fit = ENGINE.plan(mixtral(), Request(devices=(gpu(25),), context=4096))
    assert fit.fits
    assert fit.ram.weights_bytes > 70 * MIB
    assert (fit.ram.weights_bytes - 70 * MIB) % (768 * MIB) == 0
    assert any("experts of the first" in n for n in fit.notes)


def test_fit_reduces_context_when_not_given() -> None:
    # n_ctx 0 = the training context (131072): its KV (16 GiB) does not fit 12 GiB, so --fit
    # lowers n_ctx (a multiple of 256, at least 4096) and keeps every layer on the GPU
    fit = ENGINE.plan(llama3_8b(131072), Request(devices=(gpu(12),)))
    assert 4096 <= fit.kv_cache_tokens < 131072
    assert fit.kv_cache_tokens % 256 == 0
    assert fit.ram.weights_bytes == Q4K_EMBD
    assert fit.devices[0].free_bytes >= GIB


def test_swa_cache_gemma2() -> None:
    # Gemma 2 2B: 13 full + 13 sliding layers (W 4096), 4 KV heads x 256, f16:
    # per token per layer 4 x 256 x 2 x 2 B = 4096 B.
    # full: 13 x 4096 x 8192 = 436,207,616; SWA cells pad256(min(8192, 4096 + 512)) = 4608:
    # 13 x 4096 x 4608 = 245,366,784 (llama_kv_cache_iswa, --swa-full off)
    layout = gemma2_2b()
    model = view(layout.config, layer=100 * MIB, embd=1125 * MIB, output=0)
    fit = ENGINE.plan(model, Request(devices=(gpu(24),), context=8192))
    assert fit.devices[0].kv_cache_bytes == 436_207_616 + 245_366_784
    # tied head: token_embd duplicated onto the output layer's device
    assert fit.devices[0].weights_bytes == 26 * 100 * MIB + 1125 * MIB
    assert fit.ram.weights_bytes == 1125 * MIB


def test_apple_unified_memory_budget_is_working_set() -> None:
    mac = Device(name="M3 Max 64GB", total_bytes=64 * GIB, unified=True,
                 working_set_bytes=48 * GIB)  # fmt: skip
    fit = ENGINE.plan(llama3_8b(), Request(devices=(mac,), context=8192))
    assert fit.devices[0].budget_bytes == 48 * GIB
    assert fit.fits
    small = Device(name="M1 8GB", total_bytes=8 * GIB, unified=True, working_set_bytes=5 * GIB)
    big = view(llama31_8b().config, layer=200 * MIB, embd=Q4K_EMBD, output=200 * MIB)
    no = ENGINE.plan(big, Request(devices=(small,), context=8192, gpu_layers=33))
    assert not no.fits and no.why_not


def test_cpu_only_and_ram_limit() -> None:
    fit = ENGINE.plan(llama3_8b(), Request(devices=(), context=4096, ram_bytes=2 * GIB))
    assert not fit.fits
    assert "system memory" in (fit.why_not or "")


def test_bad_values() -> None:
    with pytest.raises(UsageError):
        ENGINE.plan(llama3_8b(), Request(devices=(gpu(24),), gpu_layers=-1))
    with pytest.raises(UsageError):
        ENGINE.plan(llama3_8b(), Request(devices=(gpu(24),), batch=1000))


def test_mla_deepseek_v3_caches_the_latent_in_k_only() -> None:
    # llama.cpp (src/llama-kv-cache.cpp: has_v = !is_mla) keeps K = kv_lora_rank + rope
    # = 512 + 64 elements per token per layer and no V; f16:
    # 61 layers x 576 x 2 B x 4096 cells = 287,834,112 (decompressed heads would be
    # 128 x (192 + 128) = 40,960 elements: 71x more)
    model = view(deepseek_v3().config, layer=100 * MIB, embd=900 * MIB, output=900 * MIB)
    fit = ENGINE.plan(model, Request(devices=(), context=4096))
    assert fit.ram.kv_cache_bytes == 287_834_112
    # two sequences: n_ctx = pad256(2 x 4096), two streams of 4096 cells
    two = ENGINE.plan(model, Request(devices=(), context=4096, batch=2))
    assert two.ram.kv_cache_bytes == 2 * 287_834_112


def test_hybrid_qwen3_next_attention_kv_and_recurrent_states() -> None:
    # llama_memory_hybrid: a KV cache for the 12 attention layers (every 4th) and a
    # llama_memory_recurrent for the 36 Gated DeltaNet layers, all offloaded (-ngl 49).
    # KV: 12 x 2 KV heads x 256 x (K+V) x 2 B (f16) x 4096 cells x 2 sequences = 201,326,592
    # states (src/llama-hparams.cpp, f32, max(1, n_seq_max) = 2 cells):
    #   n_embd_r = (ssm_d_conv - 1) x (ssm_d_inner + 2 x ssm_n_group x ssm_d_state)
    #            = 3 x (32 x 128 + 2 x 16 x 128) = 24,576
    #   n_embd_s = ssm_d_state x ssm_d_inner = 128 x 4096 = 524,288
    #   36 x (24,576 + 524,288) x 4 B x 2 = 158,072,832
    model = view(qwen3_next_80b().config, layer=100 * MIB, embd=600 * MIB, output=600 * MIB)
    req = Request(devices=(gpu(80),), context=4096, batch=2, gpu_layers=49)
    fit = ENGINE.plan(model, req)
    assert fit.devices[0].kv_cache_bytes == 201_326_592 + 158_072_832
    # twice the context: the KV doubles, the states do not grow
    longer = ENGINE.plan(model, Request(devices=(gpu(80),), context=8192, batch=2, gpu_layers=49))
    assert longer.devices[0].kv_cache_bytes == 2 * 201_326_592 + 158_072_832


# state-spaces/mamba-130m-hf, config.json.
MAMBA_130M = {
    "architectures": ["MambaForCausalLM"], "model_type": "mamba", "hidden_size": 768,
    "intermediate_size": 1536, "state_size": 16, "conv_kernel": 4, "expand": 2,
    "num_hidden_layers": 24, "vocab_size": 50280, "tie_word_embeddings": True,
}  # fmt: skip


def test_pure_mamba_recurrent_state_per_sequence() -> None:
    # llama_memory_recurrent, no KV cache: per layer n_embd_r = (4 - 1) x 1536 = 4,608 and
    # n_embd_s = 16 x 1536 = 24,576 f32 elements per sequence:
    # 24 x 29,184 x 4 B = 2,801,664 per sequence, whatever the context
    model = view(MAMBA_130M, layer=10 * MIB, embd=75 * MIB, output=0)
    one = ENGINE.plan(model, Request(devices=(), context=4096))
    assert one.ram.kv_cache_bytes == 2_801_664
    three = ENGINE.plan(model, Request(devices=(), context=65536, batch=3))
    assert three.ram.kv_cache_bytes == 3 * 2_801_664


def test_rwkv4_is_not_a_llama_cpp_graph() -> None:
    config = {
        "architectures": ["RwkvForCausalLM"], "model_type": "rwkv", "hidden_size": 768,
        "attention_hidden_size": 768, "num_hidden_layers": 12, "vocab_size": 50277,
    }  # fmt: skip
    model = view(config, layer=10 * MIB, embd=75 * MIB, output=75 * MIB)
    assert "RWKV-4" in (ENGINE.supports(model) or "")


# The tiny GGUFs of benchmarks/engines/llamacpp_compare.py (4 layers, n_embd 256, vocab
# 2048, an own f16 head), as transformers configs. The "log" figures below come from
# running llama.cpp 0.3.36's vendored build (llama.cpp 0c1e57098, CPU, n_gpu_layers=0,
# n_ctx 4096, n_ubatch 512, flash attention off) on those GGUFs.
TINY = {"hidden_size": 256, "num_hidden_layers": 4, "vocab_size": 2048,
        "max_position_embeddings": 8192, "tie_word_embeddings": False}  # fmt: skip
TINY_MAMBA = TINY | {
    "architectures": ["MambaForCausalLM"], "model_type": "mamba", "intermediate_size": 512,
    "state_size": 16, "conv_kernel": 4, "expand": 2, "time_step_rank": 16,
}  # fmt: skip
TINY_MLA = TINY | {
    "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2",
    "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 512,
    "q_lora_rank": 64, "kv_lora_rank": 64, "qk_rope_head_dim": 16, "qk_nope_head_dim": 32,
    "v_head_dim": 32, "n_routed_experts": 4, "num_experts_per_tok": 2, "n_shared_experts": 1,
    "moe_intermediate_size": 128, "first_k_dense_replace": 1, "moe_layer_freq": 1,
}  # fmt: skip
CPU_ONLY = Request(devices=(), context=4096, gpu_layers=0, flash_attention=False)


def test_tiny_mamba_against_llama_cpp_log() -> None:
    # GGUF: mamba, ssm.inner_size 512, ssm.state_size 16, ssm.conv_kernel 4. Log:
    #   llama_memory_recurrent: size = 0.15 MiB (1 cells, 4 layers, 1 seqs),
    #     R (f32): 0.02 MiB, S (f32): 0.12 MiB
    # = 4 x ((4 - 1) x 512 + 16 x 512) x 4 B = 155,648 (R 24,576, S 131,072)
    model = view(TINY_MAMBA, layer=1_162_240, embd=1_048_576, output=1_048_576)
    fit = ENGINE.plan(model, CPU_ONLY)
    assert fit.ram.kv_cache_bytes == 155_648
    # log: "CPU compute buffer size is 6.5469 MiB" (≈ 6,864,922 B) + "CPU output buffer size =
    # 0.01 MiB" (2048 x 4 B). Hand-worked: a Mamba layer's peak (256 + 6 x 512) x 512 x 4
    # = 6,815,744 (above the logits' (2048 + 256) x 512 x 4 = 4,718,592), + 8,192
    assert fit.ram.activation_bytes == 6_815_744 + 8_192
    logged = 6_864_922 + 8_192
    assert abs(fit.ram.activation_bytes - logged) < 0.01 * logged


def test_tiny_mla_against_llama_cpp_log() -> None:
    # GGUF: deepseek2, kv_lora_rank 64, rope 16, key_length_mla 48, value_length_mla 32,
    # head_count 4, head_count_kv 1. Log: "llama_kv_cache: size = 2.50 MiB (4096 cells,
    # 4 layers, 1/1 seqs), K (f16): 2.50 MiB, V (f16): 0.00 MiB"
    # = 4 x (64 + 16) x 2 B x 4096 = 2,621,440, no V
    model = view(TINY_MLA, layer=1_000_000, embd=1_048_576, output=1_048_576)
    fit = ENGINE.plan(model, CPU_ONLY)
    assert fit.ram.kv_cache_bytes == 2_621_440
    # log: "CPU compute buffer size is 43.6543 MiB" (≈ 45,774,851 B) + output 8,192 B.
    # Hand-worked: scores 4 x 4096 x 512 x 4 = 33,554,432 + the absorbed query
    # 4 x (64 + 16) x 512 x 4 = 655,360 + 6 x 256 x 512 x 4 = 3,145,728 + the mask
    # 4096 x 512 x 4 = 8,388,608, + 8,192
    assert fit.ram.activation_bytes == 33_554_432 + 655_360 + 3_145_728 + 8_388_608 + 8_192
    logged = 45_774_851 + 8_192
    assert abs(fit.ram.activation_bytes - logged) < 0.01 * logged
