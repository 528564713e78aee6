"""How many GPUs of a kind a model needs, serving or training.
"""

from __future__ import annotations

from paramtool.frozen import dataclass
from paramtool.memory.gpus import Gpu
from paramtool.memory.kv_cache import KVCache
from paramtool.memory.overhead import Overhead
from paramtool.memory.training import Training

MAX_GPUS = 4096  # how far the search for "GPUs needed" goes




@dataclass(frozen=True, slots=True)
class GpuFit:
    """Whether a workload fits on ``gpus`` of one GPU model, and how many it needs."""

    gpu: Gpu
    workload: str  # serving | training
    gpus: int  # the count evaluated
    requested: bool  # the count came from --gpus
    per_gpu_bytes: int
    gpus_needed: int | None  # smallest count that fits (serving: a power of two); None: none
    limited_by: str = ""  # why more GPUs do not help, when they do not

    @property
    def usable_bytes(self) -> int:
        return self.gpu.usable_bytes

    @property
    def headroom_bytes(self) -> int:
        """Usable minus needed, per GPU; negative when it does not fit."""
        return self.usable_bytes - self.per_gpu_bytes

    @property
    def fits(self) -> bool:
        return self.per_gpu_bytes <= self.usable_bytes


def serving_per_gpu(
    weights_bytes: int, kv: KVCache | None, overhead: Overhead, tensor_parallel: int
) -> int:
    """One GPU's share with tensor parallelism: weights and overhead split, KV by head."""
    kv_part = kv.per_gpu_bytes(tensor_parallel) if kv is not None else 0
    return (
        -(-weights_bytes // tensor_parallel)
        + kv_part
        + overhead.per_gpu(weights_bytes, tensor_parallel)
    )


def fit_serving(
    gpu: Gpu, weights_bytes: int, kv: KVCache | None, overhead: Overhead, gpus: int | None = None
) -> GpuFit:
    """Tensor-parallel serving: the smallest power-of-two GPU count that holds it."""
    needed = None
    tp = 1
    while tp <= MAX_GPUS:
        if serving_per_gpu(weights_bytes, kv, overhead, tp) <= gpu.usable_bytes:
            needed = tp
            break
        tp *= 2
    limited = ""
    if needed is None:
        floor = (kv.per_gpu_bytes(MAX_GPUS) if kv else 0) + (overhead.bytes_per_gpu or 0)
        if floor > gpu.usable_bytes:
            limited = "the KV cache share and fixed overhead alone exceed one GPU"
    count = gpus if gpus is not None else (needed or 1)
    return GpuFit(
        gpu=gpu,
        workload="serving",
        gpus=count,
        requested=gpus is not None,
        per_gpu_bytes=serving_per_gpu(weights_bytes, kv, overhead, count),
        gpus_needed=needed,
        limited_by=limited,
    )


def fit_training(gpu: Gpu, train: Training, gpus: int | None = None) -> GpuFit:
    """Data-parallel training with ZeRO: the smallest GPU count that holds it.

    Each GPU's load is its ZeRO share, its activations and the training's overhead.
    """

    def load(n: int) -> int:
        return train.per_gpu_bytes(n)

    needed = None
    if load(MAX_GPUS) <= gpu.usable_bytes:
        lo, hi = 1, MAX_GPUS
        while lo < hi:  # per-GPU load never grows with more GPUs
            mid = (lo + hi) // 2
            if load(mid) <= gpu.usable_bytes:
                hi = mid
            else:
                lo = mid + 1
        needed = lo
    limited = ""
    if needed is None or (needed > 1 and train.zero == 0):
        limited = {
            0: "ZeRO-0 keeps every byte on every GPU; shard with --zero 1/2/3",
            1: "ZeRO-1 shards only optimizer states; --zero 2 or 3 shards more",
            2: "ZeRO-2 keeps the weights on every GPU; --zero 3 shards them",
            3: "activations are per GPU and do not shard",
        }[train.zero]
    count = gpus if gpus is not None else (needed or train.gpus)
    return GpuFit(
        gpu=gpu,
        workload="training",
        gpus=count,
        requested=gpus is not None,
        per_gpu_bytes=load(count),
        gpus_needed=needed,
        limited_by=limited if needed is None else "",
    )
