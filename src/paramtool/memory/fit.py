"""What fits on given devices with a given serving engine, and what to change when it does not.

:func:`model_view` turns a checkpoint's breakdown (or ``--params`` and dimension flags) into
the :class:`~paramtool.memory.engines.base.ModelView` every engine reads; :func:`fit` asks
one engine (:mod:`paramtool.memory.engines`) for its plan, falls back to the generic
estimate when the engine cannot model the model, adds the speed bounds, and answers the
inverse questions by asking the engine again (bounded, binary searches where the answer is
monotone): the largest context at ``batch``, the most sequences at ``context``, and, when
nothing fits, the smallest tensor-parallel degree, device count, offload depth or CPU-MoE
count that does. Pure: no typer, no rich, never prints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from paramtool import dtypes
from paramtool.dtypes import DType
from paramtool.errors import ParamtoolError, UsageError
from paramtool.frozen import dataclass
from paramtool.memory.dims import ModelDims
from paramtool.memory.engines import engine_name, get_engine
from paramtool.memory.engines.base import (
    Device,
    DevicePlan,
    Engine,
    EngineFit,
    ModelView,
    RamPlan,
    Request,
)
from paramtool.memory.kv_cache import DEFAULT_KV_DTYPE, kv_cache
from paramtool.memory.search import largest, smallest

if TYPE_CHECKING:
    from paramtool.analysis.breakdown import Breakdown

DEFAULT_PARAMS_DTYPE = "BF16"  # --params with no --dtype: weights at bf16
MAX_CONTEXT = 2**24  # how far the largest-context search goes past a model's stated limit
MAX_BATCH = 2**20  # how far the most-sequences search goes
MAX_GPUS = 64  # how far the device-count search goes
PARALLEL_ENGINES = ("vllm", "sglang", "generic")  # tensor parallel: every device reads at once
_VISION = ("vision_encoder", "multimodal_projector", "audio_encoder")


# ---------------------------------------------------------------- the model


def model_view(
    breakdown: Breakdown, dims: ModelDims, dtype: DType | None = None, *, name: str = ""
) -> ModelView:
    """The model as the engines see it, from a checkpoint's breakdown.

    ``dtype`` None: the bytes as stored (a quantized checkpoint's packed weights, scales and
    all); a dtype: every logical parameter at that dtype (:meth:`DType.estimate_nbytes`, as
    ``footprint`` prices them). The multi-token-prediction part (``mtp_bytes``) is not in
    ``weights_bytes``: engines load it only for speculative decoding with MTP
    (``Request.mtp``); ``mtp_shared_bytes`` is its own token embedding and output head,
    which vLLM and SGLang replace by the target's. Vision and
    audio encoders and their projector are (``vision_bytes`` says how much of it they are).
    Read per decoded token (``active_weights_bytes``): the language model less the rows of
    an untied token embedding not looked up, and less the routed experts a token skips
    (``n - k`` of ``n`` in each MoE layer).
    """
    b = breakdown

    def at(params: int, stored: int) -> int:
        return stored if dtype is None else dtype.estimate_nbytes(params)

    # [parameters, stored bytes] accumulators, one pass over the tensors.
    layers: dict[int, list[int]] = {}
    routed: dict[int, list[int]] = {}
    embedding, output, other, mtp, vision, mtp_shared = ([0, 0] for _ in range(6))
    for t, role, n in zip(b.checkpoint.tensors, b.roles, b.parameters, strict=True):
        nbytes = t.stored_bytes  # a pickle's shared storage (tied weights) counts once
        if role.part == "mtp":
            acc = mtp
            if role.component in ("token_embedding", "lm_head"):
                mtp_shared[0] += n
                mtp_shared[1] += nbytes
        elif role.part in _VISION:
            acc = vision
        elif role.layer is not None:
            acc = layers.setdefault(role.layer, [0, 0])
            if role.component == "expert":
                r = routed.setdefault(role.layer, [0, 0])
                r[0] += n
                r[1] += nbytes
        elif role.component == "token_embedding":
            acc = embedding
        elif role.component == "lm_head":
            acc = output
        else:
            acc = other
        acc[0] += n
        acc[1] += nbytes
    order = sorted(layers)
    moe = b.moe
    k = moe.experts_per_token if moe is not None else None
    n_experts = moe.routed_experts if moe is not None else None
    skipped_params = skipped_bytes = 0
    if k is not None and n_experts and k < n_experts:
        for p, s in routed.values():
            skipped_params += _rounded(p * (n_experts - k), n_experts)
            skipped_bytes += _rounded(at(p, s) * (n_experts - k), n_experts)
    text = [layers[i] for i in order] + [embedding, output, other]
    lm_params = sum(x[0] for x in text)
    lm_bytes = sum(x[1] for x in text)
    total_params = lm_params + vision[0]
    weights = lm_bytes + vision[1] if dtype is None else dtype.estimate_nbytes(total_params)
    lm_at = lm_bytes if dtype is None else dtype.estimate_nbytes(lm_params)
    tied = b.tied_embeddings is not False and not output[0]
    lookup = 0 if tied else at(*embedding)  # an untied embedding: one row read per token
    return ModelView(
        dims=dims,
        parameters=b.logical_parameters,
        active_parameters=lm_params - skipped_params,
        weights_bytes=weights,
        active_weights_bytes=max(lm_at - lookup - skipped_bytes, 0),
        layer_bytes=tuple(at(*layers[i]) for i in order),
        embedding_bytes=at(*embedding),
        output_bytes=at(*output),
        other_bytes=at(*other),
        routed_expert_bytes=tuple(at(*routed[i]) if i in routed else 0 for i in order)
        if routed
        else (),
        mtp_bytes=at(*mtp),
        mtp_shared_bytes=at(*mtp_shared),
        vision_bytes=at(*vision),
        format="gguf" if b.checkpoint.format == "gguf" else "safetensors",
        weight_dtype=dtype,
        name=name or b.checkpoint.source,
    )


def _rounded(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half up, as the MoE analysis rounds."""
    whole, rest = divmod(numerator, denominator)
    return whole + (2 * rest >= denominator)


