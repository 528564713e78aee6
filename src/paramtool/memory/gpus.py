"""Known GPUs: memory (as marketed and as a program can use), bandwidth and peak compute.

Figures per card, each with its source:

* ``marketed`` -- the vendor's spec-sheet figure ("80GB"). Vendors write GB but
  the memory chips come in binary sizes, so it is best read as GiB of physical
  memory; ``marketed_bytes`` is that reading (``n * 2**30``).
* ``usable_bytes`` -- what the driver reports as total device memory
  (``nvidia-smi --query-gpu=memory.total``, printed in MiB, so ``MiB * 2**20``;
  ``rocm-smi --showmeminfo vram`` for AMD, in bytes), with ECC at its default.
  This is the ceiling for everything a process puts on the card: it already
  excludes what the firmware, the driver and ECC (GDDR cards such as T4, L4,
  A10G) reserve. The CUDA context, activations and allocator fragmentation
  still come out of it; ``paramtool footprint`` counts them as overhead. Where no
  public transcript was found the marketed figure stands in, and ``usable_source``
  says so. Apple silicon: the GPU working-set limit macOS sets (see below).
* ``bandwidth_bytes_per_s`` -- peak memory bandwidth from the vendor's datasheet.
* ``flops`` -- peak *dense* FLOP/s (INT8: operations/s) by dtype key (``fp32``,
  ``tf32``, ``bf16``, ``fp16``, ``fp8``, ``int8``, ``fp4``) from the datasheet. NVIDIA
  quotes tensor figures "with sparsity" for Ampere and later data-center and workstation
  parts: those are halved here, and ``speed_note`` says so. GeForce figures are the
  whitepapers' FP32-accumulate rates (what PyTorch's matmuls use). A key that is absent
  is a figure the vendor does not publish, or a format the chip lacks.

The usable figures are quoted from public ``nvidia-smi``/``rocm-smi`` transcripts
(each row names one). A different driver, ECC setting or board variant reports a
slightly different total.

Apple silicon is unified memory: ``marketed_bytes`` is the RAM and ``usable_bytes``
the working set Metal recommends (``MTLDevice.recommendedMaxWorkingSetSize``), which
llama.cpp's Metal backend logs at start-up and mlx-lm wires. macOS does not document
it; the logs show 2/3 of RAM up to 32 GiB and 3/4 above (:func:`apple_working_set`).
``sudo sysctl iogpu.wired_limit_mb=N`` raises it until the next reboot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from decimal import Decimal

from paramtool.errors import UsageError
from paramtool.frozen import dataclass

MIB = 2**20
GIB = 2**30

# Peak-compute keys, widest first.
FLOPS_KEYS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4")


@dataclass(frozen=True, slots=True)
class Gpu:
    """One accelerator model: its memory, bandwidth and peak dense compute."""

    name: str
    vendor: str
    marketed: str  # as the vendor writes it, e.g. "80GB HBM3"
    marketed_bytes: int  # the marketed figure read as GiB (Apple: the RAM)
    usable_bytes: int  # total memory the driver reports (Apple: the GPU working set)
    marketed_source: str
    usable_source: str
    aliases: tuple[str, ...] = ()
    bandwidth_bytes_per_s: int | None = None
    flops: Mapping[str, int] = field(default_factory=dict)  # peak dense FLOP/s by key
    speed_source: str = ""  # the datasheet the bandwidth and FLOP/s come from
    speed_note: str = ""  # halved sparse figures, derived or missing ones
    unified: bool = False  # Apple silicon: memory shared with the CPU

    @property
    def key(self) -> str:
        """The short name to pass to ``--gpu``."""
        return self.aliases[0] if self.aliases else self.name.lower()

    @property
    def working_set_bytes(self) -> int | None:
        """Apple: the GPU working-set limit (``usable_bytes``); None for discrete GPUs."""
        return self.usable_bytes if self.unified else None


def apple_working_set(ram_bytes: int) -> int:
    """The GPU working set macOS recommends on ``ram_bytes`` of unified memory.

    ``recommendedMaxWorkingSetSize`` as llama.cpp's Metal backend logs it: 2/3 of the
    RAM up to 32 GiB (21845.34 MiB on a 32 GB M1 Max, ggml-org/llama.cpp#2011; the same
    on a 32 GB M2 Max, ollama/ollama#434), 3/4 above (73728.00 MiB on a 96 GB M2 Max,
    ggml-org/llama.cpp#3213; 28991.03 MB on a 36 GB M4 Max, llama.cpp b7690). macOS 26
    reports more on some machines (107.52 GiB of 128, antirez/ds4#893): this is the
    conservative default. ``iogpu.wired_limit_mb`` overrides it.
    """
    if ram_bytes <= 32 * GIB:
        return ram_bytes * 2 // 3
    return ram_bytes * 3 // 4


def _t(tera: str) -> int:
    """``"989.5"`` TFLOP/s as an exact integer FLOP/s."""
    return int(Decimal(tera) * 10**12)


def _half(tera: str) -> int:
    """A "with sparsity" datasheet figure in TFLOP/s, halved to the dense rate."""
    return int(Decimal(tera) * 10**12 / 2)


def _bw(tb_per_s: str) -> int:
    return int(Decimal(tb_per_s) * 10**12)


_SPARSE = "tensor figures quoted with sparsity, halved to dense"


def _nv(
    name: str,
    marketed: str,
    gib: int,
    mib: int | None,
    marketed_src: str,
    usable_src: str,
    *aliases: str,
    bw: str | None = None,
    flops: Mapping[str, int] | None = None,
    src: str = "",
    note: str = "",
    usable_bytes: int | None = None,
) -> Gpu:
    if usable_bytes is not None:
        usable = usable_bytes
        usable_text = f"{usable_src}"
    elif mib is not None:
        usable = mib * MIB
        usable_text = f"nvidia-smi memory.total {mib} MiB ({usable_src})"
    else:
        usable = gib * GIB
        usable_text = f"marketed {gib} GiB: no public driver transcript found ({usable_src})"
    return Gpu(
        name,
        "NVIDIA",
        marketed,
        gib * GIB,
        usable,
        marketed_src,
        usable_text,
        aliases,
        _bw(bw) if bw is not None else None,
        dict(flops or {}),
        src or marketed_src,
        note,
    )


def _f(**tera: int) -> dict[str, int]:
    return dict(tera)


_NV = "https://www.nvidia.com/en-us/"
_GH = "https://github.com/"
_MODAL = _GH + "modal-labs/modal-client/pull/2797"
_GA102 = (
    "https://www.nvidia.com/content/PDF/nvidia-ampere-ga-102-gpu-architecture-whitepaper-v2.pdf"
)
_ADA = "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf"
_GB202 = (
    "https://images.nvidia.com/aem-dam/Solutions/geforce/blackwell/"
    "nvidia-rtx-blackwell-gpu-architecture.pdf"
)
_GEFORCE = "tensor figures with FP32 accumulate, dense (the whitepaper's appendix table)"
_HOPPER_SXM = _f(fp32=_t("67"), tf32=_half("989"), bf16=_half("1979"), fp16=_half("1979"),
                 fp8=_half("3958"), int8=_half("3958"))  # fmt: skip
_HOPPER_NVL = _f(fp32=_t("60"), tf32=_half("835"), bf16=_half("1671"), fp16=_half("1671"),
                 fp8=_half("3341"), int8=_half("3341"))  # fmt: skip
_A100 = _f(fp32=_t("19.5"), tf32=_t("156"), bf16=_t("312"), fp16=_t("312"), int8=_t("624"))
_A100_SRC = (
    "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
    "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"
)
_A100_NOTE = "dense figures as printed (the datasheet prints the sparse ones beside them)"

# fmt: off
_NVIDIA: tuple[Gpu, ...] = (
    _nv("T4", "16GB GDDR6", 16, 15360, _NV + "data-center/tesla-t4/", _MODAL,
        "t4", "t4-16gb", bw="0.32",
        flops=_f(fp32=_t("8.1"), fp16=_t("65"), int8=_t("130")),
        note="Turing: no bf16, tf32 or fp8; no sparsity"),
    _nv("L4", "24GB GDDR6", 24, 23034, _NV + "data-center/l4/", _MODAL,
        "l4", "l4-24gb", bw="0.3",
        flops=_f(fp32=_t("30.3"), tf32=_half("120"), bf16=_half("242"), fp16=_half("242"),
                 fp8=_half("485"), int8=_half("485")),
        note=_SPARSE),
    _nv("A10G", "24GB GDDR6", 24, 23028, "https://aws.amazon.com/ec2/instance-types/g5/",
        _GH + "NVIDIA/DCGM/issues/232", "a10g", "a10g-24gb", bw="0.6",
        src=_NV + "data-center/products/a10-gpu/",
        note="AWS publishes no bandwidth or FLOP/s for its A10G: the bandwidth is the A10's "
        "(the same GA102 board memory), the FLOP/s are left out"),
    _nv("A10", "24GB GDDR6", 24, 23028, _NV + "data-center/products/a10-gpu/", _MODAL,
        "a10", "a10-24gb", bw="0.6",
        flops=_f(fp32=_t("31.2"), tf32=_half("125"), bf16=_half("250"), fp16=_half("250"),
                 int8=_half("500")),
        note=_SPARSE),
    _nv("GeForce RTX 3090", "24GB GDDR6X", 24, 24576,
        _NV + "geforce/graphics-cards/30-series/rtx-3090-3090ti/",
        _GH + "noonghunna/club-3090/issues/1128", "rtx3090", "rtx-3090", "3090", bw="0.936",
        flops=_f(fp32=_t("35.6"), tf32=_t("35.6"), bf16=_t("71"), fp16=_t("71"),
                 int8=_t("284")),
        src=_GA102, note=_GEFORCE),
    _nv("GeForce RTX 4090", "24GB GDDR6X", 24, 24564,
        _NV + "geforce/graphics-cards/40-series/rtx-4090/",
        _GH + "RLinf/RLinf/issues/255", "rtx4090", "rtx-4090", "4090", bw="1.008",
        flops=_f(fp32=_t("82.6"), tf32=_t("82.6"), bf16=_t("165.2"), fp16=_t("165.2"),
                 fp8=_t("330.3"), int8=_t("660.6")),
        src=_ADA, note=_GEFORCE),
    _nv("GeForce RTX 5090", "32GB GDDR7", 32, 32607,
        _NV + "geforce/graphics-cards/50-series/rtx-5090/",
        _GH + "noonghunna/club-3090/issues/1261", "rtx5090", "rtx-5090", "5090", bw="1.792",
        flops=_f(fp32=_t("104.8"), tf32=_t("104.8"), bf16=_t("209.5"), fp16=_t("209.5"),
                 fp8=_t("419"), int8=_t("838"), fp4=_t("1676")),
        src=_GB202, note=_GEFORCE),
    _nv("RTX A6000", "48GB GDDR6", 48, None, _NV + "design-visualization/rtx-a6000/",
        "the marketed figure", "a6000", "rtx-a6000", "a6000-48gb", bw="0.768",
        flops=_f(fp32=_t("38.7"), bf16=_half("309.7"), fp16=_half("309.7")),
        note="tensor figure quoted with sparsity, halved to dense; tf32, int8 not published"),
    _nv("RTX 6000 Ada", "48GB GDDR6", 48, None, _NV + "design-visualization/rtx-6000/",
        "the marketed figure", "rtx6000-ada", "rtx-6000-ada", "6000-ada", bw="0.96",
        flops=_f(fp32=_t("91.1"), fp8=_half("1457"), bf16=_half("728.5"),
                 fp16=_half("728.5")),
        note="the datasheet quotes FP8 with sparsity (1,457 TFLOPS): halved to dense; bf16/fp16"
        " derived as half the FP8 rate (Ada tensor cores)"),
    _nv("RTX PRO 6000 Blackwell", "96GB GDDR7", 96, None,
        _NV + "products/workstations/professional-desktop-gpus/rtx-pro-6000/",
        "the marketed figure", "rtx-pro-6000", "rtx-pro-6000-blackwell", "rtx6000-pro",
        bw="1.792",
        flops=_f(fp32=_t("125"), fp4=_half("4000"), fp8=_half("2000"), bf16=_half("1000"),
                 fp16=_half("1000")),
        note="the datasheet quotes 4,000 AI TOPS (FP4 with sparsity): halved to dense; fp8 and"
        " bf16 derived by halving per doubling of the width (Blackwell tensor cores)"),
    _nv("L40", "48GB GDDR6", 48, None, _NV + "data-center/l40/", "the marketed figure",
        "l40", "l40-48gb", bw="0.864",
        flops=_f(fp32=_t("90.5"), tf32=_half("181"), bf16=_half("362.1"), fp16=_half("362.1"),
                 fp8=_half("724"), int8=_half("724")),
        note=_SPARSE),
    _nv("L40S", "48GB GDDR6", 48, 46068, _NV + "data-center/l40s/",
        _MODAL + "; " + _GH + "akash-network/provider-configs/pull/99",
        "l40s", "l40s-48gb", bw="0.864",
        flops=_f(fp32=_t("91.6"), tf32=_half("366"), bf16=_half("733"), fp16=_half("733"),
                 fp8=_half("1466"), int8=_half("1466")),
        note=_SPARSE),
    _nv("A100 40GB", "40GB HBM2", 40, 40960, _NV + "data-center/a100/", _MODAL,
        "a100-40gb", "a100-40", bw="1.555", flops=_A100, src=_A100_SRC, note=_A100_NOTE),
    _nv("A100 80GB", "80GB HBM2e", 80, 81920, _NV + "data-center/a100/",
        _MODAL + "; NVIDIA A100-SXM4-80GB", "a100-80gb", "a100-80", "a100", bw="2.039",
        flops=_A100, src=_A100_SRC, note=_A100_NOTE + "; bandwidth of the SXM board"),
    _nv("H100 80GB (SXM)", "80GB HBM3", 80, 81559, _NV + "data-center/h100/",
        _GH + "NVIDIA/nccl/issues/1264; NVIDIA H100 80GB HBM3",
        "h100-80gb", "h100", "h100-sxm", bw="3.35", flops=_HOPPER_SXM, note=_SPARSE),
    _nv("H100 PCIe", "80GB HBM2e", 80, None, _NV + "data-center/h100/", "the marketed figure",
        "h100-pcie", "h100-pcie-80gb", bw="2",
        flops=_f(fp32=_t("51"), tf32=_half("756"), bf16=_half("1513"), fp16=_half("1513"),
                 fp8=_half("3026"), int8=_half("3026")),
        note=_SPARSE),
    _nv("H100 NVL", "94GB HBM3", 94, None, _NV + "data-center/h100/",
        "NVML dedicated total 99961274368 B for 'NVIDIA H100 NVL' ("
        + _GH + "fastfetch-cli/fastfetch/issues/1658)",
        "h100-nvl", "h100-94gb", bw="3.9", flops=_HOPPER_NVL, note=_SPARSE,
        usable_bytes=99_961_274_368),
    _nv("H200", "141GB HBM3e", 141, 143771, _NV + "data-center/h200/",
        "public nvidia-smi transcripts of 'NVIDIA H200' (SXM)", "h200", "h200-141gb",
        bw="4.8", flops=_HOPPER_SXM, note=_SPARSE),
    _nv("H200 NVL", "141GB HBM3e", 141, 143771, _NV + "data-center/h200/",
        "taken as the H200 SXM's total (the same 141GB stack)", "h200-nvl", bw="4.8",
        flops=_HOPPER_NVL, note=_SPARSE),
    _nv("GH200 96GB", "96GB HBM3", 96, None,
        _NV + "data-center/grace-hopper-superchip/", "the marketed figure",
        "gh200", "gh200-96gb", bw="4", flops=_HOPPER_SXM,
        note=_SPARSE + "; the Grace CPU's LPDDR5X is not counted"),
    _nv("GH200 144GB", "144GB HBM3e", 144, None,
        _NV + "data-center/grace-hopper-superchip/", "the marketed figure",
        "gh200-144gb", bw="4.9", flops=_HOPPER_SXM,
        note=_SPARSE + "; the Grace CPU's LPDDR5X is not counted"),
    _nv("B200", "180GB HBM3e (192GB at launch)", 180, 183359,
        _NV + "data-center/dgx-b200/ (1,440GB for 8 GPUs)",
        _GH + "NVIDIA/TensorRT-LLM/issues/10278", "b200", "b200-180gb", bw="8",
        flops=_f(fp32=_t("75"), tf32=_half("2250"), bf16=_half("4500"), fp16=_half("4500"),
                 fp8=_half("9000"), int8=_half("9000"), fp4=_half("18000")),
        src=_NV + "data-center/hgx/ (HGX B200, per GPU: the 8-GPU figures / 8)",
        note=_SPARSE),
)


def _amd(
    name: str, marketed: str, gib: int, usable: int | None, page: str, usable_src: str,
    *aliases: str, bw: str, flops: Mapping[str, int], note: str = "",
) -> Gpu:
    if usable is None:
        usable = gib * GIB
        usable_src = f"marketed {gib} GiB: no public driver transcript found ({usable_src})"
    return Gpu(name, "AMD", marketed, gib * GIB, usable, page, usable_src, aliases,
               _bw(bw), dict(flops), page, note)


_AMD_PAGE = "https://www.amd.com/en/products/accelerators/instinct/"
_CDNA3 = _f(fp32=_t("163.4"), tf32=_t("653.7"), bf16=_t("1307.4"), fp16=_t("1307.4"),
            fp8=_t("2614.9"), int8=_t("2614.9"))
_GCD = ("one GCD: the module is two graphics compute dies, each its own device with half "
        "the memory, bandwidth and FLOP/s (--gpu mi250x:2 is one module)")

_AMD: tuple[Gpu, ...] = (
    _amd("Instinct MI250X (one GCD)", "128GB HBM2e per module, 64GB per GCD", 64, None,
         _AMD_PAGE + "mi200/mi250x.html", "the marketed figure", "mi250x", "mi250x-gcd",
         bw="1.6384", flops=_f(fp32=_t("47.85"), bf16=_t("191.5"), fp16=_t("191.5"),
                               int8=_t("191.5")), note=_GCD),
    _amd("Instinct MI250 (one GCD)", "128GB HBM2e per module, 64GB per GCD", 64, None,
         _AMD_PAGE + "mi200/mi250.html", "the marketed figure", "mi250", "mi250-gcd",
         bw="1.6384", flops=_f(fp32=_t("45.25"), bf16=_t("181.05"), fp16=_t("181.05"),
                               int8=_t("181.05")), note=_GCD),
    _amd("Instinct MI300X", "192GB HBM3", 192, 206_141_652_992,
         _AMD_PAGE + "mi300/mi300x.html",
         "rocm-smi VRAM Total Memory 206141652992 B ("
         + _GH + "ROCm/legacy-rocm-build/issues/4750)",
         "mi300x", "mi300x-192gb", bw="5.3", flops=_CDNA3,
         note="dense figures as printed (AMD prints the sparse ones beside them)"),
    _amd("Instinct MI325X", "256GB HBM3E", 256, None, _AMD_PAGE + "mi300/mi325x.html",
         "the marketed figure", "mi325x", "mi325x-256gb", bw="6", flops=_CDNA3,
         note="dense figures as printed"),
    _amd("Instinct MI355X", "288GB HBM3E", 288, None, _AMD_PAGE + "mi350/mi355x.html",
         "the marketed figure", "mi355x", "mi355x-288gb", bw="8",
         flops=_f(fp32=_t("157.3"), bf16=_t("2516.6"), fp16=_t("2516.6"), fp8=_t("5033.2"),
                  int8=_t("5033.2"), fp4=_t("10066.3")),
         note="dense figures as printed; CDNA 4 has no TF32 matrix rate"),
)

_INTEL: tuple[Gpu, ...] = (
    Gpu("Gaudi 2", "Intel", "96GB HBM2e", 96 * GIB, 96 * GIB,
        "https://www.intel.com/content/www/us/en/products/details/processors/ai-accelerators/"
        "gaudi2.html",
        "marketed 96 GiB: no public hl-smi transcript found", ("gaudi2", "gaudi2-96gb"),
        _bw("2.46"), _f(bf16=_t("432"), fp8=_t("865")),
        "https://www.intel.com/content/www/us/en/content-details/817486/"
        "intel-gaudi-3-ai-accelerator-white-paper.html",
        "MME (matrix engine) dense figures from the Gaudi 3 white paper's comparison table;"
        " fp32 not published"),
    Gpu("Gaudi 3", "Intel", "128GB HBM2e", 128 * GIB, 128 * GIB,
        "https://www.intel.com/content/www/us/en/products/details/processors/ai-accelerators/"
        "gaudi.html",
        "marketed 128 GiB: no public hl-smi transcript found", ("gaudi3", "gaudi3-128gb"),
        _bw("3.7"), _f(bf16=_t("1835"), fp8=_t("1835")),
        "https://www.intel.com/content/www/us/en/content-details/817486/"
        "intel-gaudi-3-ai-accelerator-white-paper.html",
        "MME (matrix engine) dense figures; fp32 not published"),
)
# fmt: on

_APPLE_NOTE = "Apple publishes no FLOP/s figures for its GPUs"
_APPLE_SOURCES = {
    "M1 Pro": "https://www.apple.com/newsroom/2021/10/"
    "introducing-m1-pro-and-m1-max-the-most-powerful-chips-apple-has-ever-built/",
    "M1 Max": "https://www.apple.com/newsroom/2021/10/"
    "introducing-m1-pro-and-m1-max-the-most-powerful-chips-apple-has-ever-built/",
    "M1 Ultra": "https://www.apple.com/newsroom/2022/03/"
    "apple-unveils-m1-ultra-the-worlds-most-powerful-chip-for-a-personal-computer/",
    "M2 Pro": "https://www.apple.com/newsroom/2023/01/"
    "apple-unveils-m2-pro-and-m2-max-next-generation-chips-for-next-level-workflows/",
    "M2 Max": "https://www.apple.com/newsroom/2023/01/"
    "apple-unveils-m2-pro-and-m2-max-next-generation-chips-for-next-level-workflows/",
    "M2 Ultra": "https://www.apple.com/newsroom/2023/06/apple-introduces-m2-ultra/",
    "M3 Pro": "https://support.apple.com/en-us/117736 (MacBook Pro 14-inch, Nov 2023)",
    "M3 Max": "https://support.apple.com/en-us/117736 (MacBook Pro 14-inch, Nov 2023)",
    "M3 Ultra": "https://www.apple.com/newsroom/2025/03/"
    "apple-reveals-m3-ultra-taking-apple-silicon-to-a-new-extreme/",
    "M4 Pro": "https://www.apple.com/newsroom/2024/10/apple-introduces-m4-pro-and-m4-max/",
    "M4 Max": "https://www.apple.com/newsroom/2024/10/apple-introduces-m4-pro-and-m4-max/ "
    "(410GB/s for the 32-core-GPU M4 Max: https://www.apple.com/macbook-pro/specs/)",
}

# (chip, GB/s, memory configurations in GB); a chip with two bandwidths by binning
# lists each configuration with the bandwidth of the chip that ships with it.
_APPLE_CONFIGS: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("M1 Pro", 200, (16, 32)),
    ("M1 Max", 400, (32, 64)),
    ("M1 Ultra", 800, (64, 128)),
    ("M2 Pro", 200, (16, 32)),
    ("M2 Max", 400, (32, 64, 96)),
    ("M2 Ultra", 800, (64, 128, 192)),
    ("M3 Pro", 150, (18, 36)),
    ("M3 Max", 300, (36, 96)),  # 14-core CPU, 30-core GPU
    ("M3 Max", 400, (48, 64, 128)),  # 16-core CPU, 40-core GPU
    ("M3 Ultra", 819, (96, 256, 512)),
    ("M4 Pro", 273, (24, 48, 64)),
    ("M4 Max", 410, (36,)),  # 14-core CPU, 32-core GPU
    ("M4 Max", 546, (48, 64, 128)),  # 16-core CPU, 40-core GPU
)


def _apple(chip: str, gb_per_s: int, gb: int) -> Gpu:
    ram = gb * GIB
    key = f"{chip.lower().replace(' ', '-')}-{gb}gb"
    return Gpu(
        f"Apple {chip} {gb}GB",
        "Apple",
        f"{gb}GB unified memory",
        ram,
        apple_working_set(ram),
        _APPLE_SOURCES[chip],
        "the GPU working set macOS recommends (recommendedMaxWorkingSetSize): "
        + ("2/3" if ram <= 32 * GIB else "3/4")
        + " of the RAM, as llama.cpp's Metal backend logs it",
        (key, key.replace("-", "", 1)),
        gb_per_s * 10**9,
        {},
        _APPLE_SOURCES[chip],
        _APPLE_NOTE,
        unified=True,
    )


_APPLE: tuple[Gpu, ...] = tuple(
    _apple(chip, bw, gb) for chip, bw, configs in _APPLE_CONFIGS for gb in configs
)

GPUS: tuple[Gpu, ...] = _NVIDIA + _AMD + _INTEL + _APPLE

_BY_NAME: dict[str, Gpu] = {}
for _g in GPUS:
    for _key in (_g.name, *_g.aliases):
        _BY_NAME.setdefault(_key.lower().replace(" ", "-"), _g)


def normalize(name: str) -> str:
    """The lookup form of a GPU name: lower case, dashes for spaces and underscores."""
    return name.strip().lower().replace(" ", "-").replace("_", "-")


def known_names() -> tuple[str, ...]:
    """Every spelling :func:`lookup_gpu` accepts, in the lookup form."""
    return tuple(_BY_NAME)


def find_gpu(name: str) -> Gpu | None:
    """The GPU named ``name`` (any alias, any case), or None."""
    return _BY_NAME.get(normalize(name))


def lookup_gpu(name: str) -> Gpu:
    """Find a GPU by name or alias (``h100-80gb``, ``H100``, ``rtx4090``), case-insensitively."""
    gpu = find_gpu(name)
    if gpu is None:
        known = ", ".join(g.key for g in GPUS if not g.unified)
        raise UsageError(
            repr(name),
            f"unknown GPU (known: {known}; Apple silicon as m3-max-128gb; "
            "`paramtool footprint --list-gpus` lists them)",
            param="gpu",
        )
    return gpu
