"""Record header-only fixtures from real writers: tiny random transformers and peft models.

For every text architecture the installed transformers can build, this script shrinks the
configuration class's defaults to a tiny model, saves it with ``save_pretrained``
(safetensors), and writes ``tests/fixtures/corpus/<name>.json``: the saved ``config.json``,
every tensor's name, dtype and shape as the safetensors header holds them, and the truth
taken from the writer's own objects: each tensor's category and part from the class of the
module that owns it, and the KV cache from the cache object a forward pass returns.

Not run by CI and not imported by the tests: it needs torch, transformers and peft, which
paramtool does not depend on. Run it with a separate environment (tests/corpus/README.md)::

    /tmp/gen/bin/python tests/corpus/make_corpus.py            # everything
    /tmp/gen/bin/python tests/corpus/make_corpus.py llama t5   # some names only
    /tmp/gen/bin/python tests/corpus/make_corpus.py --check    # only the self-check
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import functools
import io
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "tests" / "fixtures" / "corpus"
README = HERE / "README.md"
FORMAT_VERSION = 1

# ---------------------------------------------------------------------------------------------
# Tiny sizes. Every size attribute a configuration class has is set from this table; names a
# configuration does not define are never added (they would pollute config.json).
H = 64  # model width
FFN = 128
HEADS = 4
KV_HEADS = 2
HEAD_DIM = 16
VOCAB = 512
EXPERTS = 4
TOP_K = 2
MOE_FFN = 32
WINDOW = 4  # sliding window, so that the recorded lengths straddle it
LENGTHS = (2, 6, 11)  # decoder lengths the cache is measured at
ENCODER_LENGTHS = (7, 9)  # encoder lengths for encoder-decoders (the first is the fixed one)
LAYERS = 3  # odd, so that no other size (heads 4, KV heads 2, experts 4) looks like it
PATTERN_LAYERS = 8  # models whose layers follow a pattern: enough layers for it to show
TOWER_LAYERS = 2  # vision and audio towers of multimodal models
MAX_PARAMS = 3_000_000

SIZES: dict[str, int] = {
    **dict.fromkeys(
        "hidden_size d_model n_embd n_embed dim embed_dim model_dim word_embed_proj_dim "
        "input_embedding_size d_embed emb_dim".split(),
        H,
    ),
    **dict.fromkeys(
        "intermediate_size d_ff ffn_dim encoder_ffn_dim decoder_ffn_dim n_inner ffn_hidden_size "
        "dim_feedforward inner_hidden_size hidden_dim filter_size d_inner mlp_dim ff_dim "
        "intermediate_dim ffn_inner_hidden_size feed_forward_proj_size mlp_hidden_size "
        "dense_intermediate_size ffn_intermediate_size dff dim_ff intermediate_size_mlp".split(),
        FFN,
    ),
    **dict.fromkeys(
        "num_attention_heads n_head n_heads num_heads encoder_attention_heads "
        "decoder_attention_heads attention_heads num_attention_heads_per_layer".split(),
        HEADS,
    ),
    **dict.fromkeys(
        "num_key_value_heads num_kv_heads n_head_kv multi_query_group_num num_query_groups "
        "n_kv_heads num_kv_attention_heads".split(),
        KV_HEADS,
    ),
    **dict.fromkeys("head_dim d_kv kv_channels attention_head_size d_head".split(), HEAD_DIM),
    **dict.fromkeys(
        "vocab_size n_vocab src_vocab_size tgt_vocab_size entity_vocab_size shape_vocab_size "
        "pronunciation_vocab_size".split(),
        VOCAB,
    ),
    **dict.fromkeys("entity_emb_size shape_embed_dim pronunciation_embed_dim".split(), 32),
    **dict.fromkeys("o_lora_rank index_head_dim".split(), 16),
    **dict.fromkeys("o_groups index_n_heads".split(), 2),
    "index_topk": 4,
    "rotary_dim": 8,
    "linear_head_dim": 16,
    "linear_num_heads": 4,
    **dict.fromkeys(
        "max_position_embeddings n_positions n_ctx max_seq_len max_sequence_length "
        "max_target_positions max_source_positions seq_length".split(),
        128,
    ),
    **dict.fromkeys(
        "num_experts num_local_experts n_routed_experts moe_num_experts num_routed_experts "
        "ffn_num_experts n_experts num_experts_routed".split(),
        EXPERTS,
    ),
    **dict.fromkeys(
        "num_experts_per_tok moe_k top_k experts_per_token num_selected_experts "
        "moe_topk router_topk num_experts_per_token".split(),
        TOP_K,
    ),
    **dict.fromkeys(
        "moe_intermediate_size expert_intermediate_size shared_expert_intermediate_size "
        "moe_ffn_hidden_size expert_ffn_size moe_dim moe_shared_expert_intermediate_size".split(),
        MOE_FFN,
    ),
    **dict.fromkeys("n_shared_experts num_shared_experts moe_num_shared_experts".split(), 1),
    "n_group": 1,
    "topk_group": 1,
    "kv_lora_rank": 32,
    "q_lora_rank": 48,
    "qk_rope_head_dim": 8,
    "qk_nope_head_dim": 16,
    "v_head_dim": 16,
    "qk_head_dim": 24,
    **dict.fromkeys(
        "sliding_window attention_window local_window_size window_size".split(), WINDOW
    ),
    **dict.fromkeys(
        "state_size ssm_state_size mamba_d_state d_state linear_key_head_dim "
        "linear_value_head_dim".split(),
        8,
    ),
    **dict.fromkeys("conv_kernel mamba_d_conv d_conv linear_conv_kernel_dim".split(), 4),
    **dict.fromkeys("time_step_rank mamba_dt_rank".split(), 8),
    **dict.fromkeys("mamba_n_heads mamba_num_heads linear_num_value_heads".split(), 4),
    **dict.fromkeys("n_groups mamba_n_groups".split(), 1),
    **dict.fromkeys("mamba_head_dim".split(), 32),
    **dict.fromkeys("linear_num_key_heads".split(), 2),
    **dict.fromkeys(
        "out_hidden_size text_hidden_size projection_dim projector_hidden_size "
        "audio_hidden_size output_hidden_size vision_output_dim text_config_hidden_size".split(),
        H,
    ),
    "embedding_size": 32,  # ALBERT/ELECTRA-style factorised embeddings stay smaller than H
    "num_buckets": 8,
    "relative_attention_num_buckets": 8,
    "relative_attention_max_distance": 16,
    "type_vocab_size": 2,
    "num_labels": 2,
}

# Sizes a default configuration leaves None for the model to derive, or to be given.
FILL_WHEN_NONE = {
    "head_dim",
    "num_key_value_heads",
    "num_experts",
    "moe_intermediate_size",
    "intermediate_size",
    "num_local_experts",
    "n_routed_experts",
    "num_experts_per_tok",
    "kv_channels",
}
OVERRIDE_KEYS: set[str] = set()  # the keys the current model's overrides set

LAYER_KEYS = (
    "num_hidden_layers n_layer n_layers num_layers encoder_layers decoder_layers "
    "num_decoder_layers num_encoder_layers".split()
)

# Keys whose presence says the layers follow a pattern.
PATTERN_HINTS = (
    "layer_types sliding_window_pattern attn_layer_period attn_layer_indices layers_block_type "
    "hybrid_override_pattern interleave_moe_layer_step first_k_dense_replace "
    "full_attention_interval "
    "block_types mlp_only_layers decoder_sparse_step moe_layer_freq no_rope_layers "
    "hybrid_layer_ids layer_block_types attn_layer_offset expert_layer_period "
    "global_attn_every_n_layers sliding_window_layers".split()
)

# ---------------------------------------------------------------------------------------------
# Which model types and classes. Task mappings, in the order a model type's class is chosen.
TASKS = (
    ("seq2seq", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES"),
    ("masked_lm", "MODEL_FOR_MASKED_LM_MAPPING_NAMES"),
    ("causal_lm", "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"),
    ("image_text", "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES"),
    ("text_encoding", "MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES"),
)
# Types listed under several tasks whose real use is the causal LM.
PREFER_CAUSAL = {"reformer", "xlm", "bert-generation", "modernbert-decoder", "esm", "flaubert"}

# Extra fixtures beside one per model type: (fixture name, model type, config overrides).
VARIANTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("t5-deep-decoder", "t5", {"num_layers": 2, "num_decoder_layers": 3}),
    (
        "falcon-new-decoder-architecture",
        "falcon",
        {"new_decoder_architecture": True, "multi_query": False, "num_kv_heads": 2},
    ),
    ("falcon-multi-head", "falcon", {"multi_query": False, "num_kv_heads": HEADS}),
    ("llama-tied", "llama", {"tie_word_embeddings": True}),
    ("gpt_bigcode-multi-head", "gpt_bigcode", {"multi_query": False}),
    ("mixtral-window", "mixtral", {"sliding_window": WINDOW}),
    (
        "qwen2-sliding",
        "qwen2",
        {"use_sliding_window": True, "max_window_layers": 2, "sliding_window": WINDOW},
    ),
)

# Per model type: config overrides on top of the shrunk sizes (what the table cannot guess).
OVERRIDES: dict[str, dict[str, Any]] = {
    "t5": {"num_layers": 2, "num_decoder_layers": 3},
    "falcon": {"multi_query": True, "new_decoder_architecture": False},
    "gemma3_text": {"num_hidden_layers": 8},
    "llama4_text": {
        "num_hidden_layers": 4,
        "interleave_moe_layer_step": 2,
        "attention_chunk_size": 4,
    },
    "deepseek_v3": {"num_hidden_layers": 4, "first_k_dense_replace": 1},
    "deepseek_v2": {"num_hidden_layers": 4, "first_k_dense_replace": 1},
    "jamba": {
        "num_hidden_layers": 8,
        "attn_layer_period": 4,
        "attn_layer_offset": 2,
        "expert_layer_period": 2,
        "expert_layer_offset": 1,
        "mamba_expand": 2,
    },
    "nemotron_h": {"num_hidden_layers": 8, "hybrid_override_pattern": "M-M*-M*-"},
    "qwen3_next": {"num_hidden_layers": 8, "full_attention_interval": 4},
    "mamba2": {"head_dim": 32},
    "dots3_note": {"num_key_value_heads": HEADS},
    "dots3_note_text": {"num_key_value_heads": HEADS},
    "glm5_next": {"num_key_value_heads": HEADS},
    "esmc": {"num_key_value_heads": HEADS},
    "bamba": {"num_hidden_layers": 8, "attn_layer_indices": [3, 7]},
    "granitemoehybrid": {
        "num_hidden_layers": 8,
        "layer_types": (["mamba"] * 3 + ["attention"]) * 2,
    },
    "falcon-multi-head": {"multi_query": False, "num_kv_heads": HEADS},
    "dbrx": {
        "attn_config": {"kv_n_heads": 2, "rope_theta": 10000.0, "clip_qkv": 8.0},
        "ffn_config": {"ffn_hidden_size": FFN, "moe_num_experts": EXPERTS, "moe_top_k": TOP_K},
    },
    "lfm2": {
        "num_hidden_layers": 8,
        "layer_types": ["conv", "conv", "full_attention"] * 2 + ["conv", "full_attention"],
    },
    "lfm2_moe": {
        "num_hidden_layers": 8,
        "num_dense_layers": 1,
        "layer_types": ["conv", "conv", "full_attention"] * 2 + ["conv", "full_attention"],
    },
    "llama4": {"pad_token_id": 0},
    "squeezebert": {"embedding_size": H},
    "reformer": {
        "is_decoder": True,
        "axial_pos_shape": [8, 16],
        "axial_pos_embds_dim": [32, 32],
        "attn_layers": ["local", "lsh", "local", "lsh"],
        "local_attn_chunk_length": 4,
        "lsh_attn_chunk_length": 4,
        "num_buckets": 4,
    },
    "gpt_neo": {"num_layers": 4, "attention_types": [[["global", "local"], 2]]},
    "kimi_linear": {
        "num_hidden_layers": 8,
        "linear_attn_config": {
            "head_dim": 16,
            "num_heads": 4,
            "short_conv_kernel_size": 4,
            "kda_layers": [1, 2, 3, 5, 6, 7],
            "full_attn_layers": [4, 8],
        },
    },
    "rwkv": {"attention_hidden_size": H, "intermediate_size": FFN, "context_length": 128},
}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Candidate list


def candidates() -> list[dict[str, Any]]:
    """One entry per fixture to attempt: name, model type, class name, task, overrides."""
    from transformers.models.auto import modeling_auto

    mappings = {task: getattr(modeling_auto, attr, {}) for task, attr in TASKS}
    out: dict[str, dict[str, Any]] = {}
    for task, mapping in mappings.items():
        for model_type, cls in mapping.items():
            if model_type in out:
                continue
            order = [t for t, _ in TASKS]
            if model_type in PREFER_CAUSAL:
                order = ["causal_lm", *[t for t in order if t != "causal_lm"]]
            for t in order:
                if model_type in mappings[t]:
                    cls = mappings[t][model_type]
                    task = t
                    break
            if isinstance(cls, (list, tuple)):
                cls = cls[0]
            out[model_type] = {
                "name": model_type,
                "model_type": model_type,
                "class": cls,
                "task": task,
                "overrides": OVERRIDES.get(model_type, {}),
            }
    for name, model_type, overrides in VARIANTS:
        if model_type in out:
            out[name] = {
                **out[model_type],
                "name": name,
                "overrides": overrides,
                "variant_of": model_type,
            }
    return sorted(out.values(), key=lambda c: c["name"])


# ---------------------------------------------------------------------------------------------
# Config shrinking


def _num_layers_of(d: dict[str, Any]) -> int | None:
    for k in LAYER_KEYS:
        if isinstance(d.get(k), int):
            return int(d[k])
    return None


def _shrink_dict(d: dict[str, Any], layers: int, top: bool, tower: bool = False) -> dict[str, Any]:
    """Only the keys to change: sizes from SIZES, layer counts, nested configs recursed."""
    changes: dict[str, Any] = {}
    old_layers = _num_layers_of(d)
    pattern = any(k in d for k in PATTERN_HINTS)
    want_layers = PATTERN_LAYERS if pattern and not tower else layers
    for key, value in d.items():
        if isinstance(value, dict) and "model_type" in value:
            tower = re.search(
                r"vision|audio|image|speech|visual|vit", f"{key} {value['model_type']}"
            )
            sub = _shrink_dict(
                value, TOWER_LAYERS if tower else layers, top=False, tower=bool(tower)
            )
            changes[key] = {"model_type": value["model_type"], **sub}
            continue
        if key == "use_mamba_kernels" and value:
            changes[key] = False  # transformers 4: the CUDA kernels are not there on CPU
            continue
        if key in ("rope_parameters", "rope_scaling") and isinstance(value, dict):
            if isinstance(value.get("mrope_section"), list):
                changes[key] = {**value, "mrope_section": [2, 3, 3]}  # sums to HEAD_DIM / 2
            continue
        if value is None and key in SIZES and key in FILL_WHEN_NONE:
            changes[key] = SIZES[key]
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            # Explicit per-layer lists and strings from the defaults no longer fit the depth.
            if (
                old_layers
                and isinstance(value, (list, str))
                and len(value) == old_layers
                and key in PATTERN_HINTS
            ):
                changes[key] = _cut_pattern(value, want_layers)
            continue
        if key in _base_keys():
            continue  # generation defaults and the like, that every configuration carries
        if key in LAYER_KEYS or (key == "depth" and tower):
            changes[key] = want_layers
        elif key in SIZES:
            changes[key] = SIZES[key]
    if "kv_lora_rank" in d:  # MLA: head_dim is the rotary part, and there is no GQA
        if "head_dim" in changes and "head_dim" not in OVERRIDE_KEYS:
            changes["head_dim"] = SIZES["qk_rope_head_dim"]
        if "num_key_value_heads" in changes and "num_key_value_heads" not in OVERRIDE_KEYS:
            changes["num_key_value_heads"] = changes.get("num_attention_heads", HEADS)
    return changes


@functools.cache
def _base_keys() -> frozenset[str]:
    """Keys of the base configuration class (transformers 4 lists top_k and kin there)."""
    import transformers

    base = getattr(transformers, "PreTrainedConfig", None) or transformers.PretrainedConfig
    return frozenset(base().to_dict())


def _cut_pattern(value: list[Any] | str, n: int) -> list[Any] | str:
    """A per-layer pattern cut to n layers, keeping every kind it had where it can."""
    kinds = list(dict.fromkeys(value))
    picked = list(value[:n])
    missing = [k for k in kinds if k not in picked]
    for i, k in enumerate(missing):  # put each lost kind back at the end
        if i < n:
            picked[n - 1 - i] = k
    return "".join(picked) if isinstance(value, str) else picked


def _fix_token_ids(d: dict[str, Any], vocab: int) -> dict[str, Any]:
    """Token ids beyond the tiny vocabulary, moved inside it (padding_idx must fit)."""
    changes: dict[str, Any] = {}
    spare = iter(range(vocab - 1, vocab // 2, -1))
    used: dict[int, int] = {}

    def move(v: int) -> int:
        if v < vocab:
            return v
        if v not in used:
            used[v] = next(spare)
        return used[v]

    for key, value in d.items():
        if not (key.endswith("_token_id") or key.endswith("_token_index") or key.endswith("_id")):
            if key.endswith("_token_ids") and isinstance(value, list):
                if all(isinstance(v, int) for v in value):
                    changes[key] = [move(v) for v in value]
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and value >= vocab:
            changes[key] = move(value)
        elif isinstance(value, list) and all(isinstance(v, int) for v in value):
            if any(v >= vocab for v in value):
                changes[key] = [move(v) for v in value]
    return changes


def _refit_patterns(d: dict[str, Any], changes: dict[str, Any]) -> None:
    """Per-layer patterns cut again when an override chose another depth than the table."""
    n = _num_layers_of(changes)
    if n is None:
        return
    for key in PATTERN_HINTS:
        value = changes.get(key)
        if isinstance(value, (list, str)) and len(value) != n and key not in OVERRIDE_KEYS:
            changes[key] = _cut_pattern(d[key], n)


def _fit_mrope(config: Any, model_class: Any) -> None:
    """Multimodal RoPE sections a modeling file defaults to (16, 24, 24), fitted to HEAD_DIM."""
    import inspect

    try:
        source = inspect.getsource(sys.modules[model_class.__module__])
    except (OSError, TypeError, KeyError):
        return
    if "mrope_section" not in source:
        return
    text = config.get_text_config()
    rope = getattr(text, "rope_parameters", None)
    if isinstance(rope, dict) and "rope_type" in rope:
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        half = (
            int(
                head_dim
                * (
                    rope.get("partial_rotary_factor")
                    or getattr(text, "partial_rotary_factor", None)
                    or 1.0
                )
            )
            // 2
        )
        side = half * 3 // 8
        rope["mrope_section"] = [half - 2 * side, side, side]


def build_config(model_type: str, overrides: dict[str, Any], model_class: Any = None) -> Any:
    """The configuration class's defaults with every size shrunk, then ``overrides``.

    ``model_class``: the model class to build; its own ``config_class`` wins where it has one
    (a ``ForCausalLM`` that takes the text configuration of a multimodal model type).
    """
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    cls = CONFIG_MAPPING[model_type]
    own = getattr(model_class, "config_class", None)
    if own is not None and isinstance(own, type) and getattr(own, "model_type", None):
        cls = own
    default = cls()
    d = default.to_dict()
    OVERRIDE_KEYS.clear()
    OVERRIDE_KEYS.update(overrides)
    changes = _shrink_dict(d, LAYERS, top=True)
    changes.update(_fix_token_ids(d, VOCAB))
    for key, value in list(changes.items()):
        if isinstance(value, dict) and "model_type" in value:
            sub_default = d[key]
            value.update(_fix_token_ids(sub_default, VOCAB))
    changes.update(overrides)
    changes.pop("model_type", None)
    _refit_patterns(d, changes)
    # A per-layer list in the defaults is usually derived (from use_sliding_window, a period,
    # ...): left out, the class derives it again for the new depth and from the overrides.
    # Only where that fails is the cut-down list of the defaults passed.
    trial = _without_derived(changes, set(overrides))
    if trial != changes:
        try:
            config = cls(**trial)
            if _layer_lists_fit(config) and _layer_lists_fit(config.get_text_config()):
                return config
        except Exception:
            pass
    return cls(**changes)


DERIVED_LISTS = ("layer_types", "layers_block_type", "block_types")


def _without_derived(changes: dict[str, Any], keep: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in changes.items():
        if k in DERIVED_LISTS and k not in keep:
            continue
        if isinstance(v, dict) and "model_type" in v:
            v = _without_derived(v, set())
        out[k] = v
    return out


def _layer_lists_fit(config: Any) -> bool:
    n = _num_layers_of(config.to_dict())
    for k in DERIVED_LISTS:
        v = getattr(config, k, None)
        if isinstance(v, (list, str)) and n is not None and len(v) != n:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Safetensors headers


def read_header(path: Path) -> tuple[dict[str, Any], dict[str, str] | None]:
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    meta = header.pop("__metadata__", None)
    return header, meta


# ---------------------------------------------------------------------------------------------
# Truth: category and part from the owning modules

ATTN_RE = re.compile(r"Attention|Attn|MultiHead|MHA\b|Mqa|Gqa", re.I)
FFN_RE = re.compile(
    r"MLP|Mlp|FeedForward|Feedforward|FFN|Ffn|Expert|Intermediate|MoE|Moe|Router|DenseReluDense|"
    r"DenseActDense|DenseGatedActDense|LayerFF|SwiGLU|GLU\b|TopK|Gate\b|Sparse"
)
MIXER_RE = re.compile(
    r"Mamba|Mixer|SSM|Ssm|GatedDeltaNet|DeltaNet|ShortConv|Recurrent|RGLRU|Rglru|LSTM|Lstm|"
    r"LinearAttention|Rwkv|TimeMix|HGRN|Hgrn|Retention|KDA|Kda"
)
HEAD_RE = re.compile(
    r"Pooler|Classifier|ClassificationHead|Prediction|Head$|Heads$|Discriminator|LMHead|"
    r"MLMHead|OnlyMLM"
)
PROJ_RE = re.compile(r"Projector|Connector|Resampler|Merger|Aligner|Adapter$|Projection$")
QUANT_RE = re.compile(r"^QuantAct$")  # I-BERT activation ranges
EMBED_RE = re.compile(r"Embeddings?$|Embed$|Embedding[A-Z]")
NORM_RE = re.compile(r"Norm")
# A module that holds every kind (a decoder layer, a model, a stack) says nothing itself;
# a weaker container ("...Block", "...Layer") says something only with a telling word.
STRONG_CONTAINER_RE = re.compile(
    r"(DecoderLayer|EncoderLayer|Model|Stack|Encoder|Decoder|Transformer|Backbone|ModuleList|"
    r"Sequential|ModuleDict|ParameterList|Wrapper|LayerGroup)$|For[A-Z]|^For"
)
WEAK_CONTAINER_RE = re.compile(r"(Layer|Block)$")
VISION_RE = re.compile(r"Vision|Visual|ViT|Vit[A-Z]|Siglip|ImageEncoder|PatchEmbed|Image")
PROJECTOR_RE = re.compile(r"Projector|MultiModalProjector|Connector|Resampler|Aligner")
AUDIO_RE = re.compile(r"Audio|Speech|Conformer|Wav2Vec")
MTP_RE = re.compile(r"MTP|Mtp|NextN|MultiTokenPred")
VISION_ATTRS = {
    "vision_tower",
    "vision_model",
    "visual",
    "vision_encoder",
    "image_encoder",
    "vision",
    "vit",
    "embed_vision",
    "vision_embed_tokens",
}
PROJECTOR_ATTRS = {
    "multi_modal_projector",
    "mm_projector",
    "connector",
    "vision_projection",
    "image_newline",
    "multimodal_projector",
    "projector",
    "visual_projection",
    "language_projection",
    "query_tokens",
    "qformer",
    "aligner",
}
AUDIO_ATTRS = {"audio_tower", "audio_encoder", "audio_model", "embed_audio", "speech_encoder"}
MTP_ATTRS = {"mtp", "mtp_layers", "nextn", "mtp_block"}

# Modules whose class says nothing, placed by the writer's attribute name in their parent
# (class of the parent, attribute) -> (category, acceptable). Each is listed in the README.
OWNER_OVERRIDES: dict[tuple[str, str], tuple[str, list[str]]] = {
    # Zamba: the shared attention block's output projection into the Mamba stream.
    ("ZambaHybridLayer", "linear"): ("attention", ["attention", "other"]),
    # ALBERT: factorised embeddings, projected from embedding_size to hidden_size.
    ("AlbertTransformer", "embedding_hidden_mapping_in"): ("embedding", ["embedding", "other"]),
    # FSMT: the real output head; get_output_embeddings() answers decoder.embed_tokens instead.
    ("FSMTDecoder", "output_projection"): ("embedding", ["embedding"]),
}
# Parameters and buffers that sit directly on a model, by attribute name.
PARAM_OVERRIDES: dict[str, tuple[str, list[str]]] = {
    # BART family: a bias added to the logits, beside the output head.
    "final_logits_bias": ("embedding", ["embedding", "other"]),
}
# Attribute names of embedding-to-hidden projections on a base model.
EMBED_PROJECTIONS = {"embeddings_project", "embedding_transformation", "embeddings_projection"}


def _classify_ancestor(cls: str) -> str | None:
    """What an enclosing module's class says its parameters are for; None: nothing."""
    if STRONG_CONTAINER_RE.search(cls):
        return None
    weak = bool(WEAK_CONTAINER_RE.search(cls))
    if QUANT_RE.search(cls):
        return "quantization"
    if MIXER_RE.search(cls):
        return "mixer"
    if ATTN_RE.search(cls):
        return "attention"
    if FFN_RE.search(cls):
        return "feed_forward"
    if weak:
        return None
    if HEAD_RE.search(cls):
        return "head"
    if PROJ_RE.search(cls):
        return "projector"
    if EMBED_RE.search(cls):
        return "embedding"
    return None


