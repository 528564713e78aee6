"""--gpu specs to devices, and the GPU table's bandwidth and peak FLOP/s with sources."""

from __future__ import annotations

import pytest

from paramtool.errors import UsageError
from paramtool.memory.devices import parse_gpu, parse_gpus, system_ram
from paramtool.memory.gpus import FLOPS_KEYS, GIB, GPUS, apple_working_set, lookup_gpu

# Known GPUs without a bf16 figure, and why (docs/devices.md says the same).
NO_BF16 = {
    "t4": "Turing has no bf16",
    "a10g": "AWS publishes no FLOP/s for the A10G",
}


def test_a_known_name_with_a_count_is_that_many_devices() -> None:
    devices = parse_gpus(["h100-80gb:4"])
    assert len(devices) == 4
    assert {d.name for d in devices} == {"H100 80GB (SXM)"}
    d = devices[0]
    assert d.total_bytes == 81559 * 2**20  # nvidia-smi memory.total (NVIDIA/nccl#1264)
    assert d.bandwidth_bytes_per_s == 3_350_000_000_000  # 3.35 TB/s, H100 SXM datasheet
    assert d.flops["bf16"] == 989_500_000_000_000  # 1,979 TFLOPS with sparsity, halved
    assert d.key == "h100-80gb" and not d.unified and d.working_set_bytes is None


def test_aliases_and_mixed_sets_keep_their_order() -> None:
    devices = parse_gpus(["4090", "RTX3090", "h100:2"])
    assert [d.key for d in devices] == ["rtx4090", "rtx3090", "h100-80gb", "h100-80gb"]
    assert devices[0].bandwidth_bytes_per_s == 1_008_000_000_000
    assert devices[1].bandwidth_bytes_per_s == 936_000_000_000


@pytest.mark.parametrize(
    ("spec", "count", "size"),
    [
        ("48GB", 1, 48 * 10**9),
        ("48gb:2", 2, 48 * 10**9),
        ("24GiB", 1, 24 * 2**30),
        ("80GiB:8", 8, 80 * 2**30),
        ("1.5TB", 1, 1_500_000_000_000),
    ],
)
def test_custom_sizes_are_decimal_or_binary(spec: str, count: int, size: int) -> None:
    devices = parse_gpu(spec)
    assert len(devices) == count
    assert all(d.total_bytes == size for d in devices)
    assert devices[0].bandwidth_bytes_per_s is None and not devices[0].flops


@pytest.mark.parametrize(
    ("spec", "ram_gib", "working_set"),
    [
        # 3/4 above 32 GiB: 192 GiB x 3/4 = 147,456 MiB
        ("m2-ultra-192gb", 192, 154_618_822_656),
        # 128 GiB x 3/4 = 96 GiB
        ("m3-max-128gb", 128, 103_079_215_104),
        # 64 GiB x 3/4 = 48 GiB = 49,152 MiB
        ("m4-max-64gb", 64, 51_539_607_552),
        # 36 GiB x 3/4 = 28,991,029,248 B: "recommendedMaxWorkingSetSize = 28991.03 MB"
        # as llama.cpp b7690 logs it on a 36 GB M4 Max
        ("m4-max-36gb", 36, 28_991_029_248),
        # 32 GiB x 2/3 = 21,845.33 MiB: "recommendedMaxWorkingSetSize = 21845.34 MB"
        # (ggml-org/llama.cpp#2011, M1 Max 32GB; older builds printed MiB)
        ("m1-max-32gb", 32, 22_906_492_245),
        # 16 GiB x 2/3 = 10,922.67 MiB
        ("m1-pro-16gb", 16, 11_453_246_122),
    ],
)
def test_apple_silicon_is_unified_with_the_macos_working_set(
    spec: str, ram_gib: int, working_set: int
) -> None:
    (d,) = parse_gpu(spec)
    assert d.unified
    assert d.total_bytes == ram_gib * GIB
    assert d.working_set_bytes == working_set
    assert apple_working_set(ram_gib * GIB) == working_set


