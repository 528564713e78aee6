"""The public Python API: each record's ``to_dict()`` is exactly what the command's --json prints.

Expected figures are the published or writer-given ones used across the suite (the example's
1,217,664 parameters are what its generator, examples/make_tiny_llama.py, writes).
"""

from __future__ import annotations

import doctest
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

import paramtool
import paramtool.api
from helpers import cli_json
from layouts import (
    llama31_8b,
    lora_llama31_8b,
    make_checkpoint,
    tiny_model,
    write_sparse_checkpoint,
)
from quant_layouts import write_gguf

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tiny-llama"


def same(obj: dict[str, Any]) -> dict[str, Any]:
    """What the CLI would print: the JSON round trip (tuples become lists)."""
    return json.loads(json.dumps(obj))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("api")
    write_sparse_checkpoint(root / "llama8b", llama31_8b())
    write_sparse_checkpoint(root / "lora", lora_llama31_8b())
    write_gguf(root / "moe.gguf", "moe")
    make_checkpoint(root / "a", tiny_model(0), shards=2)
    make_checkpoint(root / "b", tiny_model(1), shards=1)
    return {
        "example": EXAMPLE,
        "llama8b": root / "llama8b",
        "lora": root / "lora",
        "gguf": root / "moe.gguf",
        "a": root / "a",
        "b": root / "b",
    }


@pytest.mark.parametrize("name", ["example", "llama8b", "lora", "gguf", "a"])
def test_inspect_to_dict_is_the_json_document(corpus: dict[str, Path], name: str) -> None:
    r = paramtool.inspect(corpus[name])
    assert same(r.to_dict()) == cli_json("inspect", str(corpus[name]))
    assert r.total_parameters == cli_json("inspect", str(corpus[name]))["total_parameters"]


def test_inspect_record() -> None:
    r = paramtool.inspect(str(EXAMPLE))
    assert isinstance(r, paramtool.Inspection)
    assert r.total_parameters == 1_217_664
    assert sum(t.parameters for t in r.by_category.values()) == 1_217_664
    assert list(r.by_category) == [
        "embedding", "attention", "feed_forward", "norm", "adapter", "quantization", "other",
    ]  # fmt: skip
    pattern = re.compile(r"layers\.1\.")
    doc = cli_json("inspect", str(EXAMPLE), "--filter", r"layers\.1\.")
    assert same(r.to_dict(filter=pattern)) == doc
    assert same(r.to_dict(tensors=True)) == cli_json("inspect", str(EXAMPLE), "--tensors")


def test_inspect_takes_paths_lists_and_path_objects(corpus: dict[str, Path]) -> None:
    shards = sorted(str(p) for p in corpus["a"].glob("*.safetensors"))
    as_list = paramtool.inspect(shards)
    assert as_list.total_parameters == paramtool.inspect(corpus["a"]).total_parameters
    assert paramtool.inspect(os.fspath(EXAMPLE)).total_parameters == 1_217_664


def test_inspect_with_a_base(corpus: dict[str, Path]) -> None:
    r = paramtool.inspect(corpus["lora"], base=corpus["llama8b"])
    doc = cli_json("inspect", str(corpus["lora"]), "--base", str(corpus["llama8b"]))
    assert same(r.to_dict()) == doc
    assert doc["adapter"]["parameters"] == 6_815_744  # r=16 on q,v of Llama-3.1-8B
    assert doc["adapter"]["base"]["parameters"] == 8_030_261_248


@pytest.mark.parametrize(
    ("kwargs", "argv"),
    [
        ({"params": "70B", "dtype": "bf16"}, ["--params", "70B", "--dtype", "bf16"]),
        ({"params": 70_000_000_000}, ["--params", "70B"]),
        (
            {"params": "8B", "dtype": ["bf16", "int4"], "gpu": "h100-80gb", "context": "128k",
             "layers": 32, "heads": 32, "kv_heads": 8, "hidden_size": 4096},
            ["--params", "8B", "--dtype", "bf16", "--dtype", "int4", "--gpu", "h100-80gb",
             "--context", "128k", "--layers", "32", "--heads", "32", "--kv-heads", "8",
             "--hidden-size", "4096"],
        ),
        (
            {"params": "8B", "train": "full", "gpu": "a100-40gb", "optimizer": "adamw8bit"},
            ["--params", "8B", "--train", "full", "--gpu", "a100-40gb", "--optimizer", "adamw8bit"],
        ),
    ],
)  # fmt: skip
def test_footprint_to_dict_is_the_json_document(kwargs: dict[str, Any], argv: list[str]) -> None:
    assert same(paramtool.footprint(**kwargs).to_dict()) == cli_json("footprint", *argv)


def test_footprint_from_a_checkpoint_and_in_gib(corpus: dict[str, Path]) -> None:
    fp = paramtool.footprint(corpus["llama8b"], context=131_072)
    doc = cli_json("footprint", str(corpus["llama8b"]), "--context", "128k", "--units", "gib")
    assert same(fp.to_dict(binary=True)) == doc
    assert fp.parameters == 8_030_261_248
    assert fp.kv is not None and fp.kv.bytes == 17_179_869_184  # Llama-3.1-8B at 128k, bf16