def owner_chain(model: Any, module_path: str) -> list[tuple[str, Any]]:
    chain = [("", model)]
    m = model
    if module_path:
        for attr in module_path.split("."):
            m = getattr(m, attr) if not attr.isdigit() else m[int(attr)]
            chain.append((attr, m))
    return chain


def _is_model(m: Any) -> bool:
    return hasattr(m, "config") and hasattr(m, "base_model_prefix")


def _has_mixer_child(m: Any) -> bool:
    for c in m.children():
        k = _classify_ancestor(type(c).__name__)
        if k in ("attention", "mixer"):
            return True
    return False


def categorize(chain: list[tuple[str, Any]], pname: str, heads: set[int]) -> dict[str, Any]:
    """Category of the tensor ``pname`` owned by chain[-1], from the classes on the chain."""
    import torch.nn as nn

    leaf = chain[-1][1]
    classes = [type(m).__name__ for _, m in chain]
    leaf_cls = classes[-1]

    def done(cat: str, reason: str, amb: list[str] | None = None, why: str = "") -> dict:
        amb = amb if amb and len(amb) > 1 else []
        return {
            "category": cat,
            "owner": f"{leaf_cls}.{pname}",
            "reason": reason,
            "ambiguous": amb or [],
            "why": why,
        }

    if leaf_cls.startswith("Quant") and pname not in ("weight", "bias"):
        # I-BERT QuantLinear / QuantEmbedding: the integer copies and scaling factors beside
        # the float weight are quantization; the weight itself is what its module says.
        return done("quantization", f"{leaf_cls}.{pname}")
    # The nearest classifying ancestor (the leaf included).
    found: tuple[str, str] | None = None
    for i in range(len(chain) - 1, 0, -1):
        attr, m = chain[i]
        parent = chain[i - 1][1]
        over = OWNER_OVERRIDES.get((type(parent).__name__, attr))
        if over:
            return done(
                over[0],
                f"{type(parent).__name__}.{attr} (named in the script)",
                over[1],
                f"{type(parent).__name__}.{attr}: a module whose class says nothing",
            )
        kind = None if _is_model(m) else _classify_ancestor(classes[i])
        if kind is None and re.search(r"(?<!Self)(?<!Attention)Output$", classes[i]):
            if any("Intermediate" in type(c).__name__ for c in parent.children()):
                kind = "feed_forward"  # BERT-style: Intermediate, then Output, in one layer
        if kind is None and attr in EMBED_PROJECTIONS and _is_model(parent):
            return done(
                "embedding",
                f"{attr}: embedding-to-hidden projection",
                ["embedding", "other"],
                "a projection from the embedding width",
            )
        plain = isinstance(m, (nn.Linear, nn.Sequential)) or classes[i] == "Conv1D"
        if kind is None and plain and WEAK_CONTAINER_RE.search(type(parent).__name__):
            # fc1/fc2 style: a plain Linear (or a Sequential of them) straight in a layer that
            # holds an attention or mixer module; a layer's only other job is its FFN.
            if _has_mixer_child(parent):
                found = ("feed_forward", f"{type(parent).__name__}.{attr} beside its attention")
                break
        if kind is not None:
            found = (kind, classes[i])
            break
    in_head = any(id(m) in heads for _, m in chain)
    if in_head or (pname == "bias" and any(id(c) in heads for c in leaf.children())):
        return done("embedding", "output head (get_output_embeddings)")
    if len(chain) == 1 and pname in PARAM_OVERRIDES:
        cat, amb = PARAM_OVERRIDES[pname]
        return done(cat, f"{pname} (named in the script)", amb, f"{pname}: a bare tensor")
    if isinstance(leaf, nn.Embedding) or (EMBED_RE.search(leaf_cls) and not list(leaf.children())):
        above = [(k, c) for c in classes[1:-1] if (k := _classify_ancestor(c))]
        if above and above[-1][0] in ("attention", "mixer"):
            found = above[-1]
            return done(
                "attention",
                f"{leaf_cls} inside {found[1]}",
                ["attention", "embedding"],
                "an embedding table owned by an attention module (relative position bias)",
            )
        return done("embedding", leaf_cls)
    if NORM_RE.search(leaf_cls) or isinstance(leaf, (nn.LayerNorm, nn.GroupNorm)):
        if found and found[0] in ("head", "projector"):
            return done("norm", leaf_cls, ["norm", "other"], f"a norm inside {found[1]}")
        if found and found[0] not in ("quantization", "embedding"):
            outer = {"mixer": "attention"}.get(found[0], found[0])
            return done("norm", leaf_cls, ["norm", outer], f"a norm inside {found[1]}")
        return done("norm", leaf_cls)
    if isinstance(leaf, nn.modules.conv._ConvNd):
        if found and found[0] in ("mixer", "attention"):
            return done(
                "other",
                f"{leaf_cls} (convolution kernel)",
                ["other", "attention"],
                f"a convolution inside the mixer {found[1]}",
            )
        return done("other", f"{leaf_cls} (convolution kernel)")
    if found is None:
        return done(
            "other", "no classifying module on the path: " + ">".join(classes[1:] or ["<root>"])
        )
    kind, cls = found
    if kind == "mixer":
        return done(
            "attention",
            f"token mixer {cls}",
            ["attention", "other"],
            "a state-space / recurrent / linear-attention mixer",
        )
    if kind in ("head", "projector"):
        return done("other", f"{kind} {cls}")
    if kind == "embedding":
        return done("embedding", cls, ["embedding", "other"], f"a tensor inside {cls}")
    return done(kind, cls)


