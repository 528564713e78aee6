"""What a tensor is for: its category, its block, and which part of the model holds it.

:func:`classify` maps a tensor name (Hugging Face, PEFT, Meta/Mistral ``consolidated``,
or GGUF spelling) to a :class:`Role`: a category from :data:`CATEGORIES`, the block it
belongs to, a short component label, and the model part (:mod:`paramtool.analysis.parts`).
:func:`classify_all` does the same for a whole checkpoint and then settles, from shapes
and the checkpoint's other tensors, what names alone leave unknown.

Names are read as words: a name is cut into module names at dots, and each module name
into words at underscores and CamelCase (``LocalSelfAttention`` is local, self,
attention). A rule matches whole module names or whole words, never part of a word:
``norm`` is a word of ``norm_1`` and ``input_layernorm`` is ``layernorm``, but
``roberta_prelayernorm`` holds no norm. The rules are one ordered table. Most describe the
module that owns a tensor (a norm, a projection, an embedding): of these the innermost
match wins, so that DBRX's ``norm_attn_norm.attn.Wqkv`` is attention, and a tie on one
module name goes to the earlier rule. Some name a *container* (an attention block, an MLP,
a projector, a patch embedding), whose kind wins over a module of another kind inside it
(a ``gate_proj`` in ``self_attn`` gates attention) but not over norms and convolutions. A
few *own* everything beneath them wherever they sit (PEFT deltas, quantization metadata,
routers and experts, poolers, classifiers, head transforms, rotary buffers): the first of
those that matches wins outright. See :func:`_match`.

Speed: numbers are cut out of the name first (``model.layers.7.mlp.up_proj`` ->
``model.layers.#.mlp.up_proj``), so the rules run once per *template*, a few hundred per
checkpoint, while the per-name work is one split and a cached lookup. Names are not cached
themselves: a bounded cache costs more on 100k distinct names than it saves. Names over
:data:`MAX_NAME_LENGTH` characters are ``other`` unread, so that hostile headers cannot
make matching slow.

Layer index: the first number after a block container (``layers``, ``layer``, ``h``,
``blocks``, ``block``, ``blk``). In encoder-decoder models (T5, BART, Whisper) encoder
block 3 and decoder block 3 both report layer 3; the name still tells them apart.
DeepSeek's multi-token-prediction module is stored as one more block (``model.layers.61``)
and reports that index; :func:`classify_all` puts it in the ``mtp`` part. Tensors of a
part named by a module (a vision tower, a projector, ``mtp.*``) report no layer, so that
per-layer tallies describe the language model.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Hashable, Sequence
from functools import lru_cache
from itertools import compress, repeat
from operator import and_, attrgetter, getitem, itemgetter
from typing import Literal, Protocol

from paramtool.analysis.parts import LANGUAGE_MODEL, PARTS, Part, part_of_tokens
from paramtool.frozen import dataclass

CATEGORIES = ("embedding", "attention", "feed_forward", "norm", "adapter", "quantization", "other")
__all__ = ["CATEGORIES", "PARTS", "Part", "Role", "Shaped", "classify", "classify_all"]


@dataclass(frozen=True, slots=True)
class Role:
    """What one tensor is: category, block, a short component label, expert, and part."""

    category: str  # one of CATEGORIES
    layer: int | None  # block index; None outside the blocks
    component: str  # "q", "up", "lm_head", "lora_A", "scale", ...; "" when nothing finer
    expert: int | None = None  # routed expert index when the name carries one
    part: Part = LANGUAGE_MODEL  # one of parts.PARTS


class Shaped(Protocol):
    """What :func:`classify_all` reads of a tensor (``records.TensorInfo`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> tuple[int, ...]: ...


Kind = Literal["owner", "container", "module"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table: a regex over the numberless name, and what a match means.

    ``kind``: ``owner``, the rule wins wherever it matches (the first such rule in the
    table); ``container``, the rule names a module that holds others (an attention block,
    an MLP, a projector); ``module``, the rule names the module that holds the tensor (a
    norm, a projection, an embedding table). See :func:`_match`.
    ``needs``: words one of which a name must hold for the rule to match at all; a name
    without any skips the rule unmatched, and uncompiled. (A CLI run compiles only the
    rules its names could meet: compiling all of them costs more than reading a 191-shard
    header.) None: no such words (the rule is always tried).
    ``plain``: for a :func:`tok` or :func:`word` rule whose alternatives are all plain words,
    those alternatives (a word rule's between underscores: ``_lm_head_``), and ``whole``
    which of the two it is (``tok``: whole module names): such a rule is matched by
    lookups in the name's module names (:func:`_plain_modules`), the same matches as its
    regex, which is then never compiled (a 405B run met some 45 of them: ~8 ms of compiling).
    """

    regex: str
    category: str
    component: str
    kind: Kind = "module"
    needs: frozenset[str] | None = None
    plain: frozenset[str] | None = None
    whole: bool = True

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(self.regex)  # compiled on first use; the re module keeps it


# Rules see the template lowercased, CamelCase split into words, with a leading dot:
# ``.model.layers.#.mlp.up_proj.weight``, ``.encoder.block.#.layer.#.self_attention.q.weight``.
# A module name starts after a literal "\."; a word after "\." or "_". Every pattern is
# written in lowercase, without re.IGNORECASE.
_END = r"(?=\.|\Z)"  # end of a module name (\Z, not $, so a trailing newline is not an end)
_WEND = r"(?=[._]|\Z)"  # end of a word
_PLAIN = re.compile(r"[a-z0-9_]+")


def _plain(alternatives: str) -> frozenset[str] | None:
    """The alternatives when all are plain words, else None."""
    alts = alternatives.split("|")
    return frozenset(alts) if all(_PLAIN.fullmatch(a) for a in alts) else None


def _needs(alternatives: str) -> frozenset[str] | None:
    """The first words of ``alternatives`` when all are plain words, else None."""
    alts = _plain(alternatives)
    return None if alts is None else frozenset(a.split("_")[0] for a in alts)


def tok(
    alternatives: str, category: str, component: str = "", kind: Kind = "module", needs: str = ""
) -> Rule:
    """Any one of ``alternatives`` as a whole module name; ``needs`` as for :func:`raw`,
    for alternatives that are not all plain words."""
    regex = f"\\.(?:{alternatives}){_END}"
    known = frozenset(needs.split("|")) if needs else _needs(alternatives)
    return Rule(regex, category, component, kind, known, _plain(alternatives))


def word(alternatives: str, category: str, component: str = "", kind: Kind = "module") -> Rule:
    """Any one of ``alternatives`` as whole words of a module name (``attn`` in
    ``self_attn``, ``lm_head`` in ``generator_lm_head``)."""
    regex = f"[._](?:{alternatives}){_WEND}"
    alts = _plain(alternatives)
    plain = None if alts is None else frozenset(f"_{a}_" for a in alts)
    return Rule(regex, category, component, kind, _needs(alternatives), plain, whole=False)


def under(context: str, alternatives: str, category: str, component: str = "") -> Rule:
    """A module named one of ``alternatives`` at most two modules inside a module holding a
    word of ``context`` (``attention.self.query``, ``multi_head_attention.dense``).

    Bounded, so that a rule stays linear in the name's length (nothing real needs more).
    """
    regex = f"[._](?:{context})(?:_[^.]*)?\\.(?:[^.]+\\.){{0,2}}?(?:{alternatives}){_END}"
    return Rule(regex, category, component, "module", _needs(context))


def raw(regex: str, category: str, component: str, kind: Kind = "module", needs: str = "") -> Rule:
    """A rule written as a regex; ``needs``: its words, '|'-separated, or '' for none known."""
    return Rule(regex, category, component, kind, frozenset(needs.split("|")) if needs else None)


_AD, _Q, _O, _N, _EM, _AT, _FFN = (
    "adapter",
    "quantization",
    "other",
    "norm",
    "embedding",
    "attention",
    "feed_forward",
)
# Words that make a module an attention block (linear attention too: ``linear_attn``).
_ATTN = "attention|attn|selfattention|encdecattention|crossattention|retention"
# Token mixers in attention's place (Mamba, RWKV time mixing): modules, not containers, since
# NemotronH calls every block's module "mixer", its MLPs too, and "mamba" prefixes whole models.
_MIXER = "mixer|mamba|ssm|time_mix|time_mixer|token_mixer|mlstm|slstm"
# Words that make a module a feed-forward network.
_FF = (
    "mlp|ffn|ffw|ff|feed_forward|feedforward|densereludense|dense_relu_dense|dense_act_dense|"
    "dense_gated_act_dense|layer_ff|moe|block_sparse_moe|channel_mix|channel_mixer"
)

RULES: tuple[Rule, ...] = (
    # --- Rules that own what is beneath them --------------------------------------------
    # PEFT deltas first: the adapter category wins over the module it wraps.
    tok("lora_a", _AD, "lora_A", kind="owner"),
    tok("lora_b", _AD, "lora_B", kind="owner"),
    tok("lora_embedding_a", _AD, "lora_embedding_A", kind="owner"),
    tok("lora_embedding_b", _AD, "lora_embedding_B", kind="owner"),
    tok("lora_magnitude_vector", _AD, "lora_magnitude", kind="owner"),
    tok("lora_e", _AD, "lora_E", kind="owner"),  # AdaLoRA singular values
    tok(r"ia3_l|ia3_\w+", _AD, "ia3", kind="owner", needs="ia3"),
    tok(r"hada_\w+", _AD, "loha", kind="owner", needs="hada"),
    tok(r"lokr_\w+", _AD, "lokr", kind="owner", needs="lokr"),
    tok("oft_r|oft_s|boft_r|boft_s", _AD, "oft", kind="owner"),
    tok(r"vera_\w+", _AD, "vera", kind="owner", needs="vera"),
    tok("prompt_embeddings|prompt_encoder|prefix_encoder", _AD, "prompt", kind="owner"),
    tok("modules_to_save", _AD, "modules_to_save", kind="owner"),
    # Quantization metadata. The packed weight itself (qweight, *_blocks, weight_packed) is
    # not listed: it falls through to its module's rule.
    raw(  # MLX affine quantization keeps its zero points as "biases" beside "scales"
        r"\.(?:qzeros|weight_zero_point|zero_point)(?=\.|\Z)|\.biases\Z",
        _Q,
        "zero_point",
        "owner",
        "qzeros|zero|biases",
    ),
    tok("g_idx|weight_g_idx", _Q, "g_idx", kind="owner"),
    tok(
        r"scales|\w+_scales|weight_scale|weight_scale_inv|weight_scale_2|scb",
        _Q,
        "scale",
        "owner",
        needs="scales|scale|scb",
    ),
    tok("input_scale|output_scale", _Q, "input_scale", kind="owner"),
    tok("k_scale|v_scale|kv_scale|q_scale|prob_scale", _Q, "kv_scale", kind="owner"),
    tok("weight_global_scale|input_global_scale", _Q, "global_scale", kind="owner"),
    tok("nested_absmax", _Q, "nested_absmax", kind="owner"),
    tok("absmax", _Q, "absmax", kind="owner"),
    tok("nested_quant_map", _Q, "nested_quant_map", kind="owner"),
    tok("quant_map", _Q, "quant_map", kind="owner"),
    tok("quant_state", _Q, "quant_state", kind="owner"),
    tok("weight_format", _Q, "weight_format", kind="owner"),
    tok("weight_shape", _Q, "shape", kind="owner"),
    # I-BERT: integer copies of a weight, their scaling factors, activation ranges.
    tok("weight_integer|bias_integer", _Q, "integer", kind="owner"),
    tok("act_scaling_factor|fc_scaling_factor|weight_scaling_factor", _Q, "scale", kind="owner"),
    tok("x_min|x_max", _Q, "range", kind="owner"),
    # Buffers that are not weights.
    tok("inv_freq|rotary_emb|rope_freqs|freqs_cis", _O, "rotary", kind="owner"),
    raw(r"\.(?:attn|attention)\.(?:masked_)?bias\Z", _O, "mask", "owner", "attn|attention"),
    # MoE: shared experts, routers (a Switch router's "classifier" included), routed experts.
    tok(
        r"shared_experts|shared_expert|shared_expert_gate|shared_mlp|ffn_\w+_shexp",
        _FFN,
        "shared_expert",
        kind="owner",
        needs="shared|shexp",
    ),
    tok("router|e_score_correction_bias|ffn_gate_inp|exp_probs_b", _FFN, "router", kind="owner"),
    Rule(
        r"\.(?:experts|switch_mlp|ffn_\w+_exps)(?=\.|\Z)"  # MLX stacks experts in switch_mlp
        + r"|[._]block_sparse_moe\.(?:[^.]+\.){0,2}?(?:input_linear|output_linear)(?=\.|\Z)",
        _FFN,
        "expert",
        "owner",
        frozenset({"experts", "switch", "exps", "sparse"}),
    ),
    # Heads and poolers: what is inside them is theirs (a head's dense and LayerNorm).
    tok("pooler", _O, "pooler", kind="owner"),
    raw(
        r"\.cls\.predictions\.transform(?=\.|\Z)"
        r"|[._]predictions\.(?:transform|dense|layer_norm|layernorm|dense_prediction)(?=\.|\Z)"
        r"|[._]lm_head\.(?:dense|layer_norm|layernorm|ln)(?=\.|\Z)"
        r"|\.head\.(?:dense|norm|layer_norm)(?=\.|\Z)"
        r"|\.vocab_transform(?=\.|\Z)",
        _O,
        "head_transform",
        "owner",
        "predictions|lm|head|vocab|cls",
    ),
    tok("classifier|score|qa_outputs|seq_relationship|sop_classifier", _O, "classifier", "owner"),
    # DeepSeek's MTP block projects [embedding; hidden] -> hidden.
    tok("eh_proj", _O, "mtp_projection", kind="owner"),
    # --- Rules for the module that owns a tensor: the innermost match wins --------------
    # Norms, including the ones that live inside attention.
    tok(
        "q_norm|k_norm|q_layernorm|k_layernorm|query_layernorm|key_layernorm|"
        "attn_q_norm|attn_k_norm|q_a_layernorm|kv_a_layernorm|attn_q_a_norm|"
        "attn_kv_a_norm",
        _N,
        "qk_norm",
    ),
    word(
        r"norm|norm\d+|layernorm\d*|layrnorm|rmsnorm|groupnorm|batchnorm|enorm|hnorm|ln|ln\d+|lnf",
        _N,
        "norm",
    ),
    # Convolution kernels (SSM mixers', audio stems') are "other" wherever they sit.
    word(r"conv|conv\d+|conv\d*d", _O, "conv"),
    # Embeddings and output heads.
    word(
        "wpe|position_embeddings|position_embedding|positions_embed|embed_positions|pos_emb|"
        "pos_embed|pos_embedding|position_embd|pos_embd",
        _EM,
        "position_embedding",
    ),
    word(
        "token_type_embeddings|token_types|segment_embedding|segment_emb",
        _EM,
        "token_type_embedding",
    ),
    tok(
        r"embed_tokens\w*|wte|word_embeddings|embed_in|tok_embeddings|token_embd|"
        "shared|embedding|emb",
        _EM,
        "token_embedding",
    ),
    raw(
        r"\.(?:lm_head|cls\.predictions|predictions)\.(?:decoder\.)?bias\Z|[._]lm_head\.bias\Z",
        _EM,
        "lm_head_bias",
        needs="lm|predictions",
    ),
    raw(
        r"[._](?:lm_head|lm_heads|embed_out|output_layer|output_projection|shared_head|"
        r"shared_head_head)(?=[._]|\Z)"
        r"|^\.(?:output|head)\.(?:weight|bias)\Z|\.cls\.predictions(?=\.|\Z)",
        _EM,
        "lm_head",
        needs="lm|embed|output|shared|head|cls",
    ),
    word(
        "tokens_embed|word_embeddings|token_embedding|embed_tokens|input_embedding|"
        "embeddings|embedding|embeds|embed|emb|embd",
        _EM,
        "token_embedding",
    ),
    # Attention projections.
    tok(
        "qkv_proj|query_key_value|c_attn|wqkv|qkv|attn_qkv|w_pack|linear_qkv|to_qkv|"
        "in_proj_weight|in_proj_bias",
        _AT,
        "qkv",
    ),
    tok("kv_proj|to_kv|wkv", _AT, "kv"),
    tok("q_a_proj|attn_q_a", _AT, "q_a"),
    tok("q_b_proj|attn_q_b", _AT, "q_b"),
    tok("kv_a_proj_with_mqa|attn_kv_a_mqa", _AT, "kv_a"),
    tok("kv_b_proj|attn_kv_b|attn_k_b|attn_v_b", _AT, "kv_b"),
    tok("q_proj|wq|attn_q|q_lin|to_q|query_proj|q_attn", _AT, "q"),
    tok("k_proj|wk|attn_k|k_lin|to_k|key_proj", _AT, "k"),
    tok("v_proj|wv|attn_v|v_lin|to_v|value_proj", _AT, "v"),
    tok("o_proj|out_proj|attn_output|out_lin|to_out", _AT, "o"),
    under(_ATTN, "q|query", _AT, "q"),
    under(_ATTN, "k|key", _AT, "k"),
    under(_ATTN, "v|value", _AT, "v"),
    under(_ATTN, "o|wo|dense|c_proj|linear_proj|proj", _AT, "o"),
    tok("relative_attention_bias", _AT, "relative_bias"),
    tok("sinks|attn_sinks", _AT, "sinks"),
    word(_ATTN, _AT, kind="container"),
    word(_MIXER, _AT),  # a mixer's own tensors (A_log, D, dt_bias, in_proj, x_proj)
    # Feed-forward: routers by position, then dense MLPs.
    under(_FF + "|mixer", "gate", _FFN, "router"),  # mlp.gate / block_sparse_moe.gate
    raw(r"\.(?:layers|layer|h|blocks|block|blk)\.#\.gate(?=\.|\Z)", _FFN, "router", needs="gate"),
    tok("gate_up_proj|ffn_gate_up", _FFN, "gate_up"),
    tok("gate_proj|ffn_gate|wi_0|w1", _FFN, "gate"),  # w1 is the gate in Llama naming
    tok("up_proj|ffn_up|wi_1|wi|w3|c_fc|fc1|dense_h_to_4h|lin1|linear_fc1", _FFN, "up"),
    tok("down_proj|ffn_down|w2|fc2|dense_4h_to_h|lin2|linear_fc2", _FFN, "down"),
    under(_FF, "c_proj|wo|dense", _FFN, "down"),  # GPT-2 mlp.c_proj, T5 wo
    under("intermediate", "dense", _FFN, "up"),  # BERT
    under("output", "dense", _FFN, "down"),  # BERT (attention.output.dense is above)
    tok("wo", _AT, "o"),  # a bare "wo" in a block (Kimi-VL); T5's DenseReluDense.wo is above
    word(_FF + "|intermediate", _FFN, kind="container"),
    # Projectors and mergers between a tower and the language model: their MLPs project.
    tok(
        "multi_modal_projector|multimodal_projector|mm_projector|projector|connector|aligner|"
        "vision_projection|visual_projection|language_projection|perceive|image_newline",
        _O,
        "projector",
        kind="container",
    ),
    word("merger", _O, "projector", kind="container"),
    # Patch embeddings (vision stems): convolutions, or projections standing in for one.
    word(
        "patch_embed|patch_embeds|patch_embedding|patch_embeddings|patch_embd|patch_embedder|"
        "embed_patches|patch_projection|patchifier",
        _O,
        "patch_embedding",
        kind="container",
    ),
)

# Real names stay under ~150 characters; longer ones are not read. Matching costs time linear
# in the length per distinct template, so a header of long crafted names would cost minutes.
MAX_NAME_LENGTH = 256
_UNREAD = Role("other", None, "")
_LAYER_CONTAINERS = frozenset({"layers", "layer", "h", "blocks", "block", "blk"})
# Module names only a multi-token-prediction layer holds (DeepSeek-V3, GLM-4.5).
_MTP_MARKERS = frozenset({"eh_proj", "enorm", "hnorm", "shared_head", "nextn"})
_STACK_NAMES = frozenset({"encoder", "decoder"})
# ".<digits>" ending a token: the numbers cut out of a name. (A bounded {1,18} would
# halve the speed of the split; over-long numbers are refused at int() instead.)
_NUMBER = re.compile(r"\.([0-9]+)(?=\.|\Z)")
_MAX_DIGITS = 18
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SPLIT_WORDS = re.compile(r"[._]")


@dataclass(frozen=True, slots=True)
class _Resolved:
    """What a template says, cached: the rule's answer and where the numbers sit."""

    category: str
    component: str
    container: str  # category of the innermost container around the tensor; '' for none
    part: Part
    layer_at: int | None  # which cut-out number (by position) is the layer
    block_at: int | None  # ... and the block, in any part (a vision tower's layers too)
    expert_at: int | None  # ... and which the routed expert
    mtp_marker: bool  # a module only an MTP layer holds
    stacked: bool  # the layer container sits inside an encoder or decoder stack


def _match(lowered: str) -> tuple[str, str, str]:
    """Category, component, and the category of the innermost container ('' for none).

    The first owner rule that matches decides. Otherwise the innermost module rule and the
    innermost container (an attention block, an MLP, a projector) are found, each by the
    module name its match ends in (the earlier rule on a tie). The module rule decides when
    it is not inside the container, when the two agree, and for norms and convolutions,
    which are what they are wherever they sit; a module rule inside a container of another
    kind is that container's (an output gate ``gate_proj`` inside ``self_attn`` is
    attention, an MLP inside a projector projects). An MLP directly inside a projector,
    with no stack of layers between them, is the projector's.
    """
    words = set(_SPLIT_WORDS.split(lowered))
    tokens = lowered.split(".")
    leaf: Rule | None = None
    leaf_at = -1
    containers: list[tuple[int, Rule]] = []
    for rule in RULES:
        if rule.needs is not None and rule.needs.isdisjoint(words):
            continue
        if rule.plain is not None:
            found = _plain_modules(rule.plain, rule.whole, tokens)
            if not found:
                continue
            if rule.kind == "owner":
                return rule.category, rule.component, ""
            if rule.kind == "container":
                containers.extend((at, rule) for at in found)
            elif found[-1] > leaf_at:
                leaf, leaf_at = rule, found[-1]
            continue
        if rule.kind == "owner":
            if rule.pattern.search(lowered):
                return rule.category, rule.component, ""
            continue
        if rule.kind == "container":
            containers.extend(
                (lowered.count(".", 0, m.end()), rule) for m in rule.pattern.finditer(lowered)
            )
            continue
        at = -1
        for m in rule.pattern.finditer(lowered):
            at = m.end()
        if at >= 0 and (module := lowered.count(".", 0, at)) > leaf_at:
            leaf, leaf_at = rule, module
    box: Rule | None = None
    box_at = -1
    for at, rule in containers:
        if at > box_at:
            box, box_at = rule, at
    if box is not None and box.category == _FFN:
        for at, rule in containers:
            if rule.category == _O and at < box_at and not _stacked_between(tokens, at, box_at):
                box = rule
                break
    if box is None:
        return (leaf.category, leaf.component, "") if leaf else ("other", "", "")
    if leaf is None or leaf_at < box_at:
        return box.category, box.component, box.category
    if (
        leaf.category == box.category
        or leaf.category == _N
        or leaf.component == "conv"
        or (
            box.category == _O
            and leaf_at > box_at
            and (leaf.category in (_AT, _EM) or _stacked_between(tokens, box_at, leaf_at))
        )
    ):
        return leaf.category, leaf.component, box.category
    return box.category, box.component, box.category


def _plain_modules(alternatives: frozenset[str], whole: bool, tokens: list[str]) -> list[int]:
    """Where a plain rule matches: the module names (by index in ``tokens``, the template cut
    at dots; the first, before the leading dot, is empty), in order, that are one of the
    ``alternatives`` (``whole``), else that hold one as whole words (each alternative is
    given between underscores: ``_a_b_`` is in ``_x_a_b_y_``, not in ``_xa_b_``), as the
    module name between underscores holds it. These are the modules the rule's
    regex matches end in, as :func:`_match` counts them: a match ``\\.alt(?=\\.|\\Z)`` is
    a whole module name, and ``[._]alt(?=[._]|\\Z)`` (no dot in ``alt``) sits in one module
    name, its words bounded by ``_`` or the name's ends.
    """
    if whole:
        return [i for i, t in enumerate(tokens) if t in alternatives]
    return [i for i, t in enumerate(tokens) if t and any(a in f"_{t}_" for a in alternatives)]


def _stacked_between(tokens: list[str], start: int, end: int) -> bool:
    """Whether a numbered block container (``layers.#``) sits between two module names."""
    return any(
        tokens[i] == "#" and tokens[i - 1] in _LAYER_CONTAINERS for i in range(start + 1, end)
    )


# Flags a template carries for classify_all's second pass.
_SETTLE = 1  # unknown by name, a convolution, or a norm (a matrix "norm" is no norm)
_MARKER = 2  # a module only an MTP layer holds
_FLAT = 4  # numbered by a layer container outside any encoder/decoder stack, in a text part
_STEM = 8  # a patch embedding or a convolution outside any block: an encoder's input stem
_Cached = tuple[str, str, Part, int | None, int | None, int, _Resolved]


@lru_cache(maxsize=1 << 14)
def _resolve(dotted: str) -> _Cached:
    """What the template ``dotted`` (with a leading dot: ``.model.layers.#.mlp.up_proj.weight``)
    says: category, component, part, which cut-out numbers are the layer and the expert,
    the flags, and the details the second pass reads."""
    lowered = _CAMEL.sub("_", dotted).lower()
    tokens = lowered.split(".")[1:]
    part, part_at = part_of_tokens(tokens)
    category, component, container = _match(lowered)
    layer_at: int | None = None
    expert_at: int | None = None
    stacked = False
    layer_tok: int | None = None  # the token index of the layer number
    k = 0
    prev = ""
    for i, token in enumerate(tokens):
        if token == "#":
            if layer_at is None and prev in _LAYER_CONTAINERS:
                layer_at, layer_tok = k, i
                stacked = any(t in _STACK_NAMES for t in tokens[:i])
            elif expert_at is None and prev == "experts":
                expert_at = k
            k += 1
        prev = token
    block_at = layer_at
    if part_at >= 0 and not (part == "mtp" and layer_tok is not None and layer_tok < part_at):
        layer_at = None  # a part named by a module has no layers of the language model
    marker = not _MTP_MARKERS.isdisjoint(tokens)
    details = _Resolved(
        category, component, container, part, layer_at, block_at, expert_at, marker, stacked
    )
    flags = 0
    if (category == "other" and not component) or component == "conv" or category == _N:
        flags |= _SETTLE
    if marker:
        flags |= _MARKER
    if layer_at is not None and not stacked and part in _TEXT:
        flags |= _FLAT
    if component in ("patch_embedding", "conv") and block_at is None:
        flags |= _STEM
    return category, component, part, layer_at, expert_at, flags, details


# Role(...) on a frozen dataclass sets each field through object.__setattr__; filling the
# slots directly builds the same object in about half the time, which shows at 100k+ names.
_new = object.__new__
_set_category, _set_layer, _set_component, _set_expert, _set_part = (
    Role.__dict__[field].__set__ for field in ("category", "layer", "component", "expert", "part")
)


def classify(name: str) -> Role:
    """The role of the tensor called ``name``, from the name alone; unknown names are
    ``other``. Never raises.

    >>> classify("model.layers.3.self_attn.q_proj.weight")
    Role(category='attention', layer=3, component='q', expert=None, part='language_model')
    """
    if len(name) > MAX_NAME_LENGTH:
        return _UNREAD
    if "#" in name:  # '#' marks numbers in templates; keep a literal one from posing as one
        name = name.replace("#", "?")
    parts = _NUMBER.split("." + name)
    category, component, part, layer_at, expert_at, _, _ = _resolve(".#".join(parts[0::2]))
    return _role(parts, category, component, part, layer_at, expert_at)


def _role(
    parts: list[str],
    category: str,
    component: str,
    part: str,
    layer_at: int | None,
    expert_at: int | None,
) -> Role:
    """The Role of a split name: ``parts`` alternates words and numbers; ``layer_at`` and
    ``expert_at`` say which number is the layer and the expert."""
    role = _new(Role)
    _set_category(role, category)
    _set_component(role, component)
    _set_part(role, part)
    layer = expert = None
    if layer_at is not None and len(digits := parts[2 * layer_at + 1]) <= _MAX_DIGITS:
        layer = int(digits)
    if expert_at is not None and len(digits := parts[2 * expert_at + 1]) <= _MAX_DIGITS:
        expert = int(digits)
    _set_layer(role, layer)
    _set_expert(role, expert)
    return role


def classify_all(
    tensors: Sequence[Shaped],
    *,
    hidden: int | None = None,
    vocab: int | None = None,
    num_hidden_layers: int | None = None,
    names: list[str] | None = None,
    keys: Sequence[Hashable] | None = None,
) -> list[Role]:
    """The role of every tensor of one checkpoint: :func:`classify`, then what shapes and
    the other tensors settle. Never raises.

    - A name the rules do not know (``other`` with no component) is read from its shape: a
      ``vocab x hidden`` matrix (either way round) is the token embedding, or the output head
      when the checkpoint has a token embedding already; a vector of ``vocab`` (or
      ``1 x vocab``) with no other weight beside it is the output head's bias; inside a
      block, a matrix shaped like the block's named tensors of one category only is of that
      category; a vector ``hidden`` wide, alone with its kind in its module (weight, bias),
      is a norm; what is still unknown takes the category of its module's ``weight``.
    - A "norm" of two or more dimensions was named by a module around it (an adaptive
      norm's projections), not by a norm, which holds vectors: it is ``other``.
    - A "convolution" whose module's weight is a matrix is a linear layer (ConvBERT's
      ``conv_kernel_layer``): it takes the category of the module around it.
    - A layer that holds a module only an MTP block has (``eh_proj``, ``enorm``, ``hnorm``,
      ``shared_head``), or whose index is ``num_hidden_layers`` or more (the decoder's depth
      as config.json states it), is in the ``mtp`` part, every tensor of it. Layers inside an
      ``encoder``/``decoder`` stack never are (a T5 decoder may be deeper than the depth
      config.json names).

    ``hidden`` and ``vocab`` default to the shape of the token embedding (else the output
    head) that the names point at. ``names`` and ``keys`` (:func:`shape_keys` of them) are
    the tensors' names and shapes when the caller has them already.

    >>> from paramtool.records import TensorInfo
    >>> [r.category for r in classify_all([
    ...     TensorInfo("wtab.weight", "F32", (512, 64), 0, 0),
    ...     TensorInfo("blocks.0.ln_a.weight", "F32", (64,), 0, 0),
    ... ], hidden=64, vocab=512)]
    ['embedding', 'norm']
    """
    names = list(map(_NAME, tensors)) if names is None else names
    if keys is None:
        keys = shape_keys(names)
    pending: list[int] = []
    markers: set[int] = set()  # MTP layers
    stems: list[int] = []
    deep = num_hidden_layers if num_hidden_layers is not None else 1 << 62
    # Roles are shared: names of one answer (category, component, part, flags, which numbers
    # they carry, in which order) and the same numbers are one Role. Keyed by the text from
    # the first number to the last (``3.mlp.experts.107``): its leading and trailing digits
    # are the two numbers, so one text is one pair of numbers, and a hit reads no int.
    # A name's shape (:func:`shape_keys`) is resolved once, at one of its
    # names: names of one shape share their template, and their numbers sit at the same
    # places. A digit inside a word (``fc1``, ``w2``) is no number: where a shape has such
    # digits, its names are told apart by them (the text from the first such digit to the
    # last), so ``fc1`` and ``fc2`` are two shapes. Then each name's Role is looked up by
    # its shape and its numbers' text, column by column in C.
    firsts = dict(zip(reversed(keys), reversed(names), strict=True))  # each shape's first name
    cut: dict[Hashable, slice] = {}
    entries: dict[Hashable, _Entry] = {}
    general: set[Hashable] = set()
    listed: set[Hashable] = set()  # shapes whose names are looked at one by one (flags)
    # Each shape's pool of Roles by a small int (a shape without numbers: a pool of its
    # own, holding its one Role); the shape's entry makes what its pool lacks.
    pool_at: dict[Hashable, int] = {}
    pool_ids: dict[_Pool, int] = {}  # a pool's answer -> its int
    makers: list[_Entry | None] = []
    by_pair: dict[tuple[int, str], Role] = {}
    for key, name in firsts.items():
        entry = _entry_of(name) if len(name) <= MAX_NAME_LENGTH else None
        cut[key] = _NOTHING
        if entry is None:
            general.add(key)
            pool_at[key] = len(makers)
            by_pair[len(makers), ""] = _UNREAD  # read below, a name at a time
            makers.append(None)
            continue
        entries[key] = entry
        role, a, b, pool, flags = entry[:5]
        if role is None:
            assert pool is not None  # a shape with numbers has a pool
            cut[key] = slice(a, b)
            if (at := pool_ids.get(pool)) is None:
                at = pool_ids[pool] = len(makers)
                makers.append(entry)
            pool_at[key] = at
        else:
            pool_at[key] = len(makers)
            by_pair[len(makers), ""] = role
            makers.append(None)
        if flags & (_SETTLE | _STEM):
            listed.add(key)
    pairs = list(
        zip(
            map(pool_at.__getitem__, keys),
            map(str.__getitem__, names, map(cut.__getitem__, keys)),
            strict=True,
        )
    )
    new = dict.fromkeys(pairs)  # one per pool and numbers
    if len(new) > len(by_pair):
        for pair in by_pair:
            new.pop(pair, None)
        made = list(new)
        by_pair.update(zip(made, _make_roles(makers, made, deep, markers), strict=True))
    roles: list[Role] = list(map(by_pair.__getitem__, pairs))
    if general or listed:
        wanted = general | listed
        for i in compress(range(len(keys)), map(wanted.__contains__, keys)):
            shape = keys[i]
            if shape in general:
                _general(names[i], i, tensors, roles, pending, markers, stems, deep)
            elif shape in listed:
                flags = entries[shape][4]
                if flags & _SETTLE and (roles[i].category != _N or len(tensors[i].shape) >= 2):
                    pending.append(i)
                if flags & _STEM:
                    stems.append(i)
    details = _Details(tensors)
    if pending or stems:
        _infer_and_settle(tensors, roles, details, pending, hidden, vocab)
        if stems:
            _encoder_parts(tensors, roles, details, stems)
    # MTP layers: by marker, or by index past the decoder's depth; never inside a stack.
    if markers:
        for i, role in enumerate(roles):
            if role.layer in markers and role.part != "mtp":
                cached = _resolve_of(details, i)
                if cached is not None and cached[5] & _FLAT:
                    roles[i] = _with(role, part="mtp")
    return roles


def name_keys(names: Sequence[str]) -> list[bytes]:
    """Each name's shape: its UTF-8 bytes with digits masked to ``#`` and a literal ``#`` to
    ``?`` (in C, a name at a time)."""
    return list(map(bytes.translate, map(str.encode, names, _UTF8, _SURROGATEPASS), _MASKS))


def _general(
    name: str,
    i: int,
    tensors: Sequence[Shaped],
    roles: list[Role],
    pending: list[int],
    markers: set[int],
    stems: list[int],
    deep: int,
) -> None:
    """Tensor ``i``, of a shape no template covers (digits inside words, a literal '#',
    too long): its name read on its own."""
    if len(name) > MAX_NAME_LENGTH:
        roles[i] = _UNREAD
        return
    if "#" in name:
        name = name.replace("#", "?")
    parts = _NUMBER.split("." + name)
    category, component, part, layer_at, expert_at, flags, _ = _resolve(".#".join(parts[0::2]))
    role = roles[i] = _role(parts, category, component, part, layer_at, expert_at)
    layer = role.layer
    if flags:
        if flags & _SETTLE and (category != _N or len(tensors[i].shape) >= 2):
            pending.append(i)
        if flags & _FLAT and layer is not None and (flags & _MARKER or layer >= deep):
            markers.add(layer)
        if flags & _STEM:
            stems.append(i)


def shape_keys(names: Sequence[str]) -> list[int]:
    """Each name's shape, as a small int (0, 1, ... in the order shapes first appear): its
    :func:`name_keys` mask, with the digits inside words put back (``fc1`` and ``fc2`` mask
    alike, but are not alike): where a shape has such digits (every name of it has them at
    the same places), its names are told apart by the text from their first digit inside a
    word to their last. Names of one shape have the same words, and numbers (``.12.``) at
    the same places. Ints, because every later pass looks each name's shape up again."""
    masks = name_keys(names)
    firsts = dict(zip(reversed(masks), reversed(names), strict=True))  # each shape's first
    worded = {key: span for key, name in firsts.items() if (span := _word_digits(name))}
    keys: list[Hashable] = masks  # type: ignore[assignment]
    if worded:
        texts = map(str.__getitem__, names, map(worded.get, masks, _NOTHINGS))
        keys = list(zip(masks, texts, strict=True))
    code = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    return list(map(code.__getitem__, keys))


def _word_digits(name: str) -> slice | None:
    """Where ``name``'s digits inside words lie (``1`` of ``fc1``), from the first to the
    last, or None when every digit of it is in a number (``.12.``): names of one shape
    have their digits at the same places, and the same numbers and words around them."""
    numbers = {(a - 1, b - 1) for a, b in (m.span(1) for m in _NUMBER.finditer("." + name))}
    inside = [m.span() for m in _DIGITS.finditer(name) if m.span() not in numbers]
    return slice(inside[0][0], inside[-1][1]) if inside else None


_DIGITS = re.compile("[0-9]+")
_NAME = attrgetter("name")
_NOTHING = slice(0, 0)
_NOTHINGS = repeat(_NOTHING)
_UTF8 = repeat("utf-8")
_SURROGATEPASS = repeat("surrogatepass")


# Digits to '#', and a literal '#' to '?' (as classify reads it): a name's shape.
_MASK = bytes.maketrans(b"0123456789#", b"##########?")
_MASKS = repeat(_MASK)
Span = tuple[int, int] | None
# A shape's answer: a Role shared by every name of it when it has no numbers to read (else
# None); where the text keying its pool of Roles starts and ends, the pool (the answer its
# names share: category, component, part, flags, which numbers, which first; None without
# numbers), the flags; the category, component and part; where the layer and expert sit.
_Pool = tuple[str, str, str, int, bool, bool, str]
_Entry = tuple[Role | None, int, int, _Pool | None, int, str, str, Part, Span, Span]


def _entry_of(name: str) -> _Entry | None:
    """What every name of ``name``'s shape (:func:`shape_keys`: digits inside words kept)
    is; None when the name holds a literal '#' (the general path reads those)."""
    if "#" in name:
        return None
    dotted = "." + name
    spans = [m.span(1) for m in _NUMBER.finditer(dotted)]
    parts = _NUMBER.split(dotted)
    category, component, part, layer_at, expert_at, flags, _ = _resolve(".#".join(parts[0::2]))

    def span(at: int | None) -> Span:
        if at is None:
            return None
        a, b = spans[at]
        return (a - 1, b - 1) if b - a <= _MAX_DIGITS else None

    layer_span, expert_span = span(layer_at), span(expert_at)
    numbered = [s for s in (layer_span, expert_span) if s is not None]
    if not numbered:
        role = _role(parts, category, component, part, None, None)
        return role, 0, 0, None, flags, category, component, part, None, None
    start, end = min(s[0] for s in numbered), max(s[1] for s in numbered)
    first = "layer" if layer_span is not None and layer_span[0] == start else "expert"
    pool = (category, component, part, flags, layer_span is None, expert_span is None, first)
    return None, start, end, pool, flags, category, component, part, layer_span, expert_span


def _make_roles(
    makers: list[_Entry | None], pairs: list[tuple[int, str]], deep: int, markers: set[int]
) -> list[Role]:
    """The Role of each ``(pool, text)``: the names of a shape of that pool whose text from
    their first number to their last is ``text`` (its leading and trailing digits are the
    two numbers, whichever shape of the pool it comes from; which is the layer and which
    the expert: the pool's entry says). Made column by column, as TensorInfo's records: a
    frontier MoE has a Role for every (layer, expert). An MTP layer they number is added
    to ``markers``."""
    entries: list[_Entry] = list(map(makers.__getitem__, map(_PAIR_POOL, pairs)))  # type: ignore[arg-type]
    texts = list(map(_PAIR_TEXT, pairs))
    roles = list(map(_new, repeat(Role, len(pairs))))
    for setter, field in ((_set_category, 5), (_set_component, 6), (_set_part, 7)):
        deque(map(setter, roles, map(itemgetter(field), entries)), maxlen=0)
    # The leading and the trailing number (the same one where the text is one number).
    numbers = list(
        zip(
            repeat(None),
            map(int, map(_FIRST_PART, map(str.partition, texts, _DOTS))),
            map(int, map(_LAST_PART, map(str.rpartition, texts, _DOTS))),
        )
    )
    # Which of them is each pool's layer and expert: 0 none, 1 the leading, 2 the trailing.
    picks = {id(e): _picks(e) for e in makers if e is not None}
    layer_at = {k: v[0] for k, v in picks.items()}
    expert_at = {k: v[1] for k, v in picks.items()}
    ids = list(map(id, entries))
    layers: list[int | None] = list(map(getitem, numbers, map(layer_at.__getitem__, ids)))
    deque(map(_set_layer, roles, layers), maxlen=0)
    deque(map(_set_expert, roles, map(getitem, numbers, map(expert_at.__getitem__, ids))), maxlen=0)
    # MTP layers: a marker pool's every layer, a plain flat one's from ``deep`` on.
    flags: list[int] = list(map(itemgetter(4), entries))
    both = _FLAT | _MARKER
    marked = set(compress(layers, map(both.__eq__, map(and_, flags, repeat(both)))))
    markers.update(x for x in marked if x is not None)
    flat = compress(layers, map(_FLAT.__and__, flags))
    markers.update(x for x in flat if x is not None and x >= deep)
    return roles


def _picks(entry: _Entry) -> tuple[int, int]:
    """Which number of its text (1 the leading, 2 the trailing, 0 none) is the layer and
    which the expert, for an entry whose Roles are made per text (:func:`_make_roles`)."""
    _, at, _, _, _, _, _, _, ls, es = entry
    if ls and es:
        return (1, 2) if ls[0] == at else (2, 1)
    return (1, 0) if ls else (0, 1)


_PAIR_POOL = itemgetter(0)
_PAIR_TEXT = itemgetter(1)
_FIRST_PART = itemgetter(0)
_LAST_PART = itemgetter(2)
_DOTS = repeat(".")


def _resolve_of(details: _Details, i: int) -> _Cached | None:
    """The cached entry of tensor ``i``'s template."""
    r, parts = details.parts(i)
    return _resolve(".#".join(parts[0::2])) if r is not None else None


class _Details:
    """What each tensor's template says beyond its role, looked up again on demand (cached
    per template): the common case, every name known, never asks."""

    def __init__(self, tensors: Sequence[Shaped]) -> None:
        self.tensors = tensors
        self._seen: dict[int, tuple[_Resolved | None, list[str]]] = {}

    def parts(self, i: int) -> tuple[_Resolved | None, list[str]]:
        """The details of tensor ``i`` and its name cut at its numbers."""
        if (seen := self._seen.get(i)) is None:
            name = self.tensors[i].name
            if len(name) > MAX_NAME_LENGTH:
                seen = (None, [])
            else:
                parts = _NUMBER.split("." + name.replace("#", "?"))
                seen = (_resolve(".#".join(parts[0::2]))[6], parts)
            self._seen[i] = seen
        return seen

    def __getitem__(self, i: int) -> _Resolved | None:
        return self.parts(i)[0]

    def all(self) -> list[_Resolved | None]:
        return [self[i] for i in range(len(self.tensors))]


def _infer_and_settle(
    tensors: Sequence[Shaped],
    roles: list[Role],
    details: _Details,
    pending: list[int],
    hidden: int | None,
    vocab: int | None,
) -> None:
    """The width and vocabulary the names point at, where not given; then the second pass."""
    if not pending:
        return
    if vocab is None:  # an output head's bias is as long as the vocabulary
        vocab = next(
            (
                tensors[i].shape[0]
                for i, r in enumerate(roles)
                if r.component == "lm_head_bias" and len(tensors[i].shape) == 1 and r.part in _TEXT
            ),
            None,
        )
    if hidden is None or vocab is None:
        for want in ("token_embedding", "lm_head"):
            named = next(
                (
                    tuple(tensors[i].shape)
                    for i, r in enumerate(roles)
                    if r.component == want and len(tensors[i].shape) == 2 and r.part in _TEXT
                ),
                None,
            )
            if named is not None:
                vocab, hidden = vocab or max(named), hidden or min(named)
                break
    if hidden is None:  # the width most norms have
        widths = Counter(
            tensors[i].shape[0]
            for i, r in enumerate(roles)
            if r.category == _N and len(tensors[i].shape) == 1 and r.part in _TEXT
        )
        hidden = widths.most_common(1)[0][0] if widths else None
    shapes = [tuple(t.shape) for t in tensors]
    _Settle(tensors, roles, shapes, details, hidden, vocab).run(pending)


def _encoder_parts(
    tensors: Sequence[Shaped], roles: list[Role], details: _Details, stems: list[int]
) -> None:
    """An ``encoder`` stack whose input is a patch embedding, or a 2-D convolution, is a
    vision encoder (Pix2Struct, vision encoder-decoders); one whose input is a 1-D
    convolution is an audio encoder (Whisper, Speech2Text). Found by the stems' kernels,
    outside the stack's blocks; the stack's every tensor moves to that part."""
    stacks: dict[str, Part] = {}
    for i in stems:
        t, role, r = tensors[i], roles[i], details[i]
        if role.component not in ("patch_embedding", "conv") or r is None:
            continue  # the second pass read a linear "convolution" as its container's
        if r.part != LANGUAGE_MODEL and not _named_by_patches(t.name):
            continue  # a stem inside a named tower (a vision_tower in the encoder) is the tower's
        head, sep, _ = t.name.partition("encoder.")
        if not sep or head not in ("", "model.") or not t.name.endswith(".weight"):
            continue
        if role.component == "patch_embedding" or len(t.shape) >= 4:
            stacks.setdefault(head + sep, "vision_encoder")
        elif len(t.shape) == 3:
            stacks.setdefault(head + sep, "audio_encoder")
    if not stacks:
        return
    for i, t in enumerate(tensors):
        if roles[i].part == LANGUAGE_MODEL:
            head, sep, _ = t.name.partition("encoder.")
            part = stacks.get(head + sep) if sep else None
            if part is not None:
                roles[i] = _with(roles[i], part=part, layer=None)


def _named_by_patches(name: str) -> bool:
    """Whether the part of ``name`` is named by its patch embedding itself."""
    tokens = _CAMEL.sub("_", name).lower().split(".")
    _, at = part_of_tokens(tokens)
    return at >= 0 and not {"patch", "patches"}.isdisjoint(tokens[at].split("_"))


_TEXT = (LANGUAGE_MODEL, "mtp")
_HEAD_WORDS = frozenset({"head", "out", "output", "logits", "decoder", "proj", "projector"})
_UNTELLING = frozenset({"other", "adapter", "quantization"})
_NORM_PARAMS = frozenset({"weight", "bias", "gamma", "beta", "scale"})


def _with(role: Role, **changes: object) -> Role:
    fields: dict[str, object] = {
        "category": role.category,
        "layer": role.layer,
        "component": role.component,
        "expert": role.expert,
        "part": role.part,
    }
    fields.update(changes)
    return Role(**fields)  # type: ignore[arg-type]


class _Settle:
    """The second pass of :func:`classify_all`, over the tensors names left unsettled.

    The indexes it needs (tensors by module, shapes by block) are built on first use: a
    checkpoint whose names are all known pays nothing.
    """

    def __init__(
        self,
        tensors: Sequence[Shaped],
        roles: list[Role],
        shapes: list[tuple[int, ...]],
        resolved: _Details,
        hidden: int | None,
        vocab: int | None,
    ) -> None:
        self.tensors, self.roles, self.shapes, self.resolved = tensors, roles, shapes, resolved
        self.hidden, self.vocab = hidden, vocab
        self._modules: dict[str, tuple[int | None, int | None]] | None = None
        self._blocks: dict[str, dict[tuple[int, ...], set[str]]] | None = None

    def run(self, pending: list[int]) -> None:
        roles = self.roles
        self.has_token_embedding = any(
            r.component == "token_embedding" and r.part in _TEXT for r in roles
        )
        still = [i for i in pending if not self._settle(i)]
        for i in still:  # what is left takes the category of its module's weight
            weight = self._weight_of(i)
            if weight is not None and roles[weight].category not in _UNTELLING:
                roles[i] = _with(roles[i], category=roles[weight].category, component="")

    def _settle(self, i: int) -> bool:
        """Settle tensor ``i`` from its shape; False when nothing does."""
        role, shape = self.roles[i], self.shapes[i]
        r = self.resolved[i]
        if role.component == "conv":
            weight = self._weight_of(i)
            matrix = self.shapes[weight] if weight is not None else shape
            if len(matrix) == 2 and r is not None and r.container in (_AT, _FFN):
                self.roles[i] = _with(role, category=r.container, component="")
            return True
        if role.category == _N:  # a matrix a module around it called a norm: not a norm
            self.roles[i] = _with(role, category=_O, component="")
            return True
        vocab, hidden = self.vocab, self.hidden
        if role.part in _TEXT and vocab and hidden and vocab != hidden:
            if len(shape) == 2 and sorted(shape) == sorted((vocab, hidden)):
                name = _CAMEL.sub("_", self.tensors[i].name).lower()
                head = self.has_token_embedding or not _HEAD_WORDS.isdisjoint(
                    _SPLIT_WORDS.split(name)
                )
                self.has_token_embedding = self.has_token_embedding or not head
                component = "lm_head" if head else "token_embedding"
                self.roles[i] = _with(role, category=_EM, component=component)
                return True
            if shape in ((vocab,), (1, vocab)):
                weight = self._weight_of(i)
                if weight is None or (
                    len(self.shapes[weight]) == 2 and vocab in self.shapes[weight]
                ):
                    self.roles[i] = _with(role, category=_EM, component="lm_head_bias")
                    return True
        if len(shape) >= 2 and r is not None and r.block_at is not None:
            cats = self._block_shapes().get(self._block_key(i), {}).get(shape, set())
            if len(cats) == 1:
                self.roles[i] = _with(role, category=next(iter(cats)), component="")
                return True
        if len(shape) == 1 and hidden and shape[0] == hidden and self._module(i)[1] == hidden:
            self.roles[i] = _with(role, category=_N, component="norm")
            return True
        return False

    def _module(self, i: int) -> tuple[int | None, int | None]:
        """Of tensor ``i``'s module: which tensor is its ``weight``, and the width of its
        vectors when it holds only vectors of one width named as a norm's are (weight, bias,
        gamma, beta, scale); built for all modules at once, on first use."""
        if self._modules is None:
            weights: dict[str, int] = {}
            widths: dict[str, int | None] = {}
            for j, (t, shape) in enumerate(zip(self.tensors, self.shapes, strict=True)):
                module, _, leaf = t.name.rpartition(".")
                if leaf == "weight":
                    weights.setdefault(module, j)
                width = shape[0] if len(shape) == 1 and leaf in _NORM_PARAMS else None
                widths[module] = width if widths.get(module, width) == width else None
            self._modules = {m: (weights.get(m), w) for m, w in widths.items()}
        return self._modules.get(self.tensors[i].name.rpartition(".")[0], (None, None))

    def _weight_of(self, i: int) -> int | None:
        """The ``weight`` beside tensor ``i`` in its module (itself when it is one)."""
        return self._module(i)[0]

    def _block_key(self, i: int) -> str:
        r, parts = self.resolved.parts(i)
        assert r is not None and r.block_at is not None
        return ".#".join(parts[0 : 2 * r.block_at + 1 : 2]) + "." + parts[2 * r.block_at + 1]

    def _block_shapes(self) -> dict[str, dict[tuple[int, ...], set[str]]]:
        """Per block, the categories named tensors of each shape (either way round) have."""
        if self._blocks is None:
            self._blocks = {}
            for j, (role, shape, r) in enumerate(
                zip(self.roles, self.shapes, self.resolved.all(), strict=True)
            ):
                if r is None or r.block_at is None or len(shape) < 2:
                    continue
                if role.category in _UNTELLING or (role.category == _N):
                    continue
                by_shape = self._blocks.setdefault(self._block_key(j), {})
                by_shape.setdefault(shape, set()).add(role.category)
                by_shape.setdefault(shape[::-1], set()).add(role.category)
        return self._blocks
