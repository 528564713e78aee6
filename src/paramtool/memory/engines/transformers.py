"""transformers' ``generate``: the weights as ``device_map="auto"`` places them and the
``DynamicCache`` as it grows, plus a documented activation estimate.

* **weights**: one GPU holds everything; over several, whole decoder layers are balanced
  over the GPUs in order (accelerate's ``"balanced"`` map), the embeddings on the first
  and the head and final norm on the last.
* **KV cache**: ``DynamicCache`` keeps full K and V per layer in the model's dtype (MLA
  decompressed to full heads is not what transformers 5 caches: it keeps the latent);
  sliding-window layers keep W - 1 past tokens (``DynamicSlidingWindowLayer``):
  :func:`paramtool.memory.kv_cache.kv_cache` with ``convention="transformers"``. Each
  layer's cache sits on its layer's device. A hybrid's linear-attention and Mamba layers
  keep a fixed state beside it (``LinearAttentionLayer``): the convolution's whole kernel
  in the model's dtype, and a delta-rule recurrent state (Gated DeltaNet, KDA) in float32,
  the dtype its kernels return it in (``torch_chunk_gated_delta_rule`` computes in
  float32; the cache takes ``zeros_like`` of it).
* **MoE**: every expert's weights are loaded (``weights_bytes``); the prefill runs the
  routed tokens through ``k`` experts, so a MoE layer's intermediate activations are
  ``k × moe_intermediate_size`` plus the shared experts'.
* **activations** (an estimate, not transformers' own figure): the prefill forward pass
  over ``batch × context`` tokens with SDPA (no score matrix kept): the residual, a few
  hidden-size activations and the MLP's two intermediate projections, in the model's
  dtype; and the logits: ``generate`` asks for the last token only
  (``logits_to_keep=1``) and upcasts them to float32, so ``batch × vocab`` in the model's
  dtype plus a float32 copy.
"""

from __future__ import annotations

from paramtool import dtypes
from paramtool.errors import UsageError
from paramtool.frozen import dataclass
from paramtool.memory.engines.base import (
    DevicePlan,
    EngineFit,
    ModelView,
    RamPlan,
    Request,
    shortfall,
)
from paramtool.memory.engines.generic import DEFAULT_CONTEXT, MAX_CONTEXT, budget, model_limit
from paramtool.memory.kv_cache import DEFAULT_KV_DTYPE, kv_cache
from paramtool.memory.search import largest

VERSION = "transformers 5.x generate (DynamicCache)"
ACTIVATIONS_PER_TOKEN = 4  # hidden-size tensors live at once beside the MLP's two projections
F32 = 4


def _state_bytes(model: ModelView, kv_dtype: dtypes.DType) -> int:
    """One sequence's fixed states as transformers keeps them: a delta-rule ``recurrent``
    part in float32, every other part (conv, SSM) in the cache dtype."""
    total = 0
    for la in model.dims.plan():
        if la.state is None:
            continue
        for part, n in la.state.parts:
            if part == "recurrent" and la.mixer == "linear_attention":
                total += n * F32
            else:
                total += kv_dtype.estimate_nbytes(n)
    return total


def _intermediate(model: ModelView) -> int:
    """The widest MLP intermediate a layer runs per token: a dense layer's
    ``intermediate_size``; a MoE layer's ``k`` routed experts and its shared experts."""
    dims = model.dims
    ex = dims.description.experts if dims.description is not None else None
    widths = []
    for la in dims.plan():
        if la.ffn == "moe" and ex is not None and ex.per_token:
            moe = ex.intermediate_size or dims.moe_intermediate_size or dims.intermediate_size
            widths.append(ex.per_token * (moe or 0) + dims.shared_intermediate_size)
        else:
            widths.append(dims.intermediate_size or 0)
    return max(widths, default=dims.intermediate_size or 0)


