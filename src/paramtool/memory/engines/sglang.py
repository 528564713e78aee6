"""SGLang's memory accounting, as ``server_args.py`` and ``model_runner.py`` do it.

* ``mem_fraction_static`` (weights + KV pool as a share of the GPU) defaults from the GPU's
  memory in MiB (``_handle_gpu_memory_settings``): ``reserved = 512 + max(chunked_prefill,
  2048) × 1.5 + cuda_graph_max_bs × 2 + tp × pp / 8 × 1024`` MiB, at least 10 GiB on a GPU
  over 60 GiB, and ``round((gpu_mem - reserved) / gpu_mem, 3)``;
* ``profile_max_num_token``: ``rest = free after loading - free before × (1 - fraction)``,
  ``max_total_num_tokens = rest // cell_size`` with ``cell_size = kv_heads/tp × head_dim ×
  layers × 2 × bytes`` (MLA: ``(kv_lora_rank + qk_rope_head_dim) × layers × bytes``);
* sliding-window models (hybrid SWA pool): ``full = total × layers / (ratio × swa_layers +
  full_layers)``, ``swa = full × ratio`` with ``swa_full_tokens_ratio`` 0.8.
"""

from __future__ import annotations

from paramtool import dtypes
from paramtool.dtypes import DType
from paramtool.errors import UsageError
from paramtool.memory.engines.base import DevicePlan, EngineFit, ModelView, RamPlan, Request

VERSION = "SGLang 0.5 (main)"
MIB = 1 << 20
GIB = 1 << 30
SWA_FULL_TOKENS_RATIO = 0.8
# CUDA context and NCCL set up before the first free-memory reading (not in the fraction).
CONTEXT_BYTES = 512 * MIB


def gpu_defaults(gpu_mem_mib: int, tp: int) -> tuple[int, int]:
    """(chunked_prefill_size, cuda_graph_max_bs) by GPU memory in MiB."""
    if gpu_mem_mib < 20 * 1024:
        return 2048, 8
    if gpu_mem_mib < 35 * 1024:
        return 2048, 24 if tp < 4 else 80
    if gpu_mem_mib < 60 * 1024:
        return 4096, 32 if tp < 4 else 160
    if gpu_mem_mib < 160 * 1024:
        return 8192, 256 if tp < 4 else 512
    return 16384, 512


def default_mem_fraction(gpu_mem_mib: int, tp: int, pp: int = 1) -> float:
    """``_handle_gpu_memory_settings``'s ``mem_fraction_static`` (no DP attention, no
    speculative decoding, no piecewise CUDA graphs, a text-only model)."""
    chunked, graph_bs = gpu_defaults(gpu_mem_mib, tp)
    reserved = 512 + max(chunked, 2048) * 1.5 + graph_bs * 2 + tp * pp / 8 * 1024
    if gpu_mem_mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    return round((gpu_mem_mib - reserved) / gpu_mem_mib, 3)


def _bytes(dtype: DType) -> int:
    if dtype.block_size != 1:
        raise UsageError("", f"SGLang's KV cache takes a plain dtype, not {dtype.name}",
                         param="kv_dtype")  # fmt: skip
    return dtype.bytes_per_block


