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

from helpers import cli, cli_json
from layouts import Layout, deepseek_v3, make_checkpoint, nbytes, numel, write_sparse_checkpoint
from paramtool.analysis.anatomy import CATEGORIES, classify
from paramtool.analysis.quantization import declared, unpack
from paramtool.records import TensorInfo
from quant_layouts import (
    GROK1,
    LLAMA31_8B,
    LLAMA32_1B,
    awq_llama31_8b,
    bnb_int8_llama31_8b,
    bnb_nf4_llama31_8b,
    fp8_llama31_8b,
    gpt_oss,
    gptq_llama31_8b,
    mlx_grok1,
    mlx_llama32_1b,
    mlx_llama32_1b_mixed,
    mlx_mixtral_8x7b,
    nvfp4_llama31_8b,
    w4a16_llama31_8b,
    write_gguf,
)

# Llama-3.1-8B's block linears: 32 x (q, k, v, o, gate, up, down), all quantized.
LINEARS = 32 * (2 * 4096 * 4096 + 2 * 1024 * 4096 + 3 * 4096 * 14336)  # 6,979,321,856
ATTENTION = 32 * (2 * 4096 * 4096 + 2 * 1024 * 4096)


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
    doc = cli_json(
        "inspect", str(written(gptq_llama31_8b)), "--filter", r"layers\.0\.self_attn\.q_proj"
    )
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
    doc = cli_json("inspect", str(tmp_path))
    assert doc["total_parameters"] == LLAMA31_8B
    assert doc["quantization"]["bits"] == bits


def test_bits_come_from_the_shapes_without_config(written: Callable[..., Path]) -> None:
    """No config.json: qzeros [groups, out x bits / 32] against scales [groups, out] tell."""
    for builder, scheme in ((gptq_llama31_8b, "gptq"), (awq_llama31_8b, "awq")):
        doc = cli_json("inspect", str(written(builder, config=False)))
        q = doc["quantization"]
        assert doc["total_parameters"] == LLAMA31_8B, scheme
        assert (q["scheme"], q["bits"], q["group_size"], q["method"]) == (scheme, 4, 128, None)
        assert q["detected_from"] == "tensor names"


def test_awq_packs_across_the_output(written: Callable[..., Path]) -> None:
    layout = awq_llama31_8b()
    doc = cli_json(
        "inspect", str(written(awq_llama31_8b)), "--filter", r"layers\.0\.self_attn\.k_proj"
    )
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
    doc = cli_json("inspect", str(tmp_path))
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
    doc = cli_json("inspect", str(written(bnb_int8_llama31_8b)))
    assert doc["total_parameters"] == LLAMA31_8B
    q = doc["quantization"]
    assert (q["scheme"], q["bits"]) == ("bitsandbytes-int8", 8)
    assert q["quantized"]["tensors"] == 224 and q["overhead"]["tensors"] == 448
    assert_adds_up(doc)


# ---------------------------------------------------------------- FP8, compressed-tensors, FP4


def test_fp8_per_tensor_scales(written: Callable[..., Path]) -> None:
    doc = cli_json("inspect", str(written(fp8_llama31_8b)))
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
    doc = cli_json("inspect", str(tmp_path))
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
    doc = cli_json("inspect", str(written(w4a16_llama31_8b)))
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
    doc = cli_json("inspect", str(written(nvfp4_llama31_8b)))
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
    doc = cli_json("inspect", str(tmp_path))
    assert doc["total_parameters"] == total == layout.expected_parameters
    assert round(total / 1e7) / 100 == {"20b": 20.91, "120b": 116.83}[size]
    q = doc["quantization"]
    assert (q["scheme"], q["bits"], q["group_size"]) == ("mxfp4", 4, 32)
    assert q["quantized"]["bits_per_parameter"] == 4.25  # 32 FP4 values share one E8M0 byte
    assert_adds_up(doc)


