"""Known GPUs: how much memory each one has, as marketed and as a program can use.

Two figures per card, each with its source:

* ``marketed`` -- the vendor's spec-sheet figure ("80GB"). Vendors write GB but
  the memory chips come in binary sizes, so it is best read as GiB of physical
  memory; ``marketed_bytes`` is that reading (``n * 2**30``).
* ``usable_bytes`` -- what the driver reports as total device memory
  (``nvidia-smi --query-gpu=memory.total``, printed in MiB, so ``MiB * 2**20``;
  ``rocm-smi --showmeminfo vram`` for AMD, in bytes), with ECC at its default.
  This is the ceiling for everything a process puts on the card: it already
  excludes what the firmware, the driver and ECC (GDDR cards such as T4, L4,
  A10G) reserve. The CUDA context, activations and allocator fragmentation
  still come out of it; ``paramtool footprint`` counts them as overhead.

The usable figures are quoted from public ``nvidia-smi``/``rocm-smi`` transcripts
(each row names one). A different driver, ECC setting or board variant
(PCIe versus SXM, H100 NVL, GH200) reports a slightly different total.
"""

from __future__ import annotations

from dataclasses import dataclass

from paramtool.errors import UsageError

MIB = 2**20
GIB = 2**30


@dataclass(frozen=True, slots=True)
class Gpu:
    """One accelerator model and its memory."""

    name: str
    vendor: str
    marketed: str  # as the vendor writes it, e.g. "80GB HBM3"
    marketed_bytes: int  # the marketed figure read as GiB
    usable_bytes: int  # total memory the driver reports
    marketed_source: str
    usable_source: str
    aliases: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The short name to pass to ``--gpu``."""
        return self.aliases[0] if self.aliases else self.name.lower()


def _nv(
    name: str, marketed: str, gib: int, mib: int, marketed_src: str, usable_src: str, *aliases: str
) -> Gpu:
    usable = f"nvidia-smi memory.total {mib} MiB ({usable_src})"
    return Gpu(name, "NVIDIA", marketed, gib * GIB, mib * MIB, marketed_src, usable, aliases)


_NV = "https://www.nvidia.com/en-us/"
_GH = "https://github.com/"
_MODAL = _GH + "modal-labs/modal-client/pull/2797"

# fmt: off
GPUS: tuple[Gpu, ...] = (
    _nv("T4", "16GB GDDR6", 16, 15360, _NV + "data-center/tesla-t4/", _MODAL,
        "t4", "t4-16gb"),
    _nv("L4", "24GB GDDR6", 24, 23034, _NV + "data-center/l4/", _MODAL,
        "l4", "l4-24gb"),
    _nv("A10G", "24GB GDDR6", 24, 23028, "https://aws.amazon.com/ec2/instance-types/g5/",
        _GH + "NVIDIA/DCGM/issues/232", "a10g", "a10g-24gb"),
    _nv("GeForce RTX 3090", "24GB GDDR6X", 24, 24576,
        _NV + "geforce/graphics-cards/30-series/rtx-3090-3090ti/",
        _GH + "noonghunna/club-3090/issues/1128", "rtx3090", "rtx-3090", "3090"),
    _nv("GeForce RTX 4090", "24GB GDDR6X", 24, 24564,
        _NV + "geforce/graphics-cards/40-series/rtx-4090/",
        _GH + "RLinf/RLinf/issues/255", "rtx4090", "rtx-4090", "4090"),
    _nv("GeForce RTX 5090", "32GB GDDR7", 32, 32607,
        _NV + "geforce/graphics-cards/50-series/rtx-5090/",
        _GH + "noonghunna/club-3090/issues/1261", "rtx5090", "rtx-5090", "5090"),
    _nv("A100 40GB", "40GB HBM2", 40, 40960, _NV + "data-center/a100/", _MODAL,
        "a100-40gb", "a100-40"),
    _nv("A100 80GB", "80GB HBM2e", 80, 81920, _NV + "data-center/a100/",
        _MODAL + "; NVIDIA A100-SXM4-80GB", "a100-80gb", "a100-80", "a100"),
    _nv("H100 80GB (SXM)", "80GB HBM3", 80, 81559, _NV + "data-center/h100/",
        _GH + "NVIDIA/nccl/issues/1264; NVIDIA H100 80GB HBM3",
        "h100-80gb", "h100", "h100-sxm"),
    _nv("H200", "141GB HBM3e", 141, 143771, _NV + "data-center/h200/",
        "public nvidia-smi transcripts of 'NVIDIA H200' (SXM)", "h200", "h200-141gb"),
    _nv("B200", "180GB HBM3e (192GB at launch)", 180, 183359,
        _NV + "data-center/dgx-b200/ (1,440GB for 8 GPUs)",
        _GH + "NVIDIA/TensorRT-LLM/issues/10278", "b200", "b200-180gb"),
    Gpu("Instinct MI300X", "AMD", "192GB HBM3", 192 * GIB, 206_141_652_992,
        "https://www.amd.com/en/products/accelerators/instinct/mi300/mi300x.html",
        "rocm-smi VRAM Total Memory 206141652992 B ("
        + _GH + "ROCm/legacy-rocm-build/issues/4750)",
        ("mi300x", "mi300x-192gb")),
)
# fmt: on

_BY_NAME: dict[str, Gpu] = {}
for _g in GPUS:
    for _key in (_g.name, *_g.aliases):
        _BY_NAME[_key.lower().replace(" ", "-")] = _g


def lookup_gpu(name: str) -> Gpu:
    """Find a GPU by name or alias (``h100-80gb``, ``H100``, ``rtx4090``), case-insensitively."""
    key = name.strip().lower().replace(" ", "-").replace("_", "-")
    try:
        return _BY_NAME[key]
    except KeyError:
        known = ", ".join(g.key for g in GPUS)
        raise UsageError(repr(name), f"unknown GPU (known: {known})", param="gpu") from None
