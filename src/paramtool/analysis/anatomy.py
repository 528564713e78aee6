"""What a tensor is for, read from its name alone.

:func:`classify` maps a tensor name (Hugging Face, PEFT, Meta/Mistral
``consolidated``, or GGUF spelling) to a :class:`Role`: a category from
:data:`CATEGORIES`, the transformer block it belongs to, and a short component
label. The rules are one ordered table of regexes; the first that matches wins.

Speed: numbers are cut out of the name first (``model.layers.7.mlp.up_proj`` ->
``model.layers.#.mlp.up_proj``), so the regexes run once per *template*, a few
hundred per checkpoint, while the per-name work is one split and a cached lookup.
Names are not cached themselves: a bounded cache costs more on 100k distinct
names than it saves. Names over :data:`MAX_NAME_LENGTH` characters are ``other``
unread, so that hostile headers cannot make matching slow.

Layer index: the first number after a block container (``layers``, ``layer``,
``h``, ``blocks``, ``block``, ``blk``). In encoder-decoder models (T5, BART,
Whisper) encoder block 3 and decoder block 3 both report layer 3; the name still
tells them apart. DeepSeek's multi-token-prediction module is stored as one more
block (``model.layers.61``) and reports that index. Vision and audio towers are
``other`` with no layer, so that per-layer tallies describe the language model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

CATEGORIES = ("embedding", "attention", "feed_forward", "norm", "adapter", "quantization", "other")


@dataclass(frozen=True, slots=True)
class Role:
    """What one tensor is: category, transformer block, and a short component label."""

    category: str  # one of CATEGORIES
    layer: int | None  # transformer block index; None outside the blocks
    component: str  # "q", "up", "lm_head", "lora_A", "scale", ...; "" when nothing finer
    expert: int | None = None  # routed expert index when the name carries one


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table: a regex over the numberless name, and what a match means.

    ``needs``: when the regex can only match a name holding one of these whole tokens, the
    tokens themselves; a name without any skips the rule unmatched, and uncompiled. (A CLI
    run compiles only the rules its names could meet: compiling all of them costs more
    than reading a 191-shard header.)
    """

    regex: str
    category: str
    component: str
    layered: bool = True  # False: never report a layer (vision towers and the like)
    needs: frozenset[str] | None = None

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(self.regex)  # compiled on first use; the re module keeps it


# Rules see the template lowercased, with a leading dot: ``.model.layers.#.mlp.up_proj.weight``.
# A token therefore starts with a literal "\." (which lets the regex engine skip ahead fast)
# and every pattern is written in lowercase, without re.IGNORECASE.
_S = r"\."  # token start
_E = r"(?=\.|\Z)"  # token end (\Z, not $, so a trailing newline is not an end)
_ATTN = (
    "self_attn|self_attention|attn|attention|selfattention|encdecattention|cross_attn|"
    "crossattention|encoder_attn"
)
_FF = "mlp|feed_forward|ffn|densereludense|block_sparse_moe|moe"


def _tok(alternatives: str) -> str:
    """Any one of ``alternatives`` as a whole token."""
    return f"{_S}(?:{alternatives}){_E}"


def _under(context: str, alternatives: str) -> str:
    """A token of ``alternatives`` at most two tokens inside a module named by ``context``.

    Bounded, so that a rule stays linear in the name's length (``attention.self.query``,
    ``attention.output.dense`` need one step; nothing real needs more).
    """
    return f"{_S}(?:{context})\\.(?:[^.]+\\.){{0,2}}?(?:{alternatives}){_E}"


_WORDS = re.compile(r"[a-z0-9_]+(?:\|[a-z0-9_]+)*")


def _needs(pattern: str) -> frozenset[str] | None:
    """The words a rule needs as a whole token, for patterns built by _tok or _under from
    plain words (the last group of both must equal a token); None for any other pattern."""
    head, sep, last = pattern.rpartition("(?:")
    words = last.removesuffix(f"){_E}")
    if not sep or words == last or not _WORDS.fullmatch(words):
        return None
    if pattern == _tok(words):
        return frozenset(words.split("|"))
    context = head.removeprefix(f"{_S}(?:").removesuffix(")\\.(?:[^.]+\\.){0,2}?")
    if pattern == _under(context, words) and "(" not in context and ")" not in context:
        return frozenset(words.split("|"))
    return None