def part_of(chain: list[tuple[str, Any]], audio_encoder: Any) -> tuple[str, list[str]]:
    """The model part owning chain[-1]: the outermost submodule that names one."""
    root_config = getattr(chain[0][1], "config", None)
    for attr, m in chain[1:]:
        cls = type(m).__name__
        if _is_model(m) and m.config is root_config:
            continue  # the composite model itself (Qwen2AudioModel holds every part)
        if m is audio_encoder:
            return "audio_encoder", []
        if attr in MTP_ATTRS or MTP_RE.search(cls):
            return "mtp", []
        if attr in VISION_ATTRS or (VISION_RE.search(cls) and "Text" not in cls):
            inner = [type(x).__name__ for _, x in chain[chain.index((attr, m)) + 1 :]]
            if any(PROJECTOR_RE.search(c) for c in inner):
                return "vision_encoder", ["vision_encoder", "multimodal_projector"]
            return "vision_encoder", []
        if attr in PROJECTOR_ATTRS or PROJECTOR_RE.search(cls):
            return "multimodal_projector", []
        if attr in AUDIO_ATTRS or (AUDIO_RE.search(cls) and "Text" not in cls):
            return "audio_encoder", []
    return "language_model", []


def saved_to_memory(model: Any, saved: list[str]) -> dict[str, str]:
    """Each saved tensor name -> the state_dict name it loads into (the writer's own renames)."""
    state = set(model.state_dict().keys())
    out: dict[str, str] = {}
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import (
            WeightConverter,
            WeightRenaming,
            rename_source_key,
        )

        conv = get_model_conversion_mapping(model, add_legacy=False)
        renamings = [c for c in conv if isinstance(c, WeightRenaming)]
        converters = [c for c in conv if isinstance(c, WeightConverter)]
        meta = dict.fromkeys(state, True)
        for name in saved:
            if name in state:
                out[name] = name
                continue
            target, _ = rename_source_key(
                name, renamings, converters, model.base_model_prefix, meta
            )
            out[name] = target
    except ImportError:  # transformers 4.x: saved names are the module names
        for name in saved:
            out[name] = name
    return out


