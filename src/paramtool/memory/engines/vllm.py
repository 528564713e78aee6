"""vLLM's memory accounting (the v1 engine), step by step as its source does it.

* budget: ``requested_memory = total × gpu_memory_utilization`` (``gpu_worker.py``
  ``init_device``), taken after NCCL is set up: the CUDA context and NCCL buffers sit
  outside it and must fit in the ``1 - utilization`` left over;
* ``available_kv_cache_memory = requested - (weights + torch activation peak + non-torch
  increase + CUDA-graph estimate)`` (``determine_available_memory``; the graph estimate is
  subtracted since 0.21.0, PR #30515): the activation peak of the profiling forward pass
  over ``max_num_batched_tokens`` is estimated here (calibrated on published startup logs,
  docs/engine-vllm.md), not measured;
* the pool is cut into blocks of 16 tokens with each layer's page size
  (``kv_cache_interface.py``) and grouped as ``kv_cache_utils.py`` groups hybrid models;
  "GPU KV cache size", "Maximum concurrency" and the largest ``max_model_len`` follow
  ``_report_kv_cache_config``, ``get_max_concurrency_for_kv_cache_config`` and
  ``_estimate_max_model_len_from_groups``.

Every figure is per GPU (tensor parallel ranks are alike) and an exact integer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from paramtool import dtypes
from paramtool.analysis.model import Layer
from paramtool.dtypes import DType
from paramtool.errors import UsageError
from paramtool.frozen import dataclass
from paramtool.memory.engines.base import DevicePlan, EngineFit, ModelView, RamPlan, Request

VERSION = (
    "vLLM 0.27.1 (v1 engine; KV budget less a CUDA-graph estimate, on by default since 0.21.0)"
)
BLOCK_SIZE = 16  # CacheConfig.block_size on CUDA
DEFAULT_UTILIZATION = 0.9
GIB = 1 << 30
MIB = 1 << 20
# Non-torch memory the profiling forward adds after the snapshot (cuBLAS/attention
# workspaces): logged 0.03-0.43 GiB (docs/engine-vllm.md, "Calibration"); 256 MiB.
NON_TORCH_BYTES = 256 * MIB
# CUDA graphs: since vLLM 0.21.0 (PR #30515, VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS on by
# default) the KV budget is less an estimate of the graphs' pool. Logged estimates are
# 0.36 GiB (16 piecewise graphs) to 0.65 GiB (Gemma-3-4B): 512 MiB.
CUDA_GRAPH_BYTES = 512 * MIB
# The sampler's dummy run over R = min(max_num_seqs, max_num_batched_tokens) rows of V
# logits: bytes per logit, fitted to the logs (bf16 logits, float32 logits, probabilities,
# the top-k/top-p sort's values and int64 indices...: 2 + 4 + 4 + 4 + 8 + 4 + 2).
SAMPLER_BYTES_PER_LOGIT = 28
# CUDA context (+ NCCL buffers per extra rank): taken before the snapshot, outside the budget.
CONTEXT_BYTES = 512 * MIB
NCCL_BYTES = 256 * MIB


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, slots=True)
class Spec:
    """One layer's KV cache spec on one GPU: ``kv_cache_interface.py``."""

    kind: str  # full | mla | sliding | chunked | mamba
    block_size: int
    page_bytes: int  # one block of this layer
    window: int | None = None

    def max_memory(self, max_model_len: int, max_num_batched_tokens: int) -> int:
        """``max_memory_usage_bytes``: what one request of ``max_model_len`` takes."""
        if self.kind == "sliding":  # SlidingWindowSpec
            w = self.window or 0
            tokens = min(w - 1 + max_num_batched_tokens, max_model_len)
            return (_cdiv(tokens, self.block_size) + 1) * self.page_bytes
        if self.kind == "chunked":  # ChunkedLocalAttentionSpec
            tokens = min((self.window or 0) + max_num_batched_tokens, max_model_len)
            return _cdiv(tokens, self.block_size) * self.page_bytes
        if self.kind == "mamba":  # MambaSpec, mamba_cache_mode "none": one state
            return self.page_bytes
        return _cdiv(max_model_len, self.block_size) * self.page_bytes  # FullAttentionSpec