def params_view(
    parameters: int, dims: ModelDims, dtype: DType | None = None, *, name: str = ""
) -> ModelView:
    """The model from ``--params`` and dimension flags, no checkpoint: a dense model whose
    weights (at ``dtype``, bf16 by default) are split evenly over its layers."""
    dtype = dtype or dtypes.lookup(DEFAULT_PARAMS_DTYPE)
    weights = dtype.estimate_nbytes(parameters)
    count = dims.layers or 0
    per = weights // count if count else 0
    return ModelView(
        dims=dims,
        parameters=parameters,
        active_parameters=parameters,
        weights_bytes=weights,
        active_weights_bytes=weights,
        layer_bytes=(per,) * count,
        other_bytes=weights - per * count,
        weight_dtype=dtype,
        name=name,
    )


def default_engine(model: ModelView) -> str:
    """vLLM for safetensors, llama.cpp for GGUF."""
    return "llama.cpp" if model.format == "gguf" else "vllm"


# ---------------------------------------------------------------- the answer


@dataclass(frozen=True, slots=True)
class Solves:
    """The inverse answers, each found by asking the engine again; None: none found."""

    context: int  # the context the most-sequences answer is for
    batch: int  # the sequences the largest-context answer is for
    max_context: int | None  # the largest context that fits at ``batch`` (capped: ``context_cap``)
    context_cap: int  # how far that search went (the model's limit, or MAX_CONTEXT)
    max_batch: int | None  # the most sequences of ``context`` tokens that fit
    tensor_parallel: int | None = None  # the smallest degree among the devices given that fits
    gpus: int | None = None  # the smallest count of the first device's kind that fits
    gpu_layers: int | None = None  # llama.cpp: the most layers offloaded that fit
    cpu_moe: int | None = None  # llama.cpp: the fewest layers' experts in RAM that fit
    searched: tuple[str, ...] = ()  # which of the does-not-fit solves were tried

    def to_dict(self) -> dict[str, Any]:
        return {
            "context": self.context,
            "batch": self.batch,
            "max_context": self.max_context,
            "context_cap": self.context_cap,
            "max_batch": self.max_batch,
            "tensor_parallel": self.tensor_parallel,
            "gpus": self.gpus,
            "gpu_layers": self.gpu_layers,
            "cpu_moe": self.cpu_moe,
            "searched": list(self.searched),
        }


