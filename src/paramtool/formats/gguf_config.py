"""A Hugging Face style ``config.json`` synthesized from GGUF metadata.

llama.cpp stores the architecture under ``<arch>.*`` keys; the rest of paramtool reads
model dimensions from config keys, so a GGUF file's metadata is mapped onto them here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from paramtool.fields import is_int
from paramtool.formats.gguf import GGUFArray
from paramtool.records import TensorInfo

# Sliding-window layouts llama.cpp hard-codes per architecture (llama-model.cpp
# load_hparams: gemma3 set_swa_pattern(6), cohere2 set_swa_pattern(4)) when the
# file carries only the window: every N-th layer is global.
_SWA_PATTERNS = {"gemma3": 6, "cohere2": 4}

# A vision projector's tower, as a Hugging Face vision_config would name it.
_CLIP_VISION = {
    "num_hidden_layers": "clip.vision.block_count",
    "hidden_size": "clip.vision.embedding_length",
    "intermediate_size": "clip.vision.feed_forward_length",
    "num_attention_heads": "clip.vision.attention.head_count",
    "image_size": "clip.vision.image_size",
    "patch_size": "clip.vision.patch_size",
    "projection_dim": "clip.vision.projection_dim",
}


def synthesize_config(
    kv: Mapping[str, Any], tensors: Sequence[TensorInfo] = (), notes: list[str] | None = None
) -> dict[str, Any]:
    """A Hugging Face style ``config.json`` from GGUF metadata (only the keys present).

    Per-layer arrays (``head_count_kv`` of hybrid models) become their largest
    value, with a note. DeepSeek MLA maps to ``kv_lora_rank`` and friends.
    """
    notes = notes if notes is not None else []
    arch = kv.get("general.architecture")
    cfg: dict[str, Any] = {}
    if not isinstance(arch, str) or not arch:
        return cfg
    cfg["architectures"] = [arch]
    cfg["model_type"] = arch
    if arch == "clip" or any(k.startswith("clip.") for k in kv):
        vision = {hf: kv[key] for hf, key in _CLIP_VISION.items() if is_int(kv.get(key))}
        if vision:
            cfg["vision_config"] = vision
        projector = kv.get("clip.projector_type", kv.get("clip.vision.projector_type"))
        if isinstance(projector, str):
            cfg["projector_type"] = projector
        return cfg

    def num(suffix: str) -> int | None:
        key = f"{arch}.{suffix}"
        v = kv.get(key)
        if is_int(v):
            return v
        if isinstance(v, GGUFArray) and v.values and all(is_int(x) for x in v.values):
            ints = [int(x) for x in v.values]
            lo, hi = min(ints), max(ints)
            if lo != hi:
                notes.append(
                    f"{key} varies by layer ({lo}..{hi}); footprint uses {hi} for every layer"
                )
            return hi
        return None

    def put(hf: str, value: int | None) -> None:
        if value is not None and value > 0:
            cfg[hf] = value

    put("num_hidden_layers", num("block_count"))
    put("hidden_size", num("embedding_length"))
    put("intermediate_size", num("feed_forward_length"))
    put("max_position_embeddings", num("context_length"))
    heads = num("attention.head_count")
    put("num_attention_heads", heads)
    kv_lora = num("attention.kv_lora_rank")
    if kv_lora:  # DeepSeek MLA: the cache holds the latent and a decoupled RoPE key
        rope = num("rope.dimension_count")
        key_len = num("attention.key_length_mla") or num("attention.key_length")
        put("kv_lora_rank", kv_lora)
        put("q_lora_rank", num("attention.q_lora_rank"))
        put("qk_rope_head_dim", rope)
        if key_len and rope and key_len > rope:
            put("qk_nope_head_dim", key_len - rope)
        put("v_head_dim", num("attention.value_length_mla") or num("attention.value_length"))
        put("num_key_value_heads", heads)  # as Hugging Face's DeepSeek configs say it
    else:
        put("num_key_value_heads", num("attention.head_count_kv"))
        put("head_dim", num("attention.key_length"))
    vocab = num("vocab_size")
    tokens = kv.get("tokenizer.ggml.tokens")
    if vocab is None and isinstance(tokens, GGUFArray):
        vocab = tokens.length
    by_name = {t.name: t for t in tensors}
    embd = by_name.get("token_embd.weight")
    if vocab is None and embd is not None and len(embd.shape) == 2:
        vocab = embd.shape[1]
    put("vocab_size", vocab)
    if embd is not None:  # llama.cpp reuses token_embd when there is no output head
        cfg["tie_word_embeddings"] = "output.weight" not in by_name
    experts = num("expert_count")
    put("num_local_experts", experts)
    put("num_experts_per_tok", num("expert_used_count"))
    put("moe_intermediate_size", num("expert_feed_forward_length"))
    shared_count, shared_len = num("expert_shared_count"), num("expert_shared_feed_forward_length")
    put("n_shared_experts", shared_count)
    if shared_len:
        put("shared_expert_intermediate_size", shared_len * (shared_count or 1))
    if experts:
        put("first_k_dense_replace", num("leading_dense_block_count"))
    window = num("attention.sliding_window")
    put("sliding_window", window)
    pattern = kv.get(f"{arch}.attention.sliding_window_pattern")
    if is_int(pattern) and pattern > 0:
        cfg["sliding_window_pattern"] = pattern
    elif isinstance(pattern, GGUFArray) and pattern.values is not None and pattern.type == "bool":
        cfg["layer_types"] = [
            "sliding_attention" if b else "full_attention" for b in pattern.values
        ]
    elif window and arch in _SWA_PATTERNS:
        cfg["sliding_window_pattern"] = _SWA_PATTERNS[arch]
    return cfg
