"""Tallies of a checkpoint: by dtype, by anatomy category, by layer.

Everything here is derived from the headers alone; JSON and tables are both
rendered from the :class:`Breakdown` this module builds. Parameters are logical
(a packed quantized weight counts the weights it holds, a scale or zero point
none: :mod:`paramtool.analysis.quantization`); bytes and elements are what is stored, so
the categories add up to the logical total and to the stored bytes alike. A pickle's
tensors sharing a storage (tied weights, views) count their parameters each, their bytes
and stored elements once (:attr:`paramtool.records.TensorInfo.stored`).
"""

from __future__ import annotations

import gc
from collections.abc import Mapping
from dataclasses import field
from operator import attrgetter, sub
from typing import TYPE_CHECKING, Any

from paramtool import dtypes
from paramtool.analysis.anatomy import CATEGORIES, PARTS, Role, classify_all, shape_keys
from paramtool.analysis.model import ModelDescription, describe
from paramtool.analysis.remote_code import RemoteCode, find_remote_code
from paramtool.frozen import dataclass
from paramtool.records import Checkpoint

if TYPE_CHECKING:
    from paramtool.analysis.adapters import Adapter, BaseInfo
    from paramtool.analysis.moe import MoE
    from paramtool.analysis.quantization import Quantization, Unpacked

_NAME, _SHAPE, _DTYPE, _START, _END, _STORED = map(
    attrgetter, ("name", "shape", "dtype", "start", "end", "stored")
)


@dataclass(frozen=True, slots=True)
class Tally:
    """Parameters, bytes and tensor count of some group of tensors.

    ``parameters`` are logical: what the unquantized model has (a GPTQ ``qweight`` of
    [512, 4096] int32 holds 4096 x 4096; a scale holds none). ``elements`` are what
    the headers store; the two differ only in quantized checkpoints.
    """

    parameters: int = 0
    bytes: int = 0
    tensors: int = 0
    elements: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.parameters + other.parameters,
            self.bytes + other.bytes,
            self.tensors + other.tensors,
            self.elements + other.elements,
        )


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
    def from_description(cls, d: ModelDescription) -> ModelConfig:
        return cls(
            architecture=d.architecture,
            model_type=d.model_type,
            layers=d.layers,
            hidden_size=d.hidden_size,
            heads=d.heads,
            kv_heads=d.kv_heads,
            vocab_size=d.vocab_size,
            tie_word_embeddings=d.tie_word_embeddings,
        )


@dataclass(frozen=True, slots=True)
class Breakdown:
    """The anatomy of a checkpoint; ``roles`` and ``parameters`` align with its tensors."""

    checkpoint: Checkpoint
    roles: tuple[Role, ...]
    total: Tally
    by_dtype: Mapping[str, Tally]
    by_category: Mapping[str, Tally]
    by_layer: tuple[LayerTally, ...]
    config: ModelConfig | None
    description: ModelDescription
    tied_embeddings: bool | None
    tied_source: str  # "config.json", "no output head tensor", or ""
    parameters: tuple[int, ...] = ()  # logical parameters of each tensor
    unpacked: Mapping[int, Unpacked] = field(default_factory=dict)  # tensor index -> quantized
    quantization: Quantization | None = None
    # part -> category -> tally (parts present only): language model, vision encoder, MTP head...
    by_part: Mapping[str, Mapping[str, Tally]] = field(default_factory=dict)
    adapter: Adapter | None = None
    moe: MoE | None = None
    remote_code: RemoteCode | None = None  # custom code the config declares, .py files there

    @property
    def layer_count(self) -> int:
        return len(self.by_layer)

    @property
    def logical_parameters(self) -> int:
        """What the unquantized model has: ``total.parameters``, the figure reported everywhere."""
        return self.total.parameters

    @property
    def stored_elements(self) -> int:
        """Elements the headers store (what the Hub's parameter count adds up)."""
        return self.total.elements

    @property
    def stored_bytes(self) -> int:
        return self.total.bytes

    @property
    def index_parameters(self) -> int | None:
        """``metadata.total_parameters`` of the shard index, where it has one."""
        stated = self.checkpoint.index_metadata.get("total_parameters")
        return stated if type(stated) is int else None

    @property
    def index_agrees_with(self) -> str | None:
        """``"logical"`` or ``"stored"``: which of our counts the index's figure equals."""
        stated = self.index_parameters
        if stated is None:
            return None
        if stated == self.logical_parameters:
            return "logical"
        return "stored" if stated == self.stored_elements else None

    @property
    def warnings(self) -> tuple[str, ...]:
        """The checkpoint's warnings, and an index whose parameter count matches neither ours."""
        notes = self.checkpoint.warnings
        stated = self.index_parameters
        if stated is not None and self.index_agrees_with is None:
            where = self.checkpoint.index_path or self.checkpoint.source
            notes += (
                f"{where}: metadata.total_parameters says {stated:,}, the shards hold "
                f"{self.logical_parameters:,} parameters "
                f"({self.stored_elements:,} stored elements)",
            )
        return notes

    def share(self, category: str) -> float:
        """Fraction of all parameters in ``category`` (0.0 for an empty checkpoint)."""
        total = self.total.parameters
        return self.by_category[category].parameters / total if total else 0.0


