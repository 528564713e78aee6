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
# reserved_mem added for speculative decoding (MiB): "eagle draft models and cuda graphs",
# a standalone draft model and its graphs (server_args.py _handle_gpu_memory_settings).
SPECULATIVE_RESERVE_MIB = {"EAGLE": 2 * 1024, "STANDALONE": 6 * 1024}
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


def reserved_mib(gpu_mem_mib: int, tp: int, pp: int = 1, speculative: str | None = None) -> float:
    """``_handle_gpu_memory_settings``'s ``reserved_mem`` (MiB) for activations, CUDA graphs
    and, with ``speculative`` (``EAGLE``, ``STANDALONE``), the draft model."""
    chunked, graph_bs = gpu_defaults(gpu_mem_mib, tp)
    reserved = 512 + max(chunked, 2048) * 1.5 + graph_bs * 2 + tp * pp / 8 * 1024
    if gpu_mem_mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    if speculative is not None:
        reserved += SPECULATIVE_RESERVE_MIB.get(speculative, SPECULATIVE_RESERVE_MIB["EAGLE"])
    return reserved


def default_mem_fraction(gpu_mem_mib: int, tp: int, pp: int = 1,
                         speculative: str | None = None) -> float:  # fmt: skip
    """``_handle_gpu_memory_settings``'s ``mem_fraction_static`` (no DP attention, no
    piecewise CUDA graphs; before the multimodal factor, :func:`vlm_factor`)."""
    reserved = reserved_mib(gpu_mem_mib, tp, pp, speculative)
    return round((gpu_mem_mib - reserved) / gpu_mem_mib, 3)


def vlm_factor(model: ModelView) -> float:
    """``adjust_mem_fraction_for_vlm``: ``0.95 × clamp(1 - 0.1 × (L·H² / (24·1024²) - 1),
    0.8, 1.05)`` for the vision tower's ``L`` layers of hidden size ``H`` (ViT-L/14 = 1).
    The tower's dimensions are not read here: ``L·H²`` is taken as its parameters / 12 (a
    transformer block's 12·H² weights), from ``vision_bytes`` at the served dtype."""
    if not model.vision_bytes:
        return 1.0
    per = (model.weight_dtype.bits / 8) if model.weight_dtype is not None else 2.0
    complexity = model.vision_bytes / per / 12 / (24 * 1024**2)
    return 0.95 * max(0.8, min(1.05, 1.0 - 0.1 * (complexity - 1.0)))


def speculative_algorithm(request: Request) -> str | None:
    """What ``--speculative-algorithm`` the request stands for: the MTP head is EAGLE
    (NEXTN is an alias); a draft whose architecture names EAGLE is EAGLE (EAGLE3 alike);
    any other draft model STANDALONE."""
    if request.draft is not None:
        desc = request.draft.dims.description
        arch = (desc.architecture or "") if desc is not None else ""
        return "EAGLE" if "eagle" in arch.lower() else "STANDALONE"
    return "EAGLE" if request.mtp else None


def mtp_cell(model: ModelView, dtype: DType, tp: int) -> int:
    """The MTP draft worker's bytes a token: ``num_nextn_predict_layers`` layers
    (``profile_max_num_token`` for a draft worker) of the main model's attention (its last
    full-attention layer; DeepSeek-V3: one MLA layer)."""
    full = [la for la in model.dims.plan() if la.caches_tokens and not _is_swa(la)]
    if not full or full[-1].attention is None:
        return 0
    att = full[-1].attention
    b = _bytes(dtype)
    cell = _mla_cell(att, b) if att.variant == "mla" else _mha_elements(att, tp) * b
    desc = model.dims.description
    return cell * ((desc.mtp_layers if desc is not None else 0) or 1)


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
        for part, elements in la.state.kept_parts:  # conv: d_conv - 1 columns
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
        spec = speculative_algorithm(request)
        if fraction is None:
            fraction = default_mem_fraction(device.total_bytes // MIB, tp, speculative=spec)
            what = "this GPU and TP" + (f", {spec} speculative decoding" if spec else "")
            if model.vision_bytes:
                fraction *= vlm_factor(model)
                what += ", a multimodal model (its ViT size taken from its weights)"
            notes.append(f"mem_fraction_static {fraction:.4g} (SGLang's default for {what})")
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
        # The draft worker (a draft model or the MTP head) loads after the target's pool is
        # allocated: its weights and its own pool of draft_runner_cache_size (the target's
        # token count) tokens sit outside mem_fraction_static.
        draft_weights = draft_kv = 0
        if request.draft is not None:
            draft_weights = -(-request.draft.weights_bytes // tp)
            draft_kv = pool_tokens * cell_size(request.draft, dtype, tp)[0]
        elif request.mtp and model.mtp_bytes:
            draft_weights = -(-max(model.mtp_bytes - model.mtp_shared_bytes, 0) // tp)
            draft_kv = pool_tokens * mtp_cell(model, dtype, tp)
        if spec is not None:
            outside = pre - budget
            allowance = outside - int(reserved_mib(device.total_bytes // MIB, tp) * MIB)
            what = "draft model" if request.draft is not None else "MTP head"
            notes.append(
                f"{spec} {what}: its weights ({draft_weights:,} bytes) and its own KV pool "
                f"({pool_tokens:,} tokens, {draft_kv:,} bytes) load outside "
                "mem_fraction_static (the budget shown is all the free memory)"
            )
            if draft_weights + draft_kv > allowance:
                notes.append(
                    f"the {what} takes more than the {max(allowance, 0):,} bytes SGLang's "
                    "default leaves it beside its activation and CUDA-graph reserve: it may "
                    "run out of memory at CUDA-graph capture (lower --mem-fraction-static)"
                )
            budget = pre
            if why is None and draft_weights + draft_kv > outside:
                why = (f"the {what}'s weights and KV pool do not fit in the memory left "
                       "outside mem_fraction_static: lower --mem-fraction-static")  # fmt: skip
        weights += draft_weights
        kv_bytes += draft_kv
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