def test_unquantized_checkpoints_have_no_quantization(written: Callable[..., Path]) -> None:
    from layouts import llama31_8b

    doc = cli_json("inspect", str(written(llama31_8b)))
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
    doc = cli_json("inspect", str(tmp_path))
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
    doc = cli_json("inspect", str(tmp_path))
    notes = doc["quantization"]["notes"]
    assert any("config.json says 8-bit, qzeros/scales shapes say 4-bit" in n for n in notes)


# ---------------------------------------------------------------- index, tables, footprint, check


def test_index_total_parameters_is_cross_checked(tmp_path: Path) -> None:
    write_sparse_checkpoint(tmp_path, gptq_llama31_8b(), shards=2)
    index = tmp_path / "model.safetensors.index.json"
    obj = json.loads(index.read_text())
    obj["metadata"]["total_parameters"] = LLAMA31_8B
    index.write_text(json.dumps(obj))
    doc = cli_json("inspect", str(tmp_path))
    q = doc["quantization"]
    assert q["index_total_parameters"] == LLAMA31_8B and q["index_agrees_with"] == "logical"
    assert not any("total_parameters" in w for w in doc["warnings"])  # the logical count agrees
    r = cli("inspect", str(tmp_path), catch_exceptions=True)
    assert f"{LLAMA31_8B:,} (agrees)" in r.stdout and "warning" not in r.stderr
    obj["metadata"]["total_parameters"] = LLAMA31_8B + 1
    index.write_text(json.dumps(obj))
    doc = cli_json("inspect", str(tmp_path))
    assert any(f"total_parameters says {LLAMA31_8B + 1:,}" in w for w in doc["warnings"])


