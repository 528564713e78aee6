"""llama.cpp's memory accounting, as its load log reports it (``llama-server`` defaults).

It follows llama.cpp at commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f (2026-10-01,
ggml 0.25.3: the submodule llama-cpp-python 0.3.36 vendors); docs/engine-llamacpp.md gives
each formula with its source file:

* **weights**: ``-ngl N`` offloads the last ``N`` of ``n_layer + 1`` layer slots, the
  output layer (output norm and head) being the last slot (``llama_model::load_tensors``);
  the token embeddings always stay in host memory ("input layer on the CPU"); a tied
  head is duplicated onto the output layer's device. Offloaded layers are split over the
  GPUs in proportion to their free memory (``--tensor-split``'s default, ``-sm layer``).
  ``--n-cpu-moe N`` keeps the routed experts of layers ``0..N-1`` in system memory.
* **KV cache**: each layer's K and V on its layer's device (``offload_kqv``), f16 by
  default, ``n_ctx_seq`` cells per sequence (``n_ctx`` padded to 256; one stream per
  sequence); sliding-window layers keep ``pad256(min(n_ctx_seq, n_swa + n_ubatch))``
  cells (``llama_kv_cache_iswa``, ``--swa-full`` off). MLA keeps its latent
  (``kv_lora_rank + rope``) in K and no V. Recurrent layers (Mamba, Gated DeltaNet,
  short convolutions; a hybrid's ``llama_memory_hybrid`` beside the attention KV) keep
  ``n_embd_r() + n_embd_s()`` f32 elements per sequence (``llama_memory_recurrent``,
  ``max(1, n_seq_max)`` cells).
* **compute buffers**: the worst-case graph ``sched_reserve`` allocates for a ubatch of
  ``min(n_ctx, 512)`` tokens: the largest of the attention peak (the ``K·Q`` scores in f32
  without flash attention; MLA adds its absorbed query), the FFN peak, a Mamba layer's
  scan peak and, on the output layer's device, the logits of
  every ubatch token in f32; an approximation of ggml-alloc's reuse, documented.
* **defaults**: with neither ``-ngl`` nor ``--n-cpu-moe`` given, ``--fit`` (on by default)
  picks them: everything on the GPUs if that leaves 1 GiB free on each, else the context
  reduced (down to 4096) when ``-c`` was not given, else layers (MoE: experts) moved to
  system memory from the front.
"""

from __future__ import annotations

from collections.abc import Sequence

from paramtool import dtypes
from paramtool.analysis.model import State
from paramtool.errors import UsageError
from paramtool.frozen import dataclass
from paramtool.memory.engines.base import Device, DevicePlan, EngineFit, ModelView, RamPlan, Request
from paramtool.memory.engines.generic import budget, model_limit
from paramtool.memory.search import largest, smallest
from paramtool.units import human_bytes

VERSION = (
    "llama.cpp 0c1e57098bba43ac29e6e3b677cdceebdd22334f (2026-10-01; ggml 0.25.3), "
    "as llama-cpp-python 0.3.36 vendors it"
)
N_BATCH = 2048  # common_params::n_batch
N_UBATCH = 512  # common_params::n_ubatch
CTX_PAD = 256  # llama_context: n_ctx = GGML_PAD(n_ctx, 256); the SWA cache likewise
FIT_MARGIN = 1 << 30  # common_params::fit_params_target: 1 GiB left free on each device
FIT_MIN_CTX = 4096  # common_params::fit_params_min_ctx
DEFAULT_CTX = 4096  # when the model states no training context
MAX_SEQ = 256  # LLAMA_MAX_SEQ
F32 = 4
F16 = 2
KV_DTYPE = "F16"  # llama_context_default_params: type_k = type_v = GGML_TYPE_F16
CPU = -1  # the device index of system memory


@dataclass(frozen=True, slots=True)
class _Layer:
    """What one decoder layer holds, as llama.cpp allocates it."""

    weights: int
    experts: int  # routed-expert weights (what --n-cpu-moe moves)
    kv_elements: int  # K+V elements per cached token (0: caches no tokens)
    window: int | None  # sliding / chunked window, None: the whole context
    state_elements: int  # a recurrent state, elements per sequence
    heads: int
    mla_q: int  # MLA: the absorbed query's elements per token (n_head x (kv_lora + rope))
    scan_inner: int  # a Mamba-style layer's d_inner (its conv channels), 0: none


