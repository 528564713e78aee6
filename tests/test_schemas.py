"""Every command's ``--json`` document validates against its schema in ``docs/schemas/``.

The documents are real CLI output on the example, on small real checkpoints written here,
on header-exact sparse layouts of real models (quantized, adapters, mixtures of experts,
sharded), on GGUF files and on the Hub emulator. The schemas are closed where the document
is, so a key added to the output without its schema fails here.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from jsonschema import Draft202012Validator

from helpers import cli, strict_json
from layouts import make_checkpoint, tiny_model

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "docs" / "schemas"
EXAMPLE = ROOT / "examples" / "tiny-llama"
COMMANDS = ("inspect", "footprint", "fit", "check", "stats", "hash", "verify", "diff")


# ---------------------------------------------------------------- validation


def validator(command: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{command}.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def errors(command: str, doc: Any) -> list[str]:
    found = sorted(validator(command).iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in found]


def run_json(command: str, *args: str, code: int = 0) -> dict[str, Any]:
    """Run ``paramtool COMMAND ARGS --json``, check the exit code, validate the document."""
    r = cli(command, *args, "--json")
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    doc = strict_json(r.stdout)
    problems = errors(command, doc)
    assert not problems, "\n".join(problems)
    return doc


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_a_valid_2020_12_schema(command):
    schema = json.loads((SCHEMAS / f"{command}.schema.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == f"paramtool {command} --json"
    Draft202012Validator.check_schema(schema)


def test_a_schema_file_for_every_command_and_no_other():
    assert sorted(p.name for p in SCHEMAS.glob("*.schema.json")) == sorted(
        f"{c}.schema.json" for c in COMMANDS
    )


# ---------------------------------------------------------------- checkpoints

NUMPY_TO_SAFETENSORS = {
    np.dtype(np.float64): "F64",
    np.dtype(np.float32): "F32",
    np.dtype(np.float16): "F16",
    np.dtype(ml_dtypes.bfloat16): "BF16",
    np.dtype(ml_dtypes.float8_e4m3fn): "F8_E4M3",
    np.dtype(np.int64): "I64",
    np.dtype(np.int32): "I32",
    np.dtype(np.int8): "I8",
    np.dtype(np.uint8): "U8",
    np.dtype(np.bool_): "BOOL",
    np.dtype(np.complex64): "C64",
}

Raw = tuple[str, tuple[int, ...], bytes]  # (dtype, shape, data) for dtypes numpy lacks


def write_safetensors(
    path: Path,
    tensors: Mapping[str, np.ndarray | Raw],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """A small real safetensors file: 8-byte length, JSON header, data in order."""
    header: dict[str, Any] = {"__metadata__": dict(metadata or {"format": "pt"})}
    data = bytearray()
    for name, t in tensors.items():
        if isinstance(t, tuple):
            dtype, shape, raw = t
        else:
            dtype, shape, raw = NUMPY_TO_SAFETENSORS[t.dtype], t.shape, t.tobytes()
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(head)) + head + bytes(data))
    return path


@pytest.fixture(scope="module")
def ck(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every checkpoint the cases below name, written once for the module."""
    import layouts
    import quant_layouts

    base = tmp_path_factory.mktemp("checkpoints")
    out: dict[str, Path] = {"example": EXAMPLE}

    # Small real files (values are read by stats, hash, diff and the value rules).
    arrays = tiny_model(scale=0.02, buffers=False)
    out["tiny"] = write_safetensors(base / "tiny" / "model.safetensors", arrays).parent
    out["sharded"] = make_checkpoint(base / "sharded", arrays, {"format": "pt"}, shards=3)
    odd = dict(arrays)
    w = arrays["model.layers.0.mlp.down_proj.weight"].astype(np.float32)
    w[0, :3] = [np.nan, np.inf, -np.inf]
    odd["model.layers.0.mlp.down_proj.weight"] = w.astype(ml_dtypes.bfloat16)
    odd["model.layers.1.mlp.up_proj.weight"] = np.full((40, 16), np.nan, np.float32)  # no finite
    odd["rotary.inv_freq"] = np.zeros(8, np.float32)  # category other, all zeros
    odd["position_ids"] = np.arange(12, dtype=np.int64).reshape(1, 12)
    odd["attention_mask"] = np.tri(4, dtype=np.bool_)
    odd["big.f64"] = np.array([1.7e308, 1.7e308, -1.0], np.float64)  # float64 overflow
    odd["complex.c64"] = np.ones(4, np.complex64)  # not decoded
    odd["packed.f6"] = ("F6_E2M3", (4,), b"\x01\x02\x03")  # four 6-bit values in 3 bytes
    out["odd"] = write_safetensors(base / "odd" / "model.safetensors", odd).parent
    (out["odd"] / "training_args.bin").write_bytes(b"\x80\x04 a pickle, never opened")

    changed = dict(arrays)
    q = arrays["model.layers.1.self_attn.q_proj.weight"].astype(np.float32)
    q[0, 0] += 1.0
    changed["model.layers.1.self_attn.q_proj.weight"] = q.astype(ml_dtypes.bfloat16)
    del changed["lm_head.weight"]  # removed
    changed["model.layers.1.mlp.up_proj.weight"] = arrays["model.layers.1.mlp.up_proj.weight"][:20]
    changed["model.norm.weight"] = np.ones(16, ml_dtypes.bfloat16)  # retyped, same values
    changed["model.layers.0.self_attn.q_proj.bias"] = np.zeros(16, np.float32)  # added
    out["changed"] = write_safetensors(base / "changed" / "model.safetensors", changed).parent

    zeros = {"lora_B": np.zeros((8, 4), np.float32), "c": np.ones(4, np.complex64)}
    trained = {"lora_B": np.full((8, 4), 0.5, np.float32), "c": np.full(4, 2, np.complex64)}
    out["zeros"] = write_safetensors(base / "zeros.safetensors", zeros)
    out["trained"] = write_safetensors(base / "trained.safetensors", trained)
    out["single"] = write_safetensors(
        base / "single.safetensors",
        {"w": np.ones((4, 4), np.float16), "ids": np.arange(4, dtype=np.int32)},
        metadata={"format": "pt", "license": "apache-2.0"},
    )

    # Header-exact sparse layouts of real models (headers only: inspect, footprint, check).
    sparse = {
        "llama8b": (layouts.llama31_8b(), 4),
        "gemma2": (layouts.gemma2_2b(), 3),
        "mixtral": (layouts.mixtral_8x7b(), 1),
        "deepseek": (layouts.deepseek_v3(), None),
        "gptq": (quant_layouts.gptq_llama31_8b(), 1),
        "nf4": (quant_layouts.bnb_nf4_llama31_8b(), 1),
        "gptoss": (quant_layouts.gpt_oss("20b"), 1),
        "qwenmoe": (quant_layouts.qwen15_moe_a27b(), 1),
        "lora": (layouts.lora_llama31_8b(), 1),
        "dora": (layouts.lora_llama31_8b(rank=8, use_dora=True), 1),
    }
    for key, (layout, shards) in sparse.items():
        layouts.write_sparse_checkpoint(base / key, layout, shards=shards)
        out[key] = base / key

    # GGUF (llama.cpp): a quantized MoE, a dense model and a LoRA adapter for it.
    for kind in ("moe", "dense", "lora"):
        quant_layouts.write_gguf(base / f"{kind}.gguf", kind)
        out[f"gguf_{kind}"] = base / f"{kind}.gguf"
    return out