def template(name: str) -> str:
    """A name with its numbers cut out: ``model.layers.#.mlp.up_proj.weight``."""
    return re.sub(r"(?<=\.)\d+(?=\.|$)", "#", name)


def tensor_truth(model: Any, saved: list[str]) -> dict[str, Any]:
    import torch.nn as nn

    heads: set[int] = set()  # the output heads of the model and of every submodel in it
    for sub in model.modules():
        if _is_model(sub) and hasattr(sub, "get_output_embeddings"):
            with contextlib.suppress(Exception):
                head = sub.get_output_embeddings()
                if isinstance(head, nn.Module):
                    heads.add(id(head))
    audio_encoder = None
    with contextlib.suppress(Exception):
        from transformers.models.auto import modeling_auto

        speech = set(getattr(modeling_auto, "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES", {}))
        if model.config.model_type in speech and hasattr(model, "get_encoder"):
            audio_encoder = model.get_encoder()
    mapping = saved_to_memory(model, saved)
    state = model.state_dict()
    categories: dict[str, str] = {}
    parts: dict[str, str] = {}
    owners: dict[str, str] = {}
    ambiguous: dict[str, Any] = {}
    part_ambiguous: dict[str, Any] = {}
    unresolved: list[str] = []
    unclassified: list[str] = []
    for name in saved:
        target = mapping.get(name, name)
        if target not in state:
            unresolved.append(name)
            continue
        module_path, _, pname = target.rpartition(".")
        chain = owner_chain(model, module_path)
        t = categorize(chain, pname, heads)
        categories[name] = t["category"]
        owners[name] = t["owner"]
        if t["ambiguous"]:
            ambiguous[name] = {"accept": t["ambiguous"], "why": t["why"]}
        if t["reason"].startswith("no classifying module"):
            unclassified.append(f"{name}: {t['reason']}")
        part, pamb = part_of(chain, audio_encoder)
        parts[name] = part
        if pamb:
            part_ambiguous[name] = {
                "accept": pamb,
                "why": "a projector nested inside the vision tower",
            }
    truth: dict[str, Any] = {
        "category": categories,
        "category_ambiguous": {n: a["accept"] for n, a in ambiguous.items()},
        "category_ambiguous_why": {template(n): a["why"] for n, a in ambiguous.items()},
        "part_default": "language_model",
        "part": {n: p for n, p in parts.items() if p != "language_model"},
        "owner": {template(n): o for n, o in owners.items()},
    }
    if part_ambiguous:
        truth["part_ambiguous"] = {n: a["accept"] for n, a in part_ambiguous.items()}
        truth["part_ambiguous_why"] = {template(n): a["why"] for n, a in part_ambiguous.items()}
    if unresolved:
        truth["unresolved"] = unresolved
    if unclassified:
        truth["unclassified"] = sorted({template(u) for u in unclassified})
    renamed = {template(k): template(v) for k, v in mapping.items() if k != v}
    if renamed:
        truth["loads_into"] = renamed
    return truth