@dataclass(frozen=True, slots=True)
class Group:
    """A KV cache group: layers sharing one block table (``KVCacheGroupSpec``)."""

    spec: Spec
    layers: int


@dataclass(frozen=True, slots=True)
class KVLayout:
    """The groups ``get_kv_cache_groups`` makes of the layers' specs."""

    groups: tuple[Group, ...]
    # UniformTypeKVCacheSpecs: one group, each layer its own page size (``per_layer``)
    per_layer: tuple[Spec, ...] = ()
    padding_layers: int = 0

    @property
    def uniform_type(self) -> bool:
        return bool(self.per_layer)

    @property
    def group_size(self) -> int:
        return max((g.layers for g in self.groups), default=0)

    @property
    def block_bytes(self) -> int:
        """Bytes one block id costs over all layers sharing it."""
        if self.uniform_type:
            return sum(s.page_bytes for s in self.per_layer)
        return self.groups[0].spec.page_bytes * self.group_size if self.groups else 0

    def num_blocks(self, available: int) -> int:
        """``get_kv_cache_config_from_groups`` / ``get_num_blocks``."""
        if not self.groups:
            return 1  # attention-free: the null block
        if self.uniform_type:
            return max(available // self.block_bytes, 0)
        page = self.groups[0].spec.page_bytes
        return max(available // page // self.group_size, 0)

    def tokens(self, num_blocks: int) -> int:
        """``_report_kv_cache_config``: "GPU KV cache size: N tokens"."""
        if not self.groups:
            return 0
        sizes = [g.spec.block_size for g in self.groups if g.spec.kind != "mamba"]
        return num_blocks // len(self.groups) * min(sizes or [BLOCK_SIZE])

    def request_bytes(self, max_model_len: int, mnbt: int) -> int:
        """``_max_memory_usage_bytes_from_groups``: one request of ``max_model_len``."""
        if not self.groups:
            return 0
        if self.uniform_type:
            return sum(s.max_memory(max_model_len, mnbt) for s in self.per_layer)
        page = self.groups[0].spec.page_bytes
        blocks = sum(_cdiv(g.spec.max_memory(max_model_len, mnbt), page) for g in self.groups)
        return self.group_size * page * blocks

    def concurrency(self, num_blocks: int, max_model_len: int, mnbt: int) -> float | None:
        """``get_max_concurrency_for_kv_cache_config``."""
        if not self.groups:
            return None
        if self.uniform_type:
            per = max(
                _cdiv(s.max_memory(max_model_len, mnbt), s.page_bytes) for s in self.per_layer
            )
        else:
            page = self.groups[0].spec.page_bytes
            total = sum(g.spec.max_memory(max_model_len, mnbt) for g in self.groups)
            per = _cdiv(self.group_size * total, page * self.group_size)
        return num_blocks / per

    def max_model_len(self, available: int, upper: int, mnbt: int) -> int:
        """``_estimate_max_model_len_from_groups``: binary search in [1, upper]; 0: none."""
        if not self.groups:
            return upper
        if self.request_bytes(1, mnbt) > available:
            return 0
        lo, hi, best = 1, upper, 1
        while lo <= hi:
            mid = (lo + hi) // 2
            if self.request_bytes(mid, mnbt) <= available:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        return best


def _bytes_per_element(dtype: DType, what: str) -> int:
    if dtype.block_size != 1:
        raise UsageError(
            "", lambda p: f"vLLM's {what} takes a plain dtype, not {dtype.name}", param="kv_dtype"
        )
    return dtype.bytes_per_block


def layer_specs(
    layers: Sequence[Layer], kv_dtype: DType, state_dtype: DType, tensor_parallel: int = 1
) -> list[Spec]:
    """Each caching layer's spec on one GPU, before any hybrid block-size adjustment.

    Attention: ``num_kv_heads = max(1, kv_heads // tp)`` (``ModelConfig.get_num_kv_heads``);
    an MLA latent is one head, never split. A fixed state (Mamba, linear attention, short
    convolution) is a ``MambaSpec`` whose page is the state, split by ``tp``.
    """
    kv_b = _bytes_per_element(kv_dtype, "KV cache")
    st_b = _bytes_per_element(state_dtype, "state cache")
    out: list[Spec] = []
    for la in layers:
        att = la.attention
        if att is not None and la.caches_tokens:
            if att.latent_elements is not None:
                page = BLOCK_SIZE * att.latent_elements * kv_b
                out.append(Spec("mla", BLOCK_SIZE, page))
            elif att.kv_heads is not None and att.head_dim is not None:
                heads = max(1, att.kv_heads // tensor_parallel)
                per_head = att.head_dim + (att.v_head_dim or att.head_dim)
                page = BLOCK_SIZE * heads * per_head * kv_b
                kind = {"sliding_attention": "sliding", "chunked_attention": "chunked"}.get(
                    la.mixer, "full"
                )
                window = la.window if kind != "full" else None
                out.append(Spec(kind, BLOCK_SIZE, page, window))
        if la.state is not None:
            kept = sum(n for _, n in la.state.kept_parts)  # conv: d_conv - 1 columns
            elements = _cdiv(kept, tensor_parallel)
            out.append(Spec("mamba", BLOCK_SIZE, elements * st_b))
    return out


def _align_hybrid_mamba(specs: list[Spec]) -> tuple[list[Spec], int | None]:
    """``HybridAttentionMambaModelConfig.verify_and_update_config``: raise the attention
    block size (a multiple of 16) until an attention page holds a Mamba state, then pad
    the Mamba page to the attention page. Returns the specs and the new block size."""
    attn = [s for s in specs if s.kind != "mamba"]
    mamba = [s for s in specs if s.kind == "mamba"]
    if not attn or not mamba:
        return specs, None
    per_token = max(s.page_bytes // s.block_size for s in attn)
    mamba_page = max(s.page_bytes for s in mamba)
    block = max(BLOCK_SIZE, BLOCK_SIZE * _cdiv(mamba_page, BLOCK_SIZE * per_token))
    out = []
    for s in specs:
        if s.kind == "mamba":
            out.append(replace(s, page_bytes=block * per_token))
        else:
            page = s.page_bytes // s.block_size * block
            out.append(replace(s, block_size=block, page_bytes=page))
    return out, block


def _same_type(specs: Sequence[Spec]) -> bool:
    """``UniformTypeKVCacheSpecs.is_uniform_type``: all full attention (MLA included), all
    sliding with one window, all chunked with one chunk, or all Mamba; one block size."""
    if len({s.block_size for s in specs}) > 1:
        return False
    kinds = {"mla": "full"}
    first = specs[0]
    key = (kinds.get(first.kind, first.kind), first.window if first.kind != "full" else None)
    return all(
        (kinds.get(s.kind, s.kind), s.window if s.kind != "full" else None) == key for s in specs
    )


def group_specs(specs: Sequence[Spec]) -> KVLayout:
    """``get_kv_cache_groups``: one group when every layer is alike; one group of
    per-layer pages when they are of one type; else page sizes unified (smaller pages get
    a larger block size) and layers split into groups of ``group_size`` (the fewest layers
    of one spec, or the most when that is under 1.5 × the fewest), the last one padded."""
    if not specs:
        return KVLayout(())
    if len(set(specs)) == 1:
        return KVLayout((Group(specs[0], len(specs)),))
    if _same_type(specs):
        first = specs[0]
        return KVLayout((Group(first, len(specs)),), per_layer=tuple(specs))
    biggest = max(s.page_bytes for s in specs)
    unified = []
    for s in specs:
        if biggest % s.page_bytes:
            raise UsageError(
                "", "vLLM cannot unify these layers' page sizes (NotImplementedError)",
                param="context",
            )  # fmt: skip
        ratio = biggest // s.page_bytes
        if s.kind == "mamba":
            unified.append(replace(s, page_bytes=biggest))
        else:
            unified.append(replace(s, block_size=s.block_size * ratio, page_bytes=biggest))
    counts: dict[Spec, int] = {}
    for s in unified:
        counts[s] = counts.get(s, 0) + 1
    fewest, most = min(counts.values()), max(counts.values())
    size = most if most < fewest * 1.5 else fewest
    groups: list[Group] = []
    padding = 0
    for spec, n in counts.items():
        k = _cdiv(n, size)
        padding += k * size - n
        groups.extend(Group(spec, size) for _ in range(k))
    return KVLayout(tuple(groups), padding_layers=padding)


def mtp_layers(model: ModelView) -> tuple[Layer, ...]:
    """The MTP head's decoder blocks, as vLLM's MTP drafter registers them
    (``DeepSeekMTP`` / ``Qwen3NextMTP``...: ``num_nextn_predict_layers`` blocks, each with
    the main model's attention): the last full-attention layer of the main stack, once per
    MTP block (DeepSeek-V3: one MLA layer)."""
    plan = model.dims.plan()
    full = [la for la in plan if la.caches_tokens and la.mixer not in (
        "sliding_attention", "chunked_attention")]  # fmt: skip
    if not full:
        return ()
    desc = model.dims.description
    count = (desc.mtp_layers if desc is not None else 0) or 1
    return (full[-1],) * count


def vision_activation(model: ModelView, tokens: int) -> int:
    """The multimodal part of ``profile_run``: the dummy encoder outputs over the encoder
    budget (``tokens``: ``max_num_encoder_input_tokens`` = ``encoder_cache_size`` =
    ``max_num_batched_tokens`` by default), at the language model's hidden size, are held
    in ``encoder_cache`` through the decoder's dummy run and the sampler's; the vision
    tower's own forward is taken to peak below one decoder layer's over as many tokens
    (an approximation: the tower's dimensions are not read)."""
    if not model.vision_bytes:
        return 0
    b = 2 if model.weight_dtype is None or model.weight_dtype.bits <= 16 else 4
    return tokens * (model.dims.hidden_size or 0) * b


def batch_defaults(
    device_total: int, device_name: str, *, llm_class: bool = False
) -> tuple[int, int]:
    """``EngineArgs.get_batch_defaults``: (max_num_batched_tokens, max_num_seqs) for
    ``vllm serve`` (OPENAI_API_SERVER) or, ``llm_class``, the offline ``LLM`` class."""
    if device_total >= 70 * GIB and "a100" not in device_name.lower():
        return (16384 if llm_class else 8192), 1024
    return (8192 if llm_class else 2048), 256


def activation_peak(model: ModelView, tokens: int, seqs: int, tensor_parallel: int) -> int:
    """The torch peak of ``profile_run`` over ``tokens`` (an estimate, see the docs):
    two hidden-size buffers alive across a layer (residual, hidden), plus the largest
    transient of one layer (the QKV and attention outputs, or the MLP's gate/up and
    activation outputs, fused-MoE caches for k experts), or the sampler's dummy run over
    ``seqs`` rows of the full vocabulary, ``SAMPLER_BYTES_PER_LOGIT`` bytes a logit (fitted
    to published logs: docs/engine-vllm.md, "Calibration")."""
    d = model.dims
    b = 2 if model.weight_dtype is None or model.weight_dtype.bits <= 16 else 4
    h = d.hidden_size or 0
    tp = tensor_parallel
    heads = d.heads or 0
    kvh = d.kv_heads or heads
    hd = d.head_dim or (h // heads if heads else 0)
    if d.is_mla:
        qk = (d.qk_nope_head_dim or 0) + (d.qk_rope_head_dim or 0)
        attn = tokens * (heads * (qk + (d.v_head_dim or 0)) // tp) * b
    else:
        attn = tokens * ((heads + 2 * kvh) * hd // tp + heads * hd // tp) * b
    dense = tokens * 3 * _cdiv(d.intermediate_size or 0, tp) * b
    mlp = dense
    desc = d.description
    if d.experts and d.moe_intermediate_size:
        k = (desc.experts.per_token if desc and desc.experts else None) or 1
        moe = tokens * k * (3 * _cdiv(d.moe_intermediate_size, tp) + h) * b
        shared = tokens * 3 * _cdiv(d.shared_intermediate_size, tp) * b
        mlp = max(dense if d.dense_layers else 0, moe + shared)
    layer = 2 * tokens * h * b + max(attn, mlp)
    sampler = seqs * (d.vocab_size or 0) * SAMPLER_BYTES_PER_LOGIT
    return max(layer, sampler)


class VLLMEngine:
    """vLLM's accounting; see the module docstring and docs/engine-vllm.md."""

    name = "vllm"
    version_followed = VERSION

    def supports(self, model: ModelView) -> str | None:
        if model.format == "gguf":
            return (
                "vLLM's GGUF support is experimental (one file, its own loader and "
                "dequantizing kernels) and its memory is not modelled here"
            )
        if model.dims.kind == "encoder":
            return "an encoder-only model: vLLM serves it as a pooling model with no KV cache"
        if model.dims.kind == "encoder-decoder":
            return "vLLM's encoder-decoder cross-attention cache is not modelled here"
        if model.dims.description is None and not model.dims.layers:
            return "the model's layers are unknown: give a checkpoint with a config.json"
        return None

    def layout(self, model: ModelView, request: Request) -> tuple[KVLayout, int | None]:
        """The KV groups on one GPU, and the attention block size when vLLM raised it."""
        dtype = request.kv_dtype or model.weight_dtype or dtypes.lookup("BF16")
        state = model.weight_dtype or dtypes.lookup("BF16")
        if state.block_size != 1:
            state = dtypes.lookup("BF16")
        if dtype.block_size != 1 and request.kv_dtype is None:
            dtype = dtypes.lookup("BF16")  # "auto" with a quantized checkpoint: its bf16 compute
        tp = request.tensor_parallel or len(request.devices) or 1
        layers = list(model.dims.plan())
        if request.mtp:  # the MTP drafter's attention layers join the one pool
            layers.extend(mtp_layers(model))
        if request.draft is not None:  # so do a draft model's (same TP, same cache dtype)
            layers.extend(request.draft.dims.plan())
        specs = layer_specs(layers, dtype, state, tp)
        specs, block = _align_hybrid_mamba(specs)
        return group_specs(specs), block

    def plan(self, model: ModelView, request: Request) -> EngineFit:
        if not request.devices:
            raise UsageError("", "needs at least one GPU", param="gpu")
        device = min(request.devices, key=lambda dv: dv.total_bytes)
        tp = request.tensor_parallel or len(request.devices)
        notes: list[str] = []
        util = request.gpu_memory_utilization
        if util is None:
            util = DEFAULT_UTILIZATION
            notes.append(f"gpu_memory_utilization {util} (vLLM's default)")
        mnbt_default, seqs = batch_defaults(device.total_bytes, device.name)
        mnbt = request.max_num_batched_tokens or mnbt_default
        if request.max_num_batched_tokens is None:
            notes.append(f"max_num_batched_tokens {mnbt} (vllm serve's default on this GPU)")
        desc = model.dims.description
        context = request.context or (desc.max_position_embeddings if desc else None)
        if context is None:
            raise UsageError(
                "", "the model states no maximum length: give max_model_len", param="context"
            )
        if request.context is None:
            notes.append(f"max_model_len {context} (the model's max_position_embeddings)")
        layout, block = self.layout(model, request)
        if block is not None and block != BLOCK_SIZE:
            notes.append(f"attention block size raised to {block} tokens to hold a Mamba state")
        if layout.padding_layers:
            notes.append(f"{layout.padding_layers} padding layers in the hybrid KV groups")

        if request.draft is not None and model.vision_bytes:
            raise UsageError(
                "", "vLLM's draft-model speculative decoding does not support multimodal "
                "models yet (NotImplementedError)", param="draft",
            )  # fmt: skip
        extra = 0  # what shares the GPUs: a draft model, the MTP head
        if request.draft is not None:
            extra += request.draft.weights_bytes
            notes.append(
                "draft model: its weights and its attention layers' KV cache share the GPUs "
                "and the one KV pool (same tensor-parallel degree)"
            )
        if request.mtp and model.mtp_bytes:
            extra += max(model.mtp_bytes - model.mtp_shared_bytes, 0)
            notes.append(
                f"MTP head loaded ({len(mtp_layers(model))} more attention layer(s) in the KV "
                "pool; its embedding and output head shared with the target's)"
            )
        budget = int(device.total_bytes * util)
        weights = _cdiv(model.weights_bytes + extra, tp)
        if request.kv_memory is not None:
            available = request.kv_memory
            activation = runtime = 0
            notes.append("KV pool given (kv_cache_memory_bytes): no profiling estimate")
        else:
            activation = activation_peak(model, mnbt, min(seqs, mnbt), tp)
            if model.vision_bytes:
                activation += vision_activation(model, mnbt)
                notes.append(
                    f"vision encoder: its dummy outputs over the encoder budget ({mnbt} "
                    "tokens) held through the profiling run (an estimate; the encoder's own "
                    "forward is taken to peak lower)"
                )
            runtime = NON_TORCH_BYTES + CUDA_GRAPH_BYTES
            available = budget - weights - activation - runtime
            notes.append(
                "activation peak, non-torch memory and the CUDA-graph estimate (512 MiB, "
                "subtracted from the KV budget since vLLM 0.21) are estimates"
            )
        outside = CONTEXT_BYTES + (NCCL_BYTES if tp > 1 else 0)
        num_blocks = layout.num_blocks(available) if available > 0 else 0
        pool = num_blocks * layout.block_bytes if layout.groups else 0
        tokens = layout.tokens(num_blocks)
        upper = max(context, desc.max_position_embeddings if desc and
                    desc.max_position_embeddings else context)  # fmt: skip
        longest = layout.max_model_len(available, upper, mnbt) if available > 0 else 0
        concurrency = layout.concurrency(num_blocks, context, mnbt) if num_blocks else 0.0
        why: str | None = None
        if device.total_bytes - budget < outside and request.kv_memory is None:
            why = (
                "the CUDA context and NCCL buffers do not fit in the memory left outside "
                f"gpu_memory_utilization {util}: vLLM refuses to start (free memory on "
                "startup is less than desired GPU memory utilization)"
            )
        elif available <= 0:
            why = (
                "the weights, activations and runtime leave no memory for the KV cache: "
                "vLLM refuses to start (no available memory for the cache blocks)"
            )
        elif layout.groups and layout.request_bytes(context, mnbt) > available:
            why = (
                f"one request of max_model_len {context} needs more KV cache than the pool "
                f"holds: vLLM refuses to start (the estimated maximum model length is {longest})"
            )
        plans = tuple(
            DevicePlan(
                name=dv.name,
                total_bytes=dv.total_bytes,
                budget_bytes=int(dv.total_bytes * util),
                weights_bytes=weights,
                activation_bytes=activation,
                runtime_bytes=runtime,
                kv_cache_bytes=pool,
                free_bytes=int(dv.total_bytes * util) - weights - activation - runtime - pool,
            )
            for dv in request.devices[: max(tp, 1)]
        )
        return EngineFit(
            engine=self.name,
            version_followed=self.version_followed,
            devices=plans,
            ram=RamPlan(),
            kv_cache_bytes=pool * len(plans),
            kv_cache_tokens=tokens,
            max_model_len=longest,
            max_concurrency=concurrency,
            fits=why is None,
            why_not=why,
            notes=tuple(notes),
        )


ENGINE = VLLMEngine()
