"""Anatomy against the corpus: every tensor of every fixture recorded from a real writer.

The fixtures (``tests/fixtures/corpus/*.json``, see ``tests/corpus/README.md``) hold each
tensor's category and part as the writer's own module classes say them. Only the fixture
files are read: no torch, no transformers. Each fixture is checked twice, from names and
shapes alone, and with the model description's hidden size, vocabulary and depth, as
``breakdown`` passes them.

A tensor passes when paramtool answers what the truth says, or one of the answers
``truth.category_ambiguous`` / ``truth.part_ambiguous`` accepts. Two documented lists hold
the rest, each entry with its reason:

- :data:`DISPUTES`: the truth script read a class name wrongly, or its answer contradicts the
  README's own conventions (a model's name prefix matched a category word: ``Moe`` in
  ``Qwen3VLMoe*``, ``Rwkv`` in ``RwkvFeedForward``; ``Gate`` in ``*ForgetGate``).
- :data:`MISSES`: what names and shapes cannot tell (a vision tower saved without a prefix).

Templates listed in ``truth.unclassified`` (no module on the path says anything) accept any
category: the name is all there is.

``python tests/test_corpus_anatomy.py`` prints the accuracy table.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pytest

from paramtool.analysis.anatomy import CATEGORIES, Role, classify_all
from paramtool.analysis.model import describe
from paramtool.analysis.parts import PARTS
from paramtool.records import TensorInfo

CORPUS = Path(__file__).resolve().parent / "fixtures" / "corpus"
FIXTURES = sorted(p for p in CORPUS.glob("*.json") if p.name != "index.json")


@dataclass(frozen=True)
class Dispute:
    """An answer accepted beside the truth's, where the truth is wrong or genuinely open.

    Every condition given must hold: ``fixtures`` (names; empty: any), ``template`` (a
    regex searched in the tensor's template), ``owner`` (a regex searched in
    ``truth.owner``, ``Class.attribute``).
    """

    why: str
    accept: tuple[str, ...]
    axis: Literal["category", "part"] = "category"
    fixtures: tuple[str, ...] = ()
    template: str = ""
    owner: str = ""

    def covers(self, fixture: str, template: str, owner: str) -> bool:
        return (
            (not self.fixtures or fixture in self.fixtures)
            and (not self.template or re.search(self.template, template) is not None)
            and (not self.owner or re.search(self.owner, owner) is not None)
        )


DISPUTES: tuple[Dispute, ...] = (
    Dispute(
        "an Embedding owned by attention (relative position bias) is attention, embedding "
        "accepted, by the README; the script checks the leaf's own class first",
        ("attention",),
        template=r"relative_attention_bias",
    ),
    Dispute(
        "SigLIP's attention-pooling head: a pooler (other) by the README, attention by its class",
        ("other",),
        owner=r"MultiheadAttentionPoolingHead\.probe$",
    ),
    Dispute(
        "a forget gate inside a linear-attention mixer is the mixer's; 'Gate' in *ForgetGate "
        "made the script call it feed-forward",
        ("attention",),
        fixtures=("bailing_hybrid", "kimi_linear"),
        template=r"\.(?:attention|self_attn)\.(?:A_log|dt_bias|f_proj|f_a_proj|f_b_proj)(?:\.|$)",
    ),
    Dispute(
        "the sparse-attention indexer sits in self_attn (AXK2's identical one is attention in "
        "its own fixture); 'Sparse' in its class made the script call it feed-forward",
        ("attention",),
        fixtures=("glm_moe_dsa",),
        template=r"\.self_attn\.indexer\.",
    ),
    Dispute(
        "the model's name prefix matched a mixer word (RecurrentGemma*, Rwkv*, xLSTM*): their MLPs "
        "are feed-forward",
        ("feed_forward",),
        fixtures=("recurrent_gemma", "rwkv", "xlstm"),
        template=r"\.(?:mlp_block|feed_forward|ffn)\.",
    ),
    Dispute(
        "xLSTM's mLSTM layer is the block's token mixer (attention by the README); the truth "
        "says feed-forward",
        ("attention",),
        fixtures=("xlstm",),
        template=r"\.mlstm_layer\.",
    ),
    Dispute(
        "a projector's or merger's MLP: multimodal projectors are 'other' by the README; the "
        "truth follows class names (Qwen3VLMoe*/Glm4vMoe* hold 'Moe', *SimpleMLP, AriaProjector's "
        "FFN, MiniCPM's resampler)",
        ("other",),
        fixtures=(
            "aria",
            "glm4v_moe",
            "idefics2",
            "idefics3",
            "minicpm_ocr",
            "minicpmv4_6",
            "minicpmv4_7",
            "qwen3_vl_moe",
            "smolvlm",
        ),
        template=r"multi_modal_projector\.feed_forward|merger|connector\.modality_projection",
    ),
    Dispute(
        "the attention's output projection, inside self_attn; 'Projection' in its class made the "
        "script call it a projector",
        ("attention",),
        fixtures=("neomme",),
        template=r"\.self_attn\.output_projection\.",
    ),
    Dispute(
        "rotary frequencies and scales are buffers, not embeddings: paramtool keeps them 'other' "
        "(rotary); the truth follows the *RotaryEmbedding class",
        ("other",),
        owner=r"RotaryEmbedding\.",
    ),
    Dispute(
        "a gate of the aligner's feed-forward branch ('gate_ffw'); the truth puts it in the "
        "cross-attention module that holds it",
        ("feed_forward",),
        fixtures=("evolla",),
        template=r"\.adapter\.gate_ffw$",
    ),
    Dispute(
        "an adaptive norm's projections (input_layernorm.W_down/W_up): not a norm, and nothing in "
        "the name says more; the truth says feed-forward",
        ("other",),
        fixtures=("axk2",),
        template=r"layernorm\.W_(?:down|up)\.",
    ),
    Dispute(
        "LUKE's entity head: its bias is as long as the shrunk vocabulary (512 entities) and "
        "stands alone, as an output head's bias does",
        ("embedding",),
        fixtures=("luke",),
        template=r"^entity_predictions\.bias$",
    ),
    Dispute(
        "multi_modal_projector is a projector by its attribute; its class "
        "(AyaVisionMultiModalProjector) says Vision, which the script tests first",
        ("multimodal_projector",),
        axis="part",
        fixtures=("aya_vision",),
        template=r"^multi_modal_projector\.",
    ),
    Dispute(
        "a parameter on the model itself (query_tokens, image_newline): the README lists these "
        "as projector attributes; the script's part rule never sees the root",
        ("multimodal_projector",),
        axis="part",
        template=r"^(?:query_tokens|image_newline)$",
    ),
    Dispute(
        "Kosmos-2's image_to_text_projection joins the vision tower to the language model; the "
        "script's projector words lack 'Projection'",
        ("multimodal_projector",),
        axis="part",
        fixtures=("kosmos-2", "kosmos-2.5"),
        template=r"^image_to_text_projection\.",
    ),
    Dispute(
        "a vision adapter projecting into the language model: a projector by what it does; the "
        "script tests 'Vision' before 'Projector'",
        ("multimodal_projector",),
        axis="part",
        fixtures=("muse_glimmer",),
        template=r"\.vision_adapter\.",
    ),
)

MISSES: tuple[Dispute, ...] = (
    Dispute(
        "Granite Speech's audio encoder is called 'encoder' and fed by a Linear; its 1-D "
        "convolutions sit inside its blocks, where ConvBERT's text encoder has them too",
        ("language_model",),
        axis="part",
        fixtures=("granite_speech", "granite_speech_plus"),
        template=r"^encoder\.",
    ),
    Dispute(
        "a vision tower saved at the root, beside the language model, with no prefix "
        "(blocks.#, merger, deepstack_merger_list, pos_embed)",
        ("language_model",),
        axis="part",
        fixtures=("cosmos3_omni",),
    ),
    Dispute(
        "an aligner module called 'adapter' inside the decoder layers: nothing in its names "
        "says projector",
        ("language_model",),
        axis="part",
        fixtures=("evolla",),
        template=r"^model\.layers\.#\.adapter\.",
    ),
    Dispute(
        "an audio encoder called 'perception' / 'ctc_timestamp', its projector 'perception.proj'",
        ("language_model",),
        axis="part",
        fixtures=("nemo_speechlm",),
        template=r"^(?:perception|ctc_timestamp)\.",
    ),
    Dispute(
        "projectors named 'mlp_AR' and 'mlp1': the names say MLP, the classes say projector",
        ("language_model",),
        axis="part",
        fixtures=("paddleocr_vl", "qianfan_ocr"),
        template=r"^(?:mlp_AR|mlp1)\.",
    ),
    Dispute(
        "projectors named 'mlp_AR' (PaddleOCR-VL) and 'vision_adapter' (Muse Glimmer): the "
        "names say MLP; the truth says other (a projector) for the first",
        ("feed_forward",),
        fixtures=("paddleocr_vl", "muse_glimmer"),
        template=r"^(?:mlp_AR|model\.vision_adapter)\.",
    ),
    Dispute(
        "pi0's action-time MLP embeds actions and time; its names say MLP",
        ("feed_forward",),
        fixtures=("pi0",),
        template=r"^action_time_mlp_(?:in|out)\.",
    ),
    Dispute(
        "two learned special-token embeddings in an audio tower, named '..._token' (an Embedding "
        "by class)",
        ("other",),
        fixtures=("qwen2_5_omni_thinker",),
        template=r"\.audio_bos_eos_token\.",
    ),
    Dispute(
        "a learned silence vector named '..._emb' (its class says nothing; 'emb' says embedding)",
        ("embedding",),
        fixtures=("nemo_speechlm",),
        template=r"\.learnable_sil_emb$",
    ),
)


def template(name: str) -> str:
    """A name with its numbers cut out, as the fixtures key their templates."""
    return re.sub(r"(?<=\.)\d+(?=\.|$)", "#", name)


@cache
def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def tensors_of(fixture: Mapping[str, Any]) -> list[TensorInfo]:
    return [TensorInfo(n, dtype, tuple(shape), 0, 0) for n, dtype, shape in fixture["tensors"]]


def context(fixture: Mapping[str, Any], tensors: list[TensorInfo]) -> dict[str, int | None]:
    """What breakdown passes: the description's width, vocabulary and decoder depth."""
    config = fixture.get("config")
    if not config:
        return {}
    d = describe(config, tensors)
    layers = d.layers if d.kind == "decoder" else None
    return {"hidden": d.hidden_size, "vocab": d.vocab_size, "num_hidden_layers": layers}


