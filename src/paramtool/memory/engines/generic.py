"""The generic estimate as an engine: what ``paramtool footprint`` adds up, per device.

It follows no engine's source: weights split evenly over the devices used, the KV cache
of ``context`` tokens for ``batch`` sequences (:func:`paramtool.memory.kv_cache.kv_cache`,
split by KV head as tensor parallelism splits it), and a flat serving overhead of 20% of
the weights (:mod:`paramtool.memory.overhead`: EleutherAI's "Transformer Math 101",
inference memory ~ 1.2 x the weights). :func:`paramtool.memory.fit.fit` falls back to it
when an engine cannot model a model, and says so.
"""

from __future__ import annotations

from paramtool import dtypes
from paramtool.errors import UsageError
from paramtool.frozen import dataclass
from paramtool.memory.engines.base import (
    Device,
    DevicePlan,
    EngineFit,
    ModelView,
    RamPlan,
    Request,
    shortfall,
)
from paramtool.memory.kv_cache import DEFAULT_KV_DTYPE, kv_cache
from paramtool.memory.overhead import DEFAULT_OVERHEAD, parse_overhead
from paramtool.memory.search import largest

DEFAULT_CONTEXT = 4096  # when neither --context nor the model's max_position_embeddings says
MAX_CONTEXT = 2**24  # how far a largest-context search goes for a model that states no limit
VERSION = "paramtool generic estimate"
_IGNORED = (
    ("gpu_memory_utilization", "gpu_memory_utilization"),
    ("mem_fraction_static", "mem_fraction_static"),
    ("max_num_batched_tokens", "max_num_batched_tokens"),
    ("kv_memory", "kv_memory"),
    ("gpu_layers", "gpu_layers"),
    ("cpu_moe", "cpu_moe"),
    ("flash_attention", "flash_attention"),
)


def model_limit(model: ModelView) -> int | None:
    """The context the model states it takes (``max_position_embeddings``), if it does."""
    desc = model.dims.description
    return desc.max_position_embeddings if desc is not None else None


def budget(device: Device) -> int:
    """What one device offers: its total, or on Apple silicon macOS's GPU working-set limit."""
    return device.working_set_bytes if device.working_set_bytes is not None else device.total_bytes


@dataclass(frozen=True, slots=True)
class Generic:
    """Weights + KV cache + 20% of the weights, on each device used."""

    name: str = "generic"
    version_followed: str = VERSION

    def supports(self, model: ModelView) -> str | None:
        return None

    def plan(self, model: ModelView, request: Request) -> EngineFit:
        devices = request.devices
        if not devices:
            raise UsageError("", "give at least one GPU", param="gpu")
        n = request.tensor_parallel or len(devices)
        if not 1 <= n <= len(devices):
            raise UsageError(
                str(n), f"must be between 1 and the {len(devices)} GPUs given",
                param="tensor_parallel",
            )  # fmt: skip
        used = devices[:n]
        notes = [
            "the generic estimate: weights split evenly over "
            f"{n} device{'s' if n > 1 else ''}, the KV cache asked for, and "
            f"{DEFAULT_OVERHEAD} of the weights for CUDA context, activations and fragmentation"
        ]
        context = request.context
        if context is None:
            context = model_limit(model) or DEFAULT_CONTEXT
            why = "the model's max_position_embeddings" if model_limit(model) else "a default"
            notes.append(f"context {context:,} tokens ({why}; --context to choose)")
        kv_dtype = request.kv_dtype or dtypes.lookup(DEFAULT_KV_DTYPE)
        extra = [v for v in (request.draft, request.mmproj) if v is not None]
        weights = model.weights_bytes + sum(v.weights_bytes for v in extra)
        per_weights = -(-weights // n)
        overhead = parse_overhead(DEFAULT_OVERHEAD).per_gpu(weights, n)

        def kv_per_device(ctx: int, batch: int) -> int:
            total = kv_cache(model.dims, ctx, batch, kv_dtype).per_gpu_bytes(n)
            if request.draft is not None:
                total += kv_cache(request.draft.dims, ctx, batch, kv_dtype).per_gpu_bytes(n)
            return total

        kv = kv_per_device(context, request.batch)
        plans = tuple(
            DevicePlan(
                name=d.name,
                total_bytes=d.total_bytes,
                budget_bytes=budget(d),
                weights_bytes=per_weights,
                activation_bytes=0,
                runtime_bytes=overhead,
                kv_cache_bytes=kv,
                free_bytes=budget(d) - per_weights - overhead - kv,
            )
            for d in used
        )
        room = min(budget(d) for d in used) - per_weights - overhead
        one = kv_per_device(context, 1)
        concurrency = room / one if one and room > 0 else (None if not one else 0.0)
        limit = model_limit(model) or MAX_CONTEXT
        max_len = largest(lambda c: kv_per_device(c, 1) <= room, 1, limit)
        why_not = shortfall(plans, "weights, KV cache and overhead")
        fits = why_not is None
        if any(d.unified for d in used):
            notes.append("unified memory: the budget is the GPU working-set limit macOS sets")
        ignored = [p for attr, p in _IGNORED if getattr(request, attr) is not None]
        if ignored:
            notes.append("the generic estimate does not use " + ", ".join(ignored))
        return EngineFit(
            engine=self.name,
            version_followed=self.version_followed,
            devices=plans,
            ram=RamPlan(),
            kv_cache_bytes=kv * n,
            kv_cache_tokens=context * request.batch,
            max_model_len=max_len,
            max_concurrency=concurrency,
            fits=fits,
            why_not=why_not,
            notes=tuple(notes),
        )


ENGINE = Generic()
