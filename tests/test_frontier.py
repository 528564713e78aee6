"""Frontier layouts as published: Llama 4 Maverick and Qwen3-Next-80B-A3B.

The configs are the published ``config.json`` values of the named Hugging Face repos; the
tensor names are those the released checkpoints hold. Expected values are the model cards'
figures, or K/V sizes worked by hand from the config (``2 × kv_heads × head_dim × bytes``
per token per caching layer), never computed with paramtool.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import cli
from layouts import Layout, _Acc, qwen3_next_80b, write_sparse_checkpoint

# meta-llama/Llama-4-Maverick-17B-128E-Instruct, text_config.
MAVERICK: dict[str, Any] = {
    "architectures": ["Llama4ForConditionalGeneration"],
    "model_type": "llama4",
    "text_config": {
        "model_type": "llama4_text", "hidden_size": 5120, "intermediate_size": 8192,
        "intermediate_size_mlp": 16384, "num_hidden_layers": 48, "num_attention_heads": 40,
        "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 202048,
        "num_local_experts": 128, "num_experts_per_tok": 1, "interleave_moe_layer_step": 2,
        "attention_chunk_size": 8192, "no_rope_layers": [], "use_qk_norm": False,
        "max_position_embeddings": 1048576, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    },
}  # fmt: skip


def _maverick() -> Layout:
    c = MAVERICK["text_config"]
    h, e = c["hidden_size"], c["num_local_experts"]
    q, kv = c["num_attention_heads"] * c["head_dim"], c["num_key_value_heads"] * c["head_dim"]
    acc = _Acc("BF16")
    lm = "language_model"
    acc.add(f"{lm}.model.embed_tokens.weight", c["vocab_size"], h)
    for i in range(c["num_hidden_layers"]):
        p = f"{lm}.model.layers.{i}"
        acc.add(f"{p}.self_attn.q_proj.weight", q, h)
        acc.add(f"{p}.self_attn.k_proj.weight", kv, h)
        acc.add(f"{p}.self_attn.v_proj.weight", kv, h)
        acc.add(f"{p}.self_attn.o_proj.weight", h, q)
        ff = f"{p}.feed_forward"
        if i % 2:  # interleave_moe_layer_step 2: layers 1, 3, ..., 47
            inter = c["intermediate_size"]
            acc.add(f"{ff}.experts.gate_up_proj", e, h, 2 * inter)
            acc.add(f"{ff}.experts.down_proj", e, inter, h)
            acc.add(f"{ff}.router.weight", e, h)
            for k, shape in (("gate_proj", (inter, h)), ("up_proj", (inter, h)),
                             ("down_proj", (h, inter))):  # fmt: skip
                acc.add(f"{ff}.shared_expert.{k}.weight", *shape)
        else:
            inter = c["intermediate_size_mlp"]
            acc.add(f"{ff}.gate_proj.weight", inter, h)
            acc.add(f"{ff}.up_proj.weight", inter, h)
            acc.add(f"{ff}.down_proj.weight", h, inter)
        acc.add(f"{p}.input_layernorm.weight", h)
        acc.add(f"{p}.post_attention_layernorm.weight", h)
    acc.add(f"{lm}.model.norm.weight", h)
    acc.add(f"{lm}.lm_head.weight", c["vocab_size"], h)
    return Layout("meta-llama/Llama-4-Maverick-17B-128E-Instruct", acc.rows, MAVERICK)


def _written(tmp: Path, layout: Layout) -> Path:
    write_sparse_checkpoint(tmp, layout, shards=4)
    return tmp


@pytest.fixture(scope="module")
def maverick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = _written(tmp_path_factory.mktemp("maverick"), _maverick())
    yield json.loads(cli("inspect", str(folder), "--json").stdout) | {"_path": str(folder)}


@pytest.fixture(scope="module")
def qwen3_next(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = _written(tmp_path_factory.mktemp("qwen3_next"), qwen3_next_80b())
    yield json.loads(cli("inspect", str(folder), "--json").stdout) | {"_path": str(folder)}


def test_maverick_is_400b_total_17b_active(maverick: dict[str, Any]) -> None:
    # Model card: "17B active parameters, 128 experts, 400B total" (the vision encoder,
    # not in this text-only layout, is under 1B).
    moe = maverick["moe"]
    assert 400e9 <= moe["total_parameters"] < 401e9
    assert 17e9 <= moe["active_parameters"] < 17.5e9
    assert (moe["routed_experts"], moe["shared_experts"], moe["experts_per_token"]) == (128, 1, 1)


def test_maverick_moe_every_other_layer_and_chunked_attention(maverick: dict[str, Any]) -> None:
    model = maverick["model"]
    assert model["experts"]["moe_layers"] == list(range(1, 48, 2))
    groups = model["stacks"][0]["groups"]
    mixers = {(g["mixer"], g["window"]): 0 for g in groups}
    for g in groups:
        mixers[(g["mixer"], g["window"])] += g["count"]
    # Llama 4's default no_rope_layers: a global NoPE layer every 4th, chunks elsewhere.
    assert mixers == {("chunked_attention", 8192): 36, ("full_attention", None): 12}


def test_maverick_kv_cache_at_128k(maverick: dict[str, Any]) -> None:
    r = cli("footprint", maverick["_path"], "--context", "131072", "--json")
    kv = json.loads(r.stdout)["kv_cache"]
    # 4,096 bytes per token per layer (2 x 8 KV heads x 128 x 2 bytes): 36 chunked layers
    # keep 8,192 tokens, 12 global layers all 131,072.
    assert kv["bytes"] == 4096 * (36 * 8192 + 12 * 131072) == 7_650_410_496


def test_qwen3_next_80b_total_and_mtp_part(qwen3_next: dict[str, Any]) -> None:
    # Model card: "80B in total and 3B activated"; its mtp.* block is a part of its own.
    parts = {name: p["parameters"] for name, p in qwen3_next["by_part"].items()}
    assert set(parts) == {"language_model", "mtp"}
    assert 79.5e9 <= parts["language_model"] < 80.5e9
    moe = qwen3_next["moe"]
    assert (moe["routed_experts"], moe["shared_experts"], moe["experts_per_token"]) == (512, 1, 10)
    assert moe["moe_layers"] == 48 + 1  # the MTP block's own MoE layer too
    # mtp.* is no decoder layer of its own numbering: no layer indices, its parameters apart.
    assert moe["mtp"]["layers"] == [] and moe["mtp"]["parameters"] == parts["mtp"]
    # 3B activated besides the 0.62B of embedding tables (input lookup and output head).
    main = moe["active_parameters"] - moe["mtp"]["active_parameters"]
    assert 3e9 <= main - 622_329_856 < 3.5e9


def test_qwen3_next_only_attention_layers_cache_kv(qwen3_next: dict[str, Any]) -> None:
    r = cli("footprint", qwen3_next["_path"], "--context", "1000", "--json")
    kv = json.loads(r.stdout)["kv_cache"]
    # 12 full-attention layers (every 4th) x 2 x 2 KV heads x 256 x 2 bytes per token.
    assert kv["bytes_per_token"] == 12 * 2 * 2 * 256 * 2 == 24_576
    # 36 Gated DeltaNet layers: conv (2 x 16 x 128 + 32 x 128) x 4 and a 32 x 128 x 128
    # state each, at bf16, per sequence, whatever the context.
    assert kv["state_bytes"] == 36 * ((2 * 16 * 128 + 32 * 128) * 4 + 32 * 128 * 128) * 2
    assert kv["bytes"] == 24_576 * 1000 + kv["state_bytes"]
