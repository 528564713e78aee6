"""PEFT adapters: method, ranks, targets, size, share of the base, merged size (issue 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import cli, cli_json
from hub_emulator import HubEmulator
from layouts import (
    Layout,
    gpt2,
    llama31_8b,
    lora_llama31_8b,
    make_checkpoint,
    write_sparse_checkpoint,
)
from quant_layouts import (
    GPT2_CONV1D,
    bnb_nf4_llama31_8b,
    lora_gpt2,
    lora_layout,
    write_gguf,
)

GPT2_MODULES = tuple(GPT2_CONV1D)
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tiny-llama"
LLAMA31_8B = 8_030_261_248
LLAMA31_8B_BYTES = 2 * LLAMA31_8B  # bf16


def adapter_of(*args: str) -> dict:
    doc = cli_json("inspect", *args)
    assert doc["adapter"] is not None
    assert doc["adapter"]["parameters"] == doc["total_parameters"]
    return doc["adapter"]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("llama31_8b")
    write_sparse_checkpoint(folder, llama31_8b())
    return folder


@pytest.fixture(scope="module")
def lora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lora")
    write_sparse_checkpoint(folder, lora_llama31_8b())
    return folder


def test_lora_r16_q_v(lora: Path) -> None:
    """PEFT's print_trainable_parameters for this adapter: 6,815,744."""
    a = adapter_of(str(lora))
    assert a["parameters"] == 6_815_744 and a["bytes"] == 4 * 6_815_744 and a["dtype"] == "F32"
    assert (a["method"], a["peft_type"], a["rank"], a["ranks"], a["alpha"]) == (
        "LORA",
        "LORA",
        16,
        {"16": 64},
        32,
    )
    assert a["target_modules"] == ["q_proj", "v_proj"] and a["modules"] == 64
    assert a["targets"] == {
        "q_proj": {"modules": 32, "parameters": 32 * 16 * (4096 + 4096), "ranks": [16]},
        "v_proj": {"modules": 32, "parameters": 32 * 16 * (4096 + 1024), "ranks": [16]},
    }
    assert a["base_model"] == "meta-llama/Llama-3.1-8B" and a["base"] is None
    assert a["share_of_base"] is None and a["merged_parameters"] is None
    assert a["use_rslora"] is False and a["modules_to_save"] == [] and a["notes"] == []


def test_lora_with_its_base(lora: Path, base: Path) -> None:
    a = adapter_of(str(lora), "--base", str(base))
    assert a["base"] == {
        "source": str(base),
        "parameters": LLAMA31_8B,
        "bytes": LLAMA31_8B_BYTES,
        "dtype": "BF16",
        "quantized": False,
        "modules_found": 64,
        "modules_missing": 0,
        "modules_mismatched": 0,
    }
    assert a["share_of_base"] == round(6_815_744 / LLAMA31_8B, 6)
    assert (a["merged_parameters"], a["merged_bytes"]) == (LLAMA31_8B, LLAMA31_8B_BYTES)
    r = cli("inspect", str(lora), "--base", str(base))
    assert r.exit_code == 0
    for needle in (
        "Adapter",
        "LORA",
        "Rank",
        "16",
        "Alpha",
        "q_proj x32, v_proj x32",
        "6,815,744 (6.82M)",
        "Share of base",
        "0.0849%",
        "Merged model",
        "8,030,261,248 (8.03B) parameters, 16,060,522,496 (16.1 GB) BF16",
    ):
        assert needle in r.stdout, needle


def test_all_linear_and_dora(tmp_path: Path) -> None:
    everything = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    write_sparse_checkpoint(tmp_path / "all", lora_llama31_8b(16, everything))
    assert adapter_of(str(tmp_path / "all"))["parameters"] == 41_943_040  # PEFT's figure
    write_sparse_checkpoint(tmp_path / "dora", lora_llama31_8b(use_dora=True))
    a = adapter_of(str(tmp_path / "dora"))
    assert a["method"] == "DORA" and a["peft_type"] == "LORA"
    assert a["parameters"] == 6_815_744 + 32 * (4096 + 1024)  # + one magnitude per output row


def test_per_module_ranks(tmp_path: Path) -> None:
    """rank_pattern: q_proj at r=16, v_proj at r=8; the tensors say so, module by module."""
    modules = {}
    for i in range(32):
        modules[f"model.layers.{i}.self_attn.q_proj"] = (16, 4096, 4096)
        modules[f"model.layers.{i}.self_attn.v_proj"] = (8, 1024, 4096)
    config = {
        "peft_type": "LORA",
        "r": 16,
        "lora_alpha": 16,
        "target_modules": ["q_proj", "v_proj"],
        "rank_pattern": {"v_proj": 8},
        "base_model_name_or_path": "meta-llama/Llama-3.1-8B",
    }
    write_sparse_checkpoint(tmp_path, lora_layout(modules, config))
    a = adapter_of(str(tmp_path))
    assert a["rank"] is None and a["ranks"] == {"8": 32, "16": 32}
    assert a["targets"]["v_proj"]["ranks"] == [8]
    assert a["parameters"] == 32 * (16 * 8192 + 8 * 5120)
    r = cli("inspect", str(tmp_path))
    assert "8 (32 modules), 16 (32 modules)" in r.stdout and "v_proj x32 (r 8)" in r.stdout


