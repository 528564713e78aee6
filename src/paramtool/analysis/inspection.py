"""The answer of ``paramtool inspect``: the :class:`Inspection` record and its JSON document.

:func:`paramtool.inspect` returns an :class:`Inspection`; ``paramtool inspect --json``
prints its :meth:`Inspection.to_dict`. Stdlib only: the tables are drawn in ``render/``
from the same record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from paramtool import dtypes
from paramtool.analysis.anatomy import CATEGORIES
from paramtool.analysis.breakdown import Breakdown, Tally, bits_per_weight
from paramtool.frozen import dataclass
from paramtool.patterns import NamePattern
from paramtool.records import Checkpoint

if TYPE_CHECKING:
    from paramtool.analysis.adapters import Adapter
    from paramtool.analysis.moe import MoE
    from paramtool.analysis.quantization import Quantization

SCHEMA_VERSION = 1

# The precisions inspect prices the parameters at (footprint has the full list).
MEMORY_DTYPES = ("F32", "BF16", "F8_E4M3", "I8", "INT4")
MEMORY_LABELS = {"F32": "fp32", "BF16": "fp16/bf16", "F8_E4M3": "fp8", "I8": "int8", "INT4": "int4"}


def memory_rows(parameters: int) -> list[dict[str, Any]]:
    """Bytes to hold ``parameters`` at each of inspect's reference precisions.

    The same figure as ``footprint``'s row for that precision (:meth:`DType.estimate_nbytes`).
    """
    rows = []
    for name in MEMORY_DTYPES:
        d = dtypes.lookup(name)
        rows.append(
            {"dtype": MEMORY_LABELS[name], "bits": d.bits, "bytes": d.estimate_nbytes(parameters)}
        )
    return rows


def _sum(tallies: Any) -> Tally:
    out = Tally()
    for t in tallies:
        out = out + t
    return out


def _tally(t: Tally, total: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"parameters": t.parameters, "bytes": t.bytes, "tensors": t.tensors}
    if total is not None:
        out["share"] = round(t.parameters / total, 6) if total else 0.0
    return out


def tensor_rows(b: Breakdown, pattern: NamePattern | None = None) -> list[dict[str, Any]]:
    """One row per tensor; ``parameters`` is logical (a packed weight unpacked, a scale 0)."""
    rows = []
    for t, role, n in zip(b.checkpoint.tensors, b.roles, b.parameters, strict=True):
        if pattern is not None and not pattern.search(t.name):
            continue
        rows.append(
            {
                "name": t.name,
                "dtype": t.dtype,
                "shape": list(t.shape),
                "parameters": n,
                "bytes": t.stored_bytes,  # a shared storage counts once
                "category": role.category,
                "layer": role.layer,
                "component": role.component,
                "file": t.file,
            }
        )
    return rows


def _file_parameters(b: Breakdown) -> list[int]:
    """Logical parameters per file (the tensors are the files' tensors, in order)."""
    out, i = [], 0
    for f in b.checkpoint.files:
        k = len(f.tensors)
        out.append(sum(b.parameters[i : i + k]))
        i += k
    return out


def to_json(
    b: Breakdown, tensors: bool = False, pattern: NamePattern | None = None
) -> dict[str, Any]:
    """One object: totals, by_dtype, by_category, layers, files, metadata, config, warnings."""
    ck = b.checkpoint
    total = b.logical_parameters
    metadata: dict[str, str] = {}
    for f in ck.files:
        for k, v in f.metadata.items():
            metadata.setdefault(k, v)
    cfg = b.config
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "source": ck.source,
        "revision": ck.hub.revision if ck.hub else None,
        "total_parameters": total,
        "stored_elements": b.stored_elements,
        "total_bytes": b.total.bytes,
        "file_bytes": ck.file_bytes,
        "tensor_count": b.total.tensors,
        "by_dtype": {k: _tally(v, total) for k, v in b.by_dtype.items()},
        "by_category": {c: _tally(b.by_category[c], total) for c in CATEGORIES},
        "other_share": round(b.share("other"), 6),
        "by_part": {
            part: {
                **_tally(_sum(cats.values()), total),
                "by_category": {c: _tally(cats[c]) for c in CATEGORIES},
            }
            for part, cats in b.by_part.items()
        },
        "layers": {
            "count": b.layer_count,
            "per_layer": [
                {
                    "layer": lt.layer,
                    **_tally(lt.total),
                    "by_category": {c: _tally(t) for c, t in lt.by_category.items()},
                }
                for lt in b.by_layer
            ],
        },
        "files": [
            {
                "path": f.path,
                "bytes": f.file_size,
                "header_bytes": f.header_size,
                "tensors": len(f.tensors),
                "parameters": n,
                "metadata": dict(f.metadata),
                "pickle": f.pickle.to_dict() if f.pickle is not None else None,
            }
            for f, n in zip(ck.files, _file_parameters(b), strict=True)
        ],
        "metadata": metadata,
        "index": {"path": ck.index_path, "metadata": dict(ck.index_metadata)}
        if ck.index_path
        else None,
        "config": None
        if cfg is None
        else {
            "architecture": cfg.architecture,
            "model_type": cfg.model_type,
            "layers": cfg.layers,
            "hidden_size": cfg.hidden_size,
            "heads": cfg.heads,
            "kv_heads": cfg.kv_heads,
            "vocab_size": cfg.vocab_size,
        },
        "model": b.description.to_dict(),
        "tied_embeddings": b.tied_embeddings,
        "bits_per_weight": _bits(b),
        "format": ck.format,
        "gguf": dict(ck.gguf) if ck.gguf is not None else None,
        "memory": memory_rows(total),
        "warnings": list(b.warnings),
        "quantization": quantization_json(b.quantization, b),
        "adapter": adapter_json(b.adapter),
        "moe": moe_json(b.moe),
        "remote_code": b.remote_code.to_dict() if b.remote_code is not None else None,
    }
    if ck.hub is not None:
        h = ck.hub
        doc["hub"] = {
            "repo_id": h.repo_id,
            "revision": h.revision,
            "requested_revision": h.requested_revision,
            "subfolder": h.subfolder,
            "license": h.license,
            "gated": h.gated,
            "private": h.private,
            "stated_parameters": h.stated_parameters,
            # The Hub adds up stored elements (packed weights as stored, scales included).
            "stated_parameters_agree": (
                None if h.stated_parameters is None else h.stated_parameters == b.stored_elements
            ),
        }
    if tensors:
        doc["tensors"] = tensor_rows(b, pattern)
    return doc


