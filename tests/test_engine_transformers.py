"""transformers' generate: weights by device_map="auto" and the DynamicCache, hand-worked."""

from __future__ import annotations

from typing import Any

import pytest

from engine_views import engine_view
from layouts import deepseek_v3, gemma2_2b, llama31_8b, mixtral_8x7b, qwen3_next_80b
from paramtool import dtypes
from paramtool.errors import UsageError
from paramtool.memory.engines.base import Device, ModelView, Request
from paramtool.memory.engines.transformers import ENGINE

GIB = 1 << 30
MIB = 1 << 20


def view(config: dict[str, Any], layer: int, embd: int, output: int) -> ModelView:
    return engine_view(config, layer, embd, output, weight_dtype=dtypes.lookup("BF16"))


def test_one_gpu_holds_everything_and_the_dynamic_cache() -> None:
    model = view(llama31_8b().config, 400 * MIB, 1002 * MIB, 1002 * MIB)
    fit = ENGINE.plan(model, Request(devices=(Device("H100", 80 * GIB),), context=4096))
    (dev,) = fit.devices
    assert dev.weights_bytes == 32 * 400 * MIB + 2004 * MIB
    # 32 layers x 8 KV heads x 128 x (K+V) x 2 B (bf16) x 4096 = 536,870,912
    assert dev.kv_cache_bytes == 536_870_912
    # logits: generate keeps the last token (logits_to_keep=1): 128256 x 2 B + 128256 x 4 B
    # prefill: 4096 x (4 x 4096 + 2 x 14336) x 2 B = 369,098,752
    assert dev.activation_bytes == 369_098_752 + 128256 * 6
    assert fit.fits and fit.kv_cache_tokens == 4096


def test_sliding_layers_keep_w_minus_1() -> None:
    # Gemma 2 2B at 8192: 13 full layers x 8192 + 13 sliding x 4095 tokens (W - 1),
    # 4 KV heads x 256 x 2 x 2 B = 4096 B per token per layer
    model = view(gemma2_2b().config, 100 * MIB, 1125 * MIB, 0)
    fit = ENGINE.plan(model, Request(devices=(Device("A100", 80 * GIB),), context=8192))
    assert fit.devices[0].kv_cache_bytes == 13 * 4096 * 8192 + 13 * 4096 * 4095


def test_two_gpus_balance_layers() -> None:
    model = view(llama31_8b().config, 400 * MIB, 1002 * MIB, 1002 * MIB)
    fit = ENGINE.plan(
        model, Request(devices=(Device("a", 24 * GIB), Device("b", 24 * GIB)), context=4096)
    )
    a, b = fit.devices
    assert a.weights_bytes == 16 * 400 * MIB + 1002 * MIB  # embeddings on the first
    assert b.weights_bytes == 16 * 400 * MIB + 1002 * MIB  # head on the last
    assert a.kv_cache_bytes == b.kv_cache_bytes == 268_435_456


def test_does_not_fit_and_largest_context() -> None:
    model = view(llama31_8b().config, 400 * MIB, 1002 * MIB, 1002 * MIB)
    fit = ENGINE.plan(model, Request(devices=(Device("small", 16 * GIB),), context=131072))
    assert not fit.fits and fit.why_not
    assert fit.max_model_len is not None and fit.max_model_len < 131072


def test_needs_a_gpu() -> None:
    model = view(llama31_8b().config, 400 * MIB, 1002 * MIB, 1002 * MIB)
    with pytest.raises(UsageError):
        ENGINE.plan(model, Request(devices=()))


def test_moe_loads_every_expert_mixtral() -> None:
    # Mixtral 8x7B in bf16, per layer: attention 2 x 4096^2 + 2 x 1024 x 4096 = 41,943,040,
    # 8 experts x 3 x 14336 x 4096 = 1,409,286,144, router 8 x 4096, norms 2 x 4096:
    # 1,451,270,144 parameters = 2,902,540,288 B; embeddings and head 32000 x 4096 x 2 B each.
    # Two GPUs: 16 layers each, embeddings on the first, the head on the last.
    layer, embd = 2_902_540_288, 262_144_000
    model = view(mixtral_8x7b().config, layer, embd, embd)
    two = (Device("a", 80 * GIB), Device("b", 80 * GIB))
    fit = ENGINE.plan(model, Request(devices=two, context=4096))
    a, b = fit.devices
    assert a.weights_bytes == b.weights_bytes == 46_702_788_608  # 16 x layer + 262,144,000
    # KV: 32 layers x 8 x 128 x 2 x 2 B x 4096 = 536,870,912, half on each
    assert a.kv_cache_bytes == b.kv_cache_bytes == 268_435_456
    # prefill: k = 2 experts of 14336 run per token: 4096 x (4 x 4096 + 2 x 2 x 14336) x 2 B
    assert a.activation_bytes == 603_979_776
    assert b.activation_bytes == 603_979_776 + 32000 * 6  # last-token logits, bf16 + f32


def test_mla_deepseek_v3_caches_the_latent() -> None:
    # transformers 5 (models/deepseek_v3/modeling_deepseek_v3.py: "Cache read / write is
    # performed while latent KV is still compressed") caches kv_lora_rank 512 + rope 64
    # per token per layer: 61 x 576 x 2 B x 4096 = 287,834,112 (transformers 4.x cached
    # the decompressed 128 x (192 + 128) heads)
    model = view(deepseek_v3().config, 100 * MIB, 900 * MIB, 900 * MIB)
    fit = ENGINE.plan(model, Request(devices=(Device("H200", 141 * GIB),), context=4096))
    assert fit.devices[0].kv_cache_bytes == 287_834_112


def test_hybrid_qwen3_next_states_beside_the_cache() -> None:
    # 12 attention layers: 12 x 2 KV heads x 256 x 2 x 2 B x 4096 = 100,663,296.
    # 36 Gated DeltaNet layers (cache_utils.LinearAttentionLayer): conv over the whole
    # kernel, (2 x 16 x 128 + 32 x 128) x 4 x 2 B = 65,536, and a float32 recurrent state
    # 32 x 128 x 128 x 4 B = 2,097,152: 36 x 2,162,688 = 77,856,768 per sequence.
    model = view(qwen3_next_80b().config, 100 * MIB, 600 * MIB, 600 * MIB)
    gpu = (Device("H200", 141 * GIB),)
    fit = ENGINE.plan(model, Request(devices=gpu, context=4096))
    (dev,) = fit.devices
    assert dev.kv_cache_bytes == 100_663_296 + 77_856_768
    two = ENGINE.plan(model, Request(devices=gpu, context=8192, batch=2))
    assert two.devices[0].kv_cache_bytes == 4 * 100_663_296 + 2 * 77_856_768
    # MoE prefill: 10 routed experts of 512 and the shared 512 per token:
    # 4096 x (4 x 2048 + 2 x 5632) x 2 B = 159,383,552, + logits 151936 x (2 + 4) B
    assert dev.activation_bytes == 159_383_552 + 151936 * 6
