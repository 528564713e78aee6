"""Tallies of a checkpoint: by dtype, by anatomy category, by layer.

Everything here is derived from the headers alone; JSON and tables are both
rendered from the :class:`Breakdown` this module builds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paramtool.anatomy import CATEGORIES, Role, classify
from paramtool.checkpoint import Checkpoint


@dataclass(frozen=True, slots=True)
class Tally:
    """Parameters, bytes and tensor count of some group of tensors."""

    parameters: int = 0
    bytes: int = 0
    tensors: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.parameters + other.parameters, self.bytes + other.bytes, self.tensors + other.tensors)


@dataclass(frozen=True, slots=True)
class LayerTally:
    layer: int
    total: Tally
    by_category: Mapping[str, Tally]


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """What inspect reports from config.json (nested text_config is looked into)."""

    architecture: str | None
    model_type: str | None
    layers: int | None
    hidden_size: int | None
    heads: int | None
    kv_heads: int | None
    vocab_size: int | None
    tie_word_embeddings: bool | None

    @classmethod
    def from_json(cls, config: Mapping[str, Any]) -> ModelConfig:
        inner = config.get("text_config")
        inner = inner if isinstance(inner, Mapping) else {}

        def get(*keys: str, kind: type = int) -> Any:
            for src in (config, inner):
                for k in keys:
                    v = src.get(k)
                    if isinstance(v, kind) and not (kind is int and isinstance(v, bool)):
                        return v
            return None

        archs = config.get("architectures")
        arch = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
        return cls(
            architecture=arch,
            model_type=get("model_type", kind=str),
            layers=get("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
            hidden_size=get("hidden_size", "n_embd", "d_model"),
            heads=get("num_attention_heads", "n_head", "num_heads"),
            kv_heads=get("num_key_value_heads", "num_kv_heads", "multi_query_group_num"),
            vocab_size=get("vocab_size"),
            tie_word_embeddings=get("tie_word_embeddings", kind=bool),
        )


@dataclass(frozen=True, slots=True)
class Breakdown:
    """The anatomy of a checkpoint; ``roles`` is aligned with ``checkpoint.tensors``."""

    checkpoint: Checkpoint
    roles: tuple[Role, ...]
    total: Tally
    by_dtype: Mapping[str, Tally]
    by_category: Mapping[str, Tally]
    by_layer: tuple[LayerTally, ...]
    config: ModelConfig | None
    tied_embeddings: bool | None
    tied_source: str  # "config.json", "no output head tensor", or ""

    @property
    def layer_count(self) -> int:
        return len(self.by_layer)

    def share(self, category: str) -> float:
        """Fraction of all parameters in ``category`` (0.0 for an empty checkpoint)."""
        total = self.total.parameters
        return self.by_category[category].parameters / total if total else 0.0


def build(checkpoint: Checkpoint) -> Breakdown:
    """Classify every tensor and add them up."""
    tensors = checkpoint.tensors
    roles = tuple(classify(t.name) for t in tensors)
    # Plain [parameters, bytes, tensors] accumulators; frozen Tallies are made once at the end.
    total = [0, 0, 0]
    by_dtype: dict[str, list[int]] = {}
    by_category: dict[str, list[int]] = {c: [0, 0, 0] for c in CATEGORIES}
    layers: dict[int, dict[str, list[int]]] = {}
    for t, role in zip(tensors, roles, strict=True):
        n, nbytes = t.parameters, t.end - t.start
        buckets = [total, by_category[role.category], by_dtype.setdefault(t.dtype, [0, 0, 0])]
        if role.layer is not None:
            buckets.append(layers.setdefault(role.layer, {}).setdefault(role.category, [0, 0, 0]))
        for acc in buckets:
            acc[0] += n
            acc[1] += nbytes
            acc[2] += 1
    by_layer = tuple(
        LayerTally(i, Tally(*map(sum, zip(*cats.values(), strict=True))), {c: Tally(*v) for c, v in cats.items()})
        for i, cats in sorted(layers.items())
    )
    config = ModelConfig.from_json(checkpoint.config) if checkpoint.config else None
    tied, source = _tied(config, roles)
    return Breakdown(
        checkpoint=checkpoint,
        roles=roles,
        total=Tally(*total),
        by_dtype={k: Tally(*v) for k, v in sorted(by_dtype.items(), key=lambda kv: -kv[1][0])},
        by_category={c: Tally(*v) for c, v in by_category.items()},
        by_layer=by_layer,
        config=config,
        tied_embeddings=tied,
        tied_source=source,
    )


def _tied(config: ModelConfig | None, roles: tuple[Role, ...]) -> tuple[bool | None, str]:
    """Tied input/output embeddings, as config.json states it; else only a present head says no."""
    if config is not None and config.tie_word_embeddings is not None:
        return config.tie_word_embeddings, "config.json"
    if any(r.component == "lm_head" for r in roles):
        return False, "output head tensor present"
    return None, ""
