"""The layout helpers: published parameter counts, exact headers, sparse files, fixtures."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save

from layouts import (
    PRESETS,
    Layout,
    bert_base,
    deepseek_v3,
    gpt2,
    llama,
    llama31_8b,
    llama31_405b,
    lora_llama31_8b,
    make_checkpoint,
    nbytes,
    random_array,
    safetensors_header,
    split_shards,
    write_sparse_checkpoint,
    write_sparse_file,
)

PUBLISHED = {
    "llama31_8b": 8_030_261_248,
    "llama31_70b": 70_553_706_496,
    "llama31_405b": 405_853_388_800,
    "mixtral_8x7b": 46_702_792_704,
    "qwen2_7b": 7_615_616_512,
    "gemma2_2b": 2_614_341_888,
    "phi3_mini": 3_821_079_552,
    "gpt2": 124_439_808,
    "pythia_160m": 162_322_944,
    "falcon_7b": 7_217_189_760,
    "bert_base": 110_106_428,  # computed: the card only says "110M"
    "t5_small": 60_506_624,
    "deepseek_v3": 684_489_845_504,  # computed: 671B main model + MTP module (see below)
    "lora_llama31_8b": 6_815_744,
}
TENSOR_COUNTS = {
    "llama31_8b": 291,
    "llama31_70b": 723,
    "llama31_405b": 1137,
    "mixtral_8x7b": 995,
    "qwen2_7b": 339,
    "gemma2_2b": 288,
    "phi3_mini": 195,
    "gpt2": 160,
    "pythia_160m": 148,
    "falcon_7b": 196,
    "bert_base": 206,
    "t5_small": 131,
    "deepseek_v3": 91_991,
    "lora_llama31_8b": 128,
}
SHARDS = {
    "llama31_8b": 4,
    "llama31_70b": 30,
    "llama31_405b": 191,
    "mixtral_8x7b": 19,
    "deepseek_v3": 163,
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_parameter_counts(preset: str) -> None:
    layout = PRESETS[preset]()
    assert layout.expected_parameters == PUBLISHED[preset]
    assert layout.parameters == PUBLISHED[preset]
    assert len(layout) == TENSOR_COUNTS[preset]
    assert layout.shards == SHARDS.get(preset, layout.shards)
    names = [n for n, _, _ in layout]
    assert len(set(names)) == len(names)


def test_variant_counts() -> None:
    assert deepseek_v3(mtp=False).parameters == 671_026_419_200  # the report's "671B"
    assert deepseek_v3(mtp=False, fp8=False).parameters == 671_026_419_200
    assert round(deepseek_v3().numel / 1e9) == 685  # the Hub's "685B": MTP and scales too
    assert bert_base(heads=False).parameters == 109_482_240  # BertModel
    assert gpt2(buffers=False).numel == 124_439_808
    assert gpt2().numel == 137_022_720  # the Hub's "137M": 12 causal-mask buffers
    assert gpt2().nbytes == 548_090_880  # "548 MB"
    assert llama31_8b().nbytes == 16_060_522_496  # total_size in the Hub's index
    assert lora_llama31_8b(rank=8).parameters == 6_815_744 // 2
    assert lora_llama31_8b(rank=8).expected_parameters is None


def test_configs_regenerate_their_layouts() -> None:
    for preset in ("llama31_8b", "mixtral_8x7b", "qwen2_7b", "gemma2_2b", "phi3_mini"):
        layout = PRESETS[preset]()
        assert llama(layout.config).tensors == layout.tensors
    gemma = PRESETS["gemma2_2b"]()
    assert "tie_word_embeddings" not in gemma.config
    assert not any(n == "lm_head.weight" for n, _, _ in gemma)
    assert {d for _, d, _ in gemma} == {"F32"}
    assert {d for _, d, _ in deepseek_v3()} == {"BF16", "F8_E4M3", "F32"}


def test_hf_shapes() -> None:
    shapes = {n: s for n, _, s in gpt2()}
    assert shapes["h.0.attn.c_attn.weight"] == (768, 2304)  # Conv1D stores [in, out]
    assert shapes["h.0.attn.bias"] == (1, 1, 1024, 1024)
    ds = {n: (d, s) for n, d, s in deepseek_v3()}
    assert ds["model.layers.3.self_attn.kv_a_proj_with_mqa.weight"] == ("F8_E4M3", (576, 7168))
    assert ds["model.layers.3.self_attn.q_b_proj.weight_scale_inv"] == ("F32", (192, 12))
    assert ds["model.layers.3.mlp.experts.0.down_proj.weight_scale_inv"] == ("F32", (56, 16))
    assert ds["model.layers.61.eh_proj.weight"] == ("BF16", (7168, 14336))
    lora = {n: s for n, _, s in lora_llama31_8b()}
    assert lora["base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"] == (1024, 16)


# --- Headers ----------------------------------------------------------------------------


@pytest.mark.parametrize("metadata", [None, {"format": "pt"}, {"b": "2", "a": 'ü\n"'}])
def test_header_is_what_the_library_writes(metadata: dict[str, str] | None) -> None:
    rng = np.random.default_rng(0)
    tensors = {}
    for i, dtype in enumerate(
        [
            "F64",
            "F32",
            "F16",
            "BF16",
            "F8_E4M3",
            "F8_E5M2",
            "F8_E8M0",
            "I64",
            "U64",
            "I32",
            "U32",
            "I16",
            "U16",
            "I8",
            "U8",
            "BOOL",
            "C64",
            "F8_E4M3FNUZ",
            "F8_E5M2FNUZ",
        ]
    ):
        for j, shape in enumerate([(3,), (2, 5), ()]):
            tensors[f"t{(7 * i + j) % 13}.{dtype}.{j}.é\t"] = (dtype, shape)
    arrays = {n: random_array(d, s, rng) for n, (d, s) in tensors.items()}
    if metadata is not None and len(metadata) > 1:
        metadata = {"a": metadata["a"]}  # the crate's metadata map order is unspecified
    written = save(arrays, metadata=metadata)
    head, size = safetensors_header([(n, d, s) for n, (d, s) in tensors.items()], metadata)
    assert written[: len(head)] == head
    assert len(written) == len(head) + size


def test_header_layout() -> None:
    head, size = safetensors_header([("b", "BF16", (3,)), ("a", "F32", (1,)), ("c", "F4", (2, 2))])
    (n,) = struct.unpack("<Q", head[:8])
    assert n == len(head) - 8 and n % 8 == 0
    parsed = json.loads(head[8:])
    assert list(parsed) == ["__metadata__", "a", "b", "c"]
    assert [parsed[k]["data_offsets"] for k in "abc"] == [[0, 4], [4, 10], [10, 12]]
    assert size == 12
    with pytest.raises(ValueError, match="whole bytes"):
        nbytes("F4", (3,))
    with pytest.raises(ValueError, match="duplicate"):
        safetensors_header([("a", "F32", (1,)), ("a", "F16", (1,))])


# --- Sparse files -----------------------------------------------------------------------


def test_sparse_llama31_8b_four_shards(tmp_path) -> None:
    layout = llama31_8b()
    paths = write_sparse_checkpoint(tmp_path, layout)
    assert [p.name for p in paths] == [f"model-0000{k}-of-00004.safetensors" for k in range(1, 5)]
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["metadata"] == {"total_size": 16_060_522_496}
    assert list(index["weight_map"]) == sorted(n for n, _, _ in layout)
    assert json.loads((tmp_path / "config.json").read_text()) == layout.config
    on_disk = logical = 0
    in_order = []
    for path in paths:
        st = path.stat()
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        data = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
        assert st.st_size == 8 + n + data
        assert header["__metadata__"] == {"format": "pt"}
        in_order += [k for k, v in index["weight_map"].items() if v == path.name]
        on_disk += st.st_blocks * 512
        logical += st.st_size
    assert logical > 16_000_000_000
    assert on_disk < 1 << 20  # the data is a hole
    assert sorted(in_order) == sorted(n for n, _, _ in layout)


def test_sparse_405b_is_tiny_on_disk(tmp_path) -> None:
    paths = write_sparse_checkpoint(tmp_path, llama31_405b())
    assert len(paths) == 191
    assert paths[-1].name == "model-00191-of-00191.safetensors"
    assert sum(p.stat().st_size for p in paths) > 811_706_777_600
    assert sum(p.stat().st_blocks for p in paths) * 512 < 8 << 20


def test_sparse_single_file_and_adapter_names(tmp_path) -> None:
    (path,) = write_sparse_checkpoint(tmp_path / "gpt2", gpt2())
    assert path.name == "model.safetensors"
    assert not (tmp_path / "gpt2" / "model.safetensors.index.json").exists()
    (path,) = write_sparse_checkpoint(tmp_path / "lora", lora_llama31_8b())
    assert path.name == "adapter_model.safetensors"
    config = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    assert config["r"] == 16 and config["target_modules"] == ["q_proj", "v_proj"]


def test_safe_open_reads_sparse_files(tmp_path) -> None:
    (path,) = write_sparse_checkpoint(tmp_path, gpt2())
    expected = {n: (d, list(s)) for n, d, s in gpt2()}
    with safe_open(path, "numpy") as f:
        assert f.metadata() == {"format": "pt"}
        assert set(f.keys()) == set(expected)
        for name in f.keys():
            sl = f.get_slice(name)
            assert (sl.get_dtype(), sl.get_shape()) == expected[name]
        assert not f.get_tensor("h.11.mlp.c_proj.bias").any()


def test_safe_open_reads_every_tensor_of_a_small_sharded_layout(tmp_path) -> None:
    config = dict(
        llama31_8b().config,
        hidden_size=64,
        intermediate_size=96,
        num_attention_heads=4,
        num_hidden_layers=3,
        vocab_size=50,
    )
    layout = llama(config)
    paths = write_sparse_checkpoint(tmp_path, layout, shards=3, dtype_override="F32", metadata=None)
    seen = {}
    for path in paths:
        with safe_open(path, "numpy") as f:
            assert f.metadata() is None
            for name in f.keys():
                array = f.get_tensor(name)
                assert array.dtype == np.float32 and not array.any()
                seen[name] = array.shape
    assert seen == {n: s for n, _, s in layout}


def test_dtype_override_keeps_integers(tmp_path) -> None:
    tensors = [
        ("w.qweight", "I32", (4, 8)),
        ("w.scales", "F16", (2, 8)),
        ("w.weight", "BF16", (8, 8)),
    ]
    (path,) = write_sparse_checkpoint(tmp_path, tensors, dtype_override="F8_E4M3")
    with safe_open(path, "numpy") as f:
        dtypes = {n: f.get_slice(n).get_dtype() for n in f.keys()}
    assert dtypes == {"w.qweight": "I32", "w.scales": "F8_E4M3", "w.weight": "F8_E4M3"}
    with pytest.raises(ValueError, match="unknown"):
        write_sparse_checkpoint(tmp_path, tensors, dtype_override="FP8")


def test_write_sparse_file_sub_byte(tmp_path) -> None:
    path = write_sparse_file(
        tmp_path / "f4.safetensors", [("a", "F4", (4, 6)), ("b", "F6_E2M3", (4,))]
    )
    with safe_open(path, "numpy") as f:
        assert f.get_slice("a").get_dtype() == "F4"
        assert f.get_slice("b").get_shape() == [4]


# --- Sharding ---------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["llama31_70b", "llama31_405b", "deepseek_v3"])
def test_split_shards_is_ordered_non_empty_and_balanced(preset: str) -> None:
    layout = PRESETS[preset]()
    groups = split_shards(layout.tensors, layout.shards)
    assert len(groups) == layout.shards
    assert [t for g in groups for t in g] == layout.tensors
    sizes = [sum(nbytes(d, s) for _, d, s in g) for g in groups]
    biggest = max(nbytes(d, s) for _, d, s in layout)
    assert max(sizes) - min(sizes) <= 2 * biggest


def test_split_shards_edges() -> None:
    tensors = [("a", "F32", (1000,)), ("b", "F32", (1,)), ("c", "F32", (1,))]
    assert split_shards(tensors, 3) == [[t] for t in tensors]  # a huge first tensor
    assert split_shards(tensors, 1) == [tensors]
    with pytest.raises(ValueError):
        split_shards(tensors, 4)
    with pytest.raises(ValueError):
        split_shards(tensors, 0)


# --- Small real fixtures ----------------------------------------------------------------


def test_make_checkpoint_writes_real_data(tmp_path) -> None:
    given = np.arange(6, dtype=np.int16).reshape(2, 3)
    path = make_checkpoint(
        tmp_path,
        {
            "embed.weight": ("BF16", (4, 8)),
            "layer.weight": ("F8_E4M3", (8, 8)),
            "layer.weight_scale_inv": ("F32", (1, 1)),
            "e8m0": ("F8_E8M0", (4,)),
            "e5m2": ("F8_E5M2", (2,)),
            "idx": ("I32", (5,)),
            "mask": ("BOOL", (3,)),
            "given": given,
            "scalar": ("F64", ()),
        },
        metadata={"format": "pt"},
    )
    assert path == tmp_path / "model.safetensors"
    with safe_open(path, "numpy") as f:
        assert f.metadata() == {"format": "pt"}
        dtypes = {n: f.get_slice(n).get_dtype() for n in f.keys()}
        assert (f.get_tensor("given") == given).all()
        assert f.get_tensor("layer.weight_scale_inv").shape == (1, 1)
        assert f.get_tensor("scalar").shape == ()
    assert dtypes == {
        "embed.weight": "BF16",
        "layer.weight": "F8_E4M3",
        "layer.weight_scale_inv": "F32",
        "e8m0": "F8_E8M0",
        "e5m2": "F8_E5M2",
        "idx": "I32",
        "mask": "BOOL",
        "given": "I16",
        "scalar": "F64",
    }
    raw = path.read_bytes()
    assert raw.count(b"\x00" * 64) == 0  # real random data, not a hole


def test_make_checkpoint_is_deterministic_and_refuses_unwritable(tmp_path) -> None:
    a = make_checkpoint(tmp_path / "a.safetensors", {"w": ("BF16", (16,))})
    b = make_checkpoint(tmp_path / "b.safetensors", {"w": ("BF16", (16,))})
    assert a.read_bytes() == b.read_bytes()
    with pytest.raises(ValueError, match="F4"):
        make_checkpoint(tmp_path / "c.safetensors", {"w": ("F4", (16,))})


def test_layout_is_frozen() -> None:
    layout = gpt2()
    assert isinstance(layout, Layout)
    with pytest.raises(AttributeError):
        layout.shards = 2  # type: ignore[misc]
