"""The JSON documents of ``stats``, ``hash``, ``verify`` and ``diff`` (schemas in the README).

Counts are exact integers. Statistics are JSON numbers, ``null`` where they are
undefined (no finite element, a dtype that is not decoded) and the strings
``"inf"``, ``"-inf"`` or ``"nan"`` for the rare float64 overflow, so that every
document is strict JSON.
"""

from __future__ import annotations

import math
from typing import Any

from paramtool.analysis.anatomy import CATEGORIES
from paramtool.records import Checkpoint
from paramtool.values.diff import DiffReport, DiffTally, TensorDiff
from paramtool.values.hashing import DIGEST_SCHEME, HashReport
from paramtool.values.stats import StatsReport, Summary
from paramtool.values.verify import VerifyReport

SCHEMA_VERSION = 1


def number(x: float | int | None) -> float | int | str | None:
    """A statistic as strict JSON: ints and finite floats as is, others as strings."""
    if x is None or isinstance(x, int):
        return x
    if math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _source(ck: Checkpoint) -> dict[str, Any]:
    return {"source": ck.source, "revision": ck.hub.revision if ck.hub else None}


def summary_json(s: Summary) -> dict[str, Any]:
    return {
        "count": s.count,
        "finite": s.finite,
        "zeros": s.zeros,
        "nan": s.nan,
        "posinf": s.posinf,
        "neginf": s.neginf,
        "zero_fraction": s.zero_fraction,
        "min": number(s.min),
        "max": number(s.max),
        "mean": number(s.mean),
        "std": number(s.std),
        "mean_abs": number(s.mean_abs),
        "max_abs": number(s.max_abs),
    }


def stats_json(r: StatsReport, top: int = 10) -> dict[str, Any]:
    ck = r.checkpoint
    return {
        "schema_version": SCHEMA_VERSION,
        **_source(ck),
        "filter": r.pattern,
        "tensor_count": len(r.tensors),
        "total": {"tensors": r.total.tensors, **summary_json(r.total)},
        "by_category": {
            c: {"tensors": r.by_category[c].tensors, **summary_json(r.by_category[c])}
            for c in CATEGORIES
        },
        "by_layer": [{"layer": i, "tensors": s.tensors, **summary_json(s)} for i, s in r.by_layer],
        "tensors": [
            {
                "name": t.tensor.name,
                "dtype": t.tensor.dtype,
                "shape": list(t.tensor.shape),
                "category": t.category,
                "layer": t.layer,
                "file": t.tensor.file,
                **summary_json(t.summary),
            }
            for t in r.tensors
        ],
        "top": {
            "n": top,
            "max_abs": [t.tensor.name for t in r.top_abs(top)],
            "nonfinite": [t.tensor.name for t in r.top_nonfinite(top)],
        },
        "unsupported": [
            {"name": s.tensor.name, "dtype": s.tensor.dtype, "reason": s.reason} for s in r.skipped
        ],
        "warnings": list(ck.warnings),
    }


def hash_json(r: HashReport) -> dict[str, Any]:
    ck = r.checkpoint
    return {
        "schema_version": SCHEMA_VERSION,
        **_source(ck),
        "files": [{"path": f.path, "bytes": f.size, "sha256": f.sha256} for f in r.files],
        "weights_digest": r.weights_digest,
        "digest_scheme": DIGEST_SCHEME,
        "tensor_count": len(r.tensors),
        "tensors": [
            {
                "name": t.name,
                "dtype": t.dtype,
                "shape": list(t.shape),
                "file": t.file,
                "digest": t.digest,
            }
            for t in r.tensors
        ],
        "warnings": list(ck.warnings),
    }


def verify_json(r: VerifyReport) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "path": r.path,
        "repo_id": r.hub.repo_id,
        "revision": r.hub.revision,
        "requested_revision": r.hub.requested_revision,
        "subfolder": r.subfolder,
        "ok": r.ok,
        "counts": {s: r.count(s) for s in ("ok", "mismatch", "missing", "unverified")},
        "files": [
            {
                "path": f.path,
                "local": f.local,
                "required": f.required,
                "status": f.status,
                "algorithm": f.algorithm,
                "expected": f.expected,
                "actual": f.actual,
                "expected_bytes": f.expected_size,
                "actual_bytes": f.actual_size,
            }
            for f in r.files
        ],
        "extra": list(r.extra),
    }


def _tally(t: DiffTally) -> dict[str, Any]:
    return {
        "compared": t.compared,
        "identical": t.identical,
        "changed": t.changed,
        "added": t.added,
        "removed": t.removed,
        "reshaped": t.reshaped,
        "retyped": t.retyped,
        "elements": t.elements,
        "changed_elements": t.changed_elements,
        "rel_l2": number(t.rel_l2),
        "max_abs": number(t.max_abs),
    }


def tensor_diff_json(d: TensorDiff) -> dict[str, Any]:
    return {
        "name": d.name,
        "category": d.category,
        "layer": d.layer,
        "dtype_a": d.a.dtype,
        "dtype_b": d.b.dtype,
        "shape": list(d.a.shape),
        "identical": d.identical,
        "elements": d.elements,
        "changed_elements": d.changed,
        "nonfinite_changed": d.nonfinite,
        "l2": number(d.l2),
        "rel_l2": number(d.rel_l2),
        "max_abs": number(d.max_abs),
    }


def _side(ck: Checkpoint) -> dict[str, Any]:
    return {
        **_source(ck),
        "files": [f.path for f in ck.files],
        "tensor_count": sum(len(f.tensors) for f in ck.files),
    }


def diff_json(r: DiffReport) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "a": _side(r.a),
        "b": _side(r.b),
        "filter": r.pattern,
        "identical": r.identical,
        "structure": {
            "added": [{"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in r.added],
            "removed": [
                {"name": t.name, "dtype": t.dtype, "shape": list(t.shape)} for t in r.removed
            ],
            "reshaped": [
                {
                    "name": a.name,
                    "shape_a": list(a.shape),
                    "shape_b": list(b.shape),
                    "dtype_a": a.dtype,
                    "dtype_b": b.dtype,
                }
                for a, b in r.reshaped
            ],
            "retyped": [
                {
                    "name": d.name,
                    "dtype_a": d.a.dtype,
                    "dtype_b": d.b.dtype,
                    "shape": list(d.a.shape),
                }
                for d in r.retyped
            ],
        },
        "total": _tally(r.total),
        "by_category": {
            c: {**_tally(r.by_category[c]), "changed_layers": list(r.by_category[c].changed_layers)}
            for c in CATEGORIES
        },
        "by_layer": [{"layer": i, **_tally(t)} for i, t in r.by_layer],
        "tensors": [tensor_diff_json(d) for d in r.tensors],
        "warnings": list(r.a.warnings) + list(r.b.warnings),
    }