def base_info(b: Breakdown) -> BaseInfo:
    """What an adapter needs of its base: size, dtype and the shapes of its plain weights."""
    dense: dict[str, int] = {}
    for name, t in b.by_dtype.items():
        if name in dtypes.SAFETENSORS and dtypes.SAFETENSORS[name].is_float:
            dense[name] = t.parameters
    dtype = max(dense, key=lambda d: dense[d]) if dense else None
    shapes = {
        t.name: t.shape
        for t, n in zip(b.checkpoint.tensors, b.parameters, strict=True)
        if t.name.endswith(".weight") and len(t.shape) == 2 and n == t.parameters
    }
    from paramtool.analysis.adapters import BaseInfo

    return BaseInfo(
        source=b.checkpoint.source,
        parameters=b.logical_parameters,
        bytes=b.stored_bytes,
        dtype=dtype,
        quantized=b.quantization is not None,
        weight_shapes=shapes,
        model_type=b.config.model_type if b.config is not None else None,
    )


def build(checkpoint: Checkpoint, base: Checkpoint | None = None) -> Breakdown:
    """Classify every tensor, unpack quantized ones, and add them up.

    ``base``: the model a PEFT adapter applies to, for its share and the merged size.
    The garbage collector is paused meanwhile: what is built here holds no cycles, and at
    100k+ tensors its rescans of the growing heap cost more than the analysis.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return _build(checkpoint, base)
    finally:
        if paused:
            gc.enable()


def _build(checkpoint: Checkpoint, base: Checkpoint | None) -> Breakdown:
    from math import prod

    from paramtool.analysis.model import _cross_check as cross_check

    tensors = checkpoint.tensors
    config = checkpoint.config
    source = "gguf" if checkpoint.format == "gguf" else "config.json"
    names = list(map(_NAME, tensors))
    keys = shape_keys(names)
    # The tensors cross-check the config's experts once the names are read (below).
    description = (
        describe(config, (), source=source)
        if config
        else describe(None, tensors, names=names, keys=keys)
    )
    # Names first; the shapes (against the description's widths) settle what names leave open.
    roles = tuple(
        classify_all(
            tensors,
            hidden=description.hidden_size,
            vocab=description.vocab_size,
            num_hidden_layers=description.layers if description.kind == "decoder" else None,
            names=names,
            keys=keys,
        )
    )
    if config:
        description = cross_check(description, tensors, names, keys)
    # One pass over the tensors: groups of one role (Roles are shared) and dtype, in the
    # order of their first tensors, a few hundred (tens of thousands with numbered experts);
    # every later pass (quantization, tallies, experts) reads the groups.
    # A group: [role, dtype, indexes, elements, bytes (end - start), counted bytes and
    # elements (a pickle's shared storage counts once)].
    shapes = list(map(_SHAPE, tensors))
    dtype_of = list(map(_DTYPE, tensors))
    elements: list[int] = list(map(prod, shapes))
    spans = list(map(sub, map(_END, tensors), map(_START, tensors)))
    stored = list(map(_STORED, tensors))
    pickled = stored.count(None) != len(stored)
    members: dict[tuple[int, str], list[int]] = {}
    get = members.get
    for i, group_key in enumerate(zip(map(id, roles), dtype_of, strict=True)):
        if (listed := get(group_key)) is None:
            members[group_key] = [i]
        else:
            listed.append(i)
    grouped: list[list[Any]] = []
    for (_, dtype), idx in members.items():
        count = sum(map(elements.__getitem__, idx))
        nbytes = sum(map(spans.__getitem__, idx))
        if pickled:
            counted = sum(spans[i] if stored[i] is None else stored[i] for i in idx)
            kept = sum(0 if stored[i] == 0 and spans[i] > 0 else elements[i] for i in idx)
        else:
            counted, kept = nbytes, count
        grouped.append([roles[idx[0]], dtype, idx, count, nbytes, counted, kept])
    categories = {g[0].category for g in grouped}
    components = {g[0].component for g in grouped}
    gguf = checkpoint.gguf  # GGUF: general.file_type names the mix (Q4_K_M)
    file_type = gguf.get("file_type") if gguf is not None else None
    # The quantization, adapter and MoE modules are imported only for checkpoints that need
    # them: a plain checkpoint's inspect stays a header read.
    declared = description.quantization
    if (
        declared
        or gguf is not None
        or any(g[1] not in dtypes.UNPACKED for g in grouped)
        or "quantization" in categories
    ):
        from paramtool.analysis import quantization

        analysis = quantization.analyze_groups(
            tensors,
            grouped,
            declared,
            elements,
            file_type if isinstance(file_type, str) else None,
        )
        logical, unpacked, quant = analysis.parameters, analysis.unpacked, analysis.quantization
    else:
        logical, unpacked, quant = tuple(elements), {}, None
    # Each group's logical parameters: none for metadata, the unpacked figure for packed
    # weights, else its elements.
    sums = [0 if g[0].category == "quantization" else g[3] for g in grouped]
    if unpacked:
        at = {i: k for k, g in enumerate(grouped) for i in g[2]}
        for i, u in unpacked.items():
            sums[at[i]] += u.parameters - elements[i]
    # Plain [parameters, bytes, tensors, elements] accumulators per (dtype, category, part,
    # layer), a few hundred at most; every tally is added up from them.
    acc: dict[tuple[str, str, str, int | None], list[int]] = {}
    for g, n in zip(grouped, sums, strict=True):
        role = g[0]
        key = (g[1], role.category, role.part, role.layer)
        if (a := acc.get(key)) is None:
            acc[key] = [n, g[5], len(g[2]), g[6]]
        else:
            a[0] += n
            a[1] += g[5]
            a[2] += len(g[2])
            a[3] += g[6]
    total = [0, 0, 0, 0]
    by_dtype: dict[str, list[int]] = {}
    by_category: dict[str, list[int]] = {c: [0, 0, 0, 0] for c in CATEGORIES}
    parts: dict[str, dict[str, list[int]]] = {}
    layers: dict[int, dict[str, list[int]]] = {}
    for (dtype, category, part_name, layer), a in acc.items():
        buckets = [
            total,
            by_category[category],
            by_dtype.setdefault(dtype, [0, 0, 0, 0]),
            parts.setdefault(part_name, {c: [0, 0, 0, 0] for c in CATEGORIES})[category],
        ]
        if layer is not None:
            buckets.append(layers.setdefault(layer, {}).setdefault(category, [0, 0, 0, 0]))
        for b in buckets:
            for k in range(4):
                b[k] += a[k]
    by_layer = tuple(
        LayerTally(
            i,
            Tally(*map(sum, zip(*cats.values(), strict=True))),
            {c: Tally(*v) for c, v in cats.items()},
        )
        for i, cats in sorted(layers.items())
    )
    model_config = ModelConfig.from_description(description) if config else None
    tied, tied_source = _tied(model_config, components, checkpoint.format)
    base_summary = base_info(build(base)) if base is not None else None
    metadata = checkpoint.files[0].metadata if checkpoint.files else None
    return Breakdown(
        checkpoint=checkpoint,
        roles=roles,
        total=Tally(*total),
        by_dtype={k: Tally(*v) for k, v in sorted(by_dtype.items(), key=lambda kv: -kv[1][0])},
        by_category={c: Tally(*v) for c, v in by_category.items()},
        by_part={
            p: {c: Tally(*v) for c, v in cats.items()}
            for p, cats in sorted(parts.items(), key=lambda kv: PARTS.index(kv[0]))
        },
        by_layer=by_layer,
        config=model_config,
        description=description,
        tied_embeddings=tied,
        tied_source=tied_source,
        parameters=logical,
        unpacked=unpacked,
        quantization=quant,
        adapter=(
            _adapter(checkpoint, tensors, roles, logical, base_summary, metadata)
            if "adapter" in categories
            else None
        ),
        moe=_moe(description, tensors, grouped, sums) if "expert" in components else None,
        remote_code=find_remote_code(checkpoint.config, checkpoint.code_files),
    )


def _adapter(ck: Checkpoint, tensors: Any, roles: Any, logical: Any, base: Any, meta: Any) -> Any:
    from paramtool.analysis import adapters

    return adapters.analyze(tensors, roles, logical, ck.adapter_config, base, meta)


def _moe(desc: ModelDescription, tensors: Any, grouped: Any, sums: Any) -> Any:
    from paramtool.analysis import moe

    groups = [[g[0], n, g[2]] for g, n in zip(grouped, sums, strict=True)]
    return moe.analyze_groups(tensors, groups, desc.experts)


def _tied(
    config: ModelConfig | None, components: set[str], fmt: str = "safetensors"
) -> tuple[bool | None, str]:
    """Tied input/output embeddings, as config.json states it; else only a present head says no.

    A GGUF file has no config.json: its tie is read from whether ``output.weight`` exists.
    ``components``: those the checkpoint's tensors have.
    """
    if fmt == "gguf":
        head = "lm_head" in components
        return not head, "output.weight present" if head else "no output.weight"
    if config is not None and config.tie_word_embeddings is not None:
        return config.tie_word_embeddings, "config.json"
    if "lm_head" in components:
        return False, "output head tensor present"
    return None, ""


@dataclass(frozen=True, slots=True)
class BitsPerWeight:
    """Effective bits per weight (bytes x 8 / parameters), scales and zero points included."""

    overall: float | None
    by_category: Mapping[str, float | None]
    by_dtype: Mapping[str, float | None]


def effective_bits(parameters: int, nbytes: int) -> float | None:
    """Bytes x 8 / parameters, rounded to 4 decimals; None where there are no parameters."""
    return round(nbytes * 8 / parameters, 4) if parameters else None


def bits_per_weight(b: Breakdown) -> BitsPerWeight:
    """Overall, per anatomy category and per dtype (telling for GGUF mixes and quantized files)."""
    return BitsPerWeight(
        overall=effective_bits(b.total.parameters, b.total.bytes),
        by_category={c: effective_bits(t.parameters, t.bytes) for c, t in b.by_category.items()},
        by_dtype={d: effective_bits(t.parameters, t.bytes) for d, t in b.by_dtype.items()},
    )
