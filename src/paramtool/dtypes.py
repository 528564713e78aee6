"""The one dtype table: every storage format paramtool knows, and its size.

A format stores ``block_size`` elements in ``bytes_per_block`` bytes, so
``bytes = n * bytes_per_block / block_size`` and bits per element
``= 8 * bytes_per_block / block_size``. Plain dtypes have a block of one
element; packed 4-bit types a block of two; quantized formats carry their
scales and zero points inside the block, so their bits are the true effective
bits per weight. GGUF block sizes are those of ``gguf.GGML_QUANT_SIZES``
(checked by the tests).

GGUF file-level mixes (Q4_K_M and friends) have no single block: llama.cpp
picks a tensor type per tensor. Their entry is the effective bits per weight
of llama.cpp's own published size for Llama-3-8B (``tools/quantize/quantize.cpp``,
``QUANT_OPTIONS``: sizes in GiB for 8,030,261,248 parameters), rounded to
hundredths and written exactly as ``bpw * 100`` bytes per 800 weights. Three
significant digits of GiB carry about +-0.005 bpw, so the hundredths lose
nothing the source has. Other models get a somewhat different mix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramtool.errors import UsageError
from paramtool.frozen import dataclass

if TYPE_CHECKING:
    from fractions import Fraction

# What a format is made of, for rules such as "all floating tensors are bf16".
FLOAT = "float"
INT = "int"
BOOL = "bool"
COMPLEX = "complex"
BLOCK = "block"  # quantized blocks with their own scales (GGUF, MX, NVFP4, int4-gN)
MIX = "mix"  # a per-file mix of block formats, effective bits only

# The model behind llama.cpp's published mix sizes: Llama-3-8B's parameter count.
LLAMA3_8B_PARAMETERS = 8_030_261_248


@dataclass(frozen=True, slots=True)
class DType:
    """One storage format: how many bytes a block of elements takes."""

    name: str
    block_size: int
    bytes_per_block: int
    kind: str
    safetensors: bool = False  # valid in a safetensors header under `name`
    gguf: bool = False  # a GGML tensor type under `name`
    aliases: tuple[str, ...] = ()
    note: str = ""

    @property
    def bits(self) -> float:
        """Effective bits per element, scales and zero points included."""
        return 8 * self.bytes_per_block / self.block_size

    @property
    def bits_exact(self) -> Fraction:
        """:attr:`bits` as an exact fraction."""
        from fractions import Fraction  # lazily: slow to import, and inspect never needs it

        return Fraction(8 * self.bytes_per_block, self.block_size)

    @property
    def is_float(self) -> bool:
        return self.kind == FLOAT

    @property
    def label(self) -> str:
        """The name people write: ``bf16``, ``int4-g128``, ``nf4``; GGUF and MX names as is."""
        if self.kind == MIX or (self.kind == BLOCK and self.gguf) or not self.aliases:
            return self.name
        return self.aliases[0]

    def nbytes(self, n: int) -> int:
        """Bytes to hold ``n`` elements: whole blocks, rounded up."""
        blocks = -(-n // self.block_size)
        return blocks * self.bytes_per_block

    def exact_nbytes(self, n: int) -> int | None:
        """Bytes for exactly ``n`` elements, or None when they end mid-byte/block."""
        total = n * self.bytes_per_block
        if total % self.block_size:
            return None
        return total // self.block_size

    def estimate_nbytes(self, n: int) -> int:
        """``n`` elements at the effective bits per weight, rounded up to a whole byte.

        For estimates over a whole model, where the real tensors are padded to
        blocks one by one and a single block count over all parameters means nothing.
        """
        return -(-n * self.bytes_per_block // self.block_size)


def _t(name: str, block: int, nbytes: int, kind: str, *aliases: str, **kw: object) -> DType:
    return DType(name, block, nbytes, kind, aliases=aliases, **kw)  # type: ignore[arg-type]


def _mix(name: str, gib: str, *aliases: str) -> DType:
    """A llama.cpp file mix from its published Llama-3-8B size in GiB (see module doc)."""
    hundredths = round(
        float(gib) * 2**30 * 8 * 100 / LLAMA3_8B_PARAMETERS
    )  # exact for these figures
    note = (
        f"llama.cpp file mix, {hundredths / 100:.2f} bpw effective: {gib} GiB for "
        f"Llama-3-8B ({LLAMA3_8B_PARAMETERS:,} params) in llama.cpp's quantize table"
    )
    return DType(name, 800, hundredths, MIX, aliases=aliases or (name.lower(),), note=note)


_ST = {"safetensors": True}
_GG = {"gguf": True}
_BOTH = {"safetensors": True, "gguf": True}

# A llama.cpp file of a "pure" type is slightly larger than its block type says:
# llama-quant.cpp keeps output.weight at Q6_K (Q8_0 files: Q8_0) and norms at F32.
_FILE = "tensor type; a llama.cpp {} file of Llama-3-8B is {} GiB ({} bpw)"

# fmt: off
TABLE: tuple[DType, ...] = (
    # Plain element types; names as the safetensors header spells them.
    _t("F64", 1, 8, FLOAT, "fp64", "float64", "double", **_BOTH),
    _t("F32", 1, 4, FLOAT, "fp32", "float32", "float", **_BOTH),
    _t("TF32", 1, 4, FLOAT, "tf32",
       note="TensorFloat-32 is a compute mode; the weights are stored as fp32"),
    _t("F16", 1, 2, FLOAT, "fp16", "float16", "half", **_BOTH),
    _t("BF16", 1, 2, FLOAT, "bf16", "bfloat16", **_BOTH),
    _t("F8_E4M3", 1, 1, FLOAT, "fp8-e4m3", "fp8", "fp8_e4m3", "e4m3", "float8_e4m3fn", **_ST),
    _t("F8_E5M2", 1, 1, FLOAT, "fp8-e5m2", "fp8_e5m2", "e5m2", "float8_e5m2", **_ST),
    _t("F8_E4M3FNUZ", 1, 1, FLOAT, "float8_e4m3fnuz", **_ST),
    _t("F8_E5M2FNUZ", 1, 1, FLOAT, "float8_e5m2fnuz", **_ST),
    _t("F8_E8M0", 1, 1, FLOAT, "e8m0", "float8_e8m0fnu", **_ST, note="MX block scale"),
    _t("F6_E2M3", 4, 3, FLOAT, "fp6-e2m3", **_ST),
    _t("F6_E3M2", 4, 3, FLOAT, "fp6-e3m2", **_ST),
    _t("F4", 2, 1, FLOAT, "fp4-e2m1", "float4_e2m1fn", **_ST, note="FP4 E2M1, no scales"),
    _t("C64", 1, 8, COMPLEX, "complex64", **_ST),
    # torch dtypes without a safetensors name (read from pickled checkpoints).
    _t("C128", 1, 16, COMPLEX, "complex128", "cdouble"),
    _t("C32", 1, 4, COMPLEX, "complex32", "chalf"),
    _t("F4_E2M1_X2", 1, 1, FLOAT, "float4_e2m1fn_x2",
       note="torch's packed FP4: two E2M1 values in each one-byte element; counted by element"),
    _t("I64", 1, 8, INT, "int64", **_BOTH),
    _t("U64", 1, 8, INT, "uint64", **_ST),
    _t("I32", 1, 4, INT, "int32", **_BOTH),
    _t("U32", 1, 4, INT, "uint32", **_ST),
    _t("I16", 1, 2, INT, "int16", **_BOTH),
    _t("U16", 1, 2, INT, "uint16", **_ST),
    _t("I8", 1, 1, INT, "int8", **_BOTH),
    _t("U8", 1, 1, INT, "uint8", **_ST),
    _t("BOOL", 1, 1, BOOL, "bool", **_ST),
    # Packed and scaled 4-bit formats (storage precisions for footprint).
    _t("INT4", 2, 1, INT, "int4", "uint4", note="two 4-bit values a byte, no scales"),
    # bitsandbytes 4-bit: blocks of 64 with an fp32 absmax (bnb's default blocksize).
    _t("NF4", 64, 36, BLOCK, "nf4",
       note="bitsandbytes NF4: 64 weights share an fp32 absmax (no double quantization)"),
    # Double quantization (QLoRA paper, Dettmers et al. 2023, sec. 3): the absmaxes are
    # themselves 8-bit in blocks of 256 with an fp32 absmax, 8/64 + 32/(64*256) bits.
    _t("NF4-DQ", 64 * 256, 64 * 256 // 2 + 256 + 4, BLOCK, "nf4-dq",
       note="bitsandbytes NF4 with double quantization (QLoRA): 4.127 bpw"),
    _t("FP4", 64, 36, BLOCK, "fp4",
       note="bitsandbytes FP4: 64 weights share an fp32 absmax (no double quantization)"),
    # int4 groups: 4-bit codes, an fp16 scale per group, and for the asymmetric
    # (GPTQ/AWQ) layout a 4-bit zero point per group packed eight to an int32.
    _t("INT4-G32", 32, 18, BLOCK, "int4-g32", note="int4, fp16 scale per 32"),
    _t("INT4-G64", 64, 34, BLOCK, "int4-g64", note="int4, fp16 scale per 64"),
    _t("INT4-G128", 128, 66, BLOCK, "int4-g128", note="int4, fp16 scale per 128"),
    _t("INT4-G32-ZP", 64, 37, BLOCK, "int4-g32-zp",
       note="int4, fp16 scale and packed int4 zero point per 32 (GPTQ/AWQ layout)"),
    _t("INT4-G64-ZP", 128, 69, BLOCK, "int4-g64-zp",
       note="int4, fp16 scale and packed int4 zero point per 64 (GPTQ/AWQ layout)"),
    _t("INT4-G128-ZP", 256, 133, BLOCK, "int4-g128-zp",
       note="int4, fp16 scale and packed int4 zero point per 128 (GPTQ/AWQ layout)"),
    # GGML tensor types (gguf.GGML_QUANT_SIZES).
    _t("Q4_0", 32, 18, BLOCK, "q4_0", **_GG, note=_FILE.format("Q4_0", "4.34", "4.64")),
    _t("Q4_1", 32, 20, BLOCK, "q4_1", **_GG, note=_FILE.format("Q4_1", "4.78", "5.11")),
    _t("Q5_0", 32, 22, BLOCK, "q5_0", **_GG, note=_FILE.format("Q5_0", "5.21", "5.57")),
    _t("Q5_1", 32, 24, BLOCK, "q5_1", **_GG, note=_FILE.format("Q5_1", "5.65", "6.04")),
    _t("Q8_0", 32, 34, BLOCK, "q8_0", **_GG, note=_FILE.format("Q8_0", "7.96", "8.51")),
    _t("Q8_1", 32, 40, BLOCK, "q8_1", **_GG),
    _t("Q2_K", 256, 84, BLOCK, "q2_k", **_GG,
       note=_FILE.format("Q2_K", "2.96", "3.17") + "; attn_v, attn_output, ffn_down at Q3_K/Q4_K"),
    _t("Q3_K", 256, 110, BLOCK, "q3_k", **_GG),
    _t("Q4_K", 256, 144, BLOCK, "q4_k", **_GG,
       note="tensor type; llama-quantize's 'Q4_K' means the Q4_K_M file mix"),
    _t("Q5_K", 256, 176, BLOCK, "q5_k", **_GG,
       note="tensor type; llama-quantize's 'Q5_K' means the Q5_K_M file mix"),
    _t("Q6_K", 256, 210, BLOCK, "q6_k", **_GG, note=_FILE.format("Q6_K", "6.14", "6.57")),
    _t("Q8_K", 256, 292, BLOCK, "q8_k", **_GG),
    _t("IQ2_XXS", 256, 66, BLOCK, "iq2_xxs", **_GG),
    _t("IQ2_XS", 256, 74, BLOCK, "iq2_xs", **_GG),
    _t("IQ2_S", 256, 82, BLOCK, "iq2_s", **_GG),
    _t("IQ3_XXS", 256, 98, BLOCK, "iq3_xxs", **_GG),
    _t("IQ3_S", 256, 110, BLOCK, "iq3_s", **_GG),
    _t("IQ1_S", 256, 50, BLOCK, "iq1_s", **_GG),
    _t("IQ1_M", 256, 56, BLOCK, "iq1_m", **_GG),
    _t("IQ4_NL", 32, 18, BLOCK, "iq4_nl", **_GG),
    _t("IQ4_XS", 256, 136, BLOCK, "iq4_xs", **_GG),
    _t("TQ1_0", 256, 54, BLOCK, "tq1_0", **_GG),
    _t("TQ2_0", 256, 66, BLOCK, "tq2_0", **_GG),
    _t("Q1_0", 128, 18, BLOCK, "q1_0", **_GG),
    _t("MXFP4", 32, 17, BLOCK, "mxfp4", **_GG,
       note="OCP MX: 32 FP4 (E2M1) values share one E8M0 scale"),
    _t("NVFP4", 64, 36, BLOCK, "nvfp4", **_GG,
       note="16 FP4 (E2M1) values share one FP8 E4M3 scale (per-tensor fp32 scale not counted)"),
    # llama.cpp file-level k-quant mixes (see the module docstring).
    _mix("Q3_K_S", "3.41"),
    _mix("Q3_K_M", "3.74"),
    _mix("Q3_K_L", "4.03"),
    _mix("Q4_K_S", "4.37"),
    _mix("Q4_K_M", "4.58"),
    _mix("Q5_K_S", "5.21"),
    _mix("Q5_K_M", "5.33"),
)
# fmt: on

_BY_NAME: dict[str, DType] = {}
for _d in TABLE:
    for _key in (_d.name, *_d.aliases):
        assert _BY_NAME.get(_key.lower(), _d) is _d, f"dtype name {_key!r} used twice"
        _BY_NAME[_key.lower()] = _d

# Dtypes whose tensors hold one parameter an element and never packed quantized data (a U8, I8
# or I32 tensor may be packed 4-bit weights; these never are).
UNPACKED = frozenset({"BF16", "F16", "F32", "F64", "I64", "BOOL", "C64"})

SAFETENSORS: dict[str, DType] = {d.name: d for d in TABLE if d.safetensors}
GGUF: dict[str, DType] = {d.name: d for d in TABLE if d.gguf}


def lookup(name: str) -> DType:
    """Find a format by its name or an alias, case-insensitively."""
    try:
        return _BY_NAME[name.strip().lower()]
    except KeyError:
        raise UsageError(
            f"dtype {name!r}", "unknown dtype (see `paramtool footprint --list-dtypes`)"
        ) from None
