"""Options that are accepted must act: applied, or refused with one line, never ignored.

``inspect --json --export``, ``footprint --train --overhead``, the pre-commit hooks on every
checkpoint kind (a staged ``pytorch_model.bin`` fails ``--safetensors-only``), and the
footprint options that only count in some modes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import cli, cli_json, error_line
from layouts import make_checkpoint, t5_small, write_sparse_checkpoint
from paramtool import api

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tiny-llama"
HOOKS = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())


# --- inspect --json --export ----------------------------------------------------------------


def test_inspect_json_with_export_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "r.svg"
    r = cli("inspect", str(EXAMPLE), "--json", "--export", str(out))
    line = error_line(r, "--export/--json", "--json does not print")
    assert line == (
        "paramtool: error: --export/--json: --export saves the tables, which --json does not "
        "print; run it once for each"
    )
    assert not out.exists()


def test_inspect_export_alone_still_writes_the_tables(tmp_path: Path) -> None:
    out = tmp_path / "r.txt"
    r = cli("inspect", str(EXAMPLE), "--export", str(out))
    assert r.exit_code == 0, r.stderr
    assert "1,217,664" in out.read_text()  # the tiny model's parameter count, as printed


# --- footprint --train --overhead -------------------------------------------------------------
# 7B parameters, full fine-tuning, bf16 mixed precision, AdamW: 2 + 2 + 4 + 8 = 16 bytes
# per parameter = 112,000,000,000 bytes of states; the bf16 weights are 14,000,000,000.


def _training(*args: str) -> dict[str, object]:
    doc = cli_json("footprint", "--params", "7B", "--train", "full", *args)
    training = doc["training"]
    assert isinstance(training, dict)
    return training


def test_training_has_no_overhead_unless_asked() -> None:
    t = _training()
    assert t["per_gpu_bytes"] == 112_000_000_000 and t["total_bytes"] == 112_000_000_000
    assert t["per_gpu"]["overhead"] == 0 and t["overhead"] is None  # type: ignore[index]


def test_a_fixed_overhead_is_added_to_training_on_each_gpu() -> None:
    t = _training("--overhead", "2GB")
    assert t["per_gpu"]["overhead"] == 2_000_000_000  # type: ignore[index]
    assert t["per_gpu_bytes"] == 114_000_000_000 and t["total_bytes"] == 114_000_000_000
    assert t["overhead"] == "2,000,000,000 bytes per GPU (2GB)"


def test_a_percentage_overhead_is_a_share_of_the_weights_on_each_gpu() -> None:
    t = _training("--overhead", "20%")  # 20% of 14 GB of weights = 2.8 GB
    assert t["per_gpu"]["overhead"] == 2_800_000_000  # type: ignore[index]
    assert t["per_gpu_bytes"] == 114_800_000_000 and t["total_bytes"] == 114_800_000_000
    assert t["overhead"] == "20% of the weights"


def test_under_zero3_a_percentage_overhead_shards_with_the_weights() -> None:
    # ZeRO-3 over 4 GPUs: 112 GB / 4 = 28 GB of states and 20% of 14 GB / 4 = 0.7 GB each.
    t = _training("--overhead", "20%", "--zero", "3", "--gpus", "4")
    assert t["per_gpu"] == {
        "weights": 3_500_000_000,
        "gradients": 3_500_000_000,
        "master": 7_000_000_000,
        "optimizer": 14_000_000_000,
        "activations": 0,
        "overhead": 700_000_000,
    }
    assert t["per_gpu_bytes"] == 28_700_000_000 and t["total_bytes"] == 114_800_000_000


def test_the_training_fit_counts_the_overhead_once() -> None:
    # A100 80GB: 85,899,345,920 usable. ZeRO-3 plus 30 GB each: 2 GPUs need 56 + 30 = 86 GB
    # (short); 3 need ceil(14e9/3) * 2 + ceil(28e9/3) + ceil(56e9/3) + 30e9 = 67,333,333,335.
    t = _training("--overhead", "30GB", "--zero", "3", "--gpu", "a100-80gb")
    fit = t["gpu_fit"]
    assert isinstance(fit, dict)
    assert fit["gpus_needed"] == 3 and fit["gpus"] == 3
    assert fit["per_gpu_bytes"] == 67_333_333_335 == t["per_gpu_bytes"]


def test_the_training_table_shows_the_overhead_row() -> None:
    r = cli("footprint", "--params", "7B", "--train", "full", "--overhead", "2GB")
    assert r.exit_code == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if "overhead (2GB)" in line)
    assert "2,000,000,000" in row
    assert "114,000,000,000" in r.stdout


def test_the_python_api_applies_a_training_overhead_too() -> None:
    fp = api.footprint(params="7B", train="full", overhead="2GB")
    assert fp.training is not None and fp.training.per_gpu_bytes() == 114_000_000_000
    plain = api.footprint(params="7B", train="full")
    assert plain.training is not None and plain.training.per_gpu_bytes() == 112_000_000_000


def test_serving_keeps_its_default_and_explicit_overhead() -> None:
    doc = cli_json("footprint", "--params", "7B", "--dtype", "bf16")
    assert doc["precisions"][0]["serving_bytes"] == 16_800_000_000  # 14 GB + 20%
    doc = cli_json("footprint", "--params", "7B", "--dtype", "bf16", "--overhead", "10%")
    assert doc["precisions"][0]["serving_bytes"] == 15_400_000_000


# --- footprint options that count only in some modes ------------------------------------------

P = ("footprint", "--params", "7B")
DIMS = ("--layers", "32", "--hidden-size", "4096", "--heads", "32", "--intermediate-size", "11008")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            (*P, "--batch", "4"),
            "--batch: multiplies the KV cache (--context) or the training activations "
            "(--activations), and neither is asked for",
        ),
        (
            (*P, "--train", "full", "--batch", "4"),
            "--batch: multiplies the KV cache (--context) or the training activations "
            "(--activations), and neither is asked for",
        ),
        (
            (*P, "--kv-dtype", "fp8"),
            "--kv-dtype: sizes the KV cache, which needs --context and no --train",
        ),
        (
            (*P, "--train", "full", "--context", "4096", "--kv-dtype", "fp8"),
            "--kv-dtype: sizes the KV cache, which needs --context and no --train",
        ),
        (
            (*P, "--encoder-length", "1024"),
            "--encoder-length: sizes the KV cache, which needs --context and no --train",
        ),
        (
            ("footprint", str(EXAMPLE), "--context", "1024", "--encoder-length", "77"),
            "--encoder-length: sizes an encoder-decoder's cross-attention, and this model has none",
        ),
        ((*P, "--optimizer", "sgd"), "--optimizer: only applies to --train"),
        ((*P, "--lora-rank", "8"), "--lora-rank: only applies to --train lora or qlora"),
        (
            (*P, "--train", "full", "--lora-targets", "qv"),
            "--lora-targets: only applies to --train lora or qlora",
        ),
        (
            (*P, "--gpus", "2"),
            "--gpus: for serving it is the tensor-parallel count of a --gpu fit: give --gpu",
        ),
        (
            (*P, "--train", "full", "--dtype", "bf16", "--dtype", "f32"),
            "--dtype: --train estimates one dtype (the trained weights or the frozen base): "
            "give it once",
        ),
        (
            (*P, "--revision", "main"),
            "--revision: only applies to a Hub CHECKPOINT, and none is given",
        ),
        (
            ("footprint", "--list-gpus", "--params", "7B"),
            "--params: --list-gpus and --list-dtypes print their table alone",
        ),
        (
            ("footprint", "--list-dtypes", str(EXAMPLE)),
            "CHECKPOINT: --list-gpus and --list-dtypes print their table alone",
        ),
    ],
)
def test_an_option_that_would_change_nothing_is_refused(args: tuple[str, ...], line: str) -> None:
    assert error_line(cli(*args)) == "paramtool: error: " + line


@pytest.mark.parametrize(
    "args",
    [
        (*P, "--context", "4096", "--batch", "4", "--kv-dtype", "fp8", *DIMS, "--kv-heads", "8"),
        (*P, "--gpu", "h100-80gb", "--gpus", "2"),
        (*P, "--train", "full", "--gpus", "2", "--zero", "1", "--optimizer", "sgd"),
        (*P, "--train", "full", "--context", "2048", "--activations", "flash", "--batch", "2",
         *DIMS),
        (*P, "--train", "lora", "--lora-rank", "8", "--lora-targets", "qv", *DIMS,
         "--kv-heads", "32"),
        (*P, "--train", "qlora", "--dtype", "nf4", *DIMS, "--kv-heads", "8"),
    ],
)  # fmt: skip
def test_the_same_options_where_they_count_are_accepted(args: tuple[str, ...]) -> None:
    r = cli(*args)
    assert r.exit_code == 0, r.stderr


def test_encoder_length_reaches_the_cross_attention_cache(tmp_path: Path) -> None:
    # T5-small: 6 decoder layers, 8 heads, d_kv 64, bf16. Self-attention K/V over 1,024
    # tokens: 2 * 6 * 8 * 64 * 1024 * 2 = 12,582,912 bytes; cross-attention over 2,048
    # encoder tokens: 2 * 6 * 8 * 64 * 2048 * 2 = 25,165,824.
    write_sparse_checkpoint(tmp_path / "t5", t5_small())
    kv = cli_json("footprint", str(tmp_path / "t5"), "-c", "1024", "--encoder-length", "2048")[
        "kv_cache"
    ]
    assert kv["encoder_length"] == 2048
    assert kv["cross_attention_bytes"] == 25_165_824 and kv["bytes"] == 37_748_736


# --- pre-commit hooks on every checkpoint kind ---------------------------------------------------

CHECKPOINT_NAMES = [
    "models/llama/model-00001-of-00004.safetensors",
    "model.safetensors",
    "MODEL.SAFETENSORS",
    "models/llama/model.safetensors.index.json",
    "diffusion_pytorch_model.safetensors.index.json",
    "llama-3-8b-Q4_K_M.gguf",
    "pytorch_model.bin",
    "training_args.bin",
    "optimizer.pt",
    "model.pth",
    "sd-v1-5.ckpt",
    "weights.pkl",
    "weights.pickle",
]
OTHER_NAMES = [
    "config.json",
    "tokenizer.json",
    "README.md",
    "model.safetensors.bak",
    "generation_config.json",
    "safetensors.py",
]


@pytest.mark.parametrize("hook", HOOKS, ids=lambda h: h["id"])
def test_the_hooks_trigger_on_every_checkpoint_kind(hook: dict[str, object]) -> None:
    files = hook["files"]
    assert isinstance(files, str)
    for name in CHECKPOINT_NAMES:
        assert re.search(files, name), name
    for name in OTHER_NAMES:
        assert not re.search(files, name), name


def _run_hook(
    hook_id: str, args: list[str], staged: list[str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run a hook as pre-commit does: its entry, its args, then the staged files it matches."""
    hook = next(h for h in HOOKS if h["id"] == hook_id)
    assert hook["entry"] == "paramtool check"
    files = [f for f in staged if re.search(hook["files"], f)] if hook["pass_filenames"] else []
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, "-m", "paramtool", "check", *args, *files],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def _pickle(folder: Path, name: str = "pytorch_model.bin") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"\x80\x02}q\x00.")  # an empty dict: read, never unpickled