def _bits(b: Breakdown) -> dict[str, Any]:
    """Effective bits per weight (bytes x 8 / parameters): overall, by category, by dtype."""
    bpw = bits_per_weight(b)
    return {"overall": bpw.overall, "by_category": dict(bpw.by_category),
            "by_dtype": dict(bpw.by_dtype)}  # fmt: skip


def quantization_json(q: Quantization | None, b: Breakdown) -> dict[str, Any] | None:
    """The ``"quantization"`` object: scheme, logical vs stored, effective bits, overhead."""
    if q is None:
        return None
    quantized_bits = q.quantized_bits_per_parameter
    return {
        "scheme": q.scheme,
        "method": q.method,
        "detected_from": q.detected_from,
        "bits": q.bits,
        "group_size": q.group_size,
        "format": q.format,
        "block_size": list(q.block_size) if q.block_size else None,
        "logical_parameters": q.logical_parameters,
        "stored_elements": q.stored_elements,
        "stored_bytes": q.stored_bytes,
        "bits_per_parameter": round(q.bits_per_parameter, 4),
        "quantized": {
            "tensors": q.quantized_tensors,
            "parameters": q.quantized_parameters,
            "bytes": q.quantized_bytes,
            "bits_per_parameter": None if quantized_bits is None else round(quantized_bits, 4),
        },
        "overhead": {
            "tensors": q.overhead_tensors,
            "elements": q.overhead_elements,
            "bytes": q.overhead_bytes,
            "share": round(q.overhead_share, 6),
        },
        "by_scheme": {
            k: {"tensors": v.tensors, "parameters": v.parameters, "bytes": v.bytes}
            for k, v in q.by_scheme.items()
        },
        "elements_by_category": {c: b.by_category[c].elements for c in CATEGORIES},
        "index_total_parameters": b.index_parameters,
        "index_agrees_with": b.index_agrees_with,
        "notes": list(q.notes),
    }


