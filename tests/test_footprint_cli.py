"""``paramtool footprint`` through the CLI: exact JSON, exit codes, the one-line error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from helpers import cli, cli_json, error_line
from paramtool.cli import app


def test_seventy_b_bf16_json_is_exact() -> None:
    d = cli_json("footprint", "--params", "70B", "--dtype", "bf16")
    assert d["parameters"] == 70_000_000_000
    assert d["precisions"] == [
        {
            "dtype": "bf16",
            "name": "BF16",
            "kind": "float",
            "bits_per_parameter": 16.0,
            "weights_bytes": 140_000_000_000,
            "weights_gb": 140.0,
            "weights_gib": 130.385,
            "serving_bytes": 168_000_000_000,
            "note": "",
            "as_stored": False,
            "gpu_fit": None,
        }
    ]
    assert d["kv_cache_bytes"] is None and d["kv_cache"] is None
    assert d["training"] is None and d["gpu"] is None
    assert d["schema_version"] == 1 and d["units"] == "gb"
    assert d["overhead"]["description"] == "20% of the weights"


def test_table_answers_140_gb() -> None:
    r = cli("footprint", "--params", "70B", "--dtype", "bf16")
    assert r.exit_code == 0
    assert "140,000,000,000" in r.stdout and "140 GB" in r.stdout and "130 GiB" in r.stdout


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("70B", 70_000_000_000),
        ("70b", 70_000_000_000),
        ("1.5T", 1_500_000_000_000),
        ("405M", 405_000_000),
        ("7e9", 7_000_000_000),
        ("8030261248", 8_030_261_248),
        ("8_030_261_248", 8_030_261_248),
    ],
)
def test_params_formats(text: str, n: int) -> None:
    assert cli_json("footprint", "--params", text, "--dtype", "int8")["parameters"] == n


@pytest.mark.parametrize("args", [["--params", "70Q"], ["--params=-5B"], ["--params", ""]])
def test_params_garbage_is_one_line_and_exit_2(args: list[str]) -> None:
    error_line(cli("footprint", *args), "count")


def test_fp32_and_int8_rows_without_dtype() -> None:
    rows = {r["dtype"]: r for r in cli_json("footprint", "--params", "70B")["precisions"]}
    assert rows["fp32"]["weights_bytes"] == 280 * 10**9
    assert rows["int8"]["weights_bytes"] == 70 * 10**9
    assert rows["Q4_K_M"]["bits_per_parameter"] == pytest.approx(4.9)
    assert len(rows) == 9  # the common choices; --dtype all for the rest
    every = cli_json("footprint", "--params", "70B", "--dtype", "all")["precisions"]
    assert len(every) == 28 and not any(r["as_stored"] for r in every)


def test_kv_cache_from_flags_llama31_8b_at_128k() -> None:
    d = cli_json(
        "footprint", "--params", "8030261248", "--dtype", "bf16", "--context", "131072",
        "--layers", "32", "--kv-heads", "8", "--head-dim", "128",
    )  # fmt: skip
    assert d["kv_cache_bytes"] == 17_179_869_184
    assert d["kv_cache"]["context"] == 131_072 and d["kv_cache"]["attention"] == "gqa"
    # 128k means 131,072 tokens
    d2 = cli_json(
        "footprint", "--params", "8B", "--context", "128k", "--layers", "32", "--kv-heads", "8",
        "--head-dim", "128", "--dtype", "bf16",
    )  # fmt: skip
    assert d2["kv_cache_bytes"] == 17_179_869_184


def test_kv_cache_without_dims_explains_what_is_missing() -> None:
    error_line(cli("footprint", "--params", "8B", "--context", "8192"), "--layers", "--kv-heads")


def test_kv_dtype_fp8_halves_it() -> None:
    args = ["--params", "8B", "--dtype", "bf16", "--context", "8192", "--layers", "32",
            "--kv-heads", "8", "--head-dim", "128"]  # fmt: skip
    assert (
        cli_json("footprint", *args, "--kv-dtype", "fp8")["kv_cache_bytes"] * 2
        == cli_json("footprint", *args)["kv_cache_bytes"]
    )


def test_gpu_fit_70b_bf16_on_h100() -> None:
    d = cli_json("footprint", "--params", "70B", "--dtype", "bf16", "--gpu", "h100-80gb")
    fit = d["precisions"][0]["gpu_fit"]
    assert fit["gpus"] == fit["gpus_needed"] == 2 and fit["fits"] is True
    assert fit["per_gpu_bytes"] == 84_000_000_000
    assert fit["usable_bytes"] == 85_520_809_984
    assert fit["headroom_bytes"] == 85_520_809_984 - 84_000_000_000
    assert "fits on 2" in fit["explanation"]
    d1 = cli_json("footprint", "--params", "70B", "--dtype", "bf16", "--gpu", "h100", "--gpus", "1")
    fit1 = d1["precisions"][0]["gpu_fit"]
    assert fit1["fits"] is False and fit1["gpus_needed"] == 2
    assert "does not fit" in fit1["explanation"] and "needs 2 GPUs" in fit1["explanation"]
    assert d1["gpu"]["usable_bytes"] == 85_520_809_984


def test_training_full_adamw_is_16_bytes_per_parameter() -> None:
    t = cli_json("footprint", "--params", "7B", "--train", "full")["training"]
    assert t["bytes_per_trainable_parameter"] == 16
    assert t["total_bytes"] == 112 * 10**9
    assert t["activations"] == "none" and t["activations_bytes_per_gpu"] is None
    d = cli_json("footprint", "--params", "7B", "--train", "full")
    assert any("activations are not included" in e for e in d["excluded"])


def test_training_zero3_over_gpus() -> None:
    t = cli_json("footprint", "--params", "7.5B", "--train", "full", "--zero", "3", "--gpus", "64")[
        "training"
    ]
    assert t["per_gpu_bytes"] == 16 * 7_500_000_000 // 64


def test_training_fit_finds_the_gpu_count() -> None:
    t = cli_json(
        "footprint",
        "--params",
        "8030261248",
        "--train",
        "full",
        "--zero",
        "3",
        "--gpu",
        "a100-80gb",
    )
    assert t["training"]["gpu_fit"]["gpus_needed"] == 2
    assert t["training"]["gpus"] == 2


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--params", "8B", "--train", "sideways"], ["--train"]),
        (["--params", "8B", "--train", "full", "--optimizer", "adam9"], ["--optimizer"]),
        (["--params", "8B", "--train", "full", "--zero", "4"], ["--zero"]),
        (["--params", "8B", "--zero", "3"], ["--train"]),
        (["--params", "8B", "--gpu", "h1000"], ["unknown GPU"]),
        (["--params", "8B", "--dtype", "bf17"], ["unknown dtype"]),
        (["--params", "8B", "--units", "kb"], ["--units"]),
        (["--params", "8B", "--overhead", "lots"], ["--overhead"]),
        (["--params", "8B", "--batch", "0"], ["--batch"]),
        (["--params", "8B", "--gpus", "two"], ["--gpus"]),
        (["--params", "8B", "--context", "-1"], ["--context"]),
        (["--params", "8B", "--train", "lora"], ["adapter size"]),
        (["--params", "8B", "--train", "full", "--dtype", "nf4"], ["qlora"]),
        ([], ["--params"]),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], words: list[str]) -> None:
    error_line(cli("footprint", *args), *words)


def make_tiny(tmp_path: Path) -> tuple[Path, int]:
    """A two-layer Llama-shaped checkpoint with its config.json."""
    h, heads, kv, inter, vocab, layers = 64, 4, 2, 128, 100, 2
    hd = h // heads
    t: dict[str, np.ndarray] = {
        "model.embed_tokens.weight": np.zeros((vocab, h), np.float16),
        "lm_head.weight": np.zeros((vocab, h), np.float16),
        "model.norm.weight": np.zeros((h,), np.float16),
    }
    for i in range(layers):
        p = f"model.layers.{i}."
        t[p + "self_attn.q_proj.weight"] = np.zeros((heads * hd, h), np.float16)
        t[p + "self_attn.k_proj.weight"] = np.zeros((kv * hd, h), np.float16)
        t[p + "self_attn.v_proj.weight"] = np.zeros((kv * hd, h), np.float16)
        t[p + "self_attn.o_proj.weight"] = np.zeros((h, heads * hd), np.float16)
        t[p + "mlp.gate_proj.weight"] = np.zeros((inter, h), np.float16)
        t[p + "mlp.up_proj.weight"] = np.zeros((inter, h), np.float16)
        t[p + "mlp.down_proj.weight"] = np.zeros((h, inter), np.float16)
        t[p + "input_layernorm.weight"] = np.zeros((h,), np.float16)
        t[p + "post_attention_layernorm.weight"] = np.zeros((h,), np.float16)
    save_file(t, tmp_path / "model.safetensors")
    config = {
        "model_type": "llama", "hidden_size": h, "num_attention_heads": heads,
        "num_key_value_heads": kv, "num_hidden_layers": layers, "intermediate_size": inter,
        "vocab_size": vocab, "tie_word_embeddings": False,
    }  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path, sum(a.size for a in t.values())


def test_source_gives_the_exact_count_and_the_config(tmp_path: Path) -> None:
    folder, n = make_tiny(tmp_path)
    assert n == 2 * 100 * 64 + 64 + 2 * (2 * 64 * 64 + 2 * 32 * 64 + 3 * 64 * 128 + 2 * 64)
    d = cli_json("footprint", str(folder), "--dtype", "bf16", "--context", "1000", "--batch", "3")
    assert d["parameters"] == n
    assert d["source"] == str(folder)
    assert d["precisions"][0]["weights_bytes"] == 2 * n
    assert d["model"]["layers"] == 2 and d["model"]["kv_heads"] == 2
    assert d["model"]["head_dim"] == 16 and d["model"]["attention"] == "gqa"
    assert d["kv_cache_bytes"] == 2 * 2 * 2 * 16 * 1000 * 3 * 2
    # flags still win over the config
    assert (
        cli_json("footprint", str(folder), "--context", "1000", "--layers", "1", "--dtype", "bf16")[
            "kv_cache_bytes"
        ]
        == 2 * 1 * 2 * 16 * 1000 * 2
    )
    t = cli_json(
        "footprint", str(folder), "--train", "lora", "--lora-rank", "2", "--lora-targets", "qv"
    )
    assert t["training"]["trainable_parameters"] == 2 * 2 * ((64 + 64) + (64 + 32))


def test_source_and_params_together_is_an_error(tmp_path: Path) -> None:
    folder, _ = make_tiny(tmp_path)
    error_line(cli("footprint", str(folder), "--params", "8B"), "not both")


def test_missing_source_is_one_line(tmp_path: Path) -> None:
    r = cli("footprint", str(tmp_path / "nope.safetensors"))
    assert r.exit_code == 2 and r.stderr.startswith("paramtool: error: ")


def test_sparse_405b_checkpoint_end_to_end(tmp_path: Path) -> None:
    layouts = pytest.importorskip("layouts")
    layouts.write_sparse_checkpoint(tmp_path, layouts.llama31_405b(), shards=4)
    d = cli_json("footprint", str(tmp_path), "--dtype", "bf16", "--context", "128k")
    assert d["parameters"] == 405_853_388_800
    assert d["precisions"][0]["weights_bytes"] == 811_706_777_600  # ~811.7 GB
    assert d["kv_cache_bytes"] == 2 * 126 * 8 * 128 * 131_072 * 2


def test_list_gpus_and_dtypes() -> None:
    g = cli_json("footprint", "--list-gpus")
    keys = {x["key"] for x in g["gpus"]}
    assert {"t4", "l4", "a10g", "rtx3090", "rtx4090", "rtx5090", "a100-40gb", "a100-80gb",
            "h100-80gb", "h200", "b200", "mi300x"} <= keys  # fmt: skip
    assert all(x["usable_source"] and x["marketed_source"] for x in g["gpus"])
    d = cli_json("footprint", "--list-dtypes")
    names = {x["name"] for x in d["dtypes"]}
    assert {"Q4_K_M", "NVFP4", "MXFP4", "INT4-G128-ZP", "NF4"} <= names
    r = cli("footprint", "--list-gpus", "--list-dtypes")
    assert r.exit_code == 0 and "H200" in r.stdout and "Q4_K_M" in r.stdout


def test_tables_render_every_section() -> None:
    r = cli(
        "footprint",
        "--params", "8030261248", "--dtype", "bf16", "--context", "8192", "--layers", "32",
        "--kv-heads", "8", "--head-dim", "128", "--gpu", "rtx4090", "--units", "gib",
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    for word in ("KV cache", "Serving", "GiB", "GeForce RTX 4090", "not counted"):
        assert word in r.stdout
    r = cli("footprint", "--params", "8B", "--train", "qlora", "--layers", "32",
            "--hidden-size", "4096", "--heads", "32", "--kv-heads", "8",
            "--intermediate-size", "14336", "--gpu", "t4")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert "Training: qlora" in r.stdout and "activations are not included" in r.stdout


def test_every_option_has_help() -> None:
    import click
    import typer.main

    cmd = typer.main.get_command(app).commands["footprint"]  # type: ignore[attr-defined]
    for p in cmd.params:
        if isinstance(p, click.Option):
            assert p.help, p.name
    assert cmd.help


def test_real_subprocess_json() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "paramtool",
            "footprint",
            "--params",
            "70B",
            "--dtype",
            "bf16",
            "--json",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["parameters"] == 70_000_000_000
    assert [(r["dtype"], r["bits_per_parameter"], r["weights_bytes"]) for r in d["precisions"]] == [
        ("bf16", 16.0, 140_000_000_000)
    ]


def test_real_subprocess_error_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "paramtool", "footprint", "--params", "70Q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("paramtool: error: count '70Q': ")
    assert len(out.stderr.strip().splitlines()) == 1