def _split(n: int, parts: int) -> list[int]:
    """``n`` layers over ``parts`` devices, in order, the first ones taking the remainder."""
    base, extra = divmod(n, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


@dataclass(frozen=True, slots=True)
class Transformers:
    """``AutoModelForCausalLM.from_pretrained(..., device_map="auto").generate(...)``."""

    name: str = "transformers"
    version_followed: str = VERSION

    def supports(self, model: ModelView) -> str | None:
        if model.dims.kind == "encoder":
            return "an encoder-only model does not generate"
        return None

    def plan(self, model: ModelView, request: Request) -> EngineFit:
        devices = request.devices
        if not devices:
            raise UsageError("", "give at least one GPU", param="gpu")
        dims = model.dims
        notes: list[str] = []
        wd = model.weight_dtype
        kv_dtype = request.kv_dtype or (
            wd if wd is not None and wd.is_float else dtypes.lookup(DEFAULT_KV_DTYPE)
        )
        act_bytes = kv_dtype.bytes_per_block / kv_dtype.block_size
        context = request.context
        if context is None:
            context = model_limit(model) or DEFAULT_CONTEXT
            notes.append(f"context {context:,} tokens (--context to choose)")
        n_layer = len(dims.plan()) or dims.layers or 0
        nd = len(devices)
        counts = _split(n_layer, nd) if n_layer else [0] * nd
        rest = model.weights_bytes - model.embedding_bytes - model.output_bytes - model.other_bytes
        layer_bytes = list(model.layer_bytes) if len(model.layer_bytes) == n_layer else []
        hidden, inter = dims.hidden_size or 0, _intermediate(model)
        state_per_seq = _state_bytes(model, kv_dtype)
        vocab = dims.vocab_size or 0

        def per_device(ctx: int, batch: int) -> list[tuple[int, int, int]]:
            """(weights, KV, activations) on each device."""
            cache = kv_cache(dims, ctx, batch, kv_dtype, convention="transformers")
            kv_total = cache.bytes - cache.state_bytes + state_per_seq * batch
            rows = []
            first = 0
            for i, n in enumerate(counts):
                if layer_bytes:
                    w = sum(layer_bytes[first : first + n])
                else:
                    w = rest * n // max(n_layer, 1)
                if i == 0:
                    w += model.embedding_bytes
                if i == nd - 1:
                    w += model.output_bytes + model.other_bytes
                    if not layer_bytes:
                        w += rest - sum(rest * c // max(n_layer, 1) for c in counts)
                kv = kv_total * n // max(n_layer, 1) if nd > 1 else kv_total
                act = int(batch * ctx * (ACTIVATIONS_PER_TOKEN * hidden + 2 * inter) * act_bytes)
                if i == nd - 1:
                    act += int(batch * vocab * act_bytes) + batch * vocab * 4
                rows.append((w, kv, act))
                first += n
            return rows

        budgets = [budget(d) for d in devices]

        def ok(ctx: int, batch: int = request.batch) -> bool:
            return all(sum(r) <= b for r, b in zip(per_device(ctx, batch), budgets, strict=True))

        rows = per_device(context, request.batch)
        plans = tuple(
            DevicePlan(
                name=d.name, total_bytes=d.total_bytes, budget_bytes=b,
                weights_bytes=w, activation_bytes=a, runtime_bytes=0, kv_cache_bytes=k,
                free_bytes=b - w - k - a,
            )
            for d, b, (w, k, a) in zip(devices, budgets, rows, strict=True)
        )  # fmt: skip
        why_not = shortfall(plans, "weights, dynamic cache and activations")
        fits = why_not is None
        max_len = largest(ok, 1, model_limit(model) or MAX_CONTEXT)
        seqs = largest(lambda b: ok(context, b), 1, 1 << 16)
        notes.append(
            "activations estimated for an SDPA prefill of the whole prompt and last-token "
            "logits (generate's logits_to_keep=1, upcast to float32); CUDA context and the "
            "allocator's cache not counted"
        )
        if nd > 1:
            notes.append(f"device_map='auto': {n_layer} layers balanced over {nd} GPUs")
        if any(d.unified for d in devices):
            notes.append("unified memory: the budget is the GPU working-set limit macOS sets")
        ignored = [
            p for p in ("gpu_layers", "cpu_moe", "tensor_parallel", "gpu_memory_utilization")
            if getattr(request, p) is not None
        ]  # fmt: skip
        if ignored:
            notes.append("transformers does not use " + ", ".join(ignored))
        return EngineFit(
            engine=self.name,
            version_followed=self.version_followed,
            devices=plans,
            ram=RamPlan(),
            kv_cache_bytes=sum(p.kv_cache_bytes for p in plans),
            kv_cache_tokens=context * request.batch,
            max_model_len=max_len,
            max_concurrency=float(seqs) if seqs else 0.0,
            fits=fits,
            why_not=why_not,
            notes=tuple(notes),
        )


ENGINE = Transformers()