def cell_size(model: ModelView, dtype: DType, tp: int) -> tuple[int, int, int]:
    """(bytes per token over all layers, full-attention layers, sliding-window layers)."""
    b = _bytes(dtype)
    full = swa = 0
    per_layer = 0
    for la in model.dims.plan():
        att = la.attention
        if att is None or not la.caches_tokens:
            continue
        if att.latent_elements is not None:
            elements = att.latent_elements
        else:
            heads = max(1, (att.kv_heads or 0) // tp)
            elements = heads * (att.head_dim or 0) + heads * (att.v_head_dim or att.head_dim or 0)
        per_layer = max(per_layer, elements)
        if la.mixer in ("sliding_attention", "chunked_attention") and la.window:
            swa += 1
        else:
            full += 1
    return per_layer * (full + swa) * b, full, swa


class SGLangEngine:
    """SGLang's accounting; see the module docstring and docs/engine-vllm.md."""

    name = "sglang"
    version_followed = VERSION

    def supports(self, model: ModelView) -> str | None:
        if model.format == "gguf":
            return "SGLang's GGUF loading is not modelled here"
        if model.dims.kind != "decoder":
            return "SGLang serves decoder models; this one is not"
        plan = model.dims.plan()
        if any(la.state is not None for la in plan):
            return (
                "a state-space or linear-attention hybrid: SGLang's Mamba state pool "
                "(its split of memory between states and KV) is not modelled here"
            )
        if not any(la.attention is not None and la.caches_tokens for la in plan):
            return "no layer caches K/V: SGLang's token pool is not modelled for this model"
        return None

    def plan(self, model: ModelView, request: Request) -> EngineFit:
        if not request.devices:
            raise UsageError("", "needs at least one GPU", param="gpu")
        device = min(request.devices, key=lambda dv: dv.total_bytes)
        tp = request.tensor_parallel or len(request.devices)
        notes: list[str] = []
        gpu_mem = device.total_bytes // MIB
        fraction = request.mem_fraction_static
        if fraction is None:
            fraction = default_mem_fraction(gpu_mem, tp)
            notes.append(f"mem_fraction_static {fraction} (SGLang's default for this GPU and TP)")
        dtype = request.kv_dtype or model.weight_dtype or dtypes.lookup("BF16")
        if dtype.block_size != 1 and request.kv_dtype is None:
            dtype = dtypes.lookup("BF16")
        cell, full_layers, swa_layers = cell_size(model, dtype, tp)
        weights = -(-model.weights_bytes // tp)
        before = device.total_bytes - CONTEXT_BYTES
        if request.kv_memory is not None:
            rest = request.kv_memory
            notes.append("KV pool given: no profiling estimate")
        else:
            rest = int(before - weights - before * (1 - fraction))
            notes.append("free memory before loading taken as total - 512 MiB (CUDA context)")
        tokens = max(rest, 0) // cell if cell else 0
        full_tokens, swa_tokens = tokens, tokens
        desc = model.dims.description
        window = max((w for w, _ in model.dims.windows), default=None)
        if swa_layers and full_layers:
            total_layers = full_layers + swa_layers
            full_tokens = int(tokens * total_layers / (SWA_FULL_TOKENS_RATIO * swa_layers
                                                       + full_layers))  # fmt: skip
            swa_tokens = int(full_tokens * SWA_FULL_TOKENS_RATIO)
            notes.append(f"hybrid SWA pool: {full_tokens} full-layer and {swa_tokens} "
                         "sliding-layer token slots")  # fmt: skip
        context = request.context or (desc.max_position_embeddings if desc else None)
        if context is None:
            raise UsageError("", "the model states no maximum length: give the context",
                             param="context")  # fmt: skip
        concurrency = full_tokens / context
        if swa_layers and full_layers and window:
            concurrency = min(concurrency, swa_tokens / min(context, window))
        longest = min(context if desc is None or not desc.max_position_embeddings
                      else max(context, desc.max_position_embeddings), full_tokens)  # fmt: skip
        why: str | None = None
        if rest <= 0:
            why = ("the weights exceed mem_fraction_static of the GPU: SGLang refuses to "
                   "start (not enough memory, increase --mem-fraction-static)")  # fmt: skip
        elif full_tokens < context:
            why = (f"the pool holds {full_tokens} tokens, fewer than one sequence of {context}: "
                   "SGLang caps requests at the pool size")  # fmt: skip
        pool = max(rest, 0) // cell * cell if cell else 0
        budget = int(device.total_bytes * fraction)
        plans = tuple(
            DevicePlan(
                name=dv.name,
                total_bytes=dv.total_bytes,
                budget_bytes=budget,
                weights_bytes=weights,
                activation_bytes=0,
                runtime_bytes=0,
                kv_cache_bytes=pool,
                free_bytes=budget - weights - pool,
            )
            for dv in request.devices[: max(tp, 1)]
        )
        return EngineFit(
            engine=self.name,
            version_followed=self.version_followed,
            devices=plans,
            ram=RamPlan(),
            kv_cache_bytes=pool * len(plans),
            kv_cache_tokens=full_tokens,
            max_model_len=longest,
            max_concurrency=concurrency,
            fits=why is None,
            why_not=why,
            notes=tuple(notes),
        )


ENGINE = SGLangEngine()
