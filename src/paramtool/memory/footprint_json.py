"""The JSON documents of ``paramtool footprint``, ``--list-gpus`` and ``--list-dtypes``.

Stdlib only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paramtool import dtypes
from paramtool.memory.dims import ModelDims
from paramtool.memory.explain import (
    binary_gib,
    decimal_gb,
    excluded,
    fit_text,
    json_number,
    kv_formula,
    overhead_text,
)
from paramtool.memory.gpu_fit import GpuFit
from paramtool.memory.gpus import FLOPS_KEYS, GPUS, Gpu
from paramtool.memory.kv_cache import KVCache
from paramtool.memory.training import Training
from paramtool.safe_text import printable

if TYPE_CHECKING:
    from paramtool.memory.estimate import Footprint, ServingRow

SCHEMA_VERSION = 1




def gpu_json(g: Gpu) -> dict[str, Any]:
    return {
        "key": g.key,
        "name": g.name,
        "vendor": g.vendor,
        "aliases": list(g.aliases),
        "marketed": g.marketed,
        "marketed_bytes": g.marketed_bytes,
        "usable_bytes": g.usable_bytes,
        "usable_gb": decimal_gb(g.usable_bytes),
        "usable_gib": binary_gib(g.usable_bytes),
        "marketed_source": g.marketed_source,
        "usable_source": g.usable_source,
        "bandwidth_bytes_per_s": g.bandwidth_bytes_per_s,
        "flops": {k: g.flops[k] for k in FLOPS_KEYS if k in g.flops},
        "speed_source": g.speed_source,
        "speed_note": g.speed_note,
        "unified": g.unified,
        "working_set_bytes": g.working_set_bytes,
    }


def gpus_json() -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "usable_rule": "total memory the driver reports (nvidia-smi memory.total; rocm-smi VRAM "
        "Total Memory), ECC at its default; Apple silicon: the GPU working set macOS "
        "recommends",
        "gpus": [gpu_json(g) for g in GPUS],
    }


def dtype_json(d: dtypes.DType) -> dict[str, Any]:
    return {
        "dtype": d.label,
        "name": d.name,
        "aliases": list(d.aliases),
        "kind": d.kind,
        "bits_per_parameter": d.bits,
        "block_size": d.block_size,
        "bytes_per_block": d.bytes_per_block,
        "safetensors": d.safetensors,
        "gguf": d.gguf,
        "note": d.note,
    }


def dtypes_json() -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "dtypes": [dtype_json(d) for d in dtypes.TABLE]}


def fit_json(fit: GpuFit) -> dict[str, Any]:
    return {
        "gpu": fit.gpu.key,
        "workload": fit.workload,
        "gpus": fit.gpus,
        "gpus_requested": fit.requested,
        "per_gpu_bytes": fit.per_gpu_bytes,
        "usable_bytes": fit.usable_bytes,
        "headroom_bytes": fit.headroom_bytes,
        "fits": fit.fits,
        "gpus_needed": fit.gpus_needed,
        "explanation": fit_text(fit),
    }


def _row_json(r: ServingRow) -> dict[str, Any]:
    p = r.precision
    return {
        "dtype": p.dtype.label,
        "name": p.dtype.name,
        "kind": p.dtype.kind,
        "bits_per_parameter": p.bits_per_parameter,
        "weights_bytes": p.weights_bytes,
        "weights_gb": decimal_gb(p.weights_bytes),
        "weights_gib": binary_gib(p.weights_bytes),
        "serving_bytes": r.total_bytes,
        "note": p.dtype.note,
        "as_stored": p.as_stored,
        "gpu_fit": fit_json(r.fit) if r.fit else None,
    }


def dims_json(d: ModelDims) -> dict[str, Any]:
    return {
        "model_type": d.model_type,
        "layers": d.layers,
        "hidden_size": d.hidden_size,
        "heads": d.heads,
        "kv_heads": d.kv_heads,
        "head_dim": d.head_dim,
        "intermediate_size": d.intermediate_size,
        "vocab_size": d.vocab_size,
        "attention": d.attention,
        "kv_lora_rank": d.kv_lora_rank,
        "qk_rope_head_dim": d.qk_rope_head_dim,
        "experts": d.experts,
        "windows": [{"window": w, "layers": n} for w, n in d.windows],
    }


def kv_json(kv: KVCache) -> dict[str, Any]:
    return {
        "context": kv.context,
        "batch": kv.batch,
        "dtype": kv.dtype.label,
        "bits_per_element": kv.dtype.bits,
        "layers": kv.layers,
        "attention": kv.attention,
        "kv_heads": kv.kv_heads,
        "head_dim": kv.head_dim,
        "elements_per_token_per_layer": kv.elements_per_token_layer,
        "bytes_per_token": json_number(kv.bytes_per_token),
        "windows": [{"window": w, "layers": n} for w, n in kv.windows],
        "bytes": kv.bytes,
        "full_context_bytes": kv.full_context_bytes,
        "state_bytes": kv.state_bytes,
        "cross_attention_bytes": kv.cross_bytes,
        "encoder_length": kv.encoder_length,
        "convention": kv.convention,
        "reason": kv.reason,
        "groups": [
            {
                "stack": g.stack,
                "mixer": g.mixer,
                "layers": g.layers,
                "window": g.window,
                "tokens": g.tokens,
                "elements_per_token": g.elements_per_token,
                "bytes": g.bytes,
            }
            for g in kv.groups
        ],
        "formula": kv_formula(kv),
    }


def training_json(t: Training, fit: GpuFit | None) -> dict[str, Any]:
    return {
        "method": t.method,
        "optimizer": t.optimizer,
        "dtype": t.dtype.label,
        "zero": t.zero,
        "gpus": t.gpus,
        "trainable_parameters": t.trainable_parameters,
        "frozen_parameters": t.frozen_parameters,
        "lora_rank": t.lora_rank,
        "lora_targets": list(t.lora_targets),
        "weights_bytes": t.weights_bytes,
        "gradients_bytes": t.gradients_bytes,
        "master_weights_bytes": t.master_bytes,
        "optimizer_bytes": t.optimizer_bytes,
        "activations": t.activations,
        "activations_bytes_per_gpu": t.activations_bytes_per_gpu,
        "overhead": overhead_text(t.overhead) if t.overhead is not None else None,
        "bytes_per_trainable_parameter": json_number(t.bytes_per_trainable_parameter),
        "total_bytes": t.total_bytes,
        "per_gpu": t.per_gpu(),
        "per_gpu_bytes": t.per_gpu_bytes(),
        "gpu_fit": fit_json(fit) if fit else None,
    }


def to_json(fp: Footprint, binary: bool = False) -> dict[str, Any]:
    """The ``--json`` document (schema in docs/footprint.md)."""
    kv = fp.kv
    o = fp.overhead
    return {
        "schema_version": SCHEMA_VERSION,
        "parameters": fp.parameters,
        "source": fp.source,
        "units": "gib" if binary else "gb",
        "model": dims_json(fp.dims) if fp.dims is not None and dims_known(fp.dims) else None,
        "precisions": [_row_json(r) for r in fp.rows],
        "kv_cache_bytes": kv.bytes if kv else None,
        "kv_cache": kv_json(kv) if kv else None,
        "overhead": {
            "rule": o.text,
            "fraction_of_weights": float(o.fraction) if o.fraction is not None else None,
            "bytes_per_gpu": o.bytes_per_gpu,
            "description": overhead_text(o),
        },
        "training": training_json(fp.training, fp.training_fit) if fp.training else None,
        "gpu": gpu_json(fp.gpu) if fp.gpu else None,
        "excluded": excluded(fp),
        "notes": [printable(n) for n in fp.notes],
    }


def dims_known(d: ModelDims) -> bool:
    return any(v is not None for v in (d.layers, d.hidden_size, d.heads, d.kv_heads, d.head_dim))