def test_apple_bandwidth_follows_the_chip_that_ships_with_the_memory() -> None:
    assert parse_gpu("m3-max-36gb")[0].bandwidth_bytes_per_s == 300 * 10**9  # 30-core GPU
    assert parse_gpu("m3-max-48gb")[0].bandwidth_bytes_per_s == 400 * 10**9  # 40-core GPU
    assert parse_gpu("m4-max-36gb")[0].bandwidth_bytes_per_s == 410 * 10**9
    assert parse_gpu("m4-max-128gb")[0].bandwidth_bytes_per_s == 546 * 10**9
    assert parse_gpu("m3-ultra-512gb")[0].bandwidth_bytes_per_s == 819 * 10**9


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("h1000", "did you mean h100"),
        ("h100-80gb:0", "at least 1"),
        ("h100:two", "whole number"),
        ("48XB", "not a size"),
        ("1MB", "at least 256 MiB"),
        ("m3-max", "memory size"),
        ("m4-max-96gb", "unknown GPU"),
        ("", "no GPU named"),
        ("tpu-v5", "unknown GPU"),
    ],
)
def test_bad_specs_say_why(spec: str, why: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_gpus([spec])
    assert why in str(e.value)
    assert e.value.params == ("gpu",)


def test_no_spec_at_all_is_refused() -> None:
    with pytest.raises(UsageError, match="at least one GPU"):
        parse_gpus([])


def test_the_issue_gpus_are_known() -> None:
    keys = {g.key for g in GPUS}
    wanted = {
        "l40s", "l40", "a6000", "rtx6000-ada", "rtx-pro-6000", "a10", "rtx3090", "rtx4090",
        "rtx5090", "h100-pcie", "h100-nvl", "h200-nvl", "gh200", "b200", "mi250", "mi250x",
        "mi300x", "mi325x", "mi355x", "gaudi2", "gaudi3", "m1-pro-16gb", "m1-max-64gb",
        "m1-ultra-128gb", "m2-max-96gb", "m2-ultra-192gb", "m3-pro-36gb", "m3-max-128gb",
        "m3-ultra-512gb", "m4-pro-64gb", "m4-max-128gb",
    }  # fmt: skip
    assert wanted <= keys


@pytest.mark.parametrize("g", GPUS, ids=lambda g: g.key)
def test_every_gpu_has_sourced_speed_figures(g: object) -> None:
    from paramtool.memory.gpus import Gpu

    assert isinstance(g, Gpu)
    assert g.marketed_source and g.usable_source and g.speed_source
    assert g.bandwidth_bytes_per_s is not None and g.bandwidth_bytes_per_s > 0
    assert set(g.flops) <= set(FLOPS_KEYS)
    if g.unified:
        assert not g.flops and "no FLOP/s" in g.speed_note  # Apple publishes none
        assert g.working_set_bytes == g.usable_bytes < g.marketed_bytes
    elif "bf16" not in g.flops:
        assert g.key in NO_BF16, f"{g.key}: no bf16 figure and no documented reason"
    # dense: never above the next-narrower format's rate
    f = g.flops
    if "bf16" in f and "fp8" in f:
        assert f["fp8"] >= f["bf16"]
    if "fp16" in f and "bf16" in f:
        assert f["fp16"] == f["bf16"]


def test_datasheet_figures() -> None:
    # nvidia.com/en-us/data-center/l40s/: 733 TFLOPS bf16 and 1,466 fp8 "with sparsity"
    l40s = lookup_gpu("l40s")
    assert l40s.flops["bf16"] == 366_500_000_000_000
    assert l40s.flops["fp8"] == 733_000_000_000_000
    assert l40s.bandwidth_bytes_per_s == 864 * 10**9
    # A100 datasheet: 312 TFLOPS bf16 dense (624 with sparsity), 2,039 GB/s (80GB SXM)
    assert lookup_gpu("a100-80gb").flops["bf16"] == 312 * 10**12
    assert lookup_gpu("a100-80gb").bandwidth_bytes_per_s == 2_039 * 10**9
    # amd.com MI300X: 1,307.4 TFLOPS fp16/bf16 dense, 5.3 TB/s
    assert lookup_gpu("mi300x").flops["bf16"] == 1_307_400_000_000_000
    assert lookup_gpu("mi300x").bandwidth_bytes_per_s == 5_300_000_000_000
    # H200: 4.8 TB/s; the H100 SXM's compute
    assert lookup_gpu("h200").bandwidth_bytes_per_s == 4_800_000_000_000
    assert lookup_gpu("h200").flops == lookup_gpu("h100").flops


def test_lookup_gpu_keeps_working_for_footprint() -> None:
    assert lookup_gpu("h100-80gb").usable_bytes == 85_520_809_984
    assert lookup_gpu("M3-Max-128GB").unified
    with pytest.raises(UsageError, match=r"^gpu 'tpu-v5': unknown GPU \(known: t4, "):
        lookup_gpu("tpu-v5")


def test_system_ram_is_a_positive_size_or_unknown() -> None:
    ram = system_ram()
    assert ram is None or ram > 2**20