def fill(args: tuple[str, ...], ck: Mapping[str, Path]) -> list[str]:
    """``{name}`` in an argument becomes the path of that checkpoint."""
    return [a.format(**{k: str(v) for k, v in ck.items()}) for a in args]


# ---------------------------------------------------------------- inspect

# fmt: off
INSPECT = {
    "example": ("{example}",),
    "example-tensors": ("{example}", "--tensors"),
    "example-filter": ("{example}", "--filter", r"layers\.1\..*proj"),
    "example-layers-gib": ("{example}", "--layers", "--gib"),
    "no-config": ("{single}",),
    "several-files": ("{sharded}/model-00001-of-00003.safetensors",
                      "{sharded}/model-00002-of-00003.safetensors"),
    "odd-dtypes": ("{odd}", "--tensors"),
    "sharded-index": ("{llama8b}",),
    "tied-sliding-window": ("{gemma2}",),
    "moe-numbered": ("{mixtral}",),
    "moe-shared": ("{qwenmoe}", "--tensors"),
    "mla-fp8-mtp": ("{deepseek}",),
    "gptq": ("{gptq}",),
    "nf4": ("{nf4}", "--filter", "layers.0.self_attn"),
    "mxfp4-moe": ("{gptoss}",),
    "lora": ("{lora}",),
    "lora-with-base": ("{lora}", "--base", "{llama8b}"),
    "dora-quantized-base": ("{dora}", "--base", "{nf4}"),
    "gguf-moe": ("{gguf_moe}", "--tensors"),
    "gguf-dense": ("{gguf_dense}",),
    "gguf-lora-with-base": ("{gguf_lora}", "--base", "{gguf_dense}"),
}
# fmt: on


