"""The JSON document of ``paramtool inspect`` (schema in the README); stdlib only."""

from __future__ import annotations

import re
from typing import Any

from paramtool import dtypes
from paramtool.anatomy import CATEGORIES
from paramtool.breakdown import Breakdown, Tally

SCHEMA_VERSION = 1

# The precisions inspect prices the parameters at (footprint has the full list).
MEMORY_DTYPES = ("F32", "BF16", "F8_E4M3", "I8", "INT4")
MEMORY_LABELS = {"F32": "fp32", "BF16": "fp16/bf16", "F8_E4M3": "fp8", "I8": "int8", "INT4": "int4"}


def memory_rows(parameters: int) -> list[dict[str, Any]]:
    """Bytes to hold ``parameters`` at each of inspect's reference precisions."""
    rows = []
    for name in MEMORY_DTYPES:
        d = dtypes.lookup(name)
        rows.append({"dtype": MEMORY_LABELS[name], "bits": d.bits, "bytes": d.nbytes(parameters)})
    return rows


def _tally(t: Tally, total: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"parameters": t.parameters, "bytes": t.bytes, "tensors": t.tensors}
    if total is not None:
        out["share"] = round(t.parameters / total, 6) if total else 0.0
    return out


def tensor_rows(b: Breakdown, pattern: re.Pattern[str] | None = None) -> list[dict[str, Any]]:
    rows = []
    for t, role in zip(b.checkpoint.tensors, b.roles, strict=True):
        if pattern is not None and not pattern.search(t.name):
            continue
        rows.append({
            "name": t.name,
            "dtype": t.dtype,
            "shape": list(t.shape),
            "parameters": t.parameters,
            "bytes": t.nbytes,
            "category": role.category,
            "layer": role.layer,
            "component": role.component,
            "file": t.file,
        })
    return rows


def to_json(b: Breakdown, tensors: bool = False, pattern: re.Pattern[str] | None = None) -> dict[str, Any]:
    """One object: totals, by_dtype, by_category, layers, files, metadata, config, warnings."""
    ck = b.checkpoint
    total = b.total.parameters
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
        "total_bytes": b.total.bytes,
        "file_bytes": ck.file_bytes,
        "tensor_count": b.total.tensors,
        "by_dtype": {k: _tally(v, total) for k, v in b.by_dtype.items()},
        "by_category": {c: _tally(b.by_category[c], total) for c in CATEGORIES},
        "other_share": round(b.share("other"), 6),
        "layers": {
            "count": b.layer_count,
            "per_layer": [
                {"layer": lt.layer, **_tally(lt.total),
                 "by_category": {c: _tally(t) for c, t in lt.by_category.items()}}
                for lt in b.by_layer
            ],
        },
        "files": [
            {"path": f.path, "bytes": f.file_size, "header_bytes": f.header_size,
             "tensors": len(f.tensors), "parameters": f.parameters, "metadata": dict(f.metadata)}
            for f in ck.files
        ],
        "metadata": metadata,
        "index": {"path": ck.index_path, "metadata": dict(ck.index_metadata)} if ck.index_path else None,
        "config": None if cfg is None else {
            "architecture": cfg.architecture, "model_type": cfg.model_type, "layers": cfg.layers,
            "hidden_size": cfg.hidden_size, "heads": cfg.heads, "kv_heads": cfg.kv_heads,
            "vocab_size": cfg.vocab_size,
        },
        "tied_embeddings": b.tied_embeddings,
        "memory": memory_rows(total),
        "warnings": list(ck.warnings),
    }
    if ck.hub is not None:
        h = ck.hub
        doc["hub"] = {
            "repo_id": h.repo_id, "revision": h.revision, "requested_revision": h.requested_revision,
            "subfolder": h.subfolder, "license": h.license, "gated": h.gated, "private": h.private,
            "stated_parameters": h.stated_parameters,
            "stated_parameters_agree": (
                None if h.stated_parameters is None else h.stated_parameters == total
            ),
        }
    if tensors:
        doc["tensors"] = tensor_rows(b, pattern)
    return doc