def test_adapter_without_config_and_wrong_base(tmp_path: Path) -> None:
    """No adapter_config.json: the tensor names still tell. The tiny-llama base: 4 layers."""
    layout = lora_llama31_8b()
    write_sparse_checkpoint(
        tmp_path,
        Layout(
            layout.name,
            layout.tensors,
            None,  # type: ignore[arg-type]
            weights_name=layout.weights_name,
        ),
    )
    a = adapter_of(str(tmp_path), "--base", str(EXAMPLE))
    assert (a["method"], a["peft_type"], a["rank"], a["alpha"]) == ("LORA", None, 16, None)
    assert a["base"]["modules_found"] == 8 and a["base"]["modules_missing"] == 56
    assert a["base"]["modules_mismatched"] == 8  # 128-wide layers, not 4096
    assert any("not in the base" in n for n in a["notes"])
    assert any("differ in shape" in n for n in a["notes"])


def test_quantized_base_is_merged_at_16_bit(lora: Path, tmp_path: Path) -> None:
    write_sparse_checkpoint(tmp_path, bnb_nf4_llama31_8b())  # QLoRA's base
    a = adapter_of(str(lora), "--base", str(tmp_path))
    assert a["base"]["quantized"] is True and a["base"]["parameters"] == LLAMA31_8B
    assert (a["merged_parameters"], a["merged_bytes"]) == (LLAMA31_8B, LLAMA31_8B_BYTES)


