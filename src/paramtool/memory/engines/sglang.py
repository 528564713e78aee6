"""SGLang's memory accounting, as its own source does it (see docs/engine-sglang.md).

Followed: sgl-project/sglang ``python/sglang/srt/model_executor/model_runner_kv_cache_mixin.py``
at commit 001ccef0 (``get_cell_size_per_token``, ``profile_max_num_token``,
``handle_max_mamba_cache``, ``set_num_tokens_hybrid_swa``, ``init_memory``), ``model_runner.py``
at 0005834c (``pre_model_load_memory`` / ``post_model_load_memory``) and ``server_args.py``
``_handle_gpu_memory_settings`` of the 0.5 series.

* ``mem_fraction_static`` defaults from the GPU's memory in MiB: ``reserved = 512 +
  max(chunked_prefill, 2048) × 1.5 + cuda_graph_max_bs × 2 + tp × pp / 8 × 1024`` MiB, at
  least 10 GiB on a GPU over 60 GiB, ``round((gpu_mem - reserved) / gpu_mem, 3)``;
* ``rest = post_load_free - pre_load_free × (1 - mem_fraction_static)`` (both the free memory
  ``get_available_gpu_memory`` reads, the minimum over ranks), ``max_total_num_tokens =
  int(rest) // cell_size``, then ``// page_size * page_size``;
* ``cell_size``: ``max(1, kv_heads // tp) × (head_dim + v_head_dim) × layers × bytes``; MLA
  ``(kv_lora_rank + qk_rope_head_dim) × layers × bytes`` (not split by TP);
* hybrid SWA pool (an allowlist of architectures): ``full = int(tokens × cell /
  (F × n_full + r × S × n_swa))``, ``swa = int(full × r)``, ``r = swa_full_tokens_ratio`` 0.8;
* Mamba / linear-attention hybrids: ``mamba = rest × 0.9 / 1.9`` (``mamba_full_memory_ratio``)
  in whole per-request states, the rest to a pool of the attention layers only.
"""

from __future__ import annotations

from fractions import Fraction

from paramtool import dtypes
from paramtool.analysis.model import Attention, Layer
from paramtool.dtypes import DType
from paramtool.errors import UsageError
from paramtool.memory.engines.base import DevicePlan, EngineFit, ModelView, RamPlan, Request

VERSION = (
    "SGLang 0.5 series, main at sgl-project/sglang@001ccef0 "
    "(model_runner_kv_cache_mixin.py; server_args.py _handle_gpu_memory_settings)"
)
MIB = 1 << 20
GIB = 1 << 30
SWA_FULL_TOKENS_RATIO = Fraction(4, 5)  # server_args.swa_full_tokens_ratio = 0.8
MAMBA_FULL_MEMORY_RATIO = Fraction(9, 10)  # server_args.mamba_full_memory_ratio = 0.9
MAMBA_CACHE_SIZE_MAX_RUNNING_REQUESTS_RATIO = 3  # model_runner_kv_cache_mixin.py
PAGE_SIZE = 1  # server_args.page_size default for the default (FlashInfer / FA3) backends
CONV_STATE_BYTES = 2  # mamba_utils.py CONV_DTYPE = torch.bfloat16
SSM_STATE_BYTES = 4  # --mamba-ssm-dtype float32 (the default)
# CUDA context, cuBLAS and NCCL set up before the pre-load free-memory reading (estimate).
CONTEXT_BYTES = 512 * MIB
# model_config.py is_hybrid_swa_model: only these get the split full / SWA pool; every other
# sliding-window model keeps full-length K/V in every layer (sgl-project/sglang#39310).
HYBRID_SWA_ARCHITECTURES = frozenset({
    "Llama4ForConditionalGeneration", "GptOssForCausalLM", "MiMoV2FlashForCausalLM",
    "Step3p5ForCausalLM",
})  # fmt: skip
# Mixers whose fixed state SGLang's MambaPool keeps (RWKV-style recurrences: no model in SGLang).
MAMBA_MIXERS = ("state_space", "hybrid", "linear_attention", "conv")
# DSA (DeepSeek V3.2) indexer: index_head_dim + index_head_dim // 128 × 4 bytes a layer (uint8).
NSA_QUANT_BLOCK = 128


def gpu_defaults(gpu_mem_mib: int, tp: int) -> tuple[int, int]:
    """(chunked_prefill_size, cuda_graph_max_bs) by GPU memory in MiB (CUDA branches)."""
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


def rest_memory(pre_load_free: int, post_load_free: int, fraction: float) -> Fraction:
    """``profile_max_num_token``: ``available - total × (1 - mem_fraction_static)``, where
    ``total`` is the free memory read before the weights load (bytes, exact)."""
    return post_load_free - pre_load_free * (1 - Fraction(str(fraction)))


def max_total_num_tokens(rest: Fraction | int, cell: int, page_size: int = PAGE_SIZE) -> int:
    """``int(rest_memory × 2**30) // cell_size``, rounded down to whole pages (``init_memory``)."""
    if cell <= 0 or rest <= 0:
        return 0
    return int(rest) // cell // page_size * page_size


