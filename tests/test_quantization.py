"""Quantized checkpoints report their logical parameters (issue 7).

Every layout is written as its quantizer writes it (``tests/quant_layouts.py``: names,
dtypes, shapes) into sparse safetensors files, then read through the real CLI. The
logical count must be the unquantized model's published one, whatever the packing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from layouts import Layout, deepseek_v3, make_checkpoint, nbytes, numel, write_sparse_checkpoint
from paramtool.analysis.anatomy import CATEGORIES, classify
from paramtool.analysis.quantization import declared, unpack
from paramtool.cli import app
from paramtool.records import TensorInfo
from quant_layouts import (
    LLAMA31_8B,
    awq_llama31_8b,
    bnb_int8_llama31_8b,
    bnb_nf4_llama31_8b,
    fp8_llama31_8b,
    gpt_oss,
    gptq_llama31_8b,
    nvfp4_llama31_8b,
    w4a16_llama31_8b,
    write_gguf,
)

runner = CliRunner()
# Llama-3.1-8B's block linears: 32 x (q, k, v, o, gate, up, down), all quantized.
LINEARS = 32 * (2 * 4096 * 4096 + 2 * 1024 * 4096 + 3 * 4096 * 14336)  # 6,979,321,856
ATTENTION = 32 * (2 * 4096 * 4096 + 2 * 1024 * 4096)


def inspect_json(*args: str) -> dict:
    r = runner.invoke(app, ["inspect", *args, "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Write a layout once per module: ``written(builder, *args)`` -> its folder."""
    cache: dict[tuple, Path] = {}

    def get(builder: Callable[..., Layout], *args: object, config: bool = True) -> Path:
        key = (builder.__name__, args, config)
        if key not in cache:
            layout = builder(*args)
            folder = tmp_path_factory.mktemp(builder.__name__)
            write_sparse_checkpoint(folder, layout)
            if not config:
                (folder / "config.json").unlink()
            cache[key] = folder
        return cache[key]

    return get


def metadata_bytes(layout: Layout) -> int:
    return sum(nbytes(d, s) for n, d, s in layout.tensors if n in layout.non_parameters)


def assert_adds_up(doc: dict) -> None:
    """Categories add up to the logical total and to the stored bytes; metadata holds none."""
    cats = doc["by_category"]
    assert sum(c["parameters"] for c in cats.values()) == doc["total_parameters"]
    assert sum(c["bytes"] for c in cats.values()) == doc["total_bytes"]
    assert cats["quantization"]["parameters"] == 0
    q = doc["quantization"]
    assert sum(q["elements_by_category"].values()) == doc["stored_elements"] == q["stored_elements"]
    assert q["logical_parameters"] == doc["total_parameters"]
    assert q["stored_bytes"] == doc["total_bytes"]
    assert q["bits_per_parameter"] == round(8 * doc["total_bytes"] / doc["total_parameters"], 4)
    assert q["overhead"]["bytes"] == cats["quantization"]["bytes"]
    assert doc["memory"][0]["bytes"] == 4 * doc["total_parameters"]  # priced at the logical count


# ---------------------------------------------------------------- GPTQ and AWQ


def test_gptq_llama31_8b_is_8b_not_2b(written: Callable[..., Path]) -> None:
    layout = gptq_llama31_8b()
    doc = inspect_json(str(written(gptq_llama31_8b)), "--filter", r"layers\.0\.self_attn\.q_proj")
    assert doc["total_parameters"] == LLAMA31_8B
    # What peer tools (and the Hub) add up: packed int32 words plus scales, ~2B.
    assert doc["stored_elements"] == layout.numel == 1_985_941_504
    q = doc["quantization"]
    assert (q["scheme"], q["method"], q["bits"], q["group_size"], q["format"]) == (
        "gptq",
        "gptq",
        4,
        128,
        "gptq",
    )
    assert q["detected_from"] == "config.json and tensor names"
    assert q["quantized"]["tensors"] == 224 and q["quantized"]["parameters"] == LINEARS
    assert q["quantized"]["bytes"] == LINEARS // 2
    assert q["overhead"]["bytes"] == metadata_bytes(layout)
    assert q["overhead"]["tensors"] == 3 * 224
    assert q["notes"] == []
    assert doc["by_category"]["attention"]["parameters"] == ATTENTION
    assert doc["by_category"]["feed_forward"]["parameters"] == 32 * 3 * 4096 * 14336
    assert doc["by_dtype"]["F16"]["parameters"] == LLAMA31_8B - LINEARS  # embeddings, head, norms
    assert_adds_up(doc)
    rows = {t["name"].rsplit(".", 1)[-1]: t for t in doc["tensors"]}
    assert rows["qweight"]["shape"] == [512, 4096] and rows["qweight"]["parameters"] == 4096 * 4096
    assert rows["scales"]["parameters"] == rows["qzeros"]["parameters"] == 0
    assert rows["scales"]["category"] == "quantization"