def test_check_to_dict_is_the_json_document() -> None:
    rules = {"dtype": "bf16", "max_size": "3MB", "max_share": {"other": "5%"}, "no_nan": True}
    report = paramtool.check(EXAMPLE, rules)
    doc = cli_json(
        "check", str(EXAMPLE), "--no-config", "--dtype", "bf16", "--max-size", "3MB",
        "--max-share", "other=5%", "--no-nan",
    )  # fmt: skip
    assert same(report.to_dict()) == doc
    assert report.passed and report.exit_code == 0


def test_check_failing_rules_and_bad_rules() -> None:
    report = paramtool.check(EXAMPLE, {"max-size": "1MB"})
    assert not report.passed and report.exit_code == 1
    assert same(report.to_dict()) == cli_json(
        "check", str(EXAMPLE), "--no-config", "--max-size", "1MB", code=1
    )
    with pytest.raises(paramtool.ParamtoolError, match=r"^rules: max_size = '16XB': "):
        paramtool.check(EXAMPLE, {"max_size": "16XB"})
    with pytest.raises(paramtool.ParamtoolError, match=r"^rules: max_sise: unknown key"):
        paramtool.check(EXAMPLE, {"max_sise": "16GB"})


def test_value_commands_to_dict_are_the_json_documents(corpus: dict[str, Path]) -> None:
    a, b = str(corpus["a"]), str(corpus["b"])
    assert same(paramtool.stats(a).to_dict()) == cli_json("stats", a)
    assert same(paramtool.stats(a, filter="q_proj").to_dict(top=3)) == cli_json(
        "stats", a, "--filter", "q_proj", "--top", "3"
    )
    assert same(paramtool.digest(a).to_dict()) == cli_json("hash", a)
    report = paramtool.diff(a, b)
    assert not report.identical
    assert same(report.to_dict()) == cli_json("diff", a, b, code=1)
    assert paramtool.diff(a, a).identical


def test_progress_is_reported_through_the_callback(corpus: dict[str, Path]) -> None:
    seen: list[tuple[int, int]] = []
    paramtool.digest(corpus["a"], progress=lambda done, total: seen.append((done, total)))
    totals = {t for _, t in seen}
    assert len(totals) == 1 and seen[-1][0] == seen[-1][1] == totals.pop()


def test_errors_are_paramtool_errors() -> None:
    with pytest.raises(paramtool.ParamtoolError):
        paramtool.inspect(ROOT / "no-such-folder")
    with pytest.raises(paramtool.ParamtoolError):
        paramtool.footprint()
    with pytest.raises(paramtool.ParamtoolError):
        paramtool.stats(EXAMPLE, filter="(")
    with pytest.raises(paramtool.ParamtoolError):
        paramtool.inspect([])  # type: ignore[arg-type]


def test_the_public_face() -> None:
    assert set(paramtool.__all__) >= {
        "inspect", "footprint", "check", "stats", "digest", "verify", "diff",
        "open_checkpoint", "ParamtoolError", "__version__",
    }  # fmt: skip
    for name in paramtool.__all__:
        assert getattr(paramtool, name) is not None
    assert (ROOT / "src" / "paramtool" / "py.typed").is_file()
    with pytest.raises(AttributeError):
        paramtool.no_such_thing  # noqa: B018


@pytest.mark.parametrize("module", [paramtool, paramtool.api])
def test_docstring_examples_run(module: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0


def test_python_api_page_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ```python block of docs/python-api.md runs, in order, in one namespace."""
    page = (ROOT / "docs" / "python-api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", page, flags=re.S | re.M)
    assert len(blocks) >= 5
    monkeypatch.chdir(ROOT)
    namespace: dict[str, Any] = {}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"docs/python-api.md block {i + 1}", "exec"), namespace)
        except Exception as e:  # pragma: no cover - the message is the point
            raise AssertionError(f"block {i + 1} of docs/python-api.md failed: {e!r}") from e


def test_parts_have_their_own_category_split(tmp_path: Path) -> None:
    """DeepSeek-V3: the report's 671B main model, and its MTP module as a part of its own."""
    from layouts import deepseek_v3

    write_sparse_checkpoint(tmp_path, deepseek_v3())
    r = paramtool.inspect(tmp_path)
    doc = cli_json("inspect", str(tmp_path))
    assert same(r.to_dict()) == doc
    assert doc["by_part"]["language_model"]["parameters"] == 671_026_419_200
    assert doc["by_part"]["mtp"]["parameters"] == 684_489_845_504 - 671_026_419_200
    assert (
        sum(v["parameters"] for v in doc["by_part"]["mtp"]["by_category"].values())
        == (doc["by_part"]["mtp"]["parameters"])
    )
    assert list(r.by_part) == ["language_model", "mtp"]