def _rule(pattern: str, category: str, component: str = "", layered: bool = True) -> Rule:
    return Rule(pattern, category, component, layered, _needs(pattern))


_AD, _Q, _O, _N, _EM, _AT, _FFN = (
    "adapter",
    "quantization",
    "other",
    "norm",
    "embedding",
    "attention",
    "feed_forward",
)

RULES: tuple[Rule, ...] = (
    # PEFT deltas first: the adapter category wins over the module it wraps.
    _rule(_tok("lora_a"), _AD, "lora_A"),
    _rule(_tok("lora_b"), _AD, "lora_B"),
    _rule(_tok("lora_embedding_a"), _AD, "lora_embedding_A"),
    _rule(_tok("lora_embedding_b"), _AD, "lora_embedding_B"),
    _rule(_tok("lora_magnitude_vector"), _AD, "lora_magnitude"),
    _rule(_tok("lora_e"), _AD, "lora_E"),  # AdaLoRA singular values
    _rule(_tok(r"ia3_l|ia3_\w+"), _AD, "ia3"),
    _rule(_tok(r"hada_\w+"), _AD, "loha"),
    _rule(_tok(r"lokr_\w+"), _AD, "lokr"),
    _rule(_tok("oft_r|oft_s|boft_r|boft_s"), _AD, "oft"),
    _rule(_tok(r"vera_\w+"), _AD, "vera"),
    _rule(_tok("prompt_embeddings|prompt_encoder|prefix_encoder"), _AD, "prompt"),
    _rule(_tok("modules_to_save"), _AD, "modules_to_save"),
    # Quantization metadata. The packed weight itself (qweight, *_blocks,
    # weight_packed) is not listed: it falls through to its module's rule.
    _rule(_tok("qzeros|weight_zero_point|zero_point"), _Q, "zero_point"),
    _rule(_tok("g_idx|weight_g_idx"), _Q, "g_idx"),
    _rule(_tok(r"scales|\w+_scales|weight_scale|weight_scale_inv|weight_scale_2|scb"), _Q, "scale"),
    _rule(_tok("input_scale|output_scale"), _Q, "input_scale"),
    _rule(_tok("k_scale|v_scale|kv_scale|q_scale|prob_scale"), _Q, "kv_scale"),
    _rule(_tok("weight_global_scale|input_global_scale"), _Q, "global_scale"),
    _rule(_tok("nested_absmax"), _Q, "nested_absmax"),
    _rule(_tok("absmax"), _Q, "absmax"),
    _rule(_tok("nested_quant_map"), _Q, "nested_quant_map"),
    _rule(_tok("quant_map"), _Q, "quant_map"),
    _rule(_tok("quant_state"), _Q, "quant_state"),
    _rule(_tok("weight_format"), _Q, "weight_format"),
    _rule(_tok("weight_shape"), _Q, "shape"),
    # Honest "other": parts that are not the language model's blocks or heads.
    _rule(
        _tok(
            "vision_tower|vision_model|visual|vision_encoder|image_encoder|vision|vit|"
            "embed_vision|patch_embed"
        ),
        _O,
        "vision",
        layered=False,
    ),
    _rule(
        _tok("audio_tower|audio_encoder|audio_model|embed_audio|audio"), _O, "audio", layered=False
    ),
    _rule(
        _tok("multi_modal_projector|mm_projector|vision_projection|image_newline|connector"),
        _O,
        "projector",
        layered=False,
    ),
    _rule(_tok("pooler"), _O, "pooler"),
    _rule(
        f"{_S}cls\\.predictions\\.transform{_E}|{_S}lm_head\\.(?:dense|layer_norm|ln){_E}",
        _O,
        "head_transform",
    ),
    _rule(_tok("classifier|score|qa_outputs|seq_relationship|sop_classifier"), _O, "classifier"),
    _rule(_tok("inv_freq|rotary_emb|rope_freqs|freqs_cis"), _O, "rotary"),
    _rule(f"{_S}(?:attn|attention)\\.(?:masked_)?bias\\Z", _O, "mask"),  # GPT-2/NeoX buffers
    _rule(_tok("eh_proj"), _O, "mtp_projection"),  # DeepSeek MTP: [embedding; hidden] -> hidden
    # Norms, including the ones that live inside attention.
    _rule(
        _tok(
            "q_norm|k_norm|q_layernorm|k_layernorm|query_layernorm|key_layernorm|"
            "attn_q_norm|attn_k_norm|q_a_layernorm|kv_a_layernorm|attn_q_a_norm|"
            "attn_kv_a_norm"
        ),
        _N,
        "qk_norm",
    ),
    _rule(_tok(r"\w*norm\w*|ln|ln_\w+|ln\d+"), _N, "norm"),
    # Embeddings and output heads.
    _rule(
        _tok(
            "wpe|position_embeddings|position_embedding|embed_positions|pos_emb|pos_embed|"
            "position_embd"
        ),
        _EM,
        "position_embedding",
    ),
    _rule(_tok("token_type_embeddings|token_types"), _EM, "token_type_embedding"),
    _rule(
        _tok(
            r"embed_tokens\w*|wte|word_embeddings|embed_in|tok_embeddings|token_embd|"
            "shared|embedding|emb"
        ),
        _EM,
        "token_embedding",
    ),
    _rule(f"{_S}(?:lm_head|cls\\.predictions)\\.(?:decoder\\.)?bias\\Z", _EM, "lm_head_bias"),
    _rule(
        _tok("lm_head|embed_out|output_layer|shared_head")
        + r"|^\.output\.weight\Z|"
        + f"{_S}cls\\.predictions{_E}",
        _EM,
        "lm_head",
    ),
    # Attention projections.
    _rule(
        _tok(
            "qkv_proj|query_key_value|c_attn|wqkv|qkv|attn_qkv|w_pack|linear_qkv|"
            "in_proj_weight|in_proj_bias"
        ),
        _AT,
        "qkv",
    ),
    _rule(_tok("q_a_proj|attn_q_a"), _AT, "q_a"),
    _rule(_tok("q_b_proj|attn_q_b"), _AT, "q_b"),
    _rule(_tok("kv_a_proj_with_mqa|attn_kv_a_mqa"), _AT, "kv_a"),
    _rule(_tok("kv_b_proj|attn_kv_b|attn_k_b|attn_v_b"), _AT, "kv_b"),
    _rule(_tok("q_proj|wq|attn_q|q_lin|to_q|query_proj|q_attn"), _AT, "q"),
    _rule(_tok("k_proj|wk|attn_k|k_lin|to_k|key_proj"), _AT, "k"),
    _rule(_tok("v_proj|wv|attn_v|v_lin|to_v|value_proj"), _AT, "v"),
    _rule(_tok("o_proj|out_proj|attn_output|out_lin|to_out"), _AT, "o"),
    _rule(_under(_ATTN, "q|query"), _AT, "q"),
    _rule(_under(_ATTN, "k|key"), _AT, "k"),
    _rule(_under(_ATTN, "v|value"), _AT, "v"),
    _rule(_under(_ATTN, "o|wo|dense|c_proj|linear_proj"), _AT, "o"),
    _rule(_tok("relative_attention_bias"), _AT, "relative_bias"),
    _rule(_tok("sinks|attn_sinks"), _AT, "sinks"),
    _rule(_tok(_ATTN), _AT),
    # Feed-forward: shared experts, router, routed experts, then dense MLPs.
    _rule(
        _tok(r"shared_experts|shared_expert|shared_expert_gate|shared_mlp|ffn_\w+_shexp"),
        _FFN,
        "shared_expert",
    ),
    _rule(_tok("router|e_score_correction_bias|ffn_gate_inp|exp_probs_b"), _FFN, "router"),
    _rule(
        _tok(r"experts|ffn_\w+_exps")
        + "|"
        + _under("block_sparse_moe", "input_linear|output_linear"),
        _FFN,
        "expert",
    ),
    _rule(_under(_FF, "gate"), _FFN, "router"),  # mlp.gate / block_sparse_moe.gate
    _rule(_tok("gate_up_proj|ffn_gate_up"), _FFN, "gate_up"),
    _rule(_tok("gate_proj|ffn_gate|wi_0|w1"), _FFN, "gate"),  # w1 is the gate in Llama naming
    _rule(_tok("up_proj|ffn_up|wi_1|wi|w3|c_fc|fc1|dense_h_to_4h|lin1|linear_fc1"), _FFN, "up"),
    _rule(_tok("down_proj|ffn_down|w2|fc2|dense_4h_to_h|lin2|linear_fc2"), _FFN, "down"),
    _rule(_under(_FF, "c_proj|wo|dense"), _FFN, "down"),  # GPT-2 mlp.c_proj, T5 wo
    _rule(_under("intermediate", "dense"), _FFN, "up"),  # BERT
    _rule(f"{_S}output\\.dense{_E}", _FFN, "down"),  # BERT (attention.output.dense is above)
    _rule(_tok(_FF), _FFN),
)