def test_a_staged_pickle_fails_safetensors_only(tmp_path: Path) -> None:
    _pickle(tmp_path / "x")
    r = _run_hook(
        "paramtool-check", ["--safetensors-only", "--no-config"], ["x/pytorch_model.bin"], tmp_path
    )
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "safetensors_only" in r.stdout and "FAIL" in r.stdout
    assert "the weights are pickles, not safetensors (x/pytorch_model.bin)" in r.stdout
    assert "error" not in r.stderr and "Traceback" not in r.stderr


def test_a_staged_pickle_beside_staged_safetensors_fails_and_evaluates_the_other_rules(
    tmp_path: Path,
) -> None:
    _pickle(tmp_path / "x")
    make_checkpoint(tmp_path / "x", {"w": ("F16", (4, 4))})
    staged = ["x/model.safetensors", "x/pytorch_model.bin", "x/config.json"]
    r = _run_hook(
        "paramtool-check", ["--safetensors-only", "--dtype", "f16", "--no-config"], staged, tmp_path
    )
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr == ""  # pickles are read now: every rule is evaluated
    assert "safetensors_only" in r.stdout and "dtype" in r.stdout


def test_a_staged_pickle_without_safetensors_only_is_read_and_checked(tmp_path: Path) -> None:
    _pickle(tmp_path / "x", "model.pt")
    r = _run_hook("paramtool-check", ["--max-size", "1GB", "--no-config"], ["x/model.pt"], tmp_path)
    assert r.returncode == 0, (r.stdout, r.stderr)
    (tmp_path / "x" / "model.pt").write_bytes(b"\x80\x02}q")  # truncated: one error line
    r = _run_hook("paramtool-check", ["--max-size", "1GB", "--no-config"], ["x/model.pt"], tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("paramtool: error: x/model.pt: ")
    assert r.stderr.count("\n") == 1


def test_the_folder_hook_fails_a_folder_of_pickles(tmp_path: Path) -> None:
    _pickle(tmp_path / "models" / "m")
    r = _run_hook(
        "paramtool-check-folder",
        ["models/m", "--safetensors-only", "--no-config"],
        ["models/m/pytorch_model.bin"],
        tmp_path,
    )
    assert r.returncode == 1, (r.stdout, r.stderr)


def test_a_staged_index_with_its_shards_is_read_through_the_index(tmp_path: Path) -> None:
    make_checkpoint(tmp_path / "m", {"a": ("F16", (4, 4)), "b": ("F16", (4, 4))}, shards=2)
    staged = sorted(f"m/{p.name}" for p in (tmp_path / "m").iterdir())
    assert "m/model.safetensors.index.json" in staged and len(staged) == 3
    r = _run_hook(
        "paramtool-check", ["--dtype", "f16", "--safetensors-only", "--no-config"], staged, tmp_path
    )
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "PASSED" in r.stdout and "2 rules: 2 passed" in r.stdout
