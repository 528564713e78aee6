"""Mixtures of experts: total vs active parameters per token (issue 7).

Published figures each layout must reproduce from its headers and config.json:
Mixtral-8x7B 46.7B total / 12.9B active (Mistral AI), DeepSeek-V3 671B / 37B activated
(technical report), Qwen1.5-MoE-A2.7B 14.3B / 2.7B (Qwen), gpt-oss-20b 20.91B / 3.61B and
gpt-oss-120b 116.83B / 5.13B (OpenAI's model card, which leaves the input embedding out).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from helpers import cli, cli_json
from layouts import Layout, deepseek_v3, llama31_8b, mixtral_8x7b, write_sparse_checkpoint
from paramtool.analysis.moe import fused_experts
from quant_layouts import gpt_oss, mixtral_8x7b_fused, qwen15_moe_a27b, write_gguf

MIXTRAL_TOTAL = 46_702_792_704
MIXTRAL_ACTIVE = 12_879_925_248


def moe_of(tmp_path: Path, layout: Layout, shards: int | None = None) -> dict:
    write_sparse_checkpoint(tmp_path, layout, shards=shards)
    doc = cli_json("inspect", str(tmp_path))
    assert doc["moe"] is not None
    assert doc["moe"]["total_parameters"] == doc["total_parameters"]
    return doc["moe"]


def test_mixtral_total_and_active(tmp_path: Path) -> None:
    m = moe_of(tmp_path, mixtral_8x7b(), shards=4)
    assert m["total_parameters"] == MIXTRAL_TOTAL
    assert m["active_parameters"] == MIXTRAL_ACTIVE and m["active_exact"] is True
    # everything outside the routed experts + 2 of 8 experts' worth
    assert m["active_parameters"] == MIXTRAL_TOTAL - m["routed_parameters"] * 6 // 8
    assert (m["routed_experts"], m["shared_experts"], m["experts_per_token"]) == (8, 0, 2)
    assert (m["moe_layers"], m["layout"], m["experts_from"]) == (
        32,
        "numbered",
        "config.json and tensor names",
    )
    assert m["routed_parameters"] == 32 * 8 * 3 * 4096 * 14336
    assert m["router_parameters"] == 32 * 8 * 4096 and m["shared_parameters"] == 0
    assert m["active_share"] == round(MIXTRAL_ACTIVE / MIXTRAL_TOTAL, 6)
    assert m["mtp"] is None and m["notes"] == []


@pytest.mark.parametrize("gguf_order", [False, True])
def test_fused_3d_experts(tmp_path: Path, gguf_order: bool) -> None:
    """One [8, 2 x 14336, 4096] tensor per layer instead of 24 numbered ones: same counts."""
    m = moe_of(tmp_path, mixtral_8x7b_fused(gguf_order))
    assert (m["total_parameters"], m["active_parameters"]) == (MIXTRAL_TOTAL, MIXTRAL_ACTIVE)
    assert (m["routed_experts"], m["layout"]) == (8, "fused")


def test_fused_expert_dimension() -> None:
    assert fused_experts((8, 28672, 4096), 8) == 8
    assert fused_experts((28672, 4096, 8), 8) == 8  # GGUF ne order: experts last
    assert fused_experts((16, 5120, 16384), None) == 16  # no config: the first dimension
    assert fused_experts((32, 5760), 32) == 32  # gpt-oss expert biases
    assert fused_experts((5760, 2880), None) is None


@pytest.fixture(scope="module")
def deepseek(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DeepSeek-V3 as on the Hub: FP8, the MTP block stored as layer 61 (92k tensors)."""
    folder = tmp_path_factory.mktemp("deepseek_v3")
    write_sparse_checkpoint(folder, deepseek_v3(mtp=True, fp8=True), shards=8)
    return folder


def test_deepseek_v3_37b_activated(deepseek: Path) -> None:
    """The Hub checkpoint (with its MTP block as layer 61): the main model's 37B activated."""
    r = cli("inspect", str(deepseek), "--json")
    m = json.loads(r.stdout)["moe"]
    assert m["total_parameters"] == 684_489_845_504
    assert (m["routed_experts"], m["shared_experts"], m["experts_per_token"]) == (256, 1, 8)
    assert m["moe_layers"] == 58 + 1  # layers 3-60, and the MTP block's
    assert m["mtp"]["layers"] == [61] and m["mtp"]["parameters"] == 13_463_426_304
    main = m["active_parameters"] - m["mtp"]["active_parameters"]
    assert main == 37_552_297_472 and 37e9 <= main < 38e9  # "37B activated for each token"
    assert m["total_parameters"] - m["mtp"]["parameters"] == 671_026_419_200  # "671B"