def test_tables_show_the_quantization(written: Callable[..., Path]) -> None:
    r = cli("inspect", str(written(gptq_llama31_8b)))
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
    r = cli("footprint", folder, "--dtype", "bf16", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["parameters"] == LLAMA31_8B and "quantization_config" not in r.stderr
    r = cli(
        "check",
        folder,
        "--no-config",
        "--expect-params",
        "8030261248",
        "--max-params",
        "8.1B",
        "--json",
    )
    assert r.exit_code == 0, r.stdout
    r = cli("check", folder, "--no-config", "--max-params", "3B", catch_exceptions=True)
    assert r.exit_code == 1


def test_json_categories_are_all_there(written: Callable[..., Path]) -> None:
    doc = cli_json("inspect", str(written(bnb_nf4_llama31_8b, True)))
    assert list(doc["quantization"]["elements_by_category"]) == list(CATEGORIES)
    assert doc["adapter"] is None and doc["moe"] is None


def test_gguf_block_types(tmp_path: Path) -> None:
    """GGUF block types carry their scales: one parameter an element, the file type as format."""
    shapes = write_gguf(tmp_path / "m.gguf", "dense")
    doc = cli_json("inspect", str(tmp_path / "m.gguf"))
    assert doc["total_parameters"] == doc["stored_elements"] == sum(map(numel, shapes.values()))
    q = doc["quantization"]
    assert (q["scheme"], q["format"], q["detected_from"]) == ("gguf", "Q4_K_M", "tensor names")
    assert q["overhead"]["bytes"] == 0 and q["quantized"]["tensors"] == 2 * 7 + 1


# ---------------------------------------------------------------- MLX (mlx.nn.quantize, mlx-lm)

# Llama-3.2-1B: every linear and the tied embedding are quantized, only the 33 norms are not.
LLAMA32_NORMS = 16 * 2 * 2048 + 2048  # 67,584
LLAMA32_QUANTIZED = LLAMA32_1B - LLAMA32_NORMS  # 1,235,746,816
LLAMA32_ATTENTION = 16 * (2 * 2048 * 2048 + 2 * 512 * 2048)  # 167,772,160
LLAMA32_FFN = 16 * 3 * 2048 * 8192  # 805,306,368


def mlx_stored(bits: int, group: int, logical: int = LLAMA32_QUANTIZED) -> int:
    """Stored elements by mlx's shapes: uint32 words of ``bits``-bit values, and a scale and
    a bias per ``group`` values; the norms as they are."""
    return logical * bits // 32 + 2 * logical // group + LLAMA32_NORMS


def test_mlx_llama32_1b_4bit(written: Callable[..., Path]) -> None:
    """mlx-community/Llama-3.2-1B-Instruct-4bit: Meta's 1,235,814,400, not the 193M stored."""
    layout = mlx_llama32_1b()
    doc = cli_json("inspect", str(written(mlx_llama32_1b)), "--tensors")
    assert doc["total_parameters"] == LLAMA32_1B
    assert doc["stored_elements"] == layout.numel == mlx_stored(4, 64) == 193_153_024
    q = doc["quantization"]
    assert (q["scheme"], q["method"], q["bits"], q["group_size"], q["format"]) == (
        "mlx",
        None,
        4,
        64,
        "affine",
    )
    assert q["detected_from"] == "config.json and tensor names" and q["notes"] == []
    assert q["quantized"]["tensors"] == 16 * 7 + 1
    assert q["quantized"]["parameters"] == LLAMA32_QUANTIZED
    assert q["quantized"]["bytes"] == LLAMA32_QUANTIZED // 2
    # A bf16 scale and a bf16 bias per 64 weights: 4 + 32 / 64 bits a weight.
    assert q["quantized"]["bits_per_parameter"] == 4.5
    assert q["overhead"]["tensors"] == 2 * 113
    assert q["overhead"]["elements"] == 2 * LLAMA32_QUANTIZED // 64
    assert q["overhead"]["bytes"] == metadata_bytes(layout)
    cats = doc["by_category"]
    assert cats["embedding"]["parameters"] == 128256 * 2048
    assert cats["attention"]["parameters"] == LLAMA32_ATTENTION
    assert cats["feed_forward"]["parameters"] == LLAMA32_FFN
    assert cats["norm"]["parameters"] == LLAMA32_NORMS
    assert_adds_up(doc)
    rows = {t["name"]: t for t in doc["tensors"]}
    q_proj = rows["model.layers.0.self_attn.q_proj.weight"]
    assert q_proj["shape"] == [2048, 256] and q_proj["parameters"] == 2048 * 2048
    for meta in ("scales", "biases"):
        row = rows[f"model.layers.0.self_attn.q_proj.{meta}"]
        assert row["shape"] == [2048, 32] and row["parameters"] == 0
        assert row["category"] == "quantization"


@pytest.mark.parametrize("group", [32, 64, 128])
@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
def test_mlx_every_bit_width_and_group_size(tmp_path: Path, bits: int, group: int) -> None:
    """mlx's affine mode: bits 2, 3, 4, 5, 6, 8 and groups 32, 64, 128 (``mx.quantize``)."""
    write_sparse_checkpoint(tmp_path, mlx_llama32_1b(bits, group))
    doc = cli_json("inspect", str(tmp_path))
    assert doc["total_parameters"] == LLAMA32_1B
    assert doc["stored_elements"] == mlx_stored(bits, group)
    q = doc["quantization"]
    assert (q["scheme"], q["bits"], q["group_size"], q["notes"]) == ("mlx", bits, group, [])
    assert q["quantized"]["parameters"] == LLAMA32_QUANTIZED
    assert q["quantized"]["bits_per_parameter"] == round(bits + 32 / group, 4)
    assert_adds_up(doc)


@pytest.mark.parametrize(
    ("mode", "group", "bits", "bpw"),
    [("mxfp4", 32, 4, 4.25), ("nvfp4", 16, 4, 4.5), ("mxfp8", 32, 8, 8.25)],
)
def test_mlx_floating_point_modes(
    tmp_path: Path, mode: str, group: int, bits: int, bpw: float
) -> None:
    """mlx's mxfp4/nvfp4/mxfp8: one uint8 scale per group, no biases."""
    layout = mlx_llama32_1b(bits, group, mode)
    assert not any(n.endswith(".biases") for n, _, _ in layout.tensors)
    write_sparse_checkpoint(tmp_path, layout)
    doc = cli_json("inspect", str(tmp_path))
    assert doc["total_parameters"] == LLAMA32_1B
    q = doc["quantization"]
    assert (q["scheme"], q["bits"], q["group_size"], q["format"]) == ("mlx", bits, group, mode)
    assert q["quantized"]["bits_per_parameter"] == bpw
    assert_adds_up(doc)
    # Without config.json the mode shows in the shapes: words per scale = group x bits / 32.
    (tmp_path / "config.json").unlink()
    doc = cli_json("inspect", str(tmp_path))
    assert doc["total_parameters"] == LLAMA32_1B
    assert (doc["quantization"]["format"], doc["quantization"]["bits"]) == (mode, bits)


def test_mlx_older_config_and_no_config(tmp_path: Path) -> None:
    """Older mlx-lm wrote only ``quantization: {group_size, bits}``; without either key the
    shapes decide, at mlx's default group size 64 where they allow several."""
    layout = mlx_llama32_1b()
    write_sparse_checkpoint(tmp_path, layout)
    config_path = tmp_path / "config.json"
    config = json.loads(config_path.read_text())
    del config["quantization_config"]
    config["quantization"] = {"group_size": 64, "bits": 4}
    config_path.write_text(json.dumps(config))
    doc = cli_json("inspect", str(tmp_path))
    q = doc["quantization"]
    assert doc["total_parameters"] == LLAMA32_1B
    assert (q["scheme"], q["bits"], q["group_size"], q["format"]) == ("mlx", 4, 64, "affine")
    del config["quantization"]
    config_path.write_text(json.dumps(config))
    doc = cli_json("inspect", str(tmp_path))
    q = doc["quantization"]
    assert doc["total_parameters"] == LLAMA32_1B
    assert (q["scheme"], q["detected_from"], q["bits"], q["group_size"]) == (
        "mlx",
        "tensor names",
        4,
        64,
    )
    assert any("group size 64 assumed" in n for n in q["notes"])


def test_mlx_mixed_3_6_recipe(written: Callable[..., Path]) -> None:
    """``--quant-predicate mixed_3_6``: per-module bits; the top level's 4 is no module's."""
    layout = mlx_llama32_1b_mixed()
    doc = cli_json("inspect", str(written(mlx_llama32_1b_mixed)), "--tensors")
    assert doc["total_parameters"] == LLAMA32_1B
    # v_proj and down_proj at 6 bits in layers 0, 1, 4, 7, 10, 13, 14, 15 (mlx-lm's rule).
    six = 8 * (512 * 2048 + 2048 * 8192)
    packed = (LLAMA32_QUANTIZED - six) * 3 // 32 + six * 6 // 32
    stored = packed + 2 * LLAMA32_QUANTIZED // 64 + LLAMA32_NORMS
    assert doc["stored_elements"] == layout.numel == stored
    q = doc["quantization"]
    assert (q["scheme"], q["bits"], q["group_size"]) == ("mlx", None, 64)
    assert q["notes"] == ["MLX weights at mixed bit widths: 3-bit x97, 6-bit x16"]
    rows = {t["name"]: t for t in doc["tensors"]}
    assert rows["model.layers.0.self_attn.v_proj.weight"]["shape"] == [512, 2048 * 6 // 32]
    assert rows["model.layers.2.self_attn.v_proj.weight"]["shape"] == [512, 2048 * 3 // 32]
    for layer in (0, 2):
        assert rows[f"model.layers.{layer}.self_attn.v_proj.weight"]["parameters"] == 512 * 2048
    assert_adds_up(doc)


MIXTRAL_TOTAL = 46_702_792_704  # Mistral AI: 46.7B total, 12.9B active
MIXTRAL_ACTIVE = 12_879_925_248


@pytest.mark.parametrize("router_bits", [None, 8])
def test_mlx_mixtral_switch_mlp(tmp_path: Path, router_bits: int | None) -> None:
    """Stacked experts [8, out, in x bits / 32] under switch_mlp are routed experts; a router
    kept at 8 bits and an lm_head left out (``false``) come from per-module settings."""
    layout = mlx_mixtral_8x7b(router_bits)
    write_sparse_checkpoint(tmp_path, layout)
    doc = cli_json("inspect", str(tmp_path), "--filter", r"layers\.0\.|lm_head")
    assert doc["total_parameters"] == MIXTRAL_TOTAL
    assert doc["stored_elements"] == layout.numel
    m = doc["moe"]
    assert (m["routed_experts"], m["experts_per_token"], m["moe_layers"]) == (8, 2, 32)
    assert m["active_parameters"] == MIXTRAL_ACTIVE
    rows = {t["name"]: t for t in doc["tensors"]}
    up = rows["model.layers.0.block_sparse_moe.switch_mlp.up_proj.weight"]
    assert up["shape"] == [8, 14336, 512] and up["parameters"] == 8 * 14336 * 4096
    gate = rows["model.layers.0.block_sparse_moe.gate.weight"]
    assert gate["parameters"] == 8 * 4096
    assert gate["shape"] == [8, 4096 * (router_bits or 4) // 32]
    head = rows["lm_head.weight"]
    assert head["dtype"] == ("BF16" if router_bits else "U32")
    assert head["parameters"] == 32000 * 4096
    q = doc["quantization"]
    assert q["bits"] == (None if router_bits else 4) and q["group_size"] == 64
    assert_adds_up(doc)


def test_mlx_grok1_is_316b_not_89b(tmp_path: Path) -> None:
    """The 314B MoE the Hub shows as 89B: Grok-1 in 8-bit MLX stores 89.0B elements."""
    layout = mlx_grok1()
    write_sparse_checkpoint(tmp_path, layout)
    doc = cli_json("inspect", str(tmp_path))
    assert doc["total_parameters"] == GROK1 == 316_490_127_360
    assert doc["stored_elements"] == layout.numel == 89_013_983_232
    assert round(doc["stored_elements"] / 1e9) == 89
    q = doc["quantization"]
    assert (q["scheme"], q["bits"], q["group_size"]) == ("mlx", 8, 64)
    assert q["quantized"]["bits_per_parameter"] == 8.5
    assert doc["moe"]["routed_experts"] == 8
    assert_adds_up(doc)


def test_mlx_declared() -> None:
    d = declared({"quantization": {"group_size": 64, "bits": 4}})
    assert d is not None and (d.scheme, d.method, d.bits, d.group_size, d.format) == (
        "mlx",
        None,
        4,
        64,
        "affine",
    )
    q = {
        "group_size": 32,
        "bits": 4,
        "mode": "mxfp4",
        "model.layers.0.mlp.gate": {"group_size": 64, "bits": 8},
        "lm_head": False,
    }
    d = declared({"quantization": q, "quantization_config": q})
    assert d is not None and (d.scheme, d.bits, d.group_size, d.format) == ("mlx", 4, 32, "mxfp4")
    gate = d.layers["model.layers.0.mlp.gate"]
    assert gate is not None and (gate.group_size, gate.bits, gate.mode) == (64, 8, None)
    assert d.layers["lm_head"] is None
    only = {k: v for k, v in q.items() if k != "lm_head"}
    d = declared({"quantization_config": only})
    assert d is not None and d.scheme == "mlx" and list(d.layers) == ["model.layers.0.mlp.gate"]
    # Another tool's quantization_config with bits and group size is not MLX's.
    d = declared({"quantization_config": {"bits": 4, "group_size": 128, "desc_act": False}})
    assert d is not None and d.scheme == "unknown"
    d = declared({"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128}})
    assert d is not None and d.scheme == "gptq"


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 8])
def test_mlx_unpack_rules(bits: int) -> None:
    """Each row packs in x bits / 32 words (3-, 5- and 6-bit runs straddle the words)."""
    words = 128 * bits // 32
    tensors = [
        t("m.weight", "U32", 16, words),
        t("m.scales", "F16", 16, 2),
        t("m.biases", "F16", 16, 2),
    ]
    u = unpacked(tensors, "m.weight")  # no config: group size 64, bits from the shapes
    assert (u.parameters, u.scheme, u.bits, u.group_size, u.shape, u.mode) == (
        16 * 128,
        "mlx",
        bits,
        64,
        (16, 128),
        "affine",
    )
    stacked = [
        t("e.weight", "U32", 4, 16, words),
        t("e.scales", "BF16", 4, 16, 2),
        t("e.biases", "BF16", 4, 16, 2),
    ]
    cfg = {"quantization": {"bits": bits, "group_size": 64}}
    u = unpacked(stacked, "e.weight", cfg)
    assert (u.parameters, u.shape, u.note) == (4 * 16 * 128, (4, 16, 128), "")
    # Bits alone fix the group size; a config that disagrees with the shapes is a note.
    u = unpacked(tensors, "m.weight", {"quantization": {"bits": bits}})
    assert (u.parameters, u.group_size) == (16 * 128, 64)
    other = 3 if bits != 3 else 4
    u = unpacked(tensors, "m.weight", {"quantization": {"bits": other, "group_size": 64}})
    assert u.bits == bits and f"config.json says {other}-bit" in u.note
    # A uint32 weight whose scales do not line up is not MLX's.
    odd = [t("m.weight", "U32", 16, words), t("m.scales", "F16", 8, 2)]
    assert unpacked(odd, "m.weight").scheme is None


def _mlx_pack(values: np.ndarray, bits: int) -> np.ndarray:
    """Pack unsigned ``bits``-bit values [rows, in] as mlx's CPU kernel does: low bits first;
    3- and 6-bit values in 3-byte runs of 8 and 4, 5-bit in 5-byte runs of 8, the bytes read
    back as uint32 words (``mlx/backend/cpu/quantized.cpp``)."""
    per_run = {3: 8, 5: 8, 6: 4}.get(bits, 32 // bits)
    run_bytes = per_run * bits // 8
    rows, inp = values.shape
    runs = values.reshape(rows, inp // per_run, per_run).astype(np.uint64)
    packed = np.zeros(runs.shape[:2], np.uint64)
    for k in range(per_run):
        packed |= runs[..., k] << np.uint64(k * bits)
    out = np.zeros((rows, inp // per_run, run_bytes), np.uint8)
    for b in range(run_bytes):
        out[..., b] = (packed >> np.uint64(8 * b)) & np.uint64(0xFF)
    return out.reshape(rows, -1).view(np.uint32)


@pytest.mark.parametrize("bits", [3, 5, 6])
def test_mlx_real_file_with_straddling_values(tmp_path: Path, bits: int) -> None:
    """A real file with mlx's packing of 3/5/6-bit values: the shapes are all paramtool reads."""
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**bits, size=(4, 128))
    wq = _mlx_pack(values, bits)
    assert wq.shape == (4, 128 * bits // 32)
    make_checkpoint(
        tmp_path,
        {
            "model.layers.0.mlp.down_proj.weight": wq,
            "model.layers.0.mlp.down_proj.scales": ("BF16", (4, 2)),
            "model.layers.0.mlp.down_proj.biases": ("BF16", (4, 2)),
            "model.norm.weight": ("BF16", (4,)),
        },
    )
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "llama", "quantization": {"group_size": 64, "bits": bits}})
    )
    doc = cli_json("inspect", str(tmp_path))
    assert doc["total_parameters"] == 4 * 128 + 4
    q = doc["quantization"]
    assert (q["scheme"], q["bits"], q["group_size"]) == ("mlx", bits, 64)
    assert_adds_up(doc)
