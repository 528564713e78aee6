"""transformers' generate: weights by device_map="auto" and the DynamicCache, hand-worked."""

from __future__ import annotations

from typing import Any

import pytest

from engine_views import engine_view
from layouts import gemma2_2b, llama31_8b
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