@dataclass(frozen=True)
class Verdict:
    name: str
    template: str
    parameters: int
    got: Role
    category: str  # the truth's
    part: str
    category_ok: bool
    part_ok: bool
    how: str  # truth | ambiguous | unclassified | dispute | miss | wrong (worst of both axes)

    @property
    def ok(self) -> bool:
        return self.category_ok and self.part_ok


_RANK = {"truth": 0, "ambiguous": 1, "unclassified": 2, "dispute": 3, "miss": 4, "wrong": 5}


def _judge(
    got: str, want: str, accepted: list[str], axis: str, where: tuple[str, str, str, bool]
) -> str:
    """How an answer passes on one axis; ``where``: fixture, template, owner, unclassified."""
    fixture, tmpl, owner, unclassified = where
    if got == want:
        return "truth"
    if got in accepted:
        return "ambiguous"
    if axis == "category" and unclassified:
        return "unclassified"
    for table, how in ((DISPUTES, "dispute"), (MISSES, "miss")):
        if any(
            d.axis == axis and got in d.accept and d.covers(fixture, tmpl, owner) for d in table
        ):
            return how
    return "wrong"


def verdicts(path: Path, with_context: bool) -> Iterator[Verdict]:
    """Each tensor of one fixture against its truth."""
    fixture = load(path)
    name = fixture["name"]
    truth = fixture["truth"]
    tensors = tensors_of(fixture)
    roles = classify_all(tensors, **(context(fixture, tensors) if with_context else {}))
    categories: Mapping[str, str] = truth["category"]
    ambiguous: Mapping[str, list[str]] = truth.get("category_ambiguous", {})
    parts: Mapping[str, str] = truth.get("part", {})
    part_ambiguous: Mapping[str, list[str]] = truth.get("part_ambiguous", {})
    owners: Mapping[str, str] = truth.get("owner", {})
    unclassified = {u.split(":")[0] for u in truth.get("unclassified", [])}
    for t, role in zip(tensors, roles, strict=True):
        tmpl = template(t.name)
        owner = owners.get(tmpl, "")
        category = categories[t.name]
        part = parts.get(t.name, truth.get("part_default", "language_model"))

        where = (name, tmpl, owner, tmpl in unclassified)
        how_c = _judge(role.category, category, ambiguous.get(t.name, []), "category", where)
        how_p = _judge(role.part, part, part_ambiguous.get(t.name, []), "part", where)
        yield Verdict(
            t.name,
            tmpl,
            t.parameters,
            role,
            category,
            part,
            how_c != "wrong",
            how_p != "wrong",
            max(how_c, how_p, key=_RANK.__getitem__),
        )


