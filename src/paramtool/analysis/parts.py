"""Which part of a model a tensor belongs to: the language model, a vision or audio
encoder, the projector between them, or a multi-token-prediction (MTP) head.

The part is the second axis of the anatomy, beside the category (a vision tower has
attention and norms of its own). It is read from the outermost module name that names
a part, as transformers' multimodal models spell them (``vision_tower``, ``visual``,
``multi_modal_projector``, ``audio_tower``, ``mtp``...) and as GGUF ``mmproj`` files do
(``v.blk.0...``, ``mm.0...``, ``a.blk.0...``). Everything else is the language model,
the encoder and decoder of a text encoder-decoder included.

An MTP block stored as one more decoder layer (DeepSeek-V3's ``model.layers.61``, GLM-4.5)
cannot be told from its name alone: :func:`paramtool.analysis.anatomy.classify_all` finds
it from the layer count or from the tensors only an MTP layer holds.
"""

from __future__ import annotations

from typing import Literal

Part = Literal["language_model", "vision_encoder", "multimodal_projector", "audio_encoder", "mtp"]
PARTS: tuple[Part, ...] = Part.__args__  # type: ignore[attr-defined]
LANGUAGE_MODEL: Part = "language_model"

# Whole module names (lowercased), checked first: a projector named after what it projects
# (``visual_projection``) is a projector, not the vision encoder.
_EXACT: dict[str, Part] = {
    **dict.fromkeys(
        (
            "multi_modal_projector",
            "multimodal_projector",
            "mm_projector",
            "connector",
            "vision_projection",
            "visual_projection",
            "image_newline",
            "projector",
            "language_projection",
            "query_tokens",
            "qformer",
            "aligner",
            "resampler",
        ),
        "multimodal_projector",
    ),
    **dict.fromkeys(
        (
            "vision_tower",
            "vision_model",
            "visual",
            "vision_encoder",
            "image_encoder",
            "vision",
            "vit",
            "embed_vision",
            "vision_embed_tokens",
        ),
        "vision_encoder",
    ),
    **dict.fromkeys(
        ("audio_tower", "audio_encoder", "audio_model", "embed_audio", "speech_encoder", "audio"),
        "audio_encoder",
    ),
    **dict.fromkeys(("mtp", "mtp_layers", "nextn", "mtp_block"), "mtp"),
}
# Words (``_``-separated, CamelCase split) that name a part inside a longer module name:
# ``vision_embed_tokens``, ``image_tower``, ``audio_adapter``, ``mtp_head``. Projector words
# are not among them: DistilBERT's ``vocab_projector`` is its output head.
_WORDS: dict[str, Part] = {
    **dict.fromkeys(("vision", "visual", "image", "video", "vit", "siglip"), "vision_encoder"),
    **dict.fromkeys(("audio", "speech"), "audio_encoder"),
    **dict.fromkeys(("mtp", "nextn"), "mtp"),
    **dict.fromkeys(("resampler", "aligner"), "multimodal_projector"),
}
# A projector named after what it joins: ``image_to_text_projection``, ``vit_large_projector``,
# ``vision_language_adapter``, ``pre_mm_projector_norm``, ``patch_merger``.
_JOINS = frozenset({"projector", "projection", "adapter", "connector", "merger"})
_MODALITIES = frozenset({"mm", "vision", "visual", "image", "video", "vit", "audio", "patch"})
# A patch embedding is a vision stem wherever it sits (``patch_embed``, ``embed_patches``).
_PATCHES = frozenset({"patch", "patches"})
_PATCH = frozenset({"embed", "embeds", "embedding", "embeddings", "embd", "embedder", "projection"})
# GGUF mmproj files name their parts by a first token of their own.
_GGUF_FIRST: dict[str, Part] = {
    "v": "vision_encoder",
    "mm": "multimodal_projector",
    "a": "audio_encoder",
}


def part_of_tokens(tokens: list[str]) -> tuple[Part, int]:
    """The part named by the outermost token that names one, and that token's index;
    ``("language_model", -1)`` when none does.

    ``tokens``: the lowercased dot-separated module names, words joined by ``_``.
    """
    if tokens and tokens[0] in _GGUF_FIRST and len(tokens) > 1:
        return _GGUF_FIRST[tokens[0]], 0
    for i, token in enumerate(tokens):
        part = _EXACT.get(token)
        if part is None and "_" in token:
            words = token.split("_")
            if not _PATCHES.isdisjoint(words) and not _PATCH.isdisjoint(words):
                part = "vision_encoder"
            elif not _JOINS.isdisjoint(words) and not _MODALITIES.isdisjoint(words):
                part = "multimodal_projector"
            else:
                part = next((_WORDS[w] for w in words if w in _WORDS), None)
        if part is not None:
            return part, i
    return LANGUAGE_MODEL, -1
