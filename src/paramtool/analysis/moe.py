"""Mixture of experts: experts per layer, routed vs shared, total vs active parameters.

A token passes through everything outside the routed experts (attention, norms,
embeddings, router, shared experts, dense layers) and through ``k`` of the ``n``
routed experts of each MoE layer, so

    active = total - routed + sum over MoE layers of routed_layer x k / n_layer

(Mixtral-8x7B: 46,702,792,704 total, 12,879,925,248 active, as Mistral AI publishes
"12.9B active"). ``n`` comes from the tensor names, numbered (``experts.7.w1``,
counted) or fused (one 3-D ``experts.gate_up_proj`` [n, ...] per layer: the
expert dimension is the one that equals config.json's expert count, else the
first); ``k`` only from config.json (``num_experts_per_tok``). Parameter counts
are logical (quantized experts unpacked, see :mod:`paramtool.analysis.quantization`).
Pure: no typer, no rich.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from paramtool.analysis.anatomy import Role
from paramtool.analysis.model import Experts
from paramtool.frozen import dataclass
from paramtool.records import TensorInfo


@dataclass(frozen=True, slots=True)
class MoE:
    """The expert structure of a checkpoint and what one token touches."""

    routed_experts: int | None  # per MoE layer (the most common count)
    shared_experts: int  # per MoE layer
    experts_per_token: int | None  # k, from config.json
    moe_layers: int  # layers holding routed experts
    layout: str  # "numbered", "fused" or "numbered and fused"
    experts_from: str  # where routed_experts came from
    total_parameters: int
    routed_parameters: int  # every routed expert of every layer
    shared_parameters: int
    router_parameters: int
    active_parameters: int | None  # None when k is unknown
    active_exact: bool  # False when a layer's routed parameters do not split evenly
    input_embedding_parameters: int  # token embedding tables (a lookup, not a matmul)
    mtp_layers: tuple[int, ...]  # the MTP part's layers as numbered (DeepSeek-V3: 61)
    mtp_parameters: int
    mtp_active_parameters: int | None
    notes: tuple[str, ...] = ()

    @property
    def active_share(self) -> float | None:
        if self.active_parameters is None or not self.total_parameters:
            return None
        return self.active_parameters / self.total_parameters


def fused_experts(shape: Sequence[int], configured: int | None) -> int | None:
    """The expert count of a fused expert tensor: the dimension config.json names, else dim 0."""
    if not shape:
        return None
    if configured and shape[0] == configured:
        return configured
    if configured and len(shape) >= 3 and shape[-1] == configured:  # GGUF keeps ne order
        return configured
    return shape[0] if len(shape) >= 3 else None


def analyze(
    tensors: Sequence[TensorInfo],
    roles: Sequence[Role],
    parameters: Sequence[int],
    experts: Experts | None,
) -> MoE | None:
    """Summarise the experts; None when no tensor is a routed expert.

    ``experts`` is what the model description read from config.json (counts, ``k``). The
    roles' part axis says which tensors are the multi-token-prediction head's.
    """
    groups: dict[int, list[Any]] = {}
    for i, (r, n) in enumerate(zip(roles, parameters, strict=True)):
        if (g := groups.get(id(r))) is None:
            g = groups[id(r)] = [r, 0, []]
        g[1] += n
        g[2].append(i)
    return analyze_groups(tensors, list(groups.values()), experts)


def analyze_groups(
    tensors: Sequence[TensorInfo], groups: Sequence[list[Any]], experts: Experts | None
) -> MoE | None:
    """:func:`analyze` over the tensors grouped by role: ``groups`` are lists ``[role,
    logical parameters, indexes]``, in the order of their first tensors (a role may have
    several)."""
    n_cfg = experts.routed if experts else None
    k = experts.per_token if experts else None
    shared_cfg = (experts.shared or None) if experts else None
    # Layers are keyed (is it the MTP part's, index): Qwen3-Next's mtp.layers.0 is not
    # model.layers.0, and DeepSeek-V3's model.layers.61 is the MTP part's (anatomy says so).
    Key = tuple[bool, int | None]
    routed: dict[Key, int] = {}  # layer -> routed logical parameters
    numbered: dict[Key, set[int]] = {}
    fused: dict[Key, int] = {}
    shared_layers: set[Key] = set()
    total = shared = router = embed = 0
    by_layer: dict[Key, int] = {}
    for r, n, indexes in groups:
        total += n
        key = (r.part == "mtp", r.layer)
        by_layer[key] = by_layer.get(key, 0) + n
        component = r.component
        if component == "expert":
            routed[key] = routed.get(key, 0) + n
            if r.expert is not None:
                numbered.setdefault(key, set()).add(r.expert)
                continue
            for i in indexes:
                if (e := fused_experts(tensors[i].shape, n_cfg)) is not None:
                    fused[key] = max(fused.get(key, 0), e)
        elif component == "shared_expert":
            shared += n
            shared_layers.add(key)
        elif component == "router":
            router += n
        elif component == "token_embedding":
            embed += n
    if not routed:
        return None
    notes: list[str] = []
    counts: dict[Key, int | None] = {}
    for layer in routed:
        found = len(numbered[layer]) if layer in numbered else fused.get(layer)
        counts[layer] = found or n_cfg
    found_counts = [c for c in counts.values() if c]
    common = max(set(found_counts), key=found_counts.count) if found_counts else None
    named = bool(numbered) or bool(fused)
    if n_cfg and common and n_cfg != common:
        notes.append(f"config.json says {n_cfg} experts per layer, the tensors hold {common}")
    experts_from = (
        "config.json and tensor names"
        if n_cfg and named
        else "config.json"
        if n_cfg
        else "tensor names"
    )
    layout = " and ".join(x for x, on in (("numbered", numbered), ("fused", fused)) if on) or (
        "fused"
    )
    active: int | None = None
    exact = True
    per_layer_active: dict[Key, int] = {}
    if k is None:
        notes.append("config.json does not say how many experts each token uses: active unknown")
    else:
        for layer, params in routed.items():
            count = counts[layer]
            if not count:
                where = f"MTP layer {layer[1]}" if layer[0] else f"layer {layer[1]}"
                notes.append(f"{where}: expert count unknown, all its experts counted active")
                per_layer_active[layer] = params
                exact = False
                continue
            whole, rest = divmod(params * min(k, count), count)
            exact = exact and not rest
            per_layer_active[layer] = whole + (2 * rest >= count)  # rounded half up
        active = total - sum(routed.values()) + sum(per_layer_active.values())
        if not exact:
            notes.append("routed parameters do not split evenly across experts: active rounded")
    mtp_keys = [x for x in by_layer if x[0]]
    mtp_layers = tuple(sorted({x[1] for x in mtp_keys if x[1] is not None}))
    mtp_params = sum(by_layer[x] for x in mtp_keys)
    mtp_active: int | None = None
    if mtp_keys and active is not None:
        mtp_active = mtp_params - sum(
            routed.get(x, 0) - per_layer_active.get(x, 0) for x in mtp_keys
        )
    if shared_cfg is not None:
        shared_experts = shared_cfg
    else:
        shared_experts = 1 if shared_layers & set(routed) else 0
    return MoE(
        routed_experts=common,
        shared_experts=shared_experts,
        experts_per_token=k,
        moe_layers=len(routed),
        layout=layout,
        experts_from=experts_from,
        total_parameters=total,
        routed_parameters=sum(routed.values()),
        shared_parameters=shared,
        router_parameters=router,
        active_parameters=active,
        active_exact=exact,
        input_embedding_parameters=embed,
        mtp_layers=mtp_layers,
        mtp_parameters=mtp_params,
        mtp_active_parameters=mtp_active,
        notes=tuple(notes),
    )