@pytest.mark.parametrize("bits", [2, 3, 8])
def test_gptq_other_bit_widths(tmp_path: Path, bits: int) -> None:
    layout = gptq_llama31_8b(bits=bits)
    write_sparse_checkpoint(tmp_path, layout)
    doc = inspect_json(str(tmp_path))
    assert doc["total_parameters"] == LLAMA31_8B
    assert doc["quantization"]["bits"] == bits


def test_bits_come_from_the_shapes_without_config(written: Callable[..., Path]) -> None:
    """No config.json: qzeros [groups, out x bits / 32] against scales [groups, out] tell."""
    for builder, scheme in ((gptq_llama31_8b, "gptq"), (awq_llama31_8b, "awq")):
        doc = inspect_json(str(written(builder, config=False)))
        q = doc["quantization"]
        assert doc["total_parameters"] == LLAMA31_8B, scheme
        assert (q["scheme"], q["bits"], q["group_size"], q["method"]) == (scheme, 4, 128, None)
        assert q["detected_from"] == "tensor names"


def test_awq_packs_across_the_output(written: Callable[..., Path]) -> None:
    layout = awq_llama31_8b()
    doc = inspect_json(str(written(awq_llama31_8b)), "--filter", r"layers\.0\.self_attn\.k_proj")
    assert doc["total_parameters"] == LLAMA31_8B
    q = doc["quantization"]
    assert (q["scheme"], q["bits"], q["group_size"], q["format"]) == ("awq", 4, 128, "gemm")
    assert q["overhead"]["bytes"] == metadata_bytes(layout)
    rows = {t["name"].rsplit(".", 1)[-1]: t for t in doc["tensors"]}
    assert rows["qweight"]["shape"] == [4096, 128]  # [in, out / 8], not GPTQ's [in / 8, out]
    assert rows["qweight"]["parameters"] == 1024 * 4096
    assert_adds_up(doc)


# ---------------------------------------------------------------- bitsandbytes


