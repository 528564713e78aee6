"""GGUF checkpoints: fixtures written with the gguf package's own writer, and a malformed corpus.

Valid files come from ``gguf.GGUFWriter`` (quantized tensors as raw bytes of
the right block size); hostile ones from :func:`pack`, a few lines of
hand-packing, because the writer refuses to write them.
"""

from __future__ import annotations

import json
import struct
import tempfile
import time
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import cli, error_line
from paramtool import dtypes, errors
from paramtool.analysis.breakdown import bits_per_weight, build
from paramtool.formats.gguf import GGML_TYPES, read_gguf
from paramtool.formats.gguf_config import synthesize_config
from paramtool.formats.gguf_metadata import FILE_TYPES
from paramtool.sources import open_source
from paramtool.sources.local import open_local

Q = gguf.GGMLQuantizationType
HIDDEN, VOCAB, FFN, LAYERS, HEADS, KV_HEADS, CTX = 256, 1000, 512, 2, 4, 2, 4096


def expected_nbytes(qtype: Q, shape: tuple[int, ...]) -> int:
    """Bytes of a tensor from gguf.GGML_QUANT_SIZES alone (shape ne0 first)."""
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return int(np.prod(shape)) // block * size


def add(w: gguf.GGUFWriter, name: str, qtype: Q, shape: tuple[int, ...]) -> None:
    """A zero tensor of ``qtype`` and GGUF ``shape`` (ne0 first), as raw bytes for quant types."""
    numpy_shape = tuple(reversed(shape))
    plain = {Q.F32: np.float32, Q.F16: np.float16}
    if qtype in plain:
        w.add_tensor(name, np.zeros(numpy_shape, plain[qtype]))
        return
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    byte_shape = (*numpy_shape[:-1], numpy_shape[-1] // block * size)
    w.add_tensor(name, np.zeros(byte_shape, np.uint8), raw_dtype=qtype)


# name -> (type, GGUF shape): a tiny Llama with F32, F16, BF16, Q8_0, Q4_K and Q6_K tensors.
def llama_tensors(layers: int = LAYERS, tied: bool = False) -> dict[str, tuple[Q, tuple[int, ...]]]:
    t: dict[str, tuple[Q, tuple[int, ...]]] = {"token_embd.weight": (Q.F16, (HIDDEN, VOCAB))}
    kv_dim = HIDDEN // HEADS * KV_HEADS
    for i in range(layers):
        t |= {
            f"blk.{i}.attn_norm.weight": (Q.F32, (HIDDEN,)),
            f"blk.{i}.attn_q.weight": (Q.Q4_K, (HIDDEN, HIDDEN)),
            f"blk.{i}.attn_k.weight": (Q.Q8_0, (HIDDEN, kv_dim)),
            f"blk.{i}.attn_v.weight": (Q.Q8_0, (HIDDEN, kv_dim)),
            f"blk.{i}.attn_output.weight": (Q.Q4_K, (HIDDEN, HIDDEN)),
            f"blk.{i}.ffn_norm.weight": (Q.BF16, (HIDDEN,)),
            f"blk.{i}.ffn_gate.weight": (Q.Q4_K, (HIDDEN, FFN)),
            f"blk.{i}.ffn_up.weight": (Q.Q4_K, (HIDDEN, FFN)),
            f"blk.{i}.ffn_down.weight": (Q.Q6_K, (FFN, HIDDEN)),
        }
    t["output_norm.weight"] = (Q.F32, (HIDDEN,))
    if not tied:
        t["output.weight"] = (Q.Q6_K, (HIDDEN, VOCAB))
    return t


def write_llama(path: Path, *, split_max_tensors: int = 0, tied: bool = False, tokens: int = VOCAB,
                extra=None) -> dict[str, tuple[Q, tuple[int, ...]]]:  # fmt: skip
    tensors = llama_tensors(tied=tied)
    w = gguf.GGUFWriter(path, "llama", split_max_tensors=split_max_tensors)
    w.add_name("tiny-llama")
    w.add_type("model")
    w.add_block_count(LAYERS)
    w.add_context_length(CTX)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(500000.0)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    w.add_quantization_version(2)
    w.add_tokenizer_model("gpt2")
    if tokens:
        w.add_token_list([f"tok{i}" for i in range(tokens)])
        w.add_token_types([1] * tokens)
    w.add_chat_template("{{ messages }}")
    if extra:
        extra(w)
    for name, (qtype, shape) in tensors.items():
        add(w, name, qtype, shape)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tensors


def write_mmproj(path: Path) -> None:
    w = gguf.GGUFWriter(path, "clip")
    w.add_type("mmproj")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_string("clip.projector_type", "mlp")
    w.add_uint32("clip.vision.block_count", 1)
    w.add_uint32("clip.vision.embedding_length", 64)
    w.add_uint32("clip.vision.feed_forward_length", 128)
    w.add_uint32("clip.vision.attention.head_count", 2)
    w.add_uint32("clip.vision.image_size", 224)
    w.add_uint32("clip.vision.patch_size", 14)
    add(w, "v.patch_embd.weight", Q.F16, (14, 14, 3, 64))
    add(w, "v.blk.0.attn_q.weight", Q.F16, (64, 64))
    add(w, "v.blk.0.ln1.weight", Q.F32, (64,))
    add(w, "mm.0.weight", Q.Q8_0, (64, HIDDEN))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("llama") / "tiny-llama-Q4_K_M.gguf"
    return path, write_llama(path)


# --------------------------------------------------------------------------- tables vs gguf-py


def test_ggml_type_ids_are_gguf_py_ids():
    assert dict(GGML_TYPES) == {t.value: t.name for t in Q}
    for name in GGML_TYPES.values():
        block, size = gguf.GGML_QUANT_SIZES[Q[name]]
        d = dtypes.GGUF[name]
        assert (d.block_size, d.bytes_per_block) == (block, size)


def test_file_type_names_are_llama_ftype_names():
    ours = dict(FILE_TYPES)
    del ours[4]  # MOSTLY_Q4_1_SOME_F16: still in llama.h, dropped from gguf-py
    assert ours == {
        t.value: t.name.removeprefix("MOSTLY_").removeprefix("ALL_") for t in gguf.LlamaFileType
    }


# --------------------------------------------------------------------------- reading


def test_tensors_agree_with_gguf_reader(llama):
    path, tensors = llama
    ours = read_gguf(path)
    ref = gguf.GGUFReader(path)
    assert [t.name for t in ours.tensors] == [t.name for t in ref.tensors] == list(tensors)
    for t, r in zip(ours.tensors, ref.tensors, strict=True):
        assert t.dtype == r.tensor_type.name
        assert t.shape == tuple(int(d) for d in r.shape)
        assert t.start == r.data_offset - ref.data_offset
        assert t.nbytes == r.n_bytes == expected_nbytes(r.tensor_type, t.shape)
        assert t.parameters == r.n_elements
    assert ours.data_start == ref.data_offset
    assert ours.header.file_size == path.stat().st_size
    # header_size: after magic and version, padding included
    assert ours.header.header_size == ref.data_offset - 8


def test_shapes_are_ggml_order_and_bytes_exact(llama):
    path, tensors = llama
    f = read_gguf(path)
    by_name = {t.name: t for t in f.tensors}
    assert by_name["token_embd.weight"].shape == (HIDDEN, VOCAB)
    q = by_name["blk.0.attn_q.weight"]
    assert (q.dtype, q.nbytes) == ("Q4_K", HIDDEN * HIDDEN // 256 * 144)
    assert by_name["blk.0.attn_k.weight"].nbytes == HIDDEN * 128 // 32 * 34
    assert by_name["blk.0.ffn_norm.weight"].dtype == "BF16"
    assert by_name["output.weight"].nbytes == HIDDEN * VOCAB // 256 * 210


def test_metadata_strings(llama):
    meta = read_gguf(llama[0]).header.metadata
    assert meta["general.architecture"] == "llama"
    assert meta["llama.block_count"] == str(LAYERS)
    assert meta["llama.attention.layer_norm_rms_epsilon"] == "1e-05"  # float32, shortest form
    assert meta["llama.rope.freq_base"] == "500000.0"
    assert meta["tokenizer.ggml.tokens"] == f"<array of {VOCAB:,} strings>"
    assert meta["tokenizer.ggml.token_type"] == f"<array of {VOCAB:,} int32>"
    assert meta["tokenizer.chat_template"] == "{{ messages }}"


def test_checkpoint_and_synthesized_config(llama):
    path, tensors = llama
    ck = open_source([str(path)])
    assert ck.format == "gguf"
    assert dict(ck.gguf) == {
        "version": 3, "architecture": "llama", "name": "tiny-llama", "context_length": CTX,
        "file_type": "Q4_K_M", "kind": "model", "alignment": 32, "split_count": 1,
    }  # fmt: skip
    assert dict(ck.config) == {
        "architectures": ["llama"], "model_type": "llama", "num_hidden_layers": LAYERS,
        "hidden_size": HIDDEN, "intermediate_size": FFN, "max_position_embeddings": CTX,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB,
        "tie_word_embeddings": False,
    }  # fmt: skip
    assert ck.total_parameters == sum(int(np.prod(s)) for _, s in tensors.values())
    assert ck.warnings == ()


def test_inspect_json(llama):
    path, tensors = llama
    r = cli("inspect", str(path), "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    params = {n: int(np.prod(s)) for n, (_, s) in tensors.items()}
    nbytes = {n: expected_nbytes(q, s) for n, (q, s) in tensors.items()}
    assert doc["total_parameters"] == sum(params.values())
    assert doc["total_bytes"] == sum(nbytes.values())
    assert doc["file_bytes"] == path.stat().st_size
    assert doc["tensor_count"] == len(tensors)
    for qname in ("F32", "F16", "BF16", "Q8_0", "Q4_K", "Q6_K"):
        names = [n for n, (q, _) in tensors.items() if q.name == qname]
        assert doc["by_dtype"][qname]["bytes"] == sum(nbytes[n] for n in names)
        assert doc["by_dtype"][qname]["parameters"] == sum(params[n] for n in names)
    cats = doc["by_category"]
    assert cats["embedding"]["parameters"] == 2 * HIDDEN * VOCAB
    assert cats["attention"]["tensors"] == 4 * LAYERS
    assert cats["feed_forward"]["tensors"] == 3 * LAYERS
    assert cats["norm"]["tensors"] == 2 * LAYERS + 1
    assert cats["other"]["tensors"] == 0
    assert doc["layers"]["count"] == LAYERS
    assert doc["config"] == {
        "architecture": "llama", "model_type": "llama", "layers": LAYERS, "hidden_size": HIDDEN,
        "heads": HEADS, "kv_heads": KV_HEADS, "vocab_size": VOCAB,
    }  # fmt: skip
    assert doc["tied_embeddings"] is False
    assert doc["metadata"]["general.file_type"] == "15"


def test_inspect_tables(llama):
    r = cli("inspect", str(llama[0]), "--tensors")
    assert r.exit_code == 0, r.stderr
    assert "Q4_K" in r.stdout and "blk.1.ffn_down.weight" in r.stdout


def test_bits_per_weight(llama):
    b = build(open_source([str(llama[0])]))
    bpw = bits_per_weight(b)
    assert bpw.overall == round(b.total.bytes * 8 / b.total.parameters, 4)
    assert (
        bpw.by_dtype["Q4_K"] == 4.5
        and bpw.by_dtype["Q8_0"] == 8.5
        and bpw.by_dtype["Q6_K"] == 6.5625
    )
    ffn = b.by_category["feed_forward"]
    assert bpw.by_category["feed_forward"] == round(ffn.bytes * 8 / ffn.parameters, 4)
    # norms: F32 attn_norm and output_norm, BF16 ffn_norm
    norm_bits = (32 * (LAYERS + 1) + 16 * LAYERS) / (2 * LAYERS + 1)
    assert bpw.by_category["norm"] == round(norm_bits, 4)
    assert bpw.by_category["other"] is None


def test_tied_output_and_vocab_from_token_embd(tmp_path):
    path = tmp_path / "tied.gguf"
    write_llama(path, tied=True, tokens=0)
    ck = open_source([str(path)])
    assert ck.config["tie_word_embeddings"] is True
    assert ck.config["vocab_size"] == VOCAB  # from token_embd's ne1
    assert build(ck).tied_embeddings is True


def test_large_vocabulary_is_read_fast(tmp_path):
    path = tmp_path / "vocab.gguf"
    write_llama(path, tokens=262_144)
    t0 = time.perf_counter()
    f = read_gguf(path)
    assert time.perf_counter() - t0 < 2.0
    assert f.header.metadata["tokenizer.ggml.tokens"] == "<array of 262,144 strings>"


def test_tensor_data_is_never_read(tmp_path):
    """A 64 GiB sparse tensor: reading the header must not touch it."""
    shape = (2**16, 2**18)  # F32: 2^36 bytes
    path = tmp_path / "huge.gguf"
    path.write_bytes(pack(tensors=[("w", shape, 0, 0)]))
    data_start = len(path.read_bytes())
    with open(path, "r+b") as f:
        f.truncate(data_start + 4 * 2**34)
    t0 = time.perf_counter()
    ck = open_source([str(path)])
    assert time.perf_counter() - t0 < 1.0
    assert ck.total_parameters == 2**34 and ck.tensors[0].nbytes == 2**36


# --------------------------------------------------------------------------- mmproj, split, folders


def test_mmproj_is_recognised(tmp_path):
    path = tmp_path / "mmproj-tiny-f16.gguf"
    write_mmproj(path)
    ck = open_source([str(path)])
    assert ck.gguf["kind"] == "mmproj" and ck.gguf["architecture"] == "clip"
    assert ck.config["model_type"] == "clip" and ck.config["projector_type"] == "mlp"
    assert ck.config["vision_config"]["hidden_size"] == 64
    assert "num_hidden_layers" not in ck.config  # no KV cache dims for a projector
    r = cli("inspect", str(path), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["tensor_count"] == 4


def test_split_gguf_from_any_part(tmp_path):
    tensors = write_llama(tmp_path / "tiny.gguf", split_max_tensors=8)
    parts = sorted(tmp_path.glob("tiny-*-of-*.gguf"))
    assert len(parts) == 3 and parts[0].name == "tiny-00001-of-00003.gguf"
    for part in parts:
        ck = open_source([str(part)])
        assert [t.name for t in ck.tensors] == list(tensors)
        assert len(ck.files) == 3 and ck.gguf["split_count"] == 3
        assert ck.config["num_hidden_layers"] == LAYERS  # metadata from the first part
        assert ck.file_bytes == sum(p.stat().st_size for p in parts)
    ck = open_source([str(p) for p in parts])  # a shell glob of every part
    assert len(ck.tensors) == len(tensors)
    r = cli("inspect", str(parts[1]), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["tensor_count"] == len(tensors)
    # a folder holding the split picks it as one model
    assert len(open_source([str(tmp_path)]).files) == 3


def test_split_gguf_missing_part(tmp_path):
    write_llama(tmp_path / "tiny.gguf", split_max_tensors=8)
    (tmp_path / "tiny-00002-of-00003.gguf").unlink()
    line = error_line(cli("inspect", str(tmp_path / "tiny-00001-of-00003.gguf")))
    assert "tiny-00002-of-00003.gguf" in line and "part 2 of 3" in line and "missing" in line


def test_split_gguf_part_out_of_place(tmp_path):
    write_llama(tmp_path / "tiny.gguf", split_max_tensors=8)
    a, b = tmp_path / "tiny-00002-of-00003.gguf", tmp_path / "tiny-00003-of-00003.gguf"
    tmp = tmp_path / "swap"
    a.rename(tmp), b.rename(a), tmp.rename(b)
    line = error_line(cli("inspect", str(tmp_path / "tiny-00001-of-00003.gguf")))
    assert "expected part 2 of 3" in line


def test_split_part_renamed_cannot_find_siblings(tmp_path):
    write_llama(tmp_path / "tiny.gguf", split_max_tensors=8)
    (tmp_path / "tiny-00001-of-00003.gguf").rename(tmp_path / "first.gguf")
    assert "cannot be found" in error_line(cli("inspect", str(tmp_path / "first.gguf")))


def test_folder_picks_the_model_not_the_projector(tmp_path):
    write_llama(tmp_path / "model-Q4_K_M.gguf")
    write_mmproj(tmp_path / "mmproj-model-f16.gguf")
    ck = open_source([str(tmp_path)])
    assert ck.gguf["kind"] == "model" and ck.files[0].path.endswith("model-Q4_K_M.gguf")
    assert ck.source == str(tmp_path)


def test_folder_with_several_quants_lists_them(tmp_path):
    write_llama(tmp_path / "model-Q4_K_M.gguf")
    write_llama(tmp_path / "model-Q8_0.gguf")
    line = error_line(cli("inspect", str(tmp_path)))
    assert (
        "several GGUF models" in line and "model-Q4_K_M.gguf" in line and "model-Q8_0.gguf" in line
    )


def test_gguf_with_other_files_is_refused(tmp_path, llama):
    from safetensors.numpy import save_file

    st = tmp_path / "x.safetensors"
    save_file({"w": np.zeros(2, np.float32)}, st)
    assert "on its own" in error_line(cli("inspect", str(llama[0]), str(st)))
    write_llama(tmp_path / "other.gguf")
    assert "same GGUF model" in error_line(
        cli("inspect", str(llama[0]), str(tmp_path / "other.gguf"))
    )


def test_gguf_magic_under_another_name(tmp_path, llama):
    p = tmp_path / "weights"
    p.write_bytes(llama[0].read_bytes())
    assert open_local([p]).format == "gguf"


def test_gguf_name_without_gguf_contents(tmp_path):
    p = tmp_path / "fake.gguf"
    p.write_bytes(b"GGUX" + b"\0" * 40)
    assert "not a GGUF file" in error_line(cli("inspect", str(p)))


def test_gguf_name_with_safetensors_bytes_is_read_as_safetensors(tmp_path):
    # The bytes decide the format; the name that lies is a warning.
    p = tmp_path / "fake.gguf"
    p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}" + b" " * 14)
    ck = open_local([p])
    assert ck.format == "safetensors" and ck.misnamed_files == (str(p),)
    assert ck.warnings == (
        f"{p}: named as GGUF but its bytes are safetensors; read as safetensors "
        "(a file's format is decided by its bytes)",
    )


# --------------------------------------------------------------------------- footprint


def test_footprint_from_gguf(llama):
    path, tensors = llama
    r = cli("footprint", str(path), "--context", "4096", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["parameters"] == sum(int(np.prod(s)) for _, s in tensors.values())
    m = doc["model"]
    dims = (m["layers"], m["heads"], m["kv_heads"], m["head_dim"])
    assert dims == (LAYERS, HEADS, KV_HEADS, HIDDEN // HEADS)
    # K and V, per KV head, per layer, per token, bf16
    assert doc["kv_cache"]["bytes"] == 2 * KV_HEADS * (HIDDEN // HEADS) * LAYERS * 4096 * 2


def test_config_mla_moe_and_windows():
    kv = {
        "general.architecture": "deepseek2", "deepseek2.block_count": 61,
        "deepseek2.embedding_length": 7168, "deepseek2.attention.head_count": 128,
        "deepseek2.attention.head_count_kv": 1, "deepseek2.attention.kv_lora_rank": 512,
        "deepseek2.attention.q_lora_rank": 1536, "deepseek2.rope.dimension_count": 64,
        "deepseek2.attention.key_length": 576, "deepseek2.attention.key_length_mla": 192,
        "deepseek2.attention.value_length": 512, "deepseek2.attention.value_length_mla": 128,
        "deepseek2.expert_count": 256, "deepseek2.expert_used_count": 8,
        "deepseek2.expert_feed_forward_length": 2048, "deepseek2.expert_shared_count": 1,
        "deepseek2.leading_dense_block_count": 3, "deepseek2.vocab_size": 129280,
    }  # fmt: skip
    cfg = synthesize_config(kv)
    want = {
        "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128,
        "v_head_dim": 128, "num_key_value_heads": 128, "num_local_experts": 256,
        "num_experts_per_tok": 8, "moe_intermediate_size": 2048, "n_shared_experts": 1,
        "first_k_dense_replace": 3, "vocab_size": 129280,
    }  # fmt: skip
    assert {k: cfg[k] for k in want} == want
    assert "head_dim" not in cfg
    from paramtool.memory.dims import ModelDims

    assert ModelDims.from_config(cfg).attention == "mla"
    # Gemma 3: llama.cpp's built-in 5:1 pattern when the file has only the window
    cfg = synthesize_config({"general.architecture": "gemma3", "gemma3.block_count": 12,
                             "gemma3.attention.sliding_window": 512})  # fmt: skip
    assert cfg["sliding_window"] == 512 and cfg["sliding_window_pattern"] == 6
    assert ModelDims.from_config(cfg).windows == ((512, 10),)


def test_per_layer_arrays_become_their_largest_value(tmp_path):
    path = tmp_path / "hybrid.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_block_count(2)
    w.add_head_count(4)
    w.add_head_count_kv([0, 2])
    w.add_sliding_window_pattern([True, False])
    w.add_sliding_window(128)
    add(w, "token_embd.weight", Q.F32, (8, 4))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    ck = open_source([str(path)])
    assert ck.config["num_key_value_heads"] == 2
    assert ck.config["layer_types"] == ["sliding_attention", "full_attention"]
    assert any("varies by layer" in w for w in ck.warnings)


# --------------------------------------------------------------------------- malformed corpus

_VT = {"u8": 0, "u32": 4, "str": 8, "arr": 9, "u64": 10, "f32": 6, "bool": 7}


def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv_u32(key: str, v: int) -> bytes:
    return s(key) + struct.pack("<II", 4, v)


def kv_str(key: str, v: str) -> bytes:
    return s(key) + struct.pack("<I", 8) + s(v)


def tensor_info(name: str | bytes, shape, qtype: int, offset: int) -> bytes:
    dims = b"".join(struct.pack("<Q", d) for d in shape)
    return s(name) + struct.pack("<I", len(shape)) + dims + struct.pack("<IQ", qtype, offset)


def pack(kvs=None, tensors=(), data=b"", *, magic=b"GGUF", version=3, n_tensors=None, n_kv=None,
         alignment=32) -> bytes:  # fmt: skip
    """A GGUF file by hand: tensors are (name, shape, type id, offset); data follows the padding."""
    kvs = [kv_str("general.architecture", "llama")] if kvs is None else kvs
    infos = b"".join(tensor_info(*t) for t in tensors)
    n_tensors = len(tensors) if n_tensors is None else n_tensors
    head = magic + struct.pack("<IQQ", version, n_tensors, len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + infos
    body += b"\0" * (-len(body) % alignment)
    return body + data


def f32(n: int) -> bytes:
    return b"\0" * (4 * n)


ONE_KV = b"GGUF" + struct.pack("<IQQ", 3, 0, 1)  # a header promising one KV pair

MALFORMED = {
    "empty": b"",
    "three bytes": b"GGU",
    "bad magic": b"GGUX" + b"\0" * 40,
    "safetensors bytes": b"\x10\0\0\0\0\0\0\0{}" + b" " * 40,
    "version 99": pack(version=99),
    "version 1": pack(version=1),
    "version 0": pack(version=0),
    "big endian": b"GGUF" + struct.pack(">IQQ", 3, 0, 0),
    "tensor count 2^62": pack(n_tensors=2**62),
    "tensor count 2^64-1": pack(n_tensors=2**64 - 1),
    "kv count 2^62": pack(n_kv=2**62),
    "kv count too many for the file": pack(n_kv=1000),
    "key length 2^40": ONE_KV + struct.pack("<Q", 2**40) + b"x" * 20,
    "key length 2^64-1": ONE_KV + struct.pack("<Q", 2**64 - 1),
    "string value length 2^40": pack([s("k") + struct.pack("<IQ", 8, 2**40) + b"abc"]),
    "uint8 array length 2^60": pack([s("k") + struct.pack("<IIQ", 9, 0, 2**60)]),
    "string array length 2^60": pack([s("k") + struct.pack("<IIQ", 9, 8, 2**60)]),
    "string array of 2^22+1": pack([s("k") + struct.pack("<IIQ", 9, 8, 2**22 + 1) + b"\0" * 64]),
    "string in array past end": pack([s("k") + struct.pack("<IIQQ", 9, 8, 20, 2**50)]),
    "nested array": pack([s("k") + struct.pack("<IIQIQ", 9, 9, 1, 0, 1) + b"\1"]),
    "array of unknown type": pack([s("k") + struct.pack("<IIQ", 9, 13, 1) + b"\0" * 8]),
    "unknown value type": pack([s("k") + struct.pack("<I", 13) + b"\0" * 8]),
    "duplicate key": pack([kv_u32("a", 1), kv_u32("a", 2)]),
    "key not utf-8": pack([s(b"\xff\xfe") + struct.pack("<II", 4, 1)]),
    "alignment not a power of two": pack([kv_u32("general.alignment", 48)]),
    "alignment zero": pack([kv_u32("general.alignment", 0)]),
    "alignment wrong type": pack([s("general.alignment") + struct.pack("<IQ", 10, 32)]),
    "five dims": pack(tensors=[("t", (1, 1, 1, 1, 1), 0, 0)], data=f32(1)),
    "dim 2^63": pack(tensors=[("t", (2**63,), 0, 0)]),
    "dims overflow": pack(tensors=[("t", (2**32, 2**32), 0, 0)]),
    "dims overflow in 4d": pack(tensors=[("t", (2**16, 2**16, 2**16, 2**16), 0, 0)]),
    "unknown ggml type": pack(tensors=[("t", (4,), 99, 0)], data=f32(4)),
    "removed ggml type": pack(tensors=[("t", (32,), 4, 0)], data=b"\0" * 64),
    "row not a multiple of the block": pack(tensors=[("t", (16, 2), 12, 0)], data=b"\0" * 288),
    "misaligned offset": pack(tensors=[("a", (4,), 0, 0), ("b", (4,), 0, 16)], data=f32(64)),
    "overlapping tensors": pack(tensors=[("a", (16,), 0, 0), ("b", (4,), 0, 32)], data=f32(64)),
    "gap between tensors": pack(tensors=[("a", (4,), 0, 0), ("b", (4,), 0, 64)], data=f32(64)),
    "first offset not 0": pack(tensors=[("a", (4,), 0, 32)], data=f32(64)),
    "duplicate tensor name": pack(tensors=[("a", (8,), 0, 0), ("a", (8,), 0, 32)], data=f32(16)),
    "tensor name not utf-8": pack(tensors=[(b"\xc3", (8,), 0, 0)], data=f32(8)),
    "string value not utf-8": pack([s("general.name") + struct.pack("<I", 8) + s(b"\xff")]),
    "string value a UTF-8 surrogate": pack([s("k") + struct.pack("<I", 8) + s(b"\xed\xa0\x80")]),
    "string in a short array not utf-8": pack(
        [s("general.tags") + struct.pack("<IIQ", 9, 8, 2) + s("ok") + s(b"\xc3(")]
    ),
    "tensor past end of file": pack(tensors=[("a", (64,), 0, 0)], data=f32(8)),
    "tensor offset 2^64-1": pack(tensors=[("a", (8,), 0, 2**64 - 32)], data=f32(8)),
    "no data at all": pack(tensors=[("a", (8,), 0, 0)]),
}


def test_corpus_is_valid_without_the_defect():
    """The packer itself makes files that read: each case's defect is what it names."""
    path = Path(tempfile.mkdtemp()) / "ok.gguf"
    tensors = [("a", (8,), 0, 0), ("b", (32, 2), 8, 32)]
    path.write_bytes(pack(tensors=tensors, data=f32(8) + b"\0" * 68))
    f = read_gguf(path)
    assert [(t.name, t.dtype, t.nbytes) for t in f.tensors] == [("a", "F32", 32), ("b", "Q8_0", 68)]
    ref = gguf.GGUFReader(path)
    assert [t.n_bytes for t in ref.tensors] == [32, 68]


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_gguf_is_one_line(tmp_path, case):
    path = tmp_path / "bad.gguf"
    path.write_bytes(MALFORMED[case])
    t0 = time.perf_counter()
    with pytest.raises(errors.ParamtoolError):
        read_gguf(path)
    line = error_line(cli("inspect", str(path)))
    assert time.perf_counter() - t0 < 2.0
    assert str(path) in line


@pytest.mark.parametrize(
    ("case", "key"),
    [
        ("string value not utf-8", "general.name"),
        ("string value a UTF-8 surrogate", "k"),
        ("string in a short array not utf-8", "general.tags"),
    ],
)
def test_invalid_utf8_strings_are_refused_as_gguf_py_refuses_them(tmp_path, case, key):
    path = tmp_path / "u.gguf"
    path.write_bytes(MALFORMED[case])
    with pytest.raises(UnicodeDecodeError):  # gguf-py decodes strictly when the value is read
        gguf.GGUFReader(path).fields[key].contents()
    with pytest.raises(errors.InvalidHeader, match=f"metadata '{key}': string is not valid UTF-8"):
        read_gguf(path)


def test_errors_name_the_failure_kind(tmp_path):
    def kind(case: str) -> type:
        p = tmp_path / f"{abs(hash(case))}.gguf"
        p.write_bytes(MALFORMED[case])
        with pytest.raises(errors.ParamtoolError) as e:
            read_gguf(p)
        return type(e.value)

    assert kind("bad magic") is errors.UnsupportedFormat
    assert kind("version 99") is errors.UnsupportedFormat
    assert kind("tensor count 2^62") is errors.HeaderTooLarge
    assert kind("string value length 2^40") is errors.InvalidHeaderLength
    assert kind("dims overflow") is errors.ValidationOverflow
    assert kind("misaligned offset") is errors.InvalidOffset
    assert kind("overlapping tensors") is errors.InvalidOffset
    assert kind("unknown ggml type") is errors.InvalidHeaderDeserialization
    assert kind("row not a multiple of the block") is errors.TensorInvalidInfo
    assert kind("tensor past end of file") is errors.MetadataIncompleteBuffer


def test_error_messages(tmp_path):
    def msg(case: str) -> str:
        p = tmp_path / "m.gguf"
        p.write_bytes(MALFORMED[case])
        with pytest.raises(errors.ParamtoolError) as e:
            read_gguf(p)
        return str(e.value)

    assert "unsupported GGUF version 99" in msg("version 99")
    assert "big-endian" in msg("big endian")
    assert "unknown ggml type 99" in msg("unknown ggml type")
    assert "Q4_2" in msg("removed ggml type")
    assert "tensor 'b'" in msg("overlapping tensors") and "overlaps" in msg("overlapping tensors")
    assert "not a multiple of the 32-byte alignment" in msg("misaligned offset")
    assert "array of arrays" in msg("nested array")
    assert "duplicate metadata key 'a'" in msg("duplicate key")


def test_truncated_at_every_byte(tmp_path):
    """Every prefix of a valid file is refused with paramtool's error (or read, past the header)."""
    whole = pack(
        [kv_str("general.architecture", "llama"), kv_u32("llama.block_count", 1),
         s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3) + s("a") + s("") + s("bc"),
         s("v") + struct.pack("<IIQ", 9, 6, 2) + struct.pack("<ff", 1.0, 2.0)],
        tensors=[("token_embd.weight", (4, 2), 0, 0), ("blk.0.attn_q.weight", (32,), 8, 32)],
        data=f32(8) + b"\0" * 34,
    )  # fmt: skip
    path = tmp_path / "t.gguf"
    path.write_bytes(whole)
    full = read_gguf(path)
    for cut in range(len(whole)):
        path.write_bytes(whole[:cut])
        with pytest.raises(errors.ParamtoolError):
            read_gguf(path)
    assert full.header.file_size == len(whole)


def test_truncated_writer_file_via_cli(tmp_path, llama):
    whole = llama[0].read_bytes()
    f = read_gguf(llama[0])
    data_end = f.data_start + f.tensors[-1].end
    for cut in (3, 7, 23, 100, f.data_start - 1, f.data_start + 10, data_end - 1):
        p = tmp_path / f"cut{cut}.gguf"
        p.write_bytes(whole[:cut])
        error_line(cli("inspect", str(p)))
    # the padding after the last tensor is not needed (llama.cpp does not read it either)
    p.write_bytes(whole[:data_end])
    assert cli("inspect", str(p)).exit_code == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.sampled_from([2, 3]))
def test_random_bytes_after_magic(tail, version):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "r.gguf"
        p.write_bytes(b"GGUF" + struct.pack("<I", version) + tail)
        t0 = time.perf_counter()
        try:
            read_gguf(p)
        except errors.ParamtoolError:
            pass
        assert time.perf_counter() - t0 < 1.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=8))
def test_random_corruption_of_a_valid_file(flips):
    base = bytearray(pack(
        [kv_str("general.architecture", "llama"), kv_u32("llama.block_count", 1),
         s("a") + struct.pack("<IIQ", 9, 8, 2) + s("xy") + s("z")],
        tensors=[("token_embd.weight", (4, 2), 0, 0), ("blk.0.attn_q.weight", (32,), 8, 32)],
        data=f32(8) + b"\0" * 34,
    ))  # fmt: skip
    for pos, value in flips:
        if pos < len(base):
            base[pos] = value
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "c.gguf"
        p.write_bytes(bytes(base))
        t0 = time.perf_counter()
        try:
            open_local([p])
        except errors.ParamtoolError:
            pass
        assert time.perf_counter() - t0 < 1.0


# --------------------------------------------------------------------------- lightness


def test_value_commands_on_a_quantized_gguf(llama, tmp_path):
    """diff, hash and stats read GGUF files too; block-quantized types are compared as bytes."""
    path, _ = llama
    same = cli("diff", str(path), str(path), "--json")
    assert same.exit_code == 0, same.stderr
    assert json.loads(same.stdout)["identical"] is True
    h = cli("hash", str(path), "--json")
    assert h.exit_code == 0, h.stderr
    import hashlib

    assert (
        json.loads(h.stdout)["files"][0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    )
    s = cli("stats", str(path), "--json")
    assert s.exit_code == 0, s.stderr
    assert "Traceback" not in s.stderr and "internal error" not in s.stderr