# ---------------------------------------------------------------------------------------------
# Truth: the KV cache a forward pass returns


def _tensors_in(obj: Any, prefix: str, out: dict[str, Any], depth: int = 0) -> None:
    import torch

    if depth > 3:
        return
    if torch.is_tensor(obj):
        if obj.dim() >= 1:
            out[prefix] = obj
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _tensors_in(v, f"{prefix}[{k}]", out, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _tensors_in(v, f"{prefix}[{i}]", out, depth + 1)


def _layer_tensors(layer: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in vars(layer).items():
        if k.startswith("_"):
            continue
        _tensors_in(v, k, out)
    return out


LAYER_ATTRS = ("sliding_window", "chunk_size", "attention_chunk_size", "window_size")


def cache_layers(cache: Any) -> tuple[str, list[dict[str, Any]]]:
    """(cache class, [{stack, layer, kind, tensors: {attr: tensor}}]) for a cache object."""
    cls = type(cache).__name__
    rows: list[dict[str, Any]] = []

    def from_cache(c: Any, stack: str) -> None:
        if hasattr(c, "layers") and isinstance(c.layers, (list, tuple)):
            for i, layer in enumerate(c.layers):
                attrs = {
                    k: v
                    for k, v in vars(layer).items()
                    if k in LAYER_ATTRS and isinstance(v, int) and not isinstance(v, bool)
                }
                rows.append(
                    {
                        "stack": stack,
                        "layer": i,
                        "kind": type(layer).__name__,
                        "tensors": _layer_tensors(layer),
                        "attrs": attrs,
                    }
                )
            rest = {k: v for k, v in vars(c).items() if k != "layers" and not k.startswith("_")}
            extra: dict[str, Any] = {}
            for k, v in rest.items():
                _tensors_in(v, k, extra)
            if extra:
                rows.append(
                    {"stack": stack, "layer": None, "kind": "cache-level", "tensors": extra}
                )
            return
        if isinstance(c, (list, tuple)) and all(hasattr(x, "dim") for x in c):
            for i, t in enumerate(c):  # one tensor per kind of state (RWKV: layers last)
                rows.append(
                    {
                        "stack": "state",
                        "layer": None,
                        "kind": f"state[{i}]",
                        "tensors": {f"[{i}]": t},
                    }
                )
            return
        if isinstance(c, (list, tuple)):  # legacy tuple of per-layer tuples
            for i, layer in enumerate(c):
                t: dict[str, Any] = {}
                _tensors_in(layer, "", t)
                rows.append({"stack": stack, "layer": i, "kind": "tuple", "tensors": t})
            return
        # A model's own cache class: per-layer lists as attributes.
        per_layer: dict[int, dict[str, Any]] = {}
        glob: dict[str, Any] = {}
        for k, v in vars(c).items():
            if k.startswith("_"):
                continue
            if (
                isinstance(v, (list, tuple))
                and v
                and all((hasattr(x, "dim") or x is None or isinstance(x, (list, tuple))) for x in v)
            ):
                for i, x in enumerate(v):
                    t2: dict[str, Any] = {}
                    _tensors_in(x, k, t2)
                    per_layer.setdefault(i, {}).update(t2)
            else:
                _tensors_in(v, k, glob)
        for i in sorted(per_layer):
            rows.append(
                {"stack": stack, "layer": i, "kind": type(c).__name__, "tensors": per_layer[i]}
            )
        if glob:
            rows.append({"stack": stack, "layer": None, "kind": "cache-level", "tensors": glob})

    if hasattr(cache, "self_attention_cache") and hasattr(cache, "cross_attention_cache"):
        from_cache(cache.self_attention_cache, "self_attention")
        from_cache(cache.cross_attention_cache, "cross_attention")
    else:
        from_cache(cache, "decoder")
    return cls, rows


def _cache_from(out: Any) -> Any:
    for attr in (
        "past_key_values",
        "cache",
        "cache_params",
        "state",
        "mems",
        "past_buckets_states",
    ):
        c = getattr(out, attr, None) if not isinstance(out, dict) else out.get(attr)
        if c is not None:
            return c
    return None


def _safe_tokens(config: Any, n: int, gen: Any) -> Any:
    import torch

    special: set[int] = set()

    def collect(d: dict[str, Any]) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                collect(v)
            elif str(k).endswith(("_id", "_index", "_ids")):
                if isinstance(v, int) and not isinstance(v, bool):
                    special.add(v)
                elif isinstance(v, list):
                    special.update(x for x in v if isinstance(x, int))

    collect(config.to_dict())
    pool = [t for t in range(5, 250) if t not in special]
    idx = torch.randint(0, len(pool), (1, n), generator=gen)
    return torch.tensor(pool)[idx]


def _own_cache_class(model: Any) -> Any:
    """transformers 4 hybrids (Bamba, Falcon-H1...) return no cache unless handed their own
    ``HybridMambaAttentionDynamicCache``: the class their modeling module defines, if any."""
    import inspect

    module = sys.modules.get(type(model).__module__)
    for name, obj in vars(module or object()).items():
        if inspect.isclass(obj) and name.endswith("Cache") and obj.__module__ == module.__name__:
            try:
                obj(model.config, 1, model.dtype, "cpu")
            except Exception:
                continue
            return obj
    return None


def kv_truth(model: Any, config: Any) -> dict[str, Any]:
    import torch

    gen = torch.Generator().manual_seed(0)
    enc_dec = bool(getattr(config, "is_encoder_decoder", False))
    main_input = getattr(model, "main_input_name", "input_ids")

    def run(length: int, enc_len: int | None, cache_class: Any = None) -> Any:
        kwargs: dict[str, Any] = {"use_cache": True, "return_dict": True}
        if cache_class is not None:  # a model that only caches what it is handed
            kwargs["past_key_values"] = cache_class(config, 1, torch.float32, "cpu")
        if enc_dec:
            if main_input == "input_ids":
                kwargs["input_ids"] = _safe_tokens(config, enc_len or 1, gen)
            else:
                d = getattr(config, "d_model", None) or config.get_text_config().hidden_size
                kwargs["encoder_outputs"] = (torch.randn(1, enc_len or 1, d, generator=gen),)
            kwargs["decoder_input_ids"] = _safe_tokens(config, length, gen)
        else:
            kwargs["input_ids"] = _safe_tokens(config, length, gen)
        with torch.no_grad():
            out = model(**kwargs)
        return _cache_from(out)

    first = run(LENGTHS[0], ENCODER_LENGTHS[0])
    own_cache = None
    if first is None:
        own_cache = _own_cache_class(model)
        if own_cache is not None:
            first = run(LENGTHS[0], ENCODER_LENGTHS[0], own_cache)
    if first is None:
        return {
            "kv_cache": None,
            "kv_cache_reason": "the forward pass with use_cache=True returned no cache",
        }
    observed: list[tuple[str, list[dict[str, Any]]]] = []
    for n in LENGTHS:
        c = run(n, ENCODER_LENGTHS[0], own_cache)
        observed.append(cache_layers(c))
    cache_class = observed[0][0]
    enc2 = cache_layers(run(LENGTHS[0], ENCODER_LENGTHS[1], own_cache)) if enc_dec else None
    layers_out: list[dict[str, Any]] = []
    dtypes: set[str] = set()
    per_token = 0
    fixed = 0
    window_bytes = 0
    cross_fixed = 0
    cross_per_enc = 0
    keys = [(r["stack"], r["layer"]) for r in observed[0][1]]
    for j, key in enumerate(keys):
        rows = [obs[1][j] for obs in observed]
        tensors: dict[str, Any] = {}
        for name in sorted(set().union(*(r["tensors"] for r in rows))):
            shapes = []
            sizes = []
            for r in rows:
                t = r["tensors"].get(name)
                shapes.append(list(t.shape) if t is not None else None)
                sizes.append(t.numel() * t.element_size() if t is not None else 0)
                if t is not None and t.numel():
                    dtypes.add(str(t.dtype).removeprefix("torch."))
            tensors[name] = {"shape": shapes, "bytes": sizes}
        totals = [sum(v["bytes"][i] for v in tensors.values()) for i in range(len(LENGTHS))]
        slope_last = (totals[2] - totals[1]) / (LENGTHS[2] - LENGTHS[1])
        slope_first = (totals[1] - totals[0]) / (LENGTHS[1] - LENGTHS[0])
        entry: dict[str, Any] = {
            "stack": key[0],
            "layer": key[1],
            "kind": rows[0]["kind"],
            "bytes": totals,
            "tensors": tensors,
        }
        if key[0] == "cross_attention":
            entry["growth"] = "encoder"
            cross_fixed += totals[0]
            if enc2 is not None:
                t2 = sum(t.numel() * t.element_size() for t in enc2[1][j]["tensors"].values())
                per_enc = (t2 - totals[0]) / (ENCODER_LENGTHS[1] - ENCODER_LENGTHS[0])
                entry["bytes_at_encoder_lengths"] = [totals[0], t2]
                cross_per_enc += int(per_enc)
        elif slope_last > 0:
            entry["growth"] = "per_token"
            per_token += int(slope_last)
            base = totals[2] - int(slope_last) * LENGTHS[2]
            fixed += base
        elif slope_first > 0:
            entry["growth"] = "window"
            window_bytes += totals[2]
            kept = None
            for name, v in tensors.items():
                if "key" in name:
                    shape = v["shape"][2]
                    if shape and len(shape) >= 2:
                        kept = shape[-2]
                        break
            entry["kept_tokens"] = kept
        else:
            entry["growth"] = "fixed" if totals[0] else "empty"
            fixed += totals[0]
        if rows[0].get("attrs"):
            entry.update(rows[0]["attrs"])
        layers_out.append(entry)
    result: dict[str, Any] = {
        "batch": 1,
        "lengths": list(LENGTHS),
        "encoder_length": ENCODER_LENGTHS[0] if enc_dec else None,
        "encoder_lengths": list(ENCODER_LENGTHS) if enc_dec else None,
        "cache_class": cache_class,
        "dtype": sorted(dtypes),
        "total_bytes": [sum(e["bytes"][i] for e in layers_out) for i in range(len(LENGTHS))],
        "per_token_bytes": per_token,
        "fixed_bytes": fixed,
        "window_bytes": window_bytes,
        "sliding_window": getattr(config.get_text_config(), "sliding_window", None),
        "layers": layers_out,
    }
    if enc_dec:
        result["cross_attention_bytes"] = cross_fixed
        result["cross_attention_per_encoder_token_bytes"] = cross_per_enc
    return {"kv_cache": result}


# ---------------------------------------------------------------------------------------------
# One model


def _versions() -> dict[str, str]:
    import safetensors
    import torch
    import transformers

    v = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
    }
    with contextlib.suppress(ImportError):
        import peft

        v["peft"] = peft.__version__
    return v


def _count_params(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def _saved_tensors(folder: Path) -> tuple[list[list[Any]], list[str], dict[str, Any] | None]:
    files = sorted(p.name for p in folder.glob("*.safetensors"))
    tensors: list[list[Any]] = []
    metadata: dict[str, Any] | None = None
    per_file: dict[str, Any] = {}
    for f in files:
        header, meta = read_header(folder / f)
        per_file[f] = meta
        for name, info in sorted(header.items()):
            tensors.append([name, info["dtype"], info["shape"]])
    if len(files) == 1:
        metadata = per_file[files[0]]
    elif files:
        metadata = per_file
    return tensors, files, metadata


def _notes(fixture: dict[str, Any]) -> list[str]:
    notes: list[str] = []
    kv = fixture.get("truth", {}).get("kv_cache")
    if kv:
        for e in kv["layers"]:
            if e.get("growth") == "window" and e.get("kept_tokens") is not None:
                w = e.get("sliding_window", kv.get("sliding_window"))
                notes.append(
                    f"window layers keep {e['kept_tokens']} tokens at length {LENGTHS[-1]} "
                    f"(sliding_window={w})"
                )
                break
        kinds = {e["kind"] for e in kv["layers"]}
        if len(kinds) > 1:
            notes.append("cache layer kinds: " + ", ".join(sorted(kinds)))
    return notes


def record_one(cand: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Build, save and record one candidate; returns its index row."""
    import torch
    import transformers

    torch.manual_seed(0)
    cls = getattr(transformers, cand["class"])
    config = build_config(cand["model_type"], cand["overrides"], cls)
    _fit_mrope(config, cls)
    with torch.device("meta"):
        meta_model = cls(config)
    n_meta = _count_params(meta_model)
    if n_meta > MAX_PARAMS:
        big = sorted(meta_model.named_parameters(), key=lambda kv: -kv[1].numel())[:3]
        top = ", ".join(f"{n} {list(p.shape)}" for n, p in big)
        raise RuntimeError(f"too big after shrinking: {n_meta:,} parameters ({top})")
    del meta_model
    torch.manual_seed(0)
    model = cls(config)
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model.save_pretrained(folder, safe_serialization=True)
        saved_config = json.loads((folder / "config.json").read_text())
        tensors, files, metadata = _saved_tensors(folder)
    if not tensors:
        raise RuntimeError("save_pretrained wrote no safetensors tensors")
    total = sum(math.prod(shape) for _, _, shape in tensors)
    truth = tensor_truth(model, [t[0] for t in tensors])
    try:
        truth.update(kv_truth(model, model.config))
    except Exception as exc:
        truth["kv_cache"] = None
        truth["kv_cache_reason"] = f"forward pass failed: {type(exc).__name__}: {str(exc)[:300]}"
    fixture: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "writer": _versions(),
        "name": cand["name"],
        "model_type": cand["model_type"],
        "class": cand["class"],
        "task": cand["task"],
        "config": saved_config,
        "files": files,
        "metadata": metadata,
        "tensors": tensors,
        "total_parameters": total,
        "truth": truth,
    }
    if cand.get("variant_of"):
        fixture["variant_of"] = cand["variant_of"]
        fixture["variant_overrides"] = cand["overrides"]
    fixture["notes"] = _notes(fixture)
    write_fixture(out_dir / f"{cand['name']}.json", fixture)
    kv = truth.get("kv_cache")
    return {
        "name": cand["name"],
        "status": "recorded",
        "class": cand["class"],
        "params": total,
        "tensors": len(tensors),
        "kv": None
        if kv is None
        else {"per_token": kv["per_token_bytes"], "fixed": kv["fixed_bytes"]},
        "kv_reason": truth.get("kv_cache_reason"),
        "unclassified": len(truth.get("unclassified", [])),
        "unresolved": len(truth.get("unresolved", [])),
    }


# ---------------------------------------------------------------------------------------------
# peft adapters

PEFT_CASES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "lora-llama",
        "llama",
        {"kind": "lora", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]},
    ),
    (
        "lora-gpt2",
        "gpt2",
        {
            "kind": "lora",
            "r": 8,
            "lora_alpha": 16,
            "target_modules": ["c_attn"],
            "fan_in_fan_out": True,
        },
    ),
    (
        "dora-llama",
        "llama",
        {
            "kind": "lora",
            "r": 8,
            "lora_alpha": 16,
            "use_dora": True,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        },
    ),
    (
        "lora-llama-modules-to-save",
        "llama",
        {
            "kind": "lora",
            "r": 8,
            "lora_alpha": 16,
            "target_modules": ["q_proj", "v_proj"],
            "modules_to_save": ["lm_head", "embed_tokens"],
        },
    ),
    (
        "lora-llama-all-linear",
        "llama",
        {"kind": "lora", "r": 4, "lora_alpha": 8, "target_modules": "all-linear"},
    ),
    (
        "lora-t5",
        "t5",
        {
            "kind": "lora",
            "r": 8,
            "lora_alpha": 16,
            "target_modules": ["q", "v"],
            "task_type": "SEQ_2_SEQ_LM",
        },
    ),
    (
        "lora-bert",
        "bert",
        {"kind": "lora", "r": 8, "lora_alpha": 16, "target_modules": ["query", "value"]},
    ),
    (
        "lora-mixtral-experts",
        "mixtral",
        {
            "kind": "lora",
            "r": 4,
            "lora_alpha": 8,
            "target_modules": ["q_proj", "v_proj"],
            "target_parameters": ["mlp.experts.gate_up_proj"],
        },
    ),
    (
        "ia3-llama",
        "llama",
        {
            "kind": "ia3",
            "target_modules": ["k_proj", "v_proj", "down_proj"],
            "feedforward_modules": ["down_proj"],
        },
    ),
    ("loha-llama", "llama", {"kind": "loha", "r": 4, "target_modules": ["q_proj", "v_proj"]}),
    ("lokr-llama", "llama", {"kind": "lokr", "r": 4, "target_modules": ["q_proj", "v_proj"]}),
    ("prompt-tuning-llama", "llama", {"kind": "prompt", "num_virtual_tokens": 8}),
)


def _peft_truth(pmodel: Any, saved: list[str]) -> dict[str, Any]:
    """Every saved tensor is the adapter's; full copies of base modules (modules_to_save) also
    accept the base module's category. ``targets``: each adapted base module, from peft's own
    tuner layers: the base tensor's name in the base fixture, its shape, and its class
    (GPT-2's Conv1D stores [in, out], the transpose of nn.Linear)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    targets: dict[str, Any] = {}
    for path, module in pmodel.named_modules():
        if not isinstance(module, BaseTunerLayer):
            continue
        base = module.get_base_layer()
        weight = getattr(base, "weight", None)
        key = path.removeprefix("base_model.model.")
        entry: dict[str, Any] = {"base_class": type(base).__name__}
        if weight is not None:
            entry["base_tensor"] = f"{key}.weight"
            entry["base_shape"] = list(weight.shape)
        for attr in ("in_features", "out_features", "fan_in_fan_out"):
            v = getattr(module, attr, None)
            if isinstance(v, (int, bool)):
                entry[attr] = v
        params = getattr(module, "target_parameters", None) or getattr(
            module, "parameter_name", None
        )
        if params:
            entry["target_parameter"] = params if isinstance(params, str) else list(params)
        targets[key] = entry
    category: dict[str, str] = {}
    ambiguous: dict[str, list[str]] = {}
    adapter_tokens = re.compile(
        r"lora_|ia3_|hada_|lokr_|oft_|boft_|vera_|prompt_embeddings|prefix_encoder|prompt_encoder"
    )
    for n in saved:
        category[n] = "adapter"
        if not adapter_tokens.search(n):
            ambiguous[n] = [
                "adapter",
                "embedding" if re.search(r"embed|lm_head|wte", n) else "other",
            ]
    truth: dict[str, Any] = {"category": category, "targets": targets}
    if ambiguous:
        truth["category_ambiguous"] = ambiguous
        truth["category_ambiguous_why"] = {
            "*": "a full copy of a base module saved beside the adapter (modules_to_save)"
        }
    return truth


def record_peft(name: str, base_type: str, spec: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    import peft
    import torch
    import transformers

    spec = dict(spec)
    kind = spec.pop("kind")
    cands = {c["name"]: c for c in candidates()}
    cand = cands[base_type]
    torch.manual_seed(0)
    cls = getattr(transformers, cand["class"])
    model = cls(build_config(base_type, cand["overrides"], cls))
    task = spec.pop("task_type", "SEQ_CLS" if cand["task"] == "masked_lm" else "CAUSAL_LM")
    if cand["task"] == "masked_lm":
        task = None
    kw = {"task_type": task} if task else {}
    if kind == "lora":
        pconf = peft.LoraConfig(**kw, **spec)
    elif kind == "ia3":
        pconf = peft.IA3Config(**kw, **spec)
    elif kind == "loha":
        pconf = peft.LoHaConfig(**kw, **spec)
    elif kind == "lokr":
        pconf = peft.LoKrConfig(**kw, **spec)
    elif kind == "prompt":
        pconf = peft.PromptTuningConfig(**kw, **spec)
    else:
        raise ValueError(kind)
    torch.manual_seed(0)
    pmodel = peft.get_peft_model(model, pconf)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pmodel.save_pretrained(folder, safe_serialization=True)
        adapter_config = json.loads((folder / "adapter_config.json").read_text())
        tensors, files, metadata = _saved_tensors(folder)
    total = sum(math.prod(shape) for _, _, shape in tensors)
    truth = _peft_truth(pmodel, [t[0] for t in tensors])
    fixture = {
        "format": FORMAT_VERSION,
        "writer": _versions(),
        "name": f"peft_{name}",
        "peft_type": adapter_config.get("peft_type"),
        "base_fixture": f"{base_type}.json",
        "base_model_type": base_type,
        "adapter_config": adapter_config,
        "files": files,
        "metadata": metadata,
        "tensors": tensors,
        "total_parameters": total,
        "truth": truth,
    }
    write_fixture(out_dir / f"peft_{name}.json", fixture)
    return {
        "name": f"peft_{name}",
        "status": "recorded",
        "class": type(pmodel).__name__,
        "params": total,
        "tensors": len(tensors),
    }


# ---------------------------------------------------------------------------------------------
# Writing, checking, driving


def write_fixture(path: Path, fixture: dict[str, Any]) -> None:
    """JSON with one tensor per line, so that diffs between writer versions read well."""
    tensors = fixture["tensors"]
    body = dict(fixture)
    body["tensors"] = "@TENSORS@"
    text = json.dumps(body, indent=1, sort_keys=False, ensure_ascii=False)
    lines = ",\n".join("  " + json.dumps(t, separators=(", ", ": ")) for t in tensors)
    text = text.replace('"@TENSORS@"', "[\n" + lines + "\n ]", 1)
    path.write_text(text + "\n", encoding="utf-8")


def check(out_dir: Path) -> list[str]:
    """Each fixture's tensors sum to total_parameters and every tensor has its truth."""
    problems: list[str] = []
    for path in sorted(out_dir.glob("*.json")):
        if path.name == "index.json":
            continue
        fx = json.loads(path.read_text())
        total = sum(math.prod(shape) for _, _, shape in fx["tensors"])
        if total != fx["total_parameters"]:
            problems.append(f"{path.name}: tensors sum to {total}, says {fx['total_parameters']}")
        names = [t[0] for t in fx["tensors"]]
        if len(set(names)) != len(names):
            problems.append(f"{path.name}: duplicate tensor names")
        cats = fx["truth"].get("category", {})
        missing = [n for n in names if n not in cats and n not in fx["truth"].get("unresolved", [])]
        if missing:
            problems.append(f"{path.name}: {len(missing)} tensors without a category")
    return problems


def _child(batch: list[tuple[str, str]], out_dir: Path, timeout: int) -> list[dict[str, Any]]:
    """Record a batch in one fresh interpreter (imports cost seconds); a batch that dies is
    retried one by one, so that one crash costs only its own fixture."""
    args = [f"{k}:{n}" for k, n in batch]
    cmd = [sys.executable, __file__, "--out", str(out_dir), "--child", *args]
    rows: dict[str, dict[str, Any]] = {}
    reason = ""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * len(batch))
        stdout, rc, err = proc.stdout, proc.returncode, proc.stderr or ""
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or b""
        stdout = out.decode() if isinstance(out, bytes) else out
        rc, err = None, ""
        reason = f"timed out after {timeout}s"
    for line in stdout.splitlines():
        if line.startswith("@@RESULT "):
            row = json.loads(line[len("@@RESULT ") :])
            rows[row["job"]] = row
    missing = [(k, n) for k, n in batch if f"{k}:{n}" not in rows]
    if missing and len(batch) > 1:
        for job in missing:
            for row in _child([job], out_dir, timeout):
                rows[row["job"]] = row
    elif missing:
        tail = " | ".join(err.strip().splitlines()[-3:])[:300]
        k, n = missing[0]
        rows[f"{k}:{n}"] = {
            "job": f"{k}:{n}",
            "name": n if k == "model" else f"peft_{n}",
            "status": "skipped",
            "reason": reason or f"process died (rc {rc}): {tail}",
        }
    return [rows[f"{k}:{n}"] for k, n in batch]


def _reason(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg[:240]}"


def child_main(jobs: list[str], out_dir: Path) -> None:
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except Exception:
        pass
    cands = {c["name"]: c for c in candidates()}
    cases = {c[0]: c for c in PEFT_CASES}
    for job in jobs:
        kind, _, name = job.partition(":")
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                if kind == "model":
                    row = record_one(cands[name], out_dir)
                else:
                    case = cases[name]
                    row = record_peft(case[0], case[1], case[2], out_dir)
        except Exception as exc:
            row = {
                "name": name if kind == "model" else f"peft_{name}",
                "status": "skipped",
                "reason": _reason(exc),
            }
            if os.environ.get("CORPUS_DEBUG"):
                traceback.print_exc()
        row["job"] = job
        print("@@RESULT " + json.dumps(row), flush=True)


def update_readme(index: dict[str, Any]) -> None:
    if not README.exists():
        return
    text = README.read_text(encoding="utf-8")
    start, end = "<!-- corpus-status:start -->", "<!-- corpus-status:end -->"
    if start not in text or end not in text:
        return
    rows = sorted(index["results"], key=lambda r: r["name"])
    rec = [r for r in rows if r["status"] == "recorded"]
    skip = [r for r in rows if r["status"] != "recorded"]
    w = index["writer"]
    lines = [
        start,
        "",
        f"Recorded with transformers {w['transformers']}, torch {w['torch']}, "
        f"safetensors {w['safetensors']}, peft {w.get('peft', '-')}.",
        f"Attempted {len(rows)}: recorded {len(rec)}, skipped {len(skip)}.",
        "",
        "| fixture | class | parameters | KV per token / fixed (bytes) |",
        "| --- | --- | ---: | --- |",
    ]
    for r in rec:
        kv = r.get("kv")
        kvs = "no cache" if kv is None else f"{kv['per_token']} / {kv['fixed']}"
        if kv is None and "failed" in (r.get("kv_reason") or ""):
            kvs = "forward pass failed (see the fixture)"
        if r["name"].startswith("peft_"):
            kvs = "adapter"
        lines.append(f"| {r['name']} | {r['class']} | {r['params']:,} | {kvs} |")
    lines += ["", "Skipped:", "", "| model type | reason |", "| --- | --- |"]
    for r in skip:
        reason = r["reason"].replace("|", "\\|")
        lines.append(f"| {r['name']} | {reason} |")
    lines += ["", end]
    before, _, rest = text.partition(start)
    _, _, after = rest.partition(end)
    README.write_text(before + "\n".join(lines) + after, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="fixture names to record (default: all)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=300)
    parser.add_argument("--check", action="store_true", help="only run the self-check")
    parser.add_argument("--list", action="store_true", help="list the candidates and stop")
    parser.add_argument("--no-peft", action="store_true")
    parser.add_argument("--batch", type=int, default=8, help="fixtures per interpreter")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child, args.out)
        return 0
    if args.check:
        problems = check(args.out)
        print("\n".join(problems) or "ok")
        return 1 if problems else 0
    args.out.mkdir(parents=True, exist_ok=True)
    cands = candidates()
    if args.list:
        for c in cands:
            print(c["name"], c["class"], c["task"])
        return 0
    jobs: list[tuple[str, str]] = []
    wanted = set(args.names)
    for c in cands:
        if not wanted or c["name"] in wanted:
            jobs.append(("model", c["name"]))
    if not args.no_peft:
        for case in PEFT_CASES:
            if not wanted or f"peft_{case[0]}" in wanted or case[0] in wanted:
                jobs.append(("peft", case[0]))
    started = time.time()
    results: list[dict[str, Any]] = []
    batches = [jobs[i : i + args.batch] for i in range(0, len(jobs), args.batch)]
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futs = [pool.submit(_child, b, args.out, args.timeout) for b in batches]
        for fut in concurrent.futures.as_completed(futs):
            for row in fut.result():
                row.pop("job", None)
                results.append(row)
                msg = row.get("reason") or f"{row.get('params', 0):,} params"
                _log(f"[{len(results)}/{len(jobs)}] {row['name']}: {row['status']} {msg}")
    index_path = args.out / "index.json"
    old: dict[str, Any] = {}
    if wanted and index_path.exists():
        old = {r["name"]: r for r in json.loads(index_path.read_text())["results"]}
    for r in results:
        old[r["name"]] = r
    index = {
        "format": FORMAT_VERSION,
        "writer": _versions(),
        "results": sorted(old.values(), key=lambda r: r["name"]),
    }
    for r in index["results"]:  # a skipped fixture leaves no stale file behind
        if r["status"] != "recorded":
            (args.out / f"{r['name']}.json").unlink(missing_ok=True)
    index_path.write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    if args.out.resolve() == OUT.resolve():
        update_readme(index)
    problems = check(args.out)
    _log(f"done in {time.time() - started:.0f}s; self-check: {'; '.join(problems) or 'ok'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