def test_ia3_and_prompt_tuning(tmp_path: Path) -> None:
    (tmp_path / "ia3").mkdir()
    make_checkpoint(
        tmp_path / "ia3" / "adapter_model.safetensors",
        {
            "base_model.model.model.layers.0.self_attn.k_proj.ia3_l": ("F32", (256, 1)),
            "base_model.model.model.layers.0.mlp.down_proj.ia3_l": ("F32", (1, 688)),
        },
    )
    (tmp_path / "ia3" / "adapter_config.json").write_text(
        json.dumps({"peft_type": "IA3", "target_modules": ["k_proj", "down_proj"]})
    )
    a = adapter_of(str(tmp_path / "ia3"))
    assert (a["method"], a["rank"], a["parameters"], a["modules"]) == ("IA3", None, 256 + 688, 2)

    (tmp_path / "prompt").mkdir()
    make_checkpoint(
        tmp_path / "prompt" / "adapter_model.safetensors", {"prompt_embeddings": ("F32", (20, 128))}
    )
    (tmp_path / "prompt" / "adapter_config.json").write_text(
        json.dumps({"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 20, "token_dim": 128})
    )
    a = adapter_of(str(tmp_path / "prompt"), "--base", str(EXAMPLE))
    assert (a["method"], a["parameters"]) == ("PROMPT_TUNING", 20 * 128)
    assert a["share_of_base"] == round(2560 / 1_217_664, 6)
    assert a["merged_parameters"] is None and any("nothing to merge" in n for n in a["notes"])


def test_base_needs_an_adapter(base: Path) -> None:
    r = cli("inspect", str(EXAMPLE), "--base", str(base))
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"paramtool: error: --base {base}: the checkpoint is not a PEFT adapter"
    ]
    r = cli("inspect", str(EXAMPLE.parent / "nowhere"), "--base", str(base))
    assert r.exit_code == 2


def test_hub_adapter_reads_its_base_from_the_hub(hub: HubEmulator, lora: Path, base: Path) -> None:
    hub.add_repo("org/lora", lora)
    r = cli("inspect", "org/lora", "--json")
    assert r.exit_code == 0 and "base model meta-llama/Llama-3.1-8B not read" in r.stderr
    assert json.loads(r.stdout)["adapter"]["base"] is None  # still described, no share

    hub.add_repo("meta-llama/Llama-3.1-8B", base)
    a = adapter_of("org/lora")
    assert a["base"]["source"] == "meta-llama/Llama-3.1-8B"
    assert a["base"]["parameters"] == LLAMA31_8B and a["merged_bytes"] == LLAMA31_8B_BYTES
    # --base wins over base_model_name_or_path
    assert adapter_of("org/lora", "--base", str(EXAMPLE))["base"]["parameters"] == 1_217_664


def test_gguf_lora_adapter(tmp_path: Path) -> None:
    """llama.cpp LoRA: A ne [in, r], B ne [r, out], alpha in the header, base in ne order too."""
    write_gguf(tmp_path / "base.gguf", "dense")
    write_gguf(tmp_path / "lora.gguf", "lora", rank=8)
    a = adapter_of(str(tmp_path / "lora.gguf"), "--base", str(tmp_path / "base.gguf"))
    assert (a["method"], a["rank"], a["alpha"], a["modules"]) == ("LORA", 8, 16, 4)
    assert a["targets"]["attn_q"] == {"modules": 2, "parameters": 2 * 8 * 512, "ranks": [8]}
    assert a["base"]["modules_found"] == 4 and a["base"]["modules_mismatched"] == 0
    assert a["base"]["quantized"] is True and a["merged_bytes"] == 2 * a["merged_parameters"]


# ---------------------------------------------------------------- GPT-2 (Conv1D, [in, out])

GPT2 = 124_439_808  # openai-community/gpt2


@pytest.fixture(scope="module")
def gpt2_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GPT-2 without its causal-mask buffers, which paramtool counts (the Hub's 137M)."""
    folder = tmp_path_factory.mktemp("gpt2")
    write_sparse_checkpoint(folder, gpt2(buffers=False))
    return folder


def test_gpt2_lora_matches_its_conv1d_base(tmp_path: Path, gpt2_base: Path) -> None:
    """r=8 on c_attn: PEFT's print_trainable_parameters says "trainable params: 294,912 ||
    all params: 124,734,720" (12 x 8 x (768 + 2304); GPT-2's 124,439,808 + the adapter).
    The base's c_attn.weight is [768, 2304], A and B imply [2304, 768]: the same, transposed."""
    write_sparse_checkpoint(tmp_path, lora_gpt2())
    a = adapter_of(str(tmp_path), "--base", str(gpt2_base))
    assert a["parameters"] == 294_912 == 12 * 8 * (768 + 2304)
    assert (a["rank"], a["modules"], a["targets"]["c_attn"]["parameters"]) == (8, 12, 294_912)
    b = a["base"]
    assert (b["parameters"], b["modules_found"], b["modules_missing"]) == (GPT2, 12, 0)
    assert b["modules_mismatched"] == 0 and a["notes"] == []
    assert a["share_of_base"] == round(294_912 / GPT2, 6)
    assert a["merged_parameters"] == GPT2 and GPT2 + a["parameters"] == 124_734_720


def test_gpt2_lora_on_every_conv1d(tmp_path: Path, gpt2_base: Path) -> None:
    """c_attn, attn.c_proj, mlp.c_fc and mlp.c_proj at r=8: 12 x 8 x ((768 + 2304) +
    (768 + 768) + (768 + 3072) + (3072 + 768)) = 1,179,648. The base's model_type (gpt2)
    is enough when adapter_config.json leaves fan_in_fan_out false."""
    write_sparse_checkpoint(tmp_path, lora_gpt2(GPT2_MODULES, fan_in_fan_out=False))
    a = adapter_of(str(tmp_path), "--base", str(gpt2_base))
    assert a["parameters"] == 1_179_648 == 12 * 8 * (3072 + 1536 + 3840 + 3840)
    assert a["targets"]["c_fc"]["parameters"] == 12 * 8 * (768 + 3072)
    assert a["targets"]["c_proj"] == {"modules": 24, "parameters": 12 * 8 * (1536 + 3840),
                                      "ranks": [8]}  # fmt: skip
    b = a["base"]
    assert (b["modules_found"], b["modules_missing"], b["modules_mismatched"]) == (48, 0, 0)
    assert a["notes"] == []


def test_transposed_base_without_a_word_for_it(tmp_path: Path) -> None:
    """A base with no config.json (no model_type) and an adapter without fan_in_fan_out:
    the non-square modules differ, and the note says they match transposed."""
    base = tmp_path / "base"
    write_sparse_checkpoint(base, gpt2(buffers=False))
    (base / "config.json").unlink()
    write_sparse_checkpoint(tmp_path / "plain", lora_gpt2(GPT2_MODULES, fan_in_fan_out=None))
    a = adapter_of(str(tmp_path / "plain"), "--base", str(base))
    assert a["base"]["modules_found"] == 48
    assert a["base"]["modules_mismatched"] == 36  # attn.c_proj is square: it fits either way
    assert any("36 match it transposed" in n and "fan_in_fan_out" in n for n in a["notes"])
    write_sparse_checkpoint(tmp_path / "flagged", lora_gpt2(GPT2_MODULES))
    a = adapter_of(str(tmp_path / "flagged"), "--base", str(base))
    assert a["base"]["modules_mismatched"] == 0 and a["notes"] == []


def test_llama_lora_is_not_checked_transposed(tmp_path: Path) -> None:
    """A Linear base ([out, in]) holding a module transposed is still a mismatch."""
    base = tmp_path / "base"
    base.mkdir()
    make_checkpoint(base, {"model.layers.0.self_attn.k_proj.weight": ("BF16", (64, 32))})
    (base / "config.json").write_text(json.dumps({"model_type": "llama"}))
    lora = lora_layout(
        {"model.layers.0.self_attn.k_proj": (4, 32, 64)},
        {"peft_type": "LORA", "r": 4, "target_modules": ["k_proj"]},
    )
    write_sparse_checkpoint(tmp_path / "lora", lora)
    a = adapter_of(str(tmp_path / "lora"), "--base", str(base))
    assert a["base"]["modules_mismatched"] == 1
