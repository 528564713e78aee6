"""What a model costs to hold: weights at every precision, KV cache, serving, training, GPU fit.

Pure arithmetic over exact integers (``Fraction`` where a rate is not whole);
no typer, no rich. Every formula and default is documented in
``docs/footprint.md`` with its source; the short form:

* weights  = ceil(parameters * bits_per_weight / 8)          (``dtypes`` table);
  as stored: the checkpoint's tensor bytes, exactly
* KV cache = 2 * layers * kv_heads * head_dim * tokens * batch * bytes
  (MLA: (kv_lora_rank + qk_rope_head_dim) instead of 2 * kv_heads * head_dim;
  sliding-window layers hold min(context, window) tokens)
* serving  = weights + KV cache + overhead (default 20% of the weights:
  EleutherAI, "Transformer Math 101": inference memory ~ 1.2 x model memory)
* training = weights + gradients + fp32 master copy + optimizer states per
  trainable parameter (16 bytes for bf16 mixed-precision AdamW), ZeRO-sharded;
  no overhead unless one is given (then on every GPU, as for serving).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from paramtool import dtypes
from paramtool.dtypes import DType
from paramtool.errors import UsageError
from paramtool.frozen import dataclass
from paramtool.memory import footprint_json
from paramtool.memory.dims import ModelDims
from paramtool.memory.gpu_fit import MAX_GPUS, GpuFit, fit_serving, fit_training
from paramtool.memory.gpus import Gpu
from paramtool.memory.kv_cache import KVCache, kv_cache
from paramtool.memory.overhead import DEFAULT_OVERHEAD, Overhead, parse_overhead
from paramtool.memory.precisions import PrecisionRow, StoredWeights, precision_rows
from paramtool.memory.training import (
    DEFAULT_LORA_RANK,
    DEFAULT_LORA_TARGETS,
    LORA_PRESETS,
    Training,
    training,
)


@dataclass(frozen=True, slots=True)
class ServingRow:
    """One precision served: weights, KV cache and overhead, and the GPU fit if asked."""

    precision: PrecisionRow
    kv_cache_bytes: int
    overhead_bytes: int  # on one GPU
    fit: GpuFit | None = None

    @property
    def total_bytes(self) -> int:
        return self.precision.weights_bytes + self.kv_cache_bytes + self.overhead_bytes


@dataclass(frozen=True, slots=True)
class Footprint:
    """Everything ``paramtool footprint`` reports, for the tables and the JSON alike."""

    parameters: int
    source: str | None
    dims: ModelDims | None
    rows: tuple[ServingRow, ...]
    kv: KVCache | None
    overhead: Overhead
    training: Training | None
    training_fit: GpuFit | None
    gpu: Gpu | None
    gpus: int | None
    notes: tuple[str, ...]
    warnings: tuple[str, ...] = ()  # what looked wrong in the checkpoint read

    @property
    def precisions(self) -> tuple[PrecisionRow, ...]:
        return tuple(r.precision for r in self.rows)

    def to_dict(self, *, binary: bool = False) -> dict[str, Any]:
        """The document ``paramtool footprint --json`` prints (``--units gib``: ``binary``)."""
        return footprint_json.to_json(self, binary)


def estimate(
    parameters: int,
    *,
    source: str | None = None,
    dims: ModelDims | None = None,
    dtype_names: Sequence[str] | None = None,
    context: int | None = None,
    batch: int = 1,
    kv_dtype: DType | None = None,
    overhead: Overhead | None = None,
    train: str | None = None,
    optimizer: str = "adamw",
    zero: int = 0,
    gpus: int | None = None,
    lora_rank: int = DEFAULT_LORA_RANK,
    lora_targets: Sequence[str] = LORA_PRESETS[DEFAULT_LORA_TARGETS],
    activations: str = "none",
    gpu: Gpu | None = None,
    warnings: tuple[str, ...] = (),
    encoder_length: int | None = None,
    stored: StoredWeights | None = None,
) -> Footprint:
    """Compute every section the options ask for.

    ``stored``: the checkpoint's bytes as its files hold them; the precision table then
    starts with an as-stored row (without ``dtype_names``, or with ``all`` or ``stored``).
    """
    if parameters < 1:
        raise UsageError("", "must be greater than zero", param="params")
    if batch < 1:
        raise UsageError(str(batch), "must be at least 1", param="batch")
    if gpus is not None and not 1 <= gpus <= MAX_GPUS:
        raise UsageError(str(gpus), f"must be between 1 and {MAX_GPUS}", param="gpus")
    if train is None and (zero or activations != "none"):
        raise UsageError(
            "", lambda p: f"only apply to {p('train')}", param=("zero", "activations")
        )
    if lora_rank < 1:
        raise UsageError(str(lora_rank), "must be at least 1", param="lora_rank")
    notes: list[str] = list(dims.notes) if dims else []
    given_overhead = overhead  # training adds one only when asked; serving defaults to 20%
    overhead = overhead or parse_overhead(DEFAULT_OVERHEAD)
    if train is not None:
        # Training: one dtype (the trained weights, or the frozen base); --context is
        # the sequence length for activations, not a KV cache.
        train_dtype = dtypes.lookup(dtype_names[0]) if dtype_names else None

        def build(n: int) -> Training:
            return training(
                parameters,
                train,
                dims=dims,
                dtype=train_dtype,
                optimizer=optimizer,
                zero=zero,
                gpus=n,
                lora_rank=lora_rank,
                lora_targets=lora_targets,
                activations=activations,
                seq=context,
                batch=batch,
                overhead=given_overhead,
            )

        tr = build(gpus or 1)
        tfit = None
        if gpu is not None:
            tfit = fit_training(gpu, tr, gpus)
            if gpus is None and tfit.gpus != tr.gpus:
                tr = build(tfit.gpus)  # show the per-GPU split at the count that fits
        notes.extend(tr.notes)
        row = ServingRow(PrecisionRow(tr.dtype, parameters), 0, 0)
        return Footprint(
            parameters=parameters,
            source=source,
            dims=dims,
            rows=(row,),
            kv=None,
            overhead=overhead,
            training=tr,
            training_fit=tfit,
            gpu=gpu,
            gpus=gpus,
            notes=tuple(notes),
            warnings=warnings,
        )

    kv = None
    if context is not None:
        kv = kv_cache(dims or ModelDims(), context, batch, kv_dtype, encoder_length=encoder_length)
    rows = []
    for p in precision_rows(parameters, dtype_names, stored):
        fit = None
        if gpu is not None:
            fit = fit_serving(gpu, p.weights_bytes, kv, overhead, gpus)
        rows.append(
            ServingRow(
                precision=p,
                kv_cache_bytes=kv.bytes if kv else 0,
                overhead_bytes=overhead.per_gpu(p.weights_bytes, 1),
                fit=fit,
            )
        )
    return Footprint(
        parameters=parameters,
        source=source,
        dims=dims,
        rows=tuple(rows),
        kv=kv,
        overhead=overhead,
        training=None,
        training_fit=None,
        gpu=gpu,
        gpus=gpus,
        notes=tuple(notes),
        warnings=warnings,
    )
