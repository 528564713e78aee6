"""Core errors name parameters; the command line's error table spells them as flags."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from helpers import ERROR_PREFIX, cli, error_line
from paramtool import dtypes
from paramtool.cli.common import flag
from paramtool.errors import ParamtoolError, UsageError
from paramtool.memory.dims import ModelDims
from paramtool.memory.estimate import estimate
from paramtool.memory.gpus import lookup_gpu
from paramtool.memory.kv_cache import kv_cache
from paramtool.memory.overhead import parse_overhead
from paramtool.memory.training import parse_lora_targets, training
from paramtool.patterns import compile_filter
from paramtool.sources import open_source

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tiny-llama"


def test_an_error_names_its_parameter_and_can_spell_it_otherwise() -> None:
    e = UsageError("0", "must be at least 1", param="lora_rank")
    assert str(e) == "lora_rank 0: must be at least 1"
    assert (e.what, e.why, e.param, e.params) == (
        "lora_rank 0",
        "must be at least 1",
        "lora_rank",
        ("lora_rank",),
    )
    assert e.message(flag) == "--lora-rank 0: must be at least 1"
    both = UsageError("", lambda p: f"only apply to {p('train')}", param=("zero", "activations"))
    assert str(both) == "zero/activations: only apply to train"
    assert both.message(flag) == "--zero/--activations: only apply to --train"
    plain = ParamtoolError("model.safetensors", "no such file")
    assert (
        plain.param is None
        and plain.message(flag) == str(plain) == "model.safetensors: no such file"
    )


def test_the_flag_of_a_parameter() -> None:
    assert flag("lora_rank") == "--lora-rank"
    assert flag("kv_heads") == "--kv-heads"
    assert flag("context") == "--context"


Q4_K = dtypes.lookup("q4_k")
# (the call, its message for a Python caller, the parameters it names)
CORE: list[tuple[Callable[[], Any], str, tuple[str, ...]]] = [
    (lambda: estimate(0), "params: must be greater than zero", ("params",)),
    (lambda: estimate(1000, batch=0), "batch 0: must be at least 1", ("batch",)),
    (lambda: estimate(1000, gpus=0), "gpus 0: must be between 1 and 4096", ("gpus",)),
    (lambda: estimate(1000, lora_rank=0), "lora_rank 0: must be at least 1", ("lora_rank",)),
    (
        lambda: estimate(1000, zero=3),
        "zero/activations: only apply to train",
        ("zero", "activations"),
    ),
    (lambda: training(1000, "dpo"), "train 'dpo': use full, lora or qlora", ("train",)),
    (
        lambda: training(1000, "full", optimizer="lion"),
        "optimizer 'lion': use adamw, adamw8bit or sgd",
        ("optimizer",),
    ),
    (lambda: training(1000, "full", zero=4), "zero 4: ZeRO stages are 0, 1, 2 and 3", ("zero",)),
    (
        lambda: training(1000, "full", activations="flash"),
        "activations flash: give the sequence length with context",
        ("activations",),
    ),
    (
        lambda: training(1000, "full", dtype=Q4_K),
        "dtype Q4_K: full fine-tuning trains fp32, bf16 or fp16 weights; for a quantized base "
        "use train qlora",
        ("dtype",),
    ),
    (
        lambda: training(1000, "lora", dims=ModelDims(layers=2, hidden_size=64, heads=4)),
        "train lora/qlora: the adapter size needs the model's kv-heads, head-dim, "
        "intermediate-size: give a checkpoint with a config.json or kv_heads, head_dim, "
        "intermediate_size",
        ("train",),
    ),
    (
        lambda: parse_lora_targets("qk,x"),
        "lora_targets 'qk,x': use all-linear, attention, mlp, qv or a list of q,k,v,o,gate,up,down",
        ("lora_targets",),
    ),
    (
        lambda: kv_cache(ModelDims(layers=2), 1024),
        "context: the KV cache needs the model's KV heads (kv_heads), head_dim (head_dim): "
        "give a checkpoint with a config.json or the flags",
        ("context",),
    ),
    (lambda: kv_cache(ModelDims(), 0), "context/batch: must be at least 1", ("context", "batch")),
    (
        lambda: parse_overhead("2000%"),
        "overhead '2000%': a share of the weights between 0% and 1000%",
        ("overhead",),
    ),
    (
        lambda: parse_overhead("lots"),
        "overhead 'lots': write it like 20%, 2GB or 1.5GiB",
        ("overhead",),
    ),
    (lambda: compile_filter("("), "filter '(': not a regular expression", ("filter",)),
    (
        lambda: open_source([str(EXAMPLE)], revision="main"),
        "revision/subfolder: only apply to Hub repos, not local paths",
        ("revision", "subfolder"),
    ),
    (
        lambda: open_source(["org/name@v1"], revision="v2"),
        "org/name@v1: two revisions given ('v1' and revision 'v2')",
        (),
    ),
]


@pytest.mark.parametrize(("call", "message", "params"), CORE)
def test_core_errors_name_parameters(
    call: Callable[[], Any], message: str, params: tuple[str, ...]
) -> None:
    with pytest.raises(UsageError) as e:
        call()
    assert str(e.value).startswith(message)
    assert e.value.params == params
    assert "--" not in str(e.value)


def test_an_unknown_gpu_names_the_parameter() -> None:
    with pytest.raises(UsageError) as e:
        lookup_gpu("tpu-v5")
    assert str(e.value).startswith("gpu 'tpu-v5': unknown GPU (known: t4, ")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ("footprint", "--params", "8B", "--zero", "1"),
            "--zero/--activations: only apply to --train",
        ),
        (
            ("footprint", "--params", "8B", "--train", "full", "--activations", "flash"),
            "--activations flash: give the sequence length with --context",
        ),
        (
            ("footprint", "--params", "8B", "--train", "full", "--dtype", "q4_k"),
            "--dtype Q4_K: full fine-tuning trains fp32, bf16 or fp16 weights; for a quantized "
            "base use --train qlora",
        ),
        (
            ("footprint", "--params", "8B", "--train", "lora", "--layers", "2"),
            "--train lora/qlora: the adapter size needs the model's hidden-size, heads, kv-heads, "
            "head-dim, intermediate-size: give a checkpoint with a config.json or --hidden-size, "
            "--heads, --kv-heads, --head-dim, --intermediate-size",
        ),
        (
            ("footprint", "--params", "8B", "--context", "8192", "--layers", "4"),
            "--context: the KV cache needs the model's KV heads (--kv-heads), head_dim "
            "(--head-dim): give a checkpoint with a config.json or the flags",
        ),
        (
            ("footprint", "--params", "8B", "--overhead", "2000%"),
            "--overhead '2000%': a share of the weights between 0% and 1000%",
        ),
        (
            ("footprint", "--params", "8B", "--gpus", "100000"),
            "--gpus 100000: must be between 1 and 4096",
        ),
        (
            ("inspect", str(EXAMPLE), "--subfolder", "x"),
            "--revision/--subfolder: only apply to Hub repos, not local paths",
        ),
        (
            ("inspect", "org/name@v1", "--revision", "v2"),
            "org/name@v1: two revisions given ('v1' and --revision 'v2')",
        ),
        (
            ("stats", "org/name"),
            "org/name: reading values needs the weights themselves (often gigabytes): pass "
            "--download to fetch them into the huggingface_hub cache, or give a local path",
        ),
        (
            ("check", str(EXAMPLE), "--min-size", "2GB", "--max-size", "1GB"),
            "--min-size '2GB': the minimum size is above the maximum (1GB): nothing can pass",
        ),
        (
            ("check", str(EXAMPLE)),
            "check: no rules given; name at least one (e.g. --max-size 16GB or --dtype bf16) on "
            "the command line, or in paramtool.toml [check] or pyproject.toml "
            "[tool.paramtool.check]",
        ),
    ],
)
def test_the_cli_line_names_the_flag(
    args: tuple[str, ...], line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no paramtool.toml above
    assert error_line(cli(*args), stdout=None) == ERROR_PREFIX + line


def test_a_long_name_in_a_message_is_cut_but_kept_whole_on_the_error() -> None:
    name = "w" * 1_000_000
    e = UsageError(repr(name), "not a tensor of this checkpoint", param="tensor")
    assert e.value == repr(name)  # the value stays whole for Python callers
    assert len(str(e)) <= 400
    assert str(e).startswith("tensor 'wwww") and "…(+999,8" in str(e)
    assert str(e).endswith("wwww': not a tensor of this checkpoint")
    short = UsageError("'x'", "fine", param="tensor")
    assert str(short) == "tensor 'x': fine"