@pytest.mark.parametrize("double_quant", [True, False])
def test_bitsandbytes_nf4(tmp_path: Path, double_quant: bool) -> None:
    layout = bnb_nf4_llama31_8b(double_quant)
    write_sparse_checkpoint(tmp_path, layout)
    doc = inspect_json(str(tmp_path))
    assert doc["total_parameters"] == LLAMA31_8B
    q = doc["quantization"]
    assert (q["scheme"], q["bits"], q["group_size"]) == ("bitsandbytes-nf4", 4, 64)
    assert q["by_scheme"] == {
        "bitsandbytes-nf4": {"tensors": 224, "parameters": LINEARS, "bytes": LINEARS // 2}
    }
    assert q["overhead"]["bytes"] == metadata_bytes(layout)
    assert q["overhead"]["tensors"] == 224 * (5 if double_quant else 3)
    # 4 bits plus an absmax per 64: one byte with double quantization, else four.
    per_weight = 4 + 8 * (1 if double_quant else 4) / 64
    assert q["quantized"]["bits_per_parameter"] == pytest.approx(per_weight, abs=0.01)
    assert_adds_up(doc)


def test_bitsandbytes_int8(written: Callable[..., Path]) -> None:
    doc = inspect_json(str(written(bnb_int8_llama31_8b)))
    assert doc["total_parameters"] == LLAMA31_8B
    q = doc["quantization"]
    assert (q["scheme"], q["bits"]) == ("bitsandbytes-int8", 8)
    assert q["quantized"]["tensors"] == 224 and q["overhead"]["tensors"] == 448
    assert_adds_up(doc)


# ---------------------------------------------------------------- FP8, compressed-tensors, FP4


def test_fp8_per_tensor_scales(written: Callable[..., Path]) -> None:
    doc = inspect_json(str(written(fp8_llama31_8b)))
    assert doc["total_parameters"] == LLAMA31_8B
    assert doc["stored_elements"] == LLAMA31_8B + 2 * 224  # a weight and an input scale each
    q = doc["quantization"]
    assert (q["scheme"], q["method"], q["bits"], q["block_size"]) == ("fp8", "fp8", 8, None)
    assert q["quantized"]["parameters"] == LINEARS and q["quantized"]["bytes"] == LINEARS
    assert_adds_up(doc)


def test_deepseek_v3_block_scaled_fp8(tmp_path: Path) -> None:
    """684.5B with the MTP block (685B on the Hub: the 128x128 scales counted too).

    The main model alone (671B, ``mtp=False``) is checked in test_moe.
    """
    layout = deepseek_v3(mtp=True, fp8=True)
    write_sparse_checkpoint(tmp_path, layout, shards=8)
    doc = inspect_json(str(tmp_path))
    assert doc["total_parameters"] == layout.expected_parameters == 684_489_845_504
    assert doc["stored_elements"] == layout.numel
    assert round(doc["stored_elements"] / 1e9) == 685  # the Hub's "685B params"
    q = doc["quantization"]
    assert (q["scheme"], q["bits"], q["block_size"], q["format"]) == ("fp8", 8, [128, 128], "e4m3")
    assert q["overhead"]["bytes"] == metadata_bytes(layout)
    assert q["overhead"]["tensors"] == q["quantized"]["tensors"]  # a scale per FP8 weight
    assert_adds_up(doc)


def test_compressed_tensors_w4a16(written: Callable[..., Path]) -> None:
    layout = w4a16_llama31_8b()
    doc = inspect_json(str(written(w4a16_llama31_8b)))
    assert doc["total_parameters"] == LLAMA31_8B
    q = doc["quantization"]
    assert (q["scheme"], q["format"], q["bits"], q["group_size"]) == (
        "compressed-tensors",
        "pack-quantized",
        4,
        128,
    )
    assert q["by_scheme"]["compressed-tensors"]["parameters"] == LINEARS
    assert q["overhead"]["bytes"] == metadata_bytes(layout)
    assert_adds_up(doc)


def test_nvfp4(written: Callable[..., Path]) -> None:
    doc = inspect_json(str(written(nvfp4_llama31_8b)))
    assert doc["total_parameters"] == LLAMA31_8B
    q = doc["quantization"]
    assert (q["scheme"], q["method"], q["bits"], q["group_size"], q["format"]) == (
        "nvfp4",
        "modelopt",
        4,
        16,
        "NVFP4",
    )
    # 4 bits + an 8-bit scale per 16 (+ two fp32 scalars per tensor): just over 4.5 bits.
    assert 4.5 <= q["quantized"]["bits_per_parameter"] < 4.501
    assert_adds_up(doc)


@pytest.mark.parametrize(("size", "total"), [("20b", 20_914_757_184), ("120b", 116_829_156_672)])
def test_mxfp4_gpt_oss(tmp_path: Path, size: str, total: int) -> None:
    """OpenAI's model card: gpt-oss-20b 20.91B, gpt-oss-120b 116.83B parameters."""
    layout = gpt_oss(size)
    write_sparse_checkpoint(tmp_path, layout)
    doc = inspect_json(str(tmp_path))
    assert doc["total_parameters"] == total == layout.expected_parameters
    assert round(total / 1e7) / 100 == {"20b": 20.91, "120b": 116.83}[size]
    q = doc["quantization"]
    assert (q["scheme"], q["bits"], q["group_size"]) == ("mxfp4", 4, 32)
    assert q["quantized"]["bits_per_parameter"] == 4.25  # 32 FP4 values share one E8M0 byte
    assert_adds_up(doc)


def test_unquantized_checkpoints_have_no_quantization(written: Callable[..., Path]) -> None:
    from layouts import llama31_8b

    doc = inspect_json(str(written(llama31_8b)))
    assert doc["quantization"] is None
    assert doc["total_parameters"] == doc["stored_elements"] == LLAMA31_8B


# ---------------------------------------------------------------- rules, tensor by tensor


def t(name: str, dtype: str, *shape: int) -> TensorInfo:
    from layouts import BITS

    size = numel(shape) * BITS[dtype] // 8
    return TensorInfo(name, dtype, tuple(shape), 0, size)


def unpacked(tensors: list[TensorInfo], name: str, config: dict | None = None):
    by_name = {x.name: x for x in tensors}
    return unpack(by_name[name], classify(name), by_name, declared(config))


def test_awq_gemv_and_missing_scales() -> None:
    gemv = [
        t("m.qweight", "I32", 4096, 1024),
        t("m.qzeros", "I32", 4096, 4),
        t("m.scales", "F16", 4096, 32),
    ]
    u = unpacked(gemv, "m.qweight")
    assert (u.parameters, u.scheme, u.bits, u.group_size, u.shape) == (
        4096 * 8192,
        "awq",
        4,
        256,
        (4096, 8192),
    )
    lone = unpacked([t("m.qweight", "I32", 512, 4096)], "m.qweight")
    assert lone.parameters == 4096 * 4096 and "4-bit assumed" in lone.note
    stated = unpacked(
        [t("m.qweight", "I32", 512, 4096)],
        "m.qweight",
        {"quantization_config": {"quant_method": "gptq", "bits": 8}},
    )
    assert stated.parameters == 512 * 4096 * 4 and stated.note == ""


def test_plain_dtypes_and_packed_variants() -> None:
    f4 = unpacked([t("m.weight", "F4", 64, 64), t("m.weight_scale", "F8_E4M3", 64, 4)], "m.weight")
    assert (f4.parameters, f4.scheme, f4.bits) == (64 * 64, "fp4", 4)
    ct = unpacked(
        [
            t("m.weight_packed", "U8", 64, 32),
            t("m.weight_scale", "F8_E4M3", 64, 4),
            t("m.weight_global_scale", "F32", 1),
        ],
        "m.weight_packed",
    )
    assert (ct.parameters, ct.group_size, ct.shape) == (64 * 64, 16, (64, 64))
    # bitsandbytes 4-bit stored in bf16 (bnb_4bit_quant_storage): 4 values per element
    bf = unpacked(
        [
            t("m.weight", "BF16", 1024, 1),
            t("m.weight.absmax", "F32", 64),
            t("m.weight.quant_state.bitsandbytes__fp4", "U8", 90),
        ],
        "m.weight",
    )
    assert (bf.parameters, bf.scheme, bf.group_size) == (4096, "bitsandbytes-fp4", 64)
    i8 = unpacked([t("m.weight", "I8", 8, 8), t("m.weight_scale", "F32", 8, 1)], "m.weight")
    assert (i8.parameters, i8.scheme) == (64, "int8")
    plain = unpacked([t("m.weight", "BF16", 8, 8)], "m.weight")
    assert (plain.parameters, plain.scheme) == (64, None)
    scale = unpacked([t("m.weight_scale", "F32", 8, 1)], "m.weight_scale")
    assert scale.parameters == 0


def test_declared_schemes() -> None:
    def scheme(qc: dict) -> tuple:
        d = declared({"quantization_config": qc})
        assert d is not None
        return d.scheme, d.bits, d.group_size

    assert scheme({"quant_method": "bitsandbytes", "load_in_8bit": True}) == (
        "bitsandbytes-int8",
        8,
        None,
    )
    assert scheme({"quant_method": "bitsandbytes", "load_in_4bit": True}) == (
        "bitsandbytes-fp4",
        4,
        None,
    )  # transformers' default bnb_4bit_quant_type
    assert scheme({"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0}) == ("fp8", 8, None)
    assert scheme({"quant_method": "mxfp4"}) == ("mxfp4", 4, 32)
    assert scheme({"quant_method": "awq", "w_bit": 4, "q_group_size": 64}) == ("awq", 4, 64)
    assert scheme({"quant_method": "hqq", "bits": 4}) == ("hqq", 4, None)
    assert declared({"text_config": {"quantization_config": {"quant_method": "fp8"}}}) is not None
    assert declared({"quantization_config": "gptq"}) is None and declared(None) is None


def test_small_real_file_written_by_the_library(tmp_path: Path) -> None:
    """A tiny GPTQ-layout file through safetensors.numpy itself: same rules, real bytes."""
    tensors = {
        "model.embed_tokens.weight": ("F16", (32, 64)),
        "model.layers.0.self_attn.q_proj.qweight": ("I32", (8, 64)),
        "model.layers.0.self_attn.q_proj.qzeros": ("I32", (2, 8)),
        "model.layers.0.self_attn.q_proj.scales": ("F16", (2, 64)),
        "model.layers.0.self_attn.q_proj.g_idx": np.repeat(np.arange(2, dtype=np.int32), 32),
        "model.layers.0.input_layernorm.weight": ("F16", (64,)),
    }
    make_checkpoint(tmp_path, tensors)
    doc = inspect_json(str(tmp_path))
    assert doc["total_parameters"] == 32 * 64 + 64 * 64 + 64
    q = doc["quantization"]
    assert (q["scheme"], q["bits"], q["group_size"]) == ("gptq", 4, 32)
    assert_adds_up(doc)


def test_disagreeing_config_is_a_note(tmp_path: Path) -> None:
    layout = gptq_llama31_8b()
    write_sparse_checkpoint(tmp_path, layout)
    config = json.loads((tmp_path / "config.json").read_text())
    config["quantization_config"]["bits"] = 8
    (tmp_path / "config.json").write_text(json.dumps(config))
    doc = inspect_json(str(tmp_path))
    notes = doc["quantization"]["notes"]
    assert any("config.json says 8-bit, qzeros/scales shapes say 4-bit" in n for n in notes)


# ---------------------------------------------------------------- index, tables, footprint, check


def test_index_total_parameters_is_cross_checked(tmp_path: Path) -> None:
    write_sparse_checkpoint(tmp_path, gptq_llama31_8b(), shards=2)
    index = tmp_path / "model.safetensors.index.json"
    obj = json.loads(index.read_text())
    obj["metadata"]["total_parameters"] = LLAMA31_8B
    index.write_text(json.dumps(obj))
    doc = inspect_json(str(tmp_path))
    q = doc["quantization"]
    assert q["index_total_parameters"] == LLAMA31_8B and q["index_agrees_with"] == "logical"
    assert not any("total_parameters" in w for w in doc["warnings"])  # the logical count agrees
    r = runner.invoke(app, ["inspect", str(tmp_path)])
    assert f"{LLAMA31_8B:,} (agrees)" in r.stdout and "warning" not in r.stderr
    obj["metadata"]["total_parameters"] = LLAMA31_8B + 1
    index.write_text(json.dumps(obj))
    doc = inspect_json(str(tmp_path))
    assert any(f"total_parameters says {LLAMA31_8B + 1:,}" in w for w in doc["warnings"])


def test_tables_show_the_quantization(written: Callable[..., Path]) -> None:
    r = runner.invoke(app, ["inspect", str(written(gptq_llama31_8b))])
    assert r.exit_code == 0
    for needle in (
        "8,030,261,248 (8.03B) logical",
        "Stored elements",
        "Quantization",
        "gptq, from config.json and tensor names",
        "4-bit, group size 128",
        "Bits per parameter",
        "Quantized weights",
        "Overhead",
        "stored elements",
    ):
        assert needle in r.stdout, needle


def test_footprint_and_check_use_the_logical_count(written: Callable[..., Path]) -> None:
    folder = str(written(gptq_llama31_8b))
    r = runner.invoke(app, ["footprint", folder, "--dtype", "bf16", "--json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["parameters"] == LLAMA31_8B and "quantization_config" not in r.stderr
    r = runner.invoke(
        app,
        [
            "check",
            folder,
            "--no-config",
            "--expect-params",
            "8030261248",
            "--max-params",
            "8.1B",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.stdout
    r = runner.invoke(app, ["check", folder, "--no-config", "--max-params", "3B"])
    assert r.exit_code == 1


def test_json_categories_are_all_there(written: Callable[..., Path]) -> None:
    doc = inspect_json(str(written(bnb_nf4_llama31_8b, True)))
    assert list(doc["quantization"]["elements_by_category"]) == list(CATEGORIES)
    assert doc["adapter"] is None and doc["moe"] is None


def test_gguf_block_types(tmp_path: Path) -> None:
    """GGUF block types carry their scales: one parameter an element, the file type as format."""
    shapes = write_gguf(tmp_path / "m.gguf", "dense")
    doc = inspect_json(str(tmp_path / "m.gguf"))
    assert doc["total_parameters"] == doc["stored_elements"] == sum(map(numel, shapes.values()))
    q = doc["quantization"]
    assert (q["scheme"], q["format"], q["detected_from"]) == ("gguf", "Q4_K_M", "tensor names")
    assert q["overhead"]["bytes"] == 0 and q["quantized"]["tensors"] == 2 * 7 + 1