_UNKNOWN = Rule("", "other", "")  # no rule matched: other, but keep the layer
# Real names stay under ~150 characters; longer ones are not read. Matching costs time linear
# in the length per distinct template, so a header of long crafted names would cost minutes.
MAX_NAME_LENGTH = 256
_UNREAD = Role("other", None, "")
_LAYER_CONTAINERS = frozenset({"layers", "layer", "h", "blocks", "block", "blk"})
# ".<digits>" ending a token: the numbers cut out of a name. (A bounded {1,18} would
# halve the speed of the split; over-long numbers are refused at int() instead.)
_NUMBER = re.compile(r"\.([0-9]+)(?=\.|\Z)")
_MAX_DIGITS = 18


@lru_cache(maxsize=1 << 14)
def _resolve(dotted: str) -> tuple[str, str, int | None, int | None]:
    """Category, component, and which cut-out number (by position) is the layer and the expert.

    ``dotted`` is the template with a leading dot: ``.model.layers.#.mlp.up_proj.weight``.
    """
    lowered = dotted.lower()
    tokens = set(lowered.split("."))
    rule = next(
        (
            r
            for r in RULES
            if (r.needs is None or not r.needs.isdisjoint(tokens)) and r.pattern.search(lowered)
        ),
        _UNKNOWN,
    )
    layer_at: int | None = None
    expert_at: int | None = None
    if rule.layered:
        k = 0
        prev = ""
        for token in lowered.split("."):
            if token == "#":
                if layer_at is None and prev in _LAYER_CONTAINERS:
                    layer_at = k
                elif expert_at is None and prev == "experts":
                    expert_at = k
                k += 1
            prev = token
    return rule.category, rule.component, layer_at, expert_at


# Role(...) on a frozen dataclass sets each field through object.__setattr__; filling the
# slots directly builds the same object in about half the time, which shows at 100k+ names.
_new = object.__new__
_set_category, _set_layer, _set_component, _set_expert = (
    Role.__dict__[field].__set__ for field in ("category", "layer", "component", "expert")
)


def classify(name: str) -> Role:
    """The role of the tensor called ``name``; unknown names are ``other``. Never raises."""
    if len(name) > MAX_NAME_LENGTH:
        return _UNREAD
    if "#" in name:  # '#' marks numbers in templates; keep a literal one from posing as one
        name = name.replace("#", "?")
    parts = _NUMBER.split("." + name)
    category, component, layer_at, expert_at = _resolve(".#".join(parts[0::2]))
    role = _new(Role)
    _set_category(role, category)
    _set_component(role, component)
    layer = expert = None
    if layer_at is not None and len(digits := parts[2 * layer_at + 1]) <= _MAX_DIGITS:
        layer = int(digits)
    if expert_at is not None and len(digits := parts[2 * expert_at + 1]) <= _MAX_DIGITS:
        expert = int(digits)
    _set_layer(role, layer)
    _set_expert(role, expert)
    return role