@pytest.mark.parametrize("args", INSPECT.values(), ids=INSPECT.keys())
def test_inspect(ck, args):
    doc = run_json("inspect", *fill(args, ck))
    assert ("tensors" in doc) == any(a in args for a in ("--tensors", "--filter"))


def test_inspect_documents_cover_the_optional_objects(ck):
    """The cases above reach every nullable object with a value, not only with null."""
    docs = {k: run_json("inspect", *fill(a, ck)) for k, a in INSPECT.items()}
    assert docs["sharded-index"]["index"] is not None
    assert docs["mla-fp8-mtp"]["quantization"]["block_size"] == [128, 128]
    assert docs["mla-fp8-mtp"]["moe"]["mtp"] is not None
    assert docs["lora-with-base"]["adapter"]["base"] is not None
    assert docs["gguf-moe"]["gguf"] is not None and docs["gguf-moe"]["moe"] is not None
    assert docs["no-config"]["config"] is None and docs["example"]["config"] is not None


def test_inspect_of_a_hub_repo(hub):
    sha = hub.add_repo("org/tiny", EXAMPLE, card_data={"license": "mit"})
    doc = run_json("inspect", "org/tiny")
    assert doc["revision"] == sha and doc["hub"]["repo_id"] == "org/tiny"
    doc = run_json("inspect", f"org/tiny@{sha}", "--tensors")
    assert doc["hub"]["requested_revision"] == sha


# ---------------------------------------------------------------- footprint

# fmt: off
FOOTPRINT = {
    "params": ("--params", "70B"),
    "params-gpu": ("--params", "70B", "--dtype", "bf16", "--gpu", "h100-80gb"),
    "kv-cache-two-dtypes": ("--params", "8030261248", "--dtype", "bf16", "--dtype", "Q4_K_M",
                            "--context", "128k", "--layers", "32", "--kv-heads", "8",
                            "--head-dim", "128", "--gpu", "rtx4090"),
    "does-not-fit": ("--params", "405B", "--dtype", "fp32", "--gpu", "rtx4090", "--gpus", "2"),
    "fixed-overhead": ("--params", "13B", "--overhead", "2GB", "--gpu", "h100", "--units", "gib"),
    "checkpoint": ("{example}", "--context", "8k", "--kv-dtype", "fp8"),
    "sliding-window": ("{gemma2}", "--context", "32k", "--dtype", "bf16"),
    "mla": ("{deepseek}", "--context", "32k", "--dtype", "fp8", "--gpu", "h200"),
    "gguf": ("{gguf_moe}", "--context", "4096"),
    "train-full-zero": ("--params", "7B", "--train", "full", "--zero", "3", "--gpus", "8",
                        "--layers", "32", "--hidden-size", "4096", "--heads", "32",
                        "--activations", "flash", "--context", "4096",
                        "--gpu", "a100-80gb"),
    "train-lora": ("{llama8b}", "--train", "lora", "--lora-rank", "8", "--lora-targets", "qv",
                   "--gpu", "a100-40gb"),
    "train-qlora": ("{llama8b}", "--train", "qlora", "--optimizer", "adamw8bit",
                    "--activations", "recompute", "--context", "2048", "--batch", "4"),
    "train-sgd": ("--params", "1B", "--train", "full", "--optimizer", "sgd", "--dtype", "fp32"),
    "list-gpus": ("--list-gpus",),
    "list-dtypes": ("--list-dtypes",),
}
# fmt: on