def test_deepseek_v3_without_mtp(tmp_path: Path) -> None:
    m = moe_of(tmp_path, deepseek_v3(mtp=False, fp8=True), shards=4)
    assert (m["total_parameters"], m["active_parameters"]) == (671_026_419_200, 37_552_297_472)
    assert m["mtp"] is None and m["moe_layers"] == 58


def test_qwen_moe_shared_expert(tmp_path: Path) -> None:
    m = moe_of(tmp_path, qwen15_moe_a27b())
    assert m["total_parameters"] == 14_315_784_192  # "14.3B parameters in total"
    assert m["active_parameters"] == 2_689_173_504  # "2.7B activated"
    assert round(m["total_parameters"] / 1e8) / 10 == 14.3
    assert round(m["active_parameters"] / 1e8) / 10 == 2.7
    assert (m["routed_experts"], m["shared_experts"], m["experts_per_token"]) == (60, 1, 4)
    # the shared expert (3 x 2048 x 5632) and its 1 x 2048 gate, in each of the 24 layers
    assert m["shared_parameters"] == 24 * (3 * 2048 * 5632 + 2048)


@pytest.mark.parametrize(
    ("size", "mxfp4", "total", "active", "card_active"),
    [
        ("20b", True, 20_914_757_184, 4_187_440_704, 3_608_307_264),
        ("20b", False, 20_914_757_184, 4_187_440_704, 3_608_307_264),
        ("120b", True, 116_829_156_672, 5_711_982_912, 5_132_849_472),
    ],
)
def test_gpt_oss(
    tmp_path: Path, size: str, mxfp4: bool, total: int, active: int, card_active: int
) -> None:
    """MXFP4 experts unpacked before the split; OpenAI's "active" omits the embedding lookup."""
    m = moe_of(tmp_path, gpt_oss(size, mxfp4=mxfp4))
    assert (m["total_parameters"], m["active_parameters"]) == (total, active)
    assert m["routed_experts"] == {"20b": 32, "120b": 128}[size] and m["experts_per_token"] == 4
    assert m["layout"] == "fused" and m["shared_experts"] == 0
    assert m["input_embedding_parameters"] == 201_088 * 2880
    card = m["active_parameters"] - m["input_embedding_parameters"]
    assert card == card_active
    assert round(card / 1e7) / 100 == {"20b": 3.61, "120b": 5.13}[size]


def test_unknown_experts_per_token(tmp_path: Path) -> None:
    layout = mixtral_8x7b()
    config = {k: v for k, v in layout.config.items() if k != "num_experts_per_tok"}
    m = moe_of(tmp_path, Layout(layout.name, layout.tensors, config, shards=4))
    assert m["active_parameters"] is None and m["active_share"] is None
    assert m["routed_experts"] == 8 and any("how many experts" in n for n in m["notes"])


def test_experts_without_config(tmp_path: Path) -> None:
    layout = mixtral_8x7b()
    m = moe_of(tmp_path, Layout(layout.name, layout.tensors, None, shards=4))  # type: ignore[arg-type]
    assert (m["routed_experts"], m["experts_from"], m["active_parameters"]) == (
        8,
        "tensor names",
        None,
    )


def test_dense_models_have_no_moe(tmp_path: Path) -> None:
    write_sparse_checkpoint(tmp_path, llama31_8b())
    r = cli("inspect", str(tmp_path), "--json", catch_exceptions=True)
    assert json.loads(r.stdout)["moe"] is None


def test_tables_show_total_and_active(deepseek: Path) -> None:
    r = cli("inspect", str(deepseek))
    assert r.exit_code == 0
    for needle in (
        "Mixture of experts",
        "256 routed + 1 shared per layer, 59 MoE layers",
        "8 routed experts + 1 shared",
        "684,489,845,504 (684B)",
        "40,093,756,160 (40.1B), 5.9% of the total",
        "MTP module",
        "layer 61",
        "Quantization",
        "fp8 (e4m3)",
        "blocks 128x128",
    ):
        assert needle in r.stdout, needle


def test_gguf_moe_experts_last(tmp_path: Path) -> None:
    """llama.cpp keeps ggml's ne order: ffn_*_exps are [n_embd, n_ff, n_expert]."""
    shapes = write_gguf(tmp_path / "moe.gguf", "moe", experts=4, used=2)
    r = cli("inspect", str(tmp_path / "moe.gguf"), "--json")
    assert r.exit_code == 0, r.stderr
    m = json.loads(r.stdout)["moe"]
    routed = sum(math.prod(s) for n, s in shapes.items() if "_exps" in n)
    total = sum(math.prod(s) for s in shapes.values())
    assert (m["routed_experts"], m["experts_per_token"], m["layout"]) == (4, 2, "fused")
    assert m["total_parameters"] == total and m["routed_parameters"] == routed
    assert m["active_parameters"] == total - routed + routed * 2 // 4