@dataclass(frozen=True, slots=True)
class _Shape:
    layers: tuple[_Layer, ...]
    n_embd: int
    n_vocab: int
    n_ff: int
    moe_ff: int
    n_expert: int
    n_expert_used: int
    input_bytes: int  # token embeddings: always in host memory
    output_bytes: int  # the output layer slot: head (or its tied duplicate) and final norm
    tied_bytes: int  # the tied duplicate within output_bytes (0: an own head)
    n_ctx_train: int | None


@dataclass(frozen=True, slots=True)
class _Setting:
    """The parameters llama.cpp ends up with."""

    n_ctx_seq: int
    n_seq: int
    ngl: int  # layer slots offloaded, the output slot included (0..n_layer+1)
    cpu_moe: int
    split: tuple[float, ...]  # relative shares of the offloaded slots per GPU
    flash: bool
    kv_dtype: dtypes.DType


def _pad(n: int, to: int = CTX_PAD) -> int:
    return -(-n // to) * to


def _recurrent_elements(state: State) -> int:
    """``n_embd_r() + n_embd_s()`` (``src/llama-hparams.cpp``): the convolution keeps
    ``d_conv - 1`` columns (its first is shifted out each step), the SSM or delta-rule
    state all of it (:attr:`State.kept_parts`)."""
    return sum(n for _, n in state.kept_parts)


def _shape(model: ModelView) -> _Shape:
    dims = model.dims
    plan = dims.plan()
    n = len(plan) or (dims.layers or 0)
    rest = model.weights_bytes - model.embedding_bytes - model.output_bytes - model.other_bytes
    per_layer = list(model.layer_bytes) if len(model.layer_bytes) == n else [rest // max(n, 1)] * n
    experts = list(model.routed_expert_bytes)
    experts += [0] * (n - len(experts))
    layers = []
    for i in range(n):
        la = plan[i] if i < len(plan) else None
        att = la.attention if la is not None else None
        kv = 0
        if la is not None and att is not None and la.caches_tokens:
            kv = att.latent_elements or att.kv_elements or 0  # MLA: the latent in K, no V
        window = None
        if la is not None and la.mixer in ("sliding_attention", "chunked_attention"):
            window = la.window
        state = _recurrent_elements(la.state) if la is not None and la.state is not None else 0
        heads = (att.heads if att is not None else None) or dims.heads or 0
        mla_q = heads * att.latent_elements if att is not None and att.latent_elements else 0
        scan = 0
        if la is not None and la.state is not None and la.mixer in ("state_space", "hybrid"):
            conv = dict(la.state.parts).get("conv", 0)
            scan = conv // la.state.conv_kernel if la.state.conv_kernel else 0
        layers.append(_Layer(per_layer[i], experts[i], kv, window, state, heads, mla_q, scan))
    desc = dims.description
    ex = desc.experts if desc is not None else None
    tied = model.output_bytes == 0 and dims.tie_word_embeddings
    return _Shape(
        layers=tuple(layers),
        n_embd=dims.hidden_size or 0,
        n_vocab=dims.vocab_size or 0,
        n_ff=dims.intermediate_size or 0,
        moe_ff=dims.moe_intermediate_size or (ex.intermediate_size if ex else None) or 0,
        n_expert=dims.experts,
        n_expert_used=(ex.per_token if ex else None) or 0,
        input_bytes=model.embedding_bytes,
        output_bytes=(model.embedding_bytes if tied else model.output_bytes) + model.other_bytes,
        tied_bytes=model.embedding_bytes if tied else 0,
        n_ctx_train=model_limit(model),
    )


def placement(n_layer: int, ngl: int, split: Sequence[float]) -> list[int]:
    """The device of each of the ``n_layer + 1`` layer slots (the last is the output layer):
    ``llama_model::load_tensors``' ``i_gpu_start`` and ``upper_bound`` over the splits."""
    nd = len(split)
    start = max(n_layer + 1 - ngl, 0)
    act = 0 if nd == 0 else min(ngl, n_layer + 1)
    total = sum(split) or 1.0
    cum, acc = [], 0.0
    for s in split:
        acc += s
        cum.append(acc / total)
    out = []
    for il in range(n_layer + 1):
        if il < start or il - start >= act:
            out.append(CPU)
            continue
        x = (il - start) / act
        out.append(min(next((i for i, c in enumerate(cum) if c > x), nd - 1), nd - 1))
    return out


@dataclass(frozen=True, slots=True)
class _Usage:
    weights: list[int]  # per GPU
    kv: list[int]
    compute: list[int]
    cpu_weights: int
    cpu_kv: int
    cpu_compute: int  # the host compute buffer (+ the CPU layers' own), output buffer


def _cells(layer: _Layer, s: _Setting) -> int:
    if layer.window is None:
        return s.n_ctx_seq
    return min(s.n_ctx_seq, _pad(min(s.n_ctx_seq, layer.window + N_UBATCH)))


def _mask(cells: int, s: _Setting, tokens: int) -> int:
    """The KQ mask input: ``n_kv × n_tokens``, f16 with flash attention, else f32."""
    return cells * tokens * (F16 if s.flash else F32)


def _attn_peak(layer: _Layer, shape: _Shape, s: _Setting, tokens: int, gpu: bool) -> int:
    """One layer's attention: the ``K·Q`` scores (f32, ``n_head × n_kv × n_tokens``; none
    with flash attention) and the ``n_embd × n_tokens`` f32 activations live beside them
    (four on a GPU, where the mask copy also lives; six on the CPU, where the mask is
    counted with the inputs), as the published logs and the CPU runs of
    benchmarks/engines/llamacpp_compare.py measure them. MLA adds its absorbed query
    (``src/models/deepseek2.cpp``: ``Qcur = concat(q_nope_absorbed, q_pe)``, f32
    ``(kv_lora_rank + rope) × n_head × n_tokens``), live beside the scores."""
    cells = _cells(layer, s)
    kq = 0 if s.flash else layer.heads * cells * tokens * F32
    act = shape.n_embd * tokens * F32
    kq += layer.mla_q * tokens * F32
    return kq + (_mask(cells, s, tokens) + 4 * act if gpu else 6 * act)


def _scan_peak(layer: _Layer, shape: _Shape, tokens: int) -> int:
    """A Mamba layer (``src/models/mamba-base.cpp``, ``build_mamba_layer``): the residual
    (``n_embd``), ``xz = ssm_in · x`` (``2 d_inner``) and four ``d_inner`` tensors (the
    convolved ``x``, ``dt``, the ``ssm_scan`` output, ``x · D``) live at once, f32 per
    token, as the CPU run of benchmarks/engines/llamacpp_compare.py measures it."""
    return (shape.n_embd + 6 * layer.scan_inner) * tokens * F32


def _ffn_peak(layer: _Layer, shape: _Shape, tokens: int) -> int:
    if layer.experts and shape.n_expert_used:
        inner = shape.n_expert_used * 2 * shape.moe_ff + shape.n_expert
    else:
        inner = 2 * shape.n_ff
    return (inner + 2 * shape.n_embd) * tokens * F32


def _usage(shape: _Shape, s: _Setting, nd: int) -> _Usage:
    n_layer = len(shape.layers)
    where = placement(n_layer, s.ngl, s.split)
    kvb = s.kv_dtype
    weights, kv, peak = [0] * nd, [0] * nd, [0] * nd
    cpu_w, cpu_kv, cpu_peak = shape.input_bytes, 0, 0
    tokens = min(s.n_ctx_seq * s.n_seq, N_UBATCH)
    host_copy = 0  # the largest CPU-resident weight an offloaded matmul copies to GPU 0
    for il, layer in enumerate(shape.layers):
        dev = where[il]
        moved = layer.experts if (il < s.cpu_moe and dev != CPU) else 0
        cells = _cells(layer, s)
        lkv = kvb.estimate_nbytes(layer.kv_elements * cells * s.n_seq) if layer.kv_elements else 0
        lkv += layer.state_elements * F32 * s.n_seq
        ffn = max(_ffn_peak(layer, shape, tokens), _scan_peak(layer, shape, tokens))
        att = layer.kv_elements > 0
        if dev == CPU:
            lpeak = max(_attn_peak(layer, shape, s, tokens, False) if att else 0, ffn)
            cpu_w, cpu_kv, cpu_peak = cpu_w + layer.weights, cpu_kv + lkv, max(cpu_peak, lpeak)
            host_copy = max(host_copy, layer.weights * 2 // 7)
        else:
            lpeak = max(_attn_peak(layer, shape, s, tokens, True) if att else 0, ffn)
            weights[dev] += layer.weights - moved
            cpu_w += moved
            kv[dev] += lkv
            peak[dev] = max(peak[dev], lpeak)
            if moved:
                host_copy = max(host_copy, moved // 3)
    out_peak = (shape.n_vocab + shape.n_embd) * tokens * F32
    dev_out = where[n_layer]
    if dev_out == CPU:
        cpu_w += shape.output_bytes - shape.tied_bytes  # a tied head is the input tensor
        cpu_peak = max(cpu_peak, out_peak)
    else:
        weights[dev_out] += shape.output_bytes
        peak[dev_out] = max(peak[dev_out], out_peak)
    if nd and host_copy and tokens >= 32:  # op_offload: batched matmuls run on GPU 0
        peak[0] += host_copy
    cells_kinds = {_cells(la, s) for la in shape.layers if la.kv_elements}
    masks = sum(_mask(c, s, tokens) for c in cells_kinds)  # one per cache (full, SWA)
    gpu_used = any(w or k for w, k in zip(weights, kv, strict=True))
    inputs = masks + (shape.n_embd * tokens * F32 if gpu_used else 0)
    output_buffer = shape.n_vocab * F32 * s.n_seq  # output_reserve(n_seq_max): the logits
    cpu_compute = inputs + cpu_peak + output_buffer
    return _Usage(weights, kv, peak, cpu_w, cpu_kv, cpu_compute)


def _fits(use: _Usage, budgets: Sequence[int], margin: int) -> bool:
    return all(
        w + k + c + margin <= b
        for w, k, c, b in zip(use.weights, use.kv, use.compute, budgets, strict=True)
    )


def _mmproj(mm: ModelView) -> tuple[int, int]:
    """The projector's weights and a compute-buffer estimate: one image of 1024 patches
    through its encoder (f32 attention scores of each head plus a few activations)."""
    hidden, heads = mm.dims.hidden_size, mm.dims.heads
    patches = 1024
    compute = 0
    if hidden and heads:
        compute = (heads * patches * patches + 8 * patches * hidden) * F32
    return mm.weights_bytes, compute


@dataclass(frozen=True, slots=True)
class LlamaCpp:
    """llama-server's buffers: model, KV and compute, per device and in system memory."""

    name: str = "llama.cpp"
    version_followed: str = VERSION

    def supports(self, model: ModelView) -> str | None:
        if model.dims.kind == "encoder-decoder":
            return "paramtool does not model llama.cpp's encoder-decoder (T5) graphs"
        if not model.dims.plan() and not model.dims.layers:
            return "the model's layers are unknown"
        if not model.dims.hidden_size:
            return "llama.cpp's compute buffers need the model's hidden size"
        if model.dims.model_type == "rwkv":
            return "llama.cpp has no RWKV-4 graph (it runs RWKV-6 and RWKV-7)"
        return None

    def plan(self, model: ModelView, request: Request) -> EngineFit:
        devices = request.devices
        if request.gpu_layers is not None and request.gpu_layers < 0:
            raise UsageError(str(request.gpu_layers), "must be at least 0", param="gpu_layers")
        if request.cpu_moe is not None and request.cpu_moe < 0:
            raise UsageError(str(request.cpu_moe), "must be at least 0", param="cpu_moe")
        if not 1 <= request.batch <= MAX_SEQ:
            raise UsageError(str(request.batch), f"must be between 1 and {MAX_SEQ}", param="batch")
        shape = _shape(model)
        n_layer = len(shape.layers)
        nd = len(devices)
        budgets = [budget(d) for d in devices]
        extra = [0] * nd  # mmproj and draft weights and buffers on GPU 0
        notes: list[str] = []
        extra_ram = 0
        if request.mmproj is not None:
            w, c = _mmproj(request.mmproj)
            if nd:
                extra[0] += w + c
            else:
                extra_ram += w + c
            notes.append(
                f"mmproj: {human_bytes(w)} of weights and about {human_bytes(c)} of compute "
                "buffer (one image of 1024 patches) on the first GPU"
            )
        if request.draft is not None:
            notes.append(
                "the draft model's own buffers are not modelled; its weights are "
                "counted on the first GPU"
            )
            if nd:
                extra[0] += request.draft.weights_bytes
            else:
                extra_ram += request.draft.weights_bytes
        avail = [b - e for b, e in zip(budgets, extra, strict=True)]
        flash = bool(request.flash_attention)
        if request.flash_attention is None:
            notes.append(
                "flash attention off (-fa auto turns it on where the backend has it: "
                "then the K·Q scores are not materialised; --flash-attention on)"
            )
        kv_dtype = request.kv_dtype or dtypes.lookup(KV_DTYPE)
        split = tuple(float(b) for b in budgets)
        auto_ctx = request.context is None
        train = shape.n_ctx_train
        if auto_ctx and train is None:
            notes.append(f"the model states no training context: n_ctx {DEFAULT_CTX}")
        ctx0 = request.context if request.context is not None else (train or DEFAULT_CTX)

        def setting(ctx: int, ngl: int, cpu_moe: int, sp: tuple[float, ...] = split) -> _Setting:
            n_ctx = _pad(ctx * request.batch)
            n_ctx_seq = _pad(n_ctx // request.batch)
            return _Setting(n_ctx_seq, request.batch, ngl, cpu_moe, sp, flash, kv_dtype)

        ngl = n_layer + 1 if request.gpu_layers is None else min(request.gpu_layers, n_layer + 1)
        cpu_moe = min(request.cpu_moe or 0, n_layer)
        ctx = ctx0
        sp = split
        fit_on = request.gpu_layers is None and request.cpu_moe is None and nd > 0
        margin = FIT_MARGIN if nd else 0
        if nd and not _fits(_usage(shape, setting(ctx, ngl, cpu_moe), nd), avail, margin):
            # common/fit.cpp step 2: a smaller context, if -c was not given
            if auto_ctx and ctx0 > FIT_MIN_CTX:
                best = largest(
                    lambda c: _fits(
                        _usage(shape, setting(c * CTX_PAD, ngl, cpu_moe), nd), avail, margin
                    ),
                    FIT_MIN_CTX // CTX_PAD,
                    ctx0 // CTX_PAD,
                )
                ctx = best * CTX_PAD if best else FIT_MIN_CTX
                notes.append(f"--fit: context reduced from {ctx0:,} to {ctx:,} tokens")
            if fit_on and not _fits(_usage(shape, setting(ctx, ngl, cpu_moe), nd), avail, margin):
                ngl, cpu_moe, sp = self._fit_layers(shape, setting(ctx, ngl, 0), avail, notes)
        s = setting(ctx, ngl, cpu_moe, sp)
        use = _usage(shape, s, nd)
        where = placement(n_layer, ngl, sp)
        offloaded = sum(1 for d in where if d != CPU)
        notes.append(
            f"{offloaded}/{n_layer + 1} layers offloaded (-ngl {ngl}), "
            f"n_ctx {s.n_ctx_seq * s.n_seq:,} ({s.n_seq} × {s.n_ctx_seq:,}), "
            f"n_batch {N_BATCH}, n_ubatch {N_UBATCH}, KV {kv_dtype.name}"
        )
        if cpu_moe:
            notes.append(f"routed experts of layers 0-{cpu_moe - 1} in system memory (--n-cpu-moe)")
        plans = []
        for i, d in enumerate(devices):
            w = use.weights[i] + extra[i]
            plans.append(
                DevicePlan(
                    name=d.name,
                    total_bytes=d.total_bytes,
                    budget_bytes=budgets[i],
                    weights_bytes=w,
                    activation_bytes=use.compute[i],
                    runtime_bytes=0,
                    kv_cache_bytes=use.kv[i],
                    free_bytes=budgets[i] - w - use.compute[i] - use.kv[i],
                )
            )
        ram = RamPlan(use.cpu_weights + extra_ram, use.cpu_kv, use.cpu_compute)
        fits, why_not = self._verdict(plans, ram, devices, request)
        cap = max(train or 0, ctx) if train else 1 << 24

        def ok(c: int, n_seq: int = request.batch) -> bool:
            n_ctx_seq = c * CTX_PAD
            st = _Setting(n_ctx_seq, n_seq, ngl, cpu_moe, sp, flash, kv_dtype)
            u = _usage(shape, st, nd)
            good = _fits(u, avail, 0)
            if request.ram_bytes is not None:
                good = good and u.cpu_weights + u.cpu_kv + u.cpu_compute <= request.ram_bytes
            return good

        best_len = largest(ok, 1, max(cap // CTX_PAD, 1))
        seqs = largest(lambda n: ok(s.n_ctx_seq // CTX_PAD, n), 1, MAX_SEQ)
        if any(d.unified for d in devices):
            notes.append(
                "unified memory: the budget is the Metal working-set limit "
                "(recommendedMaxWorkingSetSize); host buffers share the same memory"
            )
        if model.mtp_bytes:
            notes.append("the MTP head is not loaded (llama_model_params.load_mtp is off)")
        notes.append(
            "CUDA context and driver reserve not counted (outside llama.cpp's "
            "buffers); CPU_REPACK copies and pipeline-parallel copies not modelled"
        )
        return EngineFit(
            engine=self.name,
            version_followed=self.version_followed,
            devices=tuple(plans),
            ram=ram,
            kv_cache_bytes=sum(use.kv) + use.cpu_kv,
            kv_cache_tokens=s.n_ctx_seq * s.n_seq,
            max_model_len=best_len * CTX_PAD if best_len else None,
            max_concurrency=float(seqs) if seqs else 0.0,
            fits=fits,
            why_not=why_not,
            notes=tuple(notes),
        )

    @staticmethod
    def _fit_layers(
        shape: _Shape, s: _Setting, avail: Sequence[int], notes: list[str]
    ) -> tuple[int, int, tuple[float, ...]]:
        """common/fit.cpp step 3, simplified: a MoE model first moves the experts of the
        fewest leading layers to system memory; otherwise (or when that is not enough)
        whole layers are filled from the back, the last GPU first."""
        n_layer, nd = len(shape.layers), len(avail)
        full = n_layer + 1

        def with_moe(n: int) -> bool:
            st = _Setting(s.n_ctx_seq, s.n_seq, full, n, s.split, s.flash, s.kv_dtype)
            return _fits(_usage(shape, st, nd), avail, FIT_MARGIN)

        if any(la.experts for la in shape.layers):
            n = smallest(with_moe, 0, n_layer)
            if n is not None:
                notes.append(f"--fit: experts of the first {n} layers kept in system memory")
                return full, n, s.split
        moe = n_layer if any(la.experts for la in shape.layers) else 0
        counts = [0] * nd
        for d in range(nd - 1, -1, -1):
            while sum(counts) < full:
                trial = counts.copy()
                trial[d] += 1
                st = _Setting(
                    s.n_ctx_seq,
                    s.n_seq,
                    sum(trial),
                    moe,
                    tuple(float(c) for c in trial),
                    s.flash,
                    s.kv_dtype,
                )
                u = _usage(shape, st, nd)
                if u.weights[d] + u.kv[d] + u.compute[d] + FIT_MARGIN > avail[d]:
                    break
                counts = trial
        ngl = sum(counts)
        notes.append(f"--fit: {ngl} of {full} layers offloaded to leave 1 GiB free per GPU")
        return ngl, moe, tuple(float(c) for c in counts) if ngl else s.split

    @staticmethod
    def _verdict(
        plans: Sequence[DevicePlan], ram: RamPlan, devices: Sequence[Device], request: Request
    ) -> tuple[bool, str | None]:
        for p in plans:
            if p.free_bytes < 0:
                need = p.weights_bytes + p.activation_bytes + p.kv_cache_bytes
                return False, (
                    f"{p.name} needs {human_bytes(need)} (model, KV and compute "
                    f"buffers), {human_bytes(p.budget_bytes)} available"
                )
        for p, d in zip(plans, devices, strict=True):
            if d.unified:
                used = p.budget_bytes - p.free_bytes + ram.total_bytes
                if used > d.total_bytes:
                    return False, (
                        f"{d.name}: GPU buffers and host buffers together need "
                        f"{human_bytes(used)} of {human_bytes(d.total_bytes)}"
                    )
        if request.ram_bytes is not None and ram.total_bytes > request.ram_bytes:
            return False, (
                f"system memory needs {human_bytes(ram.total_bytes)}, "
                f"{human_bytes(request.ram_bytes)} available"
            )
        return True, None


ENGINE = LlamaCpp()
