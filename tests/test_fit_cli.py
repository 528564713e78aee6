"""``paramtool fit`` on the command line: JSON equal to the API, exit codes, the tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

import layouts
import paramtool
from helpers import cli, cli_json, error_line

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "docs/schemas/fit.schema.json").read_text("utf-8")
)
DENSE = ("--params", "8B", "--layers", "32", "--heads", "32", "--kv-heads", "8",
         "--head-dim", "128", "--engine", "generic")  # fmt: skip


@pytest.fixture(scope="module")
def llama70b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("llama70b")
    layouts.write_sparse_checkpoint(folder, layouts.llama31_70b(), shards=1)
    return folder


def test_json_is_the_api_document():
    doc = cli_json("fit", *DENSE, "--gpu", "24GB", "--context", "8k")
    api = paramtool.fit(
        params="8B", layers=32, heads=32, kv_heads=8, head_dim=128, engine="generic",
        gpu="24GB", context="8k",
    )  # fmt: skip
    assert doc == api.to_dict()
    assert not list(Draft202012Validator(SCHEMA).iter_errors(doc))
    assert doc["fits"] is True and doc["solves"]["max_batch"] == 4


def test_does_not_fit_exits_1_with_the_document_and_one_warning():
    r = cli("fit", *DENSE, "--gpu", "24GB", "--context", "8k", "--batch", "5", "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["fits"] is False and doc["why_not"]
    assert r.stderr.startswith("paramtool: warning: does not fit: ")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--gpu", "h900-80gb"), ("--gpu",)),
        (("--gpu", "24GB:0"), ("--gpu",)),
        ((), ("--gpu",)),
        (("--gpu", "24GB", "--engine", "tgi"), ("--engine", "unknown engine")),
        (("--gpu", "24GB", "--gpu-memory-utilization", "2"), ("--gpu-memory-utilization",)),
        (("--gpu", "24GB", "--kv-memory", "lots"), ("--kv-memory",)),
        (("--gpu", "24GB", "--flash-attention", "maybe"), ("--flash-attention",)),
        (("--gpu", "24GB", "--mtp"), ("--mtp", "no multi-token-prediction head")),
    ],
)
def test_bad_options_are_one_line_exit_2(args, words):
    error_line(cli("fit", *DENSE, *args), *words)


def test_a_source_and_params_together_are_refused(llama70b):
    error_line(cli("fit", str(llama70b), "--params", "8B", "--gpu", "24GB"), "--params")


def test_tables_fit_80_columns():
    r = cli("fit", *DENSE, "--gpu", "24GB:2", "--context", "8k", env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.stderr
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    for words in ("Memory per device", "KV pool", "max context", "most sequences", "free"):
        assert words in r.stdout
    r = cli("fit", *DENSE, "--gpu", "24GB", "--context", "8k", "--units", "gib",
            env={"COLUMNS": "80"})  # fmt: skip
    assert "GiB" in r.stdout


def test_70b_int4_at_128k_on_one_h100_does_not_fit_with_vllm_defaults(llama70b):
    """The motivating example: ``footprint`` said it fits with 239 MB to spare.

    By vLLM's accounting the KV pool is what is left of 0.9 x 81,559 MiB after the weights
    (70,553,706,496 parameters at int4-g128) and the profiling peak, and one request of
    max_model_len 131,072 needs 80 layers x 8 KV heads x (128 + 128) x 2 bytes = 327,680
    bytes a token, 42,949,672,960 bytes: more than the pool, so vLLM refuses to start.
    """
    pytest.importorskip("paramtool.memory.engines.vllm")
    args = (str(llama70b), "--gpu", "h100-80gb", "--dtype", "int4-g128", "--context", "128k")
    doc = cli_json("fit", *args, code=1)
    assert doc["engine"]["name"] == "vllm" and doc["fits"] is False
    device = doc["devices"][0]
    assert device["budget_bytes"] == 81559 * 2**20 * 9 // 10  # 76,970,... : 0.9 x total
    assert doc["kv_cache_bytes"] < 131_072 * 327_680
    assert doc["max_model_len"] < 131_072 and doc["max_concurrency"] < 1
    assert doc["solves"]["gpus"] == 2  # two H100s, tensor parallel 2, do hold it
    assert doc["solves"]["max_context"] == doc["max_model_len"]


def test_gguf_defaults_to_llamacpp(tmp_path):
    pytest.importorskip("paramtool.memory.engines.llamacpp")
    import quant_layouts

    quant_layouts.write_gguf(tmp_path / "m.gguf", "moe")
    doc = cli_json("fit", str(tmp_path / "m.gguf"), "--gpu", "24GB")
    assert doc["engine"]["name"] == "llama.cpp" and doc["model"]["format"] == "gguf"
    assert not list(Draft202012Validator(SCHEMA).iter_errors(doc))


def test_mtp_is_echoed_in_the_request():
    doc = cli_json("fit", *DENSE, "--gpu", "24GB", "--context", "8k")
    assert doc["request"]["mtp"] is False
    assert not list(Draft202012Validator(SCHEMA).iter_errors(doc))