@dataclass(frozen=True, slots=True)
class Fit:
    """What ``paramtool fit`` answers, for the tables and the JSON alike."""

    source: str
    model: ModelView
    request: Request
    engine: str
    version_followed: str
    devices: tuple[DevicePlan, ...]
    ram: RamPlan
    kv_cache_bytes: int
    kv_cache_tokens: int
    max_model_len: int | None
    max_concurrency: float | None
    fits: bool
    why_not: str | None
    context: int  # the context per sequence the speed bound and max_batch are for
    decode_tokens_per_s_max: float | None  # one sequence, at ``context`` tokens
    prefill_tokens_per_s_max: float | None
    solves: Solves
    notes: tuple[str, ...]
    fallback: bool  # the generic estimate stood in for the engine asked for
    requested_engine: str  # the engine asked for (or the default), before any fallback

    @property
    def exit_code(self) -> int:
        """0 when it fits, 1 when it does not (``paramtool fit``'s exit status)."""
        return 0 if self.fits else 1

    def to_dict(self) -> dict[str, Any]:
        """The document ``paramtool fit --json`` prints: exact integers, bytes throughout."""
        m, r = self.model, self.request
        return {
            "source": self.source,
            "engine": {"name": self.engine, "version_followed": self.version_followed},
            "requested_engine": self.requested_engine,
            "fallback": self.fallback,
            "model": {
                "format": m.format,
                "dtype": m.weight_dtype.label if m.weight_dtype is not None else None,
                "parameters": m.parameters,
                "active_parameters": m.active_parameters,
                "weights_bytes": m.weights_bytes,
                "active_weights_bytes": m.active_weights_bytes,
                "mtp_bytes": m.mtp_bytes,
                "vision_bytes": m.vision_bytes,
                "layers": len(m.layer_bytes),
            },
            "request": _request_dict(r),
            "devices": [_device_dict(d) for d in self.devices],
            "ram": {
                "weights_bytes": self.ram.weights_bytes,
                "kv_cache_bytes": self.ram.kv_cache_bytes,
                "activation_bytes": self.ram.activation_bytes,
                "total_bytes": self.ram.total_bytes,
            },
            "kv_cache_bytes": self.kv_cache_bytes,
            "kv_cache_tokens": self.kv_cache_tokens,
            "max_model_len": self.max_model_len,
            "max_concurrency": _finite(self.max_concurrency),
            "fits": self.fits,
            "why_not": self.why_not,
            "context": self.context,
            "decode_tokens_per_s_max": _finite(self.decode_tokens_per_s_max),
            "prefill_tokens_per_s_max": _finite(self.prefill_tokens_per_s_max),
            "solves": self.solves.to_dict(),
            "notes": list(self.notes),
        }


def _finite(x: float | None) -> float | None:
    """A float for JSON: rounded to 4 decimals; None for none, NaN or infinity."""
    if x is None or x != x or x in (float("inf"), float("-inf")):
        return None
    return round(float(x), 4)


def _device_dict(d: DevicePlan) -> dict[str, Any]:
    return {
        "name": d.name,
        "total_bytes": d.total_bytes,
        "budget_bytes": d.budget_bytes,
        "weights_bytes": d.weights_bytes,
        "activation_bytes": d.activation_bytes,
        "runtime_bytes": d.runtime_bytes,
        "kv_cache_bytes": d.kv_cache_bytes,
        "free_bytes": d.free_bytes,
    }


def _request_dict(r: Request) -> dict[str, Any]:
    def view(v: ModelView | None) -> dict[str, Any] | None:
        if v is None:
            return None
        return {"name": v.name, "parameters": v.parameters, "weights_bytes": v.weights_bytes}

    return {
        "gpus": [
            {
                "name": d.name,
                "key": d.key,
                "total_bytes": d.total_bytes,
                "bandwidth_bytes_per_s": d.bandwidth_bytes_per_s,
                "unified": d.unified,
                "working_set_bytes": d.working_set_bytes,
            }
            for d in r.devices
        ],
        "context": r.context,
        "batch": r.batch,
        "kv_dtype": r.kv_dtype.label if r.kv_dtype is not None else None,
        "tensor_parallel": r.tensor_parallel,
        "gpu_memory_utilization": r.gpu_memory_utilization,
        "max_num_batched_tokens": r.max_num_batched_tokens,
        "kv_memory_bytes": r.kv_memory,
        "gpu_layers": r.gpu_layers,
        "cpu_moe": r.cpu_moe,
        "ram_bytes": r.ram_bytes,
        "flash_attention": r.flash_attention,
        "draft": view(r.draft),
        "mmproj": view(r.mmproj),
        "mtp": r.mtp,
    }