def test_the_corpus_is_there() -> None:
    assert len(FIXTURES) >= 300, "tests/fixtures/corpus: run tests/corpus/make_corpus.py"


@pytest.mark.parametrize("with_context", [False, True], ids=["names", "described"])
@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_every_tensor_matches_its_truth(path: Path, with_context: bool) -> None:
    wrong = [v for v in verdicts(path, with_context) if not v.ok]
    assert not wrong, "\n".join(
        f"{v.name}: got {v.got.category}/{v.got.part} ({v.got.component or '-'}), "
        f"truth {v.category}/{v.part}"
        for v in wrong[:20]
    )


def test_documented_entries_are_still_needed() -> None:
    """Every dispute and miss still covers some tensor: fixed truth retires its entry."""
    used: set[int] = set()
    for path in FIXTURES:
        fixture = load(path)
        for v in verdicts(path, with_context=False):
            if v.how not in ("dispute", "miss"):
                continue
            owner = fixture["truth"].get("owner", {}).get(v.template, "")
            for i, d in enumerate(DISPUTES + MISSES):
                got = v.got.category if d.axis == "category" else v.got.part
                if got in d.accept and d.covers(fixture["name"], v.template, owner):
                    used.add(i)
    stale = [d.why for i, d in enumerate(DISPUTES + MISSES) if i not in used]
    assert not stale, stale