@pytest.mark.parametrize("args", FOOTPRINT.values(), ids=FOOTPRINT.keys())
def test_footprint(ck, args):
    doc = run_json("footprint", *fill(args, ck))
    if "--list-gpus" in args:
        assert doc["gpus"]
    elif "--list-dtypes" in args:
        assert doc["dtypes"]
    else:
        assert doc["parameters"] > 0
        assert (doc["training"] is not None) == ("--train" in args)


def test_footprint_of_a_hub_repo(hub):
    hub.add_repo("org/tiny", EXAMPLE)
    doc = run_json("footprint", "org/tiny", "--context", "4k", "--gpu", "t4")
    assert doc["source"] == "org/tiny" and doc["kv_cache"] is not None


# ---------------------------------------------------------------- fit

# fmt: off
FIT = {
    "params-generic": (0, "--params", "8B", "--layers", "32", "--kv-heads", "8",
                       "--head-dim", "128", "--engine", "generic", "--gpu", "24GB:2"),
    "vllm-does-not-fit": (1, "{llama8b}", "--gpu", "rtx4090", "--context", "128k"),
    "mla-moe-tensor-parallel": (0, "{deepseek}", "--gpu", "h200:8", "--context", "32k"),
    "gguf-llamacpp": (0, "{gguf_moe}", "--gpu", "24GB", "--ram", "64GB"),
}
# fmt: on


@pytest.mark.parametrize("case", FIT.values(), ids=FIT.keys())
def test_fit(ck, case):
    code, *args = case
    doc = run_json("fit", *fill(tuple(args), ck), code=code)
    assert doc["fits"] is (code == 0) and doc["devices"]


# ---------------------------------------------------------------- check

# fmt: off
CHECK = {
    "all-pass": (0, "{example}", "--no-config", "--max-size", "2.5MB", "--min-size", "2MB",
                 "--max-params", "1.3M", "--min-params", "1M", "--expect-params", "1217664",
                 "--tolerance", "0.1%", "--dtype", "bf16", "--allow-dtypes", "bf16,f32",
                 "--max-share", "other=5%", "--max-share", "norm=1%", "--expect-layers", "4",
                 "--require-metadata", "format=pt", "--require-metadata", "format",
                 "--safetensors-only", "--no-nan", "--no-inf"),
    "minimums-fail": (1, "{example}", "--no-config", "--min-size", "3MB", "--min-params", "2M",
                      "--expect-params", "1217664", "--tolerance", "0.001"),
    "all-fail": (1, "{example}", "--no-config", "--max-size", "2MB",
                 "--max-params", "1M", "--expect-params", "1.2M",
                 "--dtype", "f32", "--allow-dtypes", "f32", "--max-share", "embedding=10%",
                 "--expect-layers", "5", "--require-metadata", "license",
                 "--require-metadata", "format=tf"),
    "values-and-pickles": (1, "{odd}", "--no-config", "--safetensors-only", "--no-nan",
                           "--no-inf", "--sha256", "model.safetensors=" + "0" * 64,
                           "--sha256", "absent.safetensors=" + "1" * 64),
    "quantized": (1, "{gptq}", "--no-config", "--dtype", "f16", "--allow-dtypes", "f16",
                  "--max-share", "quantization=0%", "--expect-params", "8B",
                  "--tolerance", "0.5%"),
    "gguf": (0, "{gguf_moe}", "--no-config", "--max-params", "10M", "--expect-layers", "2"),
}
# fmt: on