# ---------------------------------------------------------------- the request


def devices_of(gpu: str | Device | Sequence[str | Device]) -> tuple[Device, ...]:
    """Devices from ``--gpu`` spellings (``h100-80gb:4``, ``48GB``, ``m3-max-128gb``) or
    :class:`Device` records, in order."""
    items: Sequence[str | Device] = [gpu] if isinstance(gpu, str | Device) else list(gpu)
    if not items:
        raise UsageError("", "give at least one GPU", param="gpu")
    out: list[Device] = []
    specs = [x for x in items if isinstance(x, str)]
    parsed = iter(_parse_gpus(specs) if specs else ())
    for x in items:
        if isinstance(x, Device):
            out.append(x)
        else:
            out.extend(next(parsed))
    return tuple(out)


def _parse_gpus(specs: Sequence[str]) -> list[tuple[Device, ...]]:
    """Each spelling's devices (one spelling may name several: ``h100:4``)."""
    from paramtool.memory.devices import parse_gpus

    return [parse_gpus([spec]) for spec in specs]


def utilization(value: float | str | None, param: str) -> float | None:
    """A share of a device's memory: a fraction in (0, 1] (``0.9``) or a percentage."""
    if value is None:
        return None
    if isinstance(value, str):
        from paramtool.units import percent_value

        exact = percent_value(value)
        if exact is None:
            raise UsageError(repr(value), "write it like 0.9 or 90%", param=param)
        number = float(exact)
    else:
        number = float(value)
    if not 0 < number <= 1:
        raise UsageError(str(value), "must be more than 0 and at most 1 (or 100%)", param=param)
    return number


def switch(value: bool | str | None, param: str) -> bool | None:
    """On or off: a bool, or ``on``/``off`` (``true``/``false``, ``1``/``0``)."""
    if value is None or isinstance(value, bool):
        return value
    word = value.strip().lower()
    if word in ("on", "true", "1", "yes"):
        return True
    if word in ("off", "false", "0", "no"):
        return False
    raise UsageError(repr(value), "write on or off", param=param)