def test_every_answer_is_a_known_value() -> None:
    for path in FIXTURES:
        for v in verdicts(path, with_context=True):
            assert v.got.category in CATEGORIES and v.got.part in PARTS, v


def table() -> str:
    """The accuracy table: per task, tensors and parameters by verdict."""
    rows: dict[str, Counter[str]] = {}
    for path in FIXTURES:
        fixture = load(path)
        group = "peft" if "peft_type" in fixture else str(fixture.get("task") or "other")
        acc = rows.setdefault(group, Counter())
        for v in verdicts(path, with_context=True):
            acc["tensors"] += 1
            acc["parameters"] += v.parameters
            acc[v.how] += 1
            if v.how in ("dispute", "miss", "wrong"):
                acc[f"{v.how}_parameters"] += v.parameters
        acc["fixtures"] += 1
    hows = ("truth", "ambiguous", "unclassified", "dispute", "miss", "wrong")
    out = ["| group | fixtures | tensors | " + " | ".join(hows) + " |"]
    out.append("| --- " * (3 + len(hows)) + "|")
    total: Counter[str] = Counter()
    for group, acc in sorted(rows.items()):
        total.update(acc)
        cells = [str(acc[h]) for h in hows]
        out.append(
            f"| {group} | {acc['fixtures']} | {acc['tensors']} | " + " | ".join(cells) + " |"
        )
    cells = [str(total[h]) for h in hows]
    out.append(f"| all | {total['fixtures']} | {total['tensors']} | " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(table() + "\n")