def _bytes(dtype: DType) -> int:
    if dtype.block_size != 1:
        raise UsageError("", f"SGLang's KV cache takes a plain dtype, not {dtype.name}",
                         param="kv_dtype")  # fmt: skip
    return dtype.bytes_per_block


def _mha_elements(att: Attention, tp: int) -> int:
    """``get_num_kv_heads(tp) × (head_dim + v_head_dim)``: ``max(1, kv_heads // tp)``."""
    heads = max(1, (att.kv_heads or 0) // tp)
    head_dim = att.head_dim or 0
    return heads * (head_dim + (att.v_head_dim or head_dim))


def _mla_cell(att: Attention, b: int) -> int:
    """One MLA layer: the latent and the RoPE key at the KV dtype, and the DSA indexer's key
    with its scales (uint8) when the model has one."""
    cell = ((att.kv_lora_rank or 0) + (att.qk_rope_head_dim or 0)) * b
    if att.index_head_dim:
        cell += att.index_head_dim + att.index_head_dim // NSA_QUANT_BLOCK * 4
    return cell


def _is_swa(la: Layer) -> bool:
    return la.mixer in ("sliding_attention", "chunked_attention") and la.window is not None


def cell_size(model: ModelView, dtype: DType, tp: int) -> tuple[int, int, int, int, int]:
    """(bytes a token over every caching layer, full-attention bytes a token per layer,
    sliding bytes a token per layer, full layers, sliding layers). The sliding figures are
    0 unless the architecture gets SGLang's hybrid SWA pool."""
    b = _bytes(dtype)
    hybrid = _hybrid_swa(model)
    full_cell = swa_cell = total = 0
    full = swa = 0
    for la in model.dims.plan():
        att = la.attention
        if att is None or not la.caches_tokens:
            continue
        cell = _mla_cell(att, b) if att.variant == "mla" else _mha_elements(att, tp) * b
        total += cell
        if hybrid and _is_swa(la):
            swa += 1
            swa_cell = max(swa_cell, cell)
        else:
            full += 1
            full_cell = max(full_cell, cell)
    return total, full_cell, swa_cell, full, swa


def _hybrid_swa(model: ModelView) -> bool:
    desc = model.dims.description
    return bool(desc and desc.architecture in HYBRID_SWA_ARCHITECTURES)


def mamba_cache_per_req(model: ModelView, tp: int) -> int:
    """``mamba2_cache_params.mamba_cache_per_req``: every stateful layer's conv state (bf16)
    and SSM / recurrent state (float32), split by TP."""
    total = 0
    for la in model.dims.plan():
        if la.state is None:
            continue
        for part, elements in la.state.parts:
            per = CONV_STATE_BYTES if part == "conv" else SSM_STATE_BYTES
            total += -(-elements // tp) * per
    return total


def split_swa(tokens: int, full_cell: int, swa_cell: int, full: int, swa: int,
              ratio: Fraction = SWA_FULL_TOKENS_RATIO,
              page_size: int = PAGE_SIZE) -> tuple[int, int]:  # fmt: skip
    """``set_num_tokens_hybrid_swa``: (full-layer tokens, sliding-layer tokens)."""
    if full == 0:
        return 0, tokens // page_size * page_size
    memory = tokens * (full_cell * full + swa_cell * swa)
    full_tokens = int(memory / (full_cell * full + ratio * swa_cell * swa))
    swa_tokens = int(full_tokens * ratio)
    return full_tokens // page_size * page_size, swa_tokens // page_size * page_size


def split_mamba(rest: Fraction | int, per_req: int,
                ratio: Fraction = MAMBA_FULL_MEMORY_RATIO) -> tuple[int, Fraction]:  # fmt: skip
    """``handle_max_mamba_cache``: (max_mamba_cache_size, memory left for the KV pool)."""
    if per_req <= 0 or rest <= 0:
        return 0, Fraction(rest)
    size = int(Fraction(rest) * ratio / (1 + ratio) // per_req)
    return size, Fraction(rest) - size * per_req


def default_max_running_requests(tokens: int, context_len: int) -> int:
    """``init_memory``: ``min(max(int(tokens / context_len × 512), 2048), 4096)``."""
    return min(max(int(tokens / context_len * 512), 2048), 4096)


class SGLangEngine:
    """SGLang's accounting; see the module docstring and docs/engine-sglang.md."""

    name = "sglang"
    version_followed = VERSION

    def supports(self, model: ModelView) -> str | None:
        if model.format == "gguf":
            return "SGLang's GGUF loading is not modelled here"
        if model.dims.kind != "decoder":
            return "SGLang serves decoder models; this one is not"
        plan = model.dims.plan()
        if any(la.state is not None and la.mixer not in MAMBA_MIXERS for la in plan):
            return "a recurrent (RWKV-style) mixer: SGLang has no state pool for it"
        if not any(la.attention is not None and la.caches_tokens for la in plan):
            return "no layer caches K/V: SGLang's token pool is not modelled for this model"
        return None

    def plan(self, model: ModelView, request: Request) -> EngineFit:
        if not request.devices:
            raise UsageError("", "needs at least one GPU", param="gpu")
        device = min(request.devices, key=lambda dv: dv.total_bytes)
        tp = request.tensor_parallel or len(request.devices)
        notes: list[str] = []
        fraction = request.mem_fraction_static
        if fraction is None:
            fraction = default_mem_fraction(device.total_bytes // MIB, tp)
            notes.append(f"mem_fraction_static {fraction} (SGLang's default for this GPU and TP)")
        dtype = request.kv_dtype or model.weight_dtype or dtypes.lookup("BF16")
        if dtype.block_size != 1 and request.kv_dtype is None:
            dtype = dtypes.lookup("BF16")
        cell, full_cell, swa_cell, full_layers, swa_layers = cell_size(model, dtype, tp)
        per_req = mamba_cache_per_req(model, tp)
        weights = -(-model.weights_bytes // tp)
        pre = device.total_bytes - CONTEXT_BYTES
        if request.kv_memory is not None:
            rest: Fraction = Fraction(request.kv_memory)
            notes.append("KV pool given: no profiling estimate")
        else:
            rest = rest_memory(pre, pre - weights, fraction)
            notes.append("free memory before loading taken as total - 512 MiB (CUDA context, "
                         "an estimate); page_size 1")  # fmt: skip
        mamba_slots = 0
        if per_req:
            mamba_slots, rest = split_mamba(rest, per_req)
            notes.append(f"Mamba state pool: {mamba_slots} states of {per_req} bytes "
                         "(mamba_full_memory_ratio 0.9, float32 SSM state)")  # fmt: skip
        tokens = max_total_num_tokens(rest, cell)
        full_tokens, swa_tokens = tokens, tokens
        if swa_layers:
            full_tokens, swa_tokens = split_swa(tokens, full_cell, swa_cell, full_layers,
                                                swa_layers)  # fmt: skip
            notes.append(f"hybrid SWA pool: {full_tokens} full-layer and {swa_tokens} "
                         "sliding-layer token slots (swa_full_tokens_ratio 0.8)")  # fmt: skip
        elif any(_is_swa(la) for la in model.dims.plan()):
            notes.append("sliding-window layers keep full-length K/V: this architecture is "
                         "not on SGLang's hybrid SWA list")  # fmt: skip
        desc = model.dims.description
        context = request.context or (desc.max_position_embeddings if desc else None)
        if context is None:
            raise UsageError("", "the model states no maximum length: give the context",
                             param="context")  # fmt: skip
        pool_tokens = full_tokens if full_layers else swa_tokens
        concurrency = pool_tokens / context
        window = max((w for w, _ in model.dims.windows), default=None)
        if swa_layers and full_layers and window:
            concurrency = min(concurrency, swa_tokens / min(context, window))
        if per_req:
            running = min(default_max_running_requests(pool_tokens, context),
                          mamba_slots // MAMBA_CACHE_SIZE_MAX_RUNNING_REQUESTS_RATIO)  # fmt: skip
            concurrency = min(concurrency, float(running))
        longest = min(context if desc is None or not desc.max_position_embeddings
                      else max(context, desc.max_position_embeddings), pool_tokens)  # fmt: skip
        why: str | None = None
        if pool_tokens <= 0:
            why = ("the weights exceed mem_fraction_static of the GPU: SGLang refuses to "
                   "start (not enough memory, increase --mem-fraction-static)")  # fmt: skip
        elif pool_tokens < context:
            why = (f"the pool holds {pool_tokens} tokens, fewer than one sequence of {context}: "
                   "SGLang rejects longer inputs")  # fmt: skip
        elif per_req and mamba_slots < MAMBA_CACHE_SIZE_MAX_RUNNING_REQUESTS_RATIO:
            why = "no room for the Mamba states of one request"
        kv_bytes = (full_tokens * full_cell * full_layers + swa_tokens * swa_cell * swa_layers
                    if swa_layers else tokens * cell) + mamba_slots * per_req  # fmt: skip
        budget = int(pre * Fraction(str(fraction)))
        plans = tuple(
            DevicePlan(
                name=dv.name,
                total_bytes=dv.total_bytes,
                budget_bytes=budget,
                weights_bytes=weights,
                activation_bytes=0,
                runtime_bytes=0,
                kv_cache_bytes=kv_bytes,
                free_bytes=budget - weights - kv_bytes,
            )
            for dv in request.devices[: max(tp, 1)]
        )
        return EngineFit(
            engine=self.name,
            version_followed=self.version_followed,
            devices=plans,
            ram=RamPlan(),
            kv_cache_bytes=kv_bytes * len(plans),
            kv_cache_tokens=pool_tokens,
            max_model_len=longest,
            max_concurrency=concurrency,
            fits=why is None,
            why_not=why,
            notes=tuple(notes),
        )


def pool_gib(tokens: int, cell: int) -> float:
    """What SGLang logs as the pool's size: ``tokens × cell / 2**30`` ("KV size: … GB")."""
    return tokens * cell / GIB


ENGINE = SGLangEngine()