def size_of(value: int | str | None, param: str) -> int | None:
    """A byte size: an int, or text such as ``24GiB`` or ``500MB``."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        from paramtool.units import parse_size

        try:
            number = parse_size(str(value))
        except UsageError:
            raise UsageError(repr(value), "write it like 24GiB or 500MB", param=param) from None
    if number < 1:
        raise UsageError(str(value), "must be more than zero", param=param)
    return number


# ---------------------------------------------------------------- fitting


def fit(model: ModelView, request: Request, engine: Engine | str | None = None) -> Fit:
    """Ask ``engine`` (default: vLLM for safetensors, llama.cpp for GGUF) for its plan.

    An engine that cannot model ``model`` (:meth:`Engine.supports` says why) gives way to
    the generic estimate, and the notes say so.
    """
    notes: list[str] = []
    if engine is None:
        chosen = get_engine(default_engine(model))
        kind = "GGUF" if model.format == "gguf" else "safetensors"
        notes.append(f"engine {chosen.name}: the default for {kind} (--engine to choose)")
    elif isinstance(engine, str):
        chosen = get_engine(engine_name(engine))
    else:
        chosen = engine
    requested = chosen.name
    fallback = False
    reason = chosen.supports(model)
    if reason is not None:
        notes.append(f"{chosen.name} cannot model this model ({reason}): the generic estimate")
        chosen = get_engine("generic")
        fallback = True
    plan = chosen.plan(model, request)
    notes.extend(plan.notes)
    if request.mtp and not model.mtp_bytes:
        raise UsageError(
            "", "the checkpoint has no multi-token-prediction head to load", param="mtp"
        )
    if request.mtp and chosen.name not in ("vllm", "sglang"):
        notes.append(f"{chosen.name} does not load an MTP head: mtp ignored")
    if model.mtp_bytes and not request.mtp:
        notes.append(
            f"the checkpoint's MTP head ({model.mtp_bytes:,} bytes) is not loaded: engines load "
            "it only for speculative decoding with MTP, off by default (mtp to load it)"
        )
    context = _context(model, request, plan)
    fits, why_not = plan.fits, plan.why_not
    if fits and not _holds(plan, request.batch):
        fits = False
        why_not = (
            f"the KV pool holds {plan.max_concurrency or 0:.2f} sequences of {context:,} "
            f"tokens at once, fewer than the {request.batch} asked for"
        )
    solves = _solve(chosen, model, request, fits, context)
    decode, prefill = _speed(chosen.name, model, request, plan, context)
    return Fit(
        source=model.name,
        model=model,
        request=request,
        engine=plan.engine,
        version_followed=plan.version_followed,
        devices=plan.devices,
        ram=plan.ram,
        kv_cache_bytes=plan.kv_cache_bytes,
        kv_cache_tokens=plan.kv_cache_tokens,
        max_model_len=plan.max_model_len,
        max_concurrency=plan.max_concurrency,
        fits=fits,
        why_not=why_not,
        context=context,
        decode_tokens_per_s_max=decode,
        prefill_tokens_per_s_max=prefill,
        solves=solves,
        notes=tuple(dict.fromkeys(notes)),
        fallback=fallback or plan.fallback,
        requested_engine=requested,
    )


def _limit(model: ModelView) -> int | None:
    desc = model.dims.description
    return desc.max_position_embeddings if desc is not None else None


def _context(model: ModelView, request: Request, plan: EngineFit) -> int:
    """The context per sequence: asked for, else the model's stated limit, else the engine's
    largest, else 4096."""
    return request.context or _limit(model) or plan.max_model_len or 4096


def _holds(plan: EngineFit, batch: int) -> bool:
    """The plan fits and its KV pool holds ``batch`` sequences at once (an engine that
    starts with room for fewer queues the rest: not what was asked for)."""
    return plan.fits and (plan.max_concurrency is None or plan.max_concurrency >= batch)


def _fits(engine: Engine, model: ModelView, request: Request) -> bool:
    """Whether ``request`` fits; a request the engine refuses (a degree that does not divide
    the heads) does not."""
    try:
        return _holds(engine.plan(model, request), request.batch)
    except ParamtoolError:
        return False


def _solve(engine: Engine, model: ModelView, request: Request, fits: bool, context: int) -> Solves:
    def ok(**changes: Any) -> bool:
        return _fits(engine, model, replace(request, **changes))

    cap = max(_limit(model) or MAX_CONTEXT, request.context or 0)
    max_context = largest(lambda c: ok(context=c), 1, cap)
    max_batch = largest(lambda b: ok(context=context, batch=b), 1, MAX_BATCH)
    found: dict[str, int | None] = {}
    searched: list[str] = []
    if not fits:
        parallel = engine.name in PARALLEL_ENGINES
        count = len(request.devices)
        if parallel and count > 1:
            searched.append("tensor_parallel")
            found["tensor_parallel"] = _first(lambda tp: ok(tensor_parallel=tp), _powers(count))
        first = request.devices[0] if request.devices else None
        if first is not None:
            searched.append("gpus")
            counts = _powers(MAX_GPUS) if parallel else range(1, MAX_GPUS + 1)

            def more(n: int) -> bool:
                tp = n if parallel else None
                return ok(devices=(first,) * n, tensor_parallel=tp)

            found["gpus"] = _first(more, [n for n in counts if n >= count])
        if engine.name == "llama.cpp":
            layers = len(model.layer_bytes) or (model.dims.layers or 0)
            searched.append("gpu_layers")
            found["gpu_layers"] = largest(lambda g: ok(gpu_layers=g), 0, layers + 1)
            moe_layers = sum(1 for x in model.routed_expert_bytes if x)
            if moe_layers:
                searched.append("cpu_moe")
                found["cpu_moe"] = smallest(lambda c: ok(cpu_moe=c), 0, moe_layers)
    return Solves(
        context=context,
        batch=request.batch,
        max_context=max_context,
        context_cap=cap,
        max_batch=max_batch,
        searched=tuple(searched),
        **found,
    )


def _powers(most: int) -> list[int]:
    out, n = [], 1
    while n <= most:
        out.append(n)
        n *= 2
    return out


def _first(ok: Callable[[int], bool], candidates: Sequence[int]) -> int | None:
    return next((n for n in candidates if ok(n)), None)


# ---------------------------------------------------------------- speed


def _speed(
    engine: str, model: ModelView, request: Request, plan: EngineFit, context: int
) -> tuple[float | None, float | None]:
    """Upper bounds from physics for one sequence at ``context`` tokens.

    Decode: each device reads, per token, its share of the active weights (in proportion
    to the weights it holds) and of the KV cache at ``context`` (in proportion to the pool
    it holds); system RAM's share is read by the CPU, whose bandwidth is not known (then no
    bound). Prefill: 2 x the active parameters less the token embedding, plus the attention
    over a causal prompt of ``context`` tokens (:func:`speed.flops_per_token`), over the peak
    dense compute of the devices holding weights.
    """
    from paramtool.memory import speed

    kv_dtype = request.kv_dtype or dtypes.lookup(DEFAULT_KV_DTYPE)
    try:
        kv_read = kv_cache(model.dims, context, 1, kv_dtype).bytes
    except ParamtoolError:
        kv_read = 0
    held = [p.weights_bytes for p in plan.devices]
    # llama.cpp keeps the token embedding table in system memory: a lookup of one row per
    # token, not a read of the table (the active weights leave an untied table out).
    ram_held = plan.ram.weights_bytes
    if engine == "llama.cpp":
        ram_held = max(ram_held - model.embedding_bytes, 0)
    total_weights = sum(held) + ram_held
    pools = [p.kv_cache_bytes for p in plan.devices]
    total_pool = sum(pools) + plan.ram.kv_cache_bytes
    bandwidth = {d.name: d.bandwidth_bytes_per_s for d in request.devices}
    reads: list[tuple[int, int | None]] = []
    for p, w, kv in zip(plan.devices, held, pools, strict=True):
        weights_part = model.active_weights_bytes * w // total_weights if total_weights else 0
        kv_part = kv_read * kv // total_pool if total_pool else kv_read // len(plan.devices)
        if w or kv:
            reads.append((weights_part + kv_part, bandwidth.get(p.name)))
    if ram_held or plan.ram.kv_cache_bytes:
        ram_w = model.active_weights_bytes * ram_held // total_weights if total_weights else 0
        ram_kv = kv_read * plan.ram.kv_cache_bytes // total_pool if total_pool else 0
        reads.append((ram_w + ram_kv, _ram_bandwidth(request.devices)))
    parallel = engine in PARALLEL_ENGINES and not plan.ram.total_bytes
    decode = speed.decode_tokens_per_s_max(reads, parallel=parallel) if reads else None
    holding = tuple(
        d for d, p in zip(request.devices, plan.devices, strict=False) if p.weights_bytes
    )
    d = model.dims
    flops = speed.flops_per_token(
        max(model.active_parameters - _embedding_params(model), 0),
        layers=d.layers or 0,
        heads=d.heads or 0,
        head_dim=d.head_dim or 0,
        context=context,
    )
    prefill = (
        speed.prefill_tokens_per_s_max(flops, holding, _compute_key(model.weight_dtype))
        if holding and flops
        else None
    )
    return decode, prefill


def _ram_bandwidth(devices: Sequence[Device]) -> int | None:
    """Apple silicon's CPU reads the same unified memory as its GPU; else unknown."""
    unified = [d for d in devices if d.unified]
    return unified[0].bandwidth_bytes_per_s if unified else None


def _embedding_params(model: ModelView) -> int:
    """The token embedding's parameters, vocab x hidden (a lookup, not a matmul); 0 when
    the model has no embedding table in the checkpoint or its sizes are unknown."""
    d = model.dims
    if not model.embedding_bytes or not d.vocab_size or not d.hidden_size:
        return 0
    return d.vocab_size * d.hidden_size


def _compute_key(dtype: DType | None) -> str:
    """The dtype the matmuls run in: fp8 weights on fp8 tensor cores, else bf16 (weight-only
    quantized formats dequantize to bf16)."""
    if dtype is not None and dtype.is_float and dtype.bits == 8:
        return "fp8"
    if dtype is not None and dtype.is_float and dtype.bits >= 32:
        return "fp32"
    return "bf16"


__all__ = [
    "Fit",
    "Solves",
    "default_engine",
    "devices_of",
    "fit",
    "model_view",
    "params_view",
    "size_of",
    "switch",
    "utilization",
]
