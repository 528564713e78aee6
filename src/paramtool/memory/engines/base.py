"""What every engine's accounting takes (a model, devices, a request) and gives (a plan).

Every byte figure is an exact integer. Engines never print and never read files: the
model arrives as a :class:`ModelView` built from the one model description and the
checkpoint's tensors (:mod:`paramtool.memory.fit` builds it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import field
from typing import Protocol

from paramtool.dtypes import DType
from paramtool.frozen import dataclass
from paramtool.memory.dims import ModelDims


@dataclass(frozen=True, slots=True)
class Device:
    """One accelerator (or Apple silicon's unified memory) as the fit sees it."""

    name: str  # "H100 80GB (SXM)", "custom 48 GB", "Apple M3 Max 128GB"
    total_bytes: int  # what a process can use at most (the driver's total; Apple: see below)
    bandwidth_bytes_per_s: int | None = None  # memory bandwidth
    flops: Mapping[str, int] = field(default_factory=dict)  # peak dense FLOP/s by dtype key
    unified: bool = False  # memory shared with the CPU (Apple silicon)
    # Apple: the GPU working-set limit macOS sets (recommendedMaxWorkingSetSize); None else.
    working_set_bytes: int | None = None
    key: str = ""  # the --gpu spelling that named it
    source: str = ""  # where the figures come from


@dataclass(frozen=True, slots=True)
class ModelView:
    """What the engines need to know about one checkpoint, at the dtype being served."""

    dims: ModelDims  # layers, heads, KV heads... and the description (dims.description)
    parameters: int
    active_parameters: int  # per token (MoE: routed experts at k of n)
    weights_bytes: int  # everything the engine loads, at the served dtype
    active_weights_bytes: int  # read per decoded token
    layer_bytes: tuple[int, ...] = ()  # weights of each decoder layer (offload units)
    embedding_bytes: int = 0  # token embedding table
    output_bytes: int = 0  # output head (0 when tied)
    other_bytes: int = 0  # final norm and anything outside the layers
    routed_expert_bytes: tuple[int, ...] = ()  # routed experts of each layer (--cpu-moe)
    mtp_bytes: int = 0  # multi-token-prediction head in the checkpoint
    vision_bytes: int = 0  # vision / audio encoder and projector in the checkpoint
    format: str = "safetensors"  # safetensors | gguf
    weight_dtype: DType | None = None  # the served dtype; None: as stored (mixed)
    name: str = ""  # the source as the user gave it
    # the MTP head's own token embedding and output head (in mtp_bytes): vLLM and SGLang
    # replace them by the target's when they load it
    mtp_shared_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Request:
    """What the user asked for; None means the engine's default."""

    devices: tuple[Device, ...]
    context: int | None = None  # tokens per sequence (max_model_len / -c)
    batch: int = 1  # concurrent sequences
    kv_dtype: DType | None = None  # None: the engine's default (the model's dtype)
    tensor_parallel: int | None = None
    gpu_memory_utilization: float | None = None  # vLLM
    mem_fraction_static: float | None = None  # SGLang
    max_num_batched_tokens: int | None = None  # vLLM / SGLang chunked prefill
    kv_memory: int | None = None  # a given KV pool: skip the profiling estimate
    gpu_layers: int | None = None  # llama.cpp -ngl; None: all that fit
    cpu_moe: int | None = None  # llama.cpp --n-cpu-moe
    ram_bytes: int | None = None  # system RAM available
    flash_attention: bool | None = None  # llama.cpp -fa
    draft: ModelView | None = None  # a speculative-decoding draft model
    mmproj: ModelView | None = None  # llama.cpp multimodal projector file
    mtp: bool = False  # load the checkpoint's MTP head for speculative decoding (vLLM, SGLang)


@dataclass(frozen=True, slots=True)
class DevicePlan:
    """One device's budget and what it holds (the ``devices`` rows of ``fit --json``)."""

    name: str
    total_bytes: int
    budget_bytes: int  # what the engine lets itself use (vLLM: total x utilization)
    weights_bytes: int
    activation_bytes: int  # profiling peak (vLLM/SGLang); compute buffer (llama.cpp)
    runtime_bytes: int  # CUDA context, graphs, non-torch memory, host-visible buffers
    kv_cache_bytes: int
    free_bytes: int  # budget - weights - activation - runtime - kv (negative: does not fit)


@dataclass(frozen=True, slots=True)
class RamPlan:
    """What sits in system memory (offloaded layers, CPU-MoE experts, host buffers)."""

    weights_bytes: int = 0
    kv_cache_bytes: int = 0
    activation_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes + self.activation_bytes


@dataclass(frozen=True, slots=True)
class EngineFit:
    """One engine's answer for one request."""

    engine: str  # vllm | sglang | llama.cpp | transformers | generic
    version_followed: str  # the engine release whose source the accounting follows
    devices: tuple[DevicePlan, ...]
    ram: RamPlan
    kv_cache_bytes: int  # the KV pool over all devices
    kv_cache_tokens: int  # tokens the pool holds ("GPU KV cache size: N tokens")
    max_model_len: int | None  # the largest context one sequence can have
    max_concurrency: float | None  # sequences of ``context`` tokens the pool holds at once
    fits: bool
    why_not: str | None = None  # one sentence when it does not fit
    notes: tuple[str, ...] = ()  # defaults applied, approximations, what was not modelled
    fallback: bool = False  # True: the generic estimate, the engine could not model this


class Engine(Protocol):
    """One engine's accounting."""

    name: str
    version_followed: str

    def supports(self, model: ModelView) -> str | None:
        """None when this engine can model ``model``; else why not (one sentence)."""
        ...

    def plan(self, model: ModelView, request: Request) -> EngineFit:
        """The budget on each device and the KV pool, for ``request``."""
        ...


def shortfall(plans: Sequence[DevicePlan], holds: str) -> str | None:
    """None when every device's plan is within its budget; else one sentence naming the
    device furthest over, what it needs (``holds``: what that sum is made of) and has."""
    if all(p.free_bytes >= 0 for p in plans):
        return None
    from paramtool.units import human_bytes

    worst = min(plans, key=lambda p: p.free_bytes)
    need = worst.budget_bytes - worst.free_bytes
    return (
        f"{worst.name} needs {human_bytes(need)} ({holds}), "
        f"{human_bytes(worst.budget_bytes)} available"
    )
