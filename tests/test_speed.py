"""The speed bounds: decode from bytes read over bandwidth, prefill from FLOPs over peak.

Expected values are worked by hand below, from the roofline argument (Kipply,
"Transformer Inference Arithmetic", 2022): a decoded token reads every active weight
once, so tokens/s <= bandwidth / bytes per token.
"""

from __future__ import annotations

import pytest

from paramtool.memory.devices import parse_gpus
from paramtool.memory.engines.base import Device
from paramtool.memory.speed import (
    decode_tokens_per_s_max,
    flops_per_token,
    prefill_tokens_per_s_max,
)

LLAMA31_8B_BF16 = 16_060_522_496  # 8,030,261,248 parameters x 2 bytes
H100_SXM = 3_350_000_000_000  # 3.35 TB/s, NVIDIA H100 SXM datasheet


def test_llama31_8b_bf16_on_one_h100_sxm() -> None:
    # 3.35e12 B/s / 16.06e9 B per token = 3,350,000,000,000 / 16,060,522,496
    #   = 208.586 tokens/s at most
    tps = decode_tokens_per_s_max([(LLAMA31_8B_BF16, H100_SXM)], parallel=True)
    assert tps == pytest.approx(208.586, abs=1e-3)
    assert decode_tokens_per_s_max([(LLAMA31_8B_BF16, H100_SXM)], parallel=False) == tps


def test_tensor_parallel_is_paced_by_the_slowest_device() -> None:
    # two H100s, 8.03 GB each: 3.35e12 / 8,030,261,248 = 417.17 tokens/s
    half = LLAMA31_8B_BF16 // 2
    tps = decode_tokens_per_s_max([(half, H100_SXM), (half, H100_SXM)], parallel=True)
    assert tps == pytest.approx(417.172, abs=1e-3)
    # a 4090 (1.008 TB/s) and a 3090 (0.936 TB/s) each with 8 GB: the 3090 sets the pace,
    # 0.936e12 / 8e9 = 117 tokens/s
    tps = decode_tokens_per_s_max([(8 * 10**9, 1_008 * 10**9), (8 * 10**9, 936 * 10**9)],
                                  parallel=True)  # fmt: skip
    assert tps == pytest.approx(117.0)


def test_layers_in_sequence_add_their_times_cpu_included() -> None:
    # 12 GB on a 4090 (12e9 / 1.008e12 = 11.905 ms) and 4 GB in system RAM at 80 GB/s
    # (4e9 / 80e9 = 50 ms): 1 / 0.061905 s = 16.154 tokens/s
    reads = [(12 * 10**9, 1_008 * 10**9), (4 * 10**9, 80 * 10**9)]
    assert decode_tokens_per_s_max(reads, parallel=False) == pytest.approx(16.1538, abs=1e-4)
    # in parallel the slower part alone: 1 / 50 ms = 20 tokens/s
    assert decode_tokens_per_s_max(reads, parallel=True) == pytest.approx(20.0)


def test_unknown_bandwidth_and_idle_devices() -> None:
    assert decode_tokens_per_s_max([(10**9, None)], parallel=True) is None
    assert decode_tokens_per_s_max([(10**9, 10**12), (10**9, None)], parallel=False) is None
    # a device that reads nothing does not count, even without a bandwidth
    assert decode_tokens_per_s_max([(10**9, 10**12), (0, None)], parallel=True) == 1000.0
    assert decode_tokens_per_s_max([], parallel=True) is None
    assert decode_tokens_per_s_max([(0, 10**12)], parallel=True) is None


def test_flops_per_token() -> None:
    # 2 FLOPs per active parameter: 2 x 8,030,261,248
    assert flops_per_token(8_030_261_248) == 16_060_522_496
    # plus attention, causal average: 2 x 32 layers x 8192 tokens x 32 heads x 128
    #   = 2,147,483,648
    n = flops_per_token(8_030_261_248, layers=32, heads=32, head_dim=128, context=8192)
    assert n == 16_060_522_496 + 2_147_483_648


def test_prefill_from_peak_compute() -> None:
    # one H100 SXM at 989.5 TFLOP/s bf16 dense over 16,060,522,496 FLOPs per token
    #   = 61,610.7 tokens/s at most
    (h100,) = parse_gpus(["h100-80gb"])
    tps = prefill_tokens_per_s_max(16_060_522_496, [h100], "bf16")
    assert tps == pytest.approx(61_610.7, abs=0.1)
    # two devices add their peaks
    two = parse_gpus(["h100-80gb:2"])
    assert prefill_tokens_per_s_max(16_060_522_496, two, "BF16") == pytest.approx(2 * tps)


def test_prefill_is_unknown_without_the_dtype_figure() -> None:
    (t4,) = parse_gpus(["t4"])  # Turing: no bf16
    assert prefill_tokens_per_s_max(10**9, [t4], "bf16") is None
    assert prefill_tokens_per_s_max(10**9, [t4], "fp16") == pytest.approx(65_000.0)
    custom = Device(name="custom 48GB", total_bytes=48 * 10**9)
    assert prefill_tokens_per_s_max(10**9, [custom], "bf16") is None
    assert prefill_tokens_per_s_max(10**9, [], "bf16") is None