@pytest.mark.parametrize(
    ("code", "args"), [(c[0], c[1:]) for c in CHECK.values()], ids=CHECK.keys()
)
def test_check(ck, tmp_path, monkeypatch, code, args):
    monkeypatch.chdir(tmp_path)  # no config file of this repository is found
    doc = run_json("check", *fill(args, ck), code=code)
    assert doc["passed"] is (code == 0)


def test_check_sha256_pass_and_a_config_file(ck, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    digest = hashlib.sha256((ck["tiny"] / "model.safetensors").read_bytes()).hexdigest()
    (tmp_path / "paramtool.toml").write_text(
        '[check]\nmax_size = "1MB"\nmax_share = { other = "1%" }\n'
        f'sha256 = {{ "model.safetensors" = "{digest}" }}\n'
    )
    doc = run_json("check", str(ck["tiny"]))
    assert doc["config"] is not None and doc["passed"] is True


def test_check_of_a_hub_repo_and_against_the_hub(hub, ck, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hub.add_repo("org/tiny", EXAMPLE)
    hub.add_repo("org/other", ck["tiny"])
    doc = run_json(
        "check",
        "org/tiny",
        "--max-size",
        "1TB",
        "--safetensors-only",
        "--no-nan",
        "--no-inf",
        "--sha256",
        "model.safetensors=" + "0" * 64,
        "--against-hub",
        "org/tiny@main",
        code=1,
    )
    assert doc["summary"]["unavailable"] == 4 and doc["revision"] is not None
    run_json("check", str(EXAMPLE), "--against-hub", "org/tiny")
    run_json("check", str(EXAMPLE), "--against-hub", "org/other", code=1)


# ---------------------------------------------------------------- stats, hash

STATS = {
    "example": ("{example}",),
    "example-filter": ("{example}", "--filter", "norm", "--top", "0"),
    "sharded": ("{sharded}", "--tensors", "--top", "3"),
    "odd-values": ("{odd}",),
    "gguf": ("{gguf_dense}",),
}


@pytest.mark.parametrize("args", STATS.values(), ids=STATS.keys())
def test_stats(ck, args):
    doc = run_json("stats", *fill(args, ck))
    assert doc["tensor_count"] == len(doc["tensors"])


def test_stats_of_odd_values_reach_nulls_strings_and_unsupported(ck):
    doc = run_json("stats", str(ck["odd"]))
    rows = {t["name"]: t for t in doc["tensors"]}
    assert rows["model.layers.1.mlp.up_proj.weight"]["mean"] is None
    assert "inf" in (rows["big.f64"]["mean"], rows["big.f64"]["std"])
    assert isinstance(rows["position_ids"]["max"], int)
    assert {u["dtype"] for u in doc["unsupported"]} == {"C64", "F6_E2M3"}


def test_stats_and_hash_of_a_downloaded_hub_repo(hub, ck):
    hub.add_repo("org/tiny", ck["sharded"])
    assert run_json("stats", "org/tiny", "--download")["revision"] is not None
    assert run_json("hash", "org/tiny", "--download")["revision"] is not None


HASH = {
    "example": ("{example}",),
    "example-tensors": ("{example}", "--tensors"),
    "sharded": ("{sharded}",),
    "odd-dtypes": ("{odd}",),
    "gguf": ("{gguf_moe}",),
}


@pytest.mark.parametrize("args", HASH.values(), ids=HASH.keys())
def test_hash(ck, args):
    doc = run_json("hash", *fill(args, ck))
    assert doc["tensor_count"] == len(doc["tensors"])


# ---------------------------------------------------------------- verify


def test_verify(hub, ck, tmp_path):
    import shutil

    sha = hub.add_repo("org/tiny", ck["sharded"])
    hub.add_repo(
        "org/tiny", {"weights/model.safetensors": ck["tiny"] / "model.safetensors"}, revision="sub"
    )
    doc = run_json("verify", str(ck["sharded"]), "--against", "org/tiny")
    assert doc["ok"] is True and doc["revision"] == sha
    local = tmp_path / "copy"
    shutil.copytree(ck["sharded"], local)
    (local / "model-00002-of-00003.safetensors").unlink()  # missing
    shard = local / "model-00003-of-00003.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 1
    shard.write_bytes(bytes(data))  # mismatch, same size
    (local / "extra.safetensors").write_bytes((ck["tiny"] / "model.safetensors").read_bytes())
    (local / "model.safetensors.index.json").write_text("{}")  # mismatch, other size
    doc = run_json("verify", str(local), "--against", f"org/tiny@{sha}", code=1)
    assert doc["ok"] is False and doc["requested_revision"] == sha
    one = ck["tiny"] / "model.safetensors"
    run_json("verify", str(one), "--against", "org/tiny@sub", "--subfolder", "weights")
    other = write_safetensors(
        tmp_path / "other" / "model.safetensors", tiny_model(seed=1, scale=0.02, buffers=False)
    )
    run_json("verify", str(other), "--against", "org/tiny@sub", "--subfolder", "weights", code=1)


# ---------------------------------------------------------------- diff

# fmt: off
DIFF = {
    "identical-resharded": (0, "{tiny}", "{sharded}"),
    "structure-and-values": (1, "{tiny}", "{changed}"),
    "filter": (0, "{tiny}", "{changed}", "--filter", "layers.0.mlp", "--top", "0"),
    "tensors": (1, "{tiny}", "{changed}", "--tensors", "--top", "2"),
    "zeros-and-undecoded": (1, "{zeros}", "{trained}"),
    "nonfinite": (1, "{tiny}", "{odd}"),
}
# fmt: on


@pytest.mark.parametrize(("code", "args"), [(c[0], c[1:]) for c in DIFF.values()], ids=DIFF.keys())
def test_diff(ck, code, args):
    doc = run_json("diff", *fill(args, ck), code=code)
    assert doc["identical"] is (code == 0)


def test_diff_reaches_every_structure_list_and_null_norms(ck):
    doc = run_json("diff", str(ck["tiny"]), str(ck["changed"]), code=1)
    assert all(doc["structure"][k] for k in ("added", "removed", "reshaped", "retyped"))
    doc = run_json("diff", str(ck["zeros"]), str(ck["trained"]), code=1)
    rows = {t["name"]: t for t in doc["tensors"]}
    assert rows["lora_B"]["rel_l2"] is None and rows["c"]["l2"] is None


def test_diff_of_a_downloaded_hub_repo(hub, ck):
    hub.add_repo("org/tiny", ck["tiny"])
    doc = run_json("diff", "org/tiny", str(ck["sharded"]), "--download")
    assert doc["a"]["revision"] is not None


# ---------------------------------------------------------------- the schemas are closed


def test_schemas_refuse_unknown_keys_wrong_types_and_missing_keys():
    doc = run_json("inspect", str(EXAMPLE))
    assert errors("inspect", {**doc, "surprise": 1})
    assert errors("inspect", {**doc, "total_parameters": 1.5})
    assert errors("inspect", {k: v for k, v in doc.items() if k != "by_category"})
    cats = {k: v for k, v in doc["by_category"].items() if k != "other"}
    assert errors("inspect", {**doc, "by_category": cats})
    fp = run_json("footprint", "--params", "7B")
    assert errors("footprint", {**fp, "precisions": [{**fp["precisions"][0], "extra": 0}]})
    assert errors("footprint", {**fp, "schema_version": 2})
    ch = run_json("check", str(EXAMPLE), "--no-config", "--max-size", "1GB")
    rule = ch["rules"][0]
    assert errors("check", {**ch, "rules": [{**rule, "status": "maybe"}]})
    assert errors("check", {**ch, "rules": [{**rule, "measured": "big"}]})