def adapter_json(a: Adapter | None) -> dict[str, Any] | None:
    """The ``"adapter"`` object: method, ranks, targets, size, and against the base."""
    if a is None:
        return None
    tm = a.target_modules
    base = a.base
    share = a.share_of_base
    return {
        "method": a.method,
        "peft_type": a.peft_type,
        "rank": a.rank,
        "ranks": {str(r): n for r, n in a.ranks.items()},
        "alpha": a.alpha,
        "use_rslora": a.use_rslora,
        "target_modules": list(tm) if isinstance(tm, tuple) else tm,
        "targets": {
            t.name: {"modules": t.modules, "parameters": t.parameters, "ranks": list(t.ranks)}
            for t in a.targets
        },
        "modules": a.modules,
        "parameters": a.parameters,
        "bytes": a.bytes,
        "dtype": a.dtype,
        "modules_to_save": list(a.modules_to_save),
        "modules_to_save_parameters": a.modules_to_save_parameters,
        "base_model": a.base_model,
        "base": None
        if base is None
        else {
            "source": base.source,
            "parameters": base.parameters,
            "bytes": base.bytes,
            "dtype": base.dtype,
            "quantized": base.quantized,
            "modules_found": base.modules_found,
            "modules_missing": base.modules_missing,
            "modules_mismatched": base.modules_mismatched,
        },
        "share_of_base": None if share is None else round(share, 6),
        "merged_parameters": a.merged_parameters,
        "merged_bytes": a.merged_bytes,
        "notes": list(a.notes),
    }


def moe_json(m: MoE | None) -> dict[str, Any] | None:
    """The ``"moe"`` object: experts per layer, k, total and active parameters."""
    if m is None:
        return None
    share = m.active_share
    return {
        "routed_experts": m.routed_experts,
        "shared_experts": m.shared_experts,
        "experts_per_token": m.experts_per_token,
        "moe_layers": m.moe_layers,
        "layout": m.layout,
        "experts_from": m.experts_from,
        "total_parameters": m.total_parameters,
        "active_parameters": m.active_parameters,
        "active_share": None if share is None else round(share, 6),
        "active_exact": m.active_exact,
        "routed_parameters": m.routed_parameters,
        "shared_parameters": m.shared_parameters,
        "router_parameters": m.router_parameters,
        "input_embedding_parameters": m.input_embedding_parameters,
        "mtp": None
        if not m.mtp_parameters
        else {
            "layers": list(m.mtp_layers),
            "parameters": m.mtp_parameters,
            "active_parameters": m.mtp_active_parameters,
        },
        "notes": list(m.notes),
    }


@dataclass(frozen=True, slots=True)
class Inspection:
    """What :func:`paramtool.inspect` found in a checkpoint, from its headers alone.

    ``breakdown`` holds every tally (by dtype, category, layer, file) and the
    quantization, adapter and MoE analyses; ``base`` is the adapter's base model when
    one was read; ``notes`` are hints about what could not be read (a base model that
    is gated, say), ``warnings`` what looks wrong in the checkpoint itself.
    """

    breakdown: Breakdown
    base: Checkpoint | None = None
    notes: tuple[str, ...] = ()

    @property
    def checkpoint(self) -> Checkpoint:
        return self.breakdown.checkpoint

    @property
    def total_parameters(self) -> int:
        """Logical parameters: a packed quantized weight counts the weights it holds."""
        return self.breakdown.logical_parameters

    @property
    def total_bytes(self) -> int:
        return self.breakdown.total.bytes

    @property
    def by_category(self) -> Mapping[str, Tally]:
        """Parameters, bytes and tensors per anatomy category, every category present."""
        return {c: self.breakdown.by_category[c] for c in CATEGORIES}

    @property
    def by_dtype(self) -> Mapping[str, Tally]:
        return self.breakdown.by_dtype

    @property
    def by_part(self) -> Mapping[str, Mapping[str, Tally]]:
        """Per part of the model (language model, vision encoder, projector, MTP head...), its
        category split; only the parts present."""
        return self.breakdown.by_part

    @property
    def warnings(self) -> tuple[str, ...]:
        base = self.base.warnings if self.base is not None else ()
        return (*self.breakdown.warnings, *(f"base model: {w}" for w in base))

    def to_dict(
        self, *, tensors: bool = False, filter: NamePattern | None = None
    ) -> dict[str, Any]:
        """The document ``paramtool inspect --json`` prints (``--tensors``: ``tensors=True``;
        ``--filter``: a compiled ``filter``, which implies the tensor list)."""
        return to_json(self.breakdown, tensors=tensors or filter is not None, pattern=filter)
