"""Quantized checkpoints: the scheme, and the logical parameters behind packed tensors.

A quantized checkpoint stores fewer elements than the model has parameters: GPTQ
packs eight 4-bit weights into one int32, bitsandbytes two into one byte. Peer
tools that add up stored elements report a GPTQ Llama-3.1-8B as ~2B parameters.
This module reads names, dtypes and shapes (never values) and says, per tensor,
how many parameters of the unquantized model it holds:

* quantization metadata (scales, zero points, group indices, absmax, quant maps,
  ``weight_shape``, KV-cache scales; anatomy category ``quantization``) holds none;
* a packed weight holds ``stored bytes x 8 / bits``: GPTQ/AWQ ``qweight`` (int32),
  compressed-tensors ``weight_packed``, bitsandbytes 4-bit ``weight`` (uint8),
  MXFP4 ``*_blocks`` (uint8), NVFP4 ``weight`` (uint8 beside an FP8 ``weight_scale``),
  MLX ``weight`` (uint32 beside ``scales``: ``mlx.nn.quantize``, ``mlx_lm.convert -q``);
* every other tensor, FP8/INT8/F4 weights included, one parameter per element.

docs/formulas.md ("Quantized tensors") lists every rule with its
source. Pure: no typer, no rich.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import field
from typing import Any

from paramtool import dtypes
from paramtool.analysis.anatomy import Role
from paramtool.fields import positive_int
from paramtool.frozen import dataclass
from paramtool.records import TensorInfo

FP8 = frozenset({"F8_E4M3", "F8_E5M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ"})
_SUB_BYTE_FLOATS = {"F4": "fp4", "F6_E2M3": "fp6", "F6_E3M2": "fp6"}
MAX_NOTES = 12

# quant_method (config.json quantization_config) -> our scheme name, where they differ.
_METHODS = {"fbgemm_fp8": "fp8", "fp8": "fp8", "gptq": "gptq", "awq": "awq", "mxfp4": "mxfp4"}

# MLX (mlx.core.quantize): mode -> (default group size, default bits); affine is the default
# mode and the only one with biases. Affine takes group sizes 32, 64, 128 and bits 2-6, 8.
MLX_MODES = {"affine": (64, 4), "mxfp4": (32, 4), "nvfp4": (16, 4), "mxfp8": (32, 8)}
MLX_AFFINE_GROUPS = (64, 32, 128)  # the default first: the order shapes alone are tried in
MLX_AFFINE_BITS = frozenset({2, 3, 4, 5, 6, 8})
_MLX_KEYS = frozenset({"group_size", "bits", "mode"})


@dataclass(frozen=True, slots=True)
class Declared:
    """What config.json's ``quantization_config`` says."""

    scheme: str
    method: str | None  # quant_method as written
    bits: int | None = None
    group_size: int | None = None
    format: str | None = None  # GPTQ checkpoint_format, AWQ version, compressed-tensors format
    block_size: tuple[int, ...] | None = None  # FP8 weight_block_size
    # MLX per-module settings (module path -> (group size, bits, mode)); None: left unquantized
    layers: Mapping[str, MLXParams | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MLXParams:
    """One MLX quantization setting, as config.json's ``quantization`` states it."""

    group_size: int | None
    bits: int | None
    mode: str | None


@dataclass(frozen=True, slots=True)
class Unpacked:
    """One tensor seen as the unquantized model would have it."""

    parameters: int  # logical parameters it holds (0 for metadata)
    scheme: str | None = None  # set for quantized weights: "gptq", "awq", "bitsandbytes-nf4", ...
    bits: int | None = None  # bits per weight in storage, scales not counted
    group_size: int | None = None  # elements sharing one scale, where the shapes tell
    shape: tuple[int, ...] | None = None  # logical [out, in] where the shapes tell
    note: str = ""
    mode: str | None = None  # MLX: affine, mxfp4, nvfp4, mxfp8


@dataclass(frozen=True, slots=True)
class SchemeTally:
    tensors: int = 0
    parameters: int = 0  # logical
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class Quantization:
    """The quantization of a checkpoint, as far as its headers and config.json tell."""

    scheme: str  # "gptq", "awq", "bitsandbytes-nf4", "fp8", "compressed-tensors", "mxfp4", ...
    method: str | None  # config.json's quant_method, verbatim
    detected_from: str  # "config.json", "tensor names", "config.json and tensor names"
    bits: int | None
    group_size: int | None
    format: str | None
    block_size: tuple[int, ...] | None
    by_scheme: Mapping[str, SchemeTally]  # quantized weights by the scheme their names show
    quantized_tensors: int
    quantized_parameters: int  # logical parameters of the quantized weights
    quantized_bytes: int  # their stored bytes, metadata not included
    overhead_tensors: int  # quantization metadata: scales, zero points, g_idx, absmax...
    overhead_elements: int
    overhead_bytes: int
    logical_parameters: int  # of the whole checkpoint (== total_parameters)
    stored_elements: int
    stored_bytes: int
    notes: tuple[str, ...] = field(default=())

    @property
    def bits_per_parameter(self) -> float:
        """Stored bytes x 8 / logical parameters, over the whole checkpoint."""
        return 8 * self.stored_bytes / self.logical_parameters if self.logical_parameters else 0.0

    @property
    def quantized_bits_per_parameter(self) -> float | None:
        """(Quantized weights' bytes + metadata bytes) x 8 / their logical parameters."""
        if not self.quantized_parameters:
            return None
        return 8 * (self.quantized_bytes + self.overhead_bytes) / self.quantized_parameters

    @property
    def overhead_share(self) -> float:
        """Metadata bytes as a fraction of all stored bytes."""
        return self.overhead_bytes / self.stored_bytes if self.stored_bytes else 0.0


def _str(obj: Mapping[str, Any], *keys: str) -> str | None:
    for k in keys:
        v = obj.get(k)
        if isinstance(v, str) and v:
            return v
    return None


def declared(config: Mapping[str, Any] | None) -> Declared | None:
    """The scheme config.json declares in ``quantization_config`` (or a nested text_config),
    or MLX's ``quantization``."""
    if not config:
        return None
    mlx = _mlx_declared(config)
    if mlx is not None:
        return mlx
    qc = config.get("quantization_config")
    if not isinstance(qc, Mapping):
        inner = config.get("text_config")
        qc = inner.get("quantization_config") if isinstance(inner, Mapping) else None
    if not isinstance(qc, Mapping):
        return None
    raw = _str(qc, "quant_method")
    method = raw.lower() if raw else None
    bits = positive_int(qc, "bits", "w_bit", "weight_bits", "num_bits")
    group = positive_int(qc, "group_size", "q_group_size")
    if method == "bitsandbytes" or (
        method is None and ("load_in_4bit" in qc or "load_in_8bit" in qc)
    ):
        if qc.get("load_in_4bit") is True or qc.get("_load_in_4bit") is True:
            kind = (_str(qc, "bnb_4bit_quant_type") or "fp4").lower()  # transformers' default
            return Declared(f"bitsandbytes-{kind}", raw, 4)
        if qc.get("load_in_8bit") is True or qc.get("_load_in_8bit") is True:
            return Declared("bitsandbytes-int8", raw, 8)
        return Declared("bitsandbytes", raw)
    if method == "compressed-tensors":
        groups = qc.get("config_groups")
        bit_set: set[int] = set()
        group_set: set[int] = set()
        if isinstance(groups, Mapping):
            for g in groups.values():
                w = g.get("weights") if isinstance(g, Mapping) else None
                if isinstance(w, Mapping):
                    if (b := positive_int(w, "num_bits")) is not None:
                        bit_set.add(b)
                    if (gs := positive_int(w, "group_size")) is not None:
                        group_set.add(gs)
        return Declared(
            "compressed-tensors",
            raw,
            bit_set.pop() if len(bit_set) == 1 else None,
            group_set.pop() if len(group_set) == 1 else None,
            _str(qc, "format"),
        )
    if method == "modelopt" or (method is None and "quant_algo" in qc):
        algo = (_str(qc, "quant_algo") or "").upper()
        if algo == "NVFP4":
            return Declared("nvfp4", raw, 4, group or 16, algo)
        if algo == "FP8":
            return Declared("fp8", raw, 8, None, algo)
        return Declared(algo.lower() or "modelopt", raw, bits, group, algo or None)
    if method in ("fp8", "fbgemm_fp8"):
        block = qc.get("weight_block_size")
        sizes: tuple[int, ...] | None = None
        if isinstance(block, list) and block and all(type(x) is int and x > 0 for x in block):
            sizes = tuple(block)
        return Declared("fp8", raw, 8, None, _str(qc, "fmt") or method, sizes)
    if method == "mxfp4":
        return Declared("mxfp4", raw, 4, 32)
    if method == "gptq":
        return Declared("gptq", raw, bits, group, _str(qc, "checkpoint_format"))
    if method == "awq":
        return Declared("awq", raw, bits, group, _str(qc, "version"))
    return Declared(_METHODS.get(method or "", method or "unknown"), raw, bits, group)


def _mlx_params(v: Mapping[str, Any]) -> MLXParams:
    mode = v.get("mode")
    return MLXParams(
        positive_int(v, "group_size"),
        positive_int(v, "bits"),
        mode if isinstance(mode, str) and mode else None,
    )


def _mlx_declared(config: Mapping[str, Any]) -> Declared | None:
    """MLX's ``quantization`` (mlx-lm writes it again as ``quantization_config``, no
    ``quant_method``): ``group_size``, ``bits``, ``mode``, and per-module overrides keyed by
    module path, a dict of the same keys or ``false`` for a module left unquantized.

    A ``quantization_config`` alone counts as MLX's only when each other key holds a dict:
    ``{"bits": 4, "group_size": 128, "desc_act": false}`` is another tool's."""
    qc = config.get("quantization")
    if not isinstance(qc, Mapping) or "quant_method" in qc or not _MLX_KEYS & qc.keys():
        qc = config.get("quantization_config")
        if not isinstance(qc, Mapping) or "quant_method" in qc or not _MLX_KEYS & qc.keys():
            return None
        if any(k not in _MLX_KEYS and not isinstance(v, Mapping) for k, v in qc.items()):
            return None
    top = _mlx_params(qc)
    layers: dict[str, MLXParams | None] = {}
    for k, v in qc.items():
        if k in _MLX_KEYS:
            continue
        if isinstance(v, Mapping):
            layers[k] = _mlx_params(v)
        elif v is False:
            layers[k] = None
    return Declared("mlx", None, top.bits, top.group_size, top.mode or "affine", None, layers)


def _mlx(
    t: TensorInfo, m: str, scales: TensorInfo, has_biases: bool, decl: Declared | None
) -> Unpacked | None:
    """An MLX quantized weight: uint32 [..., out, in x bits / 32] beside scales (and, in
    affine mode, biases) [..., out, in / group_size]; None when the shapes do not fit.

    3-, 5- and 6-bit values are packed in 3- or 5-byte runs that straddle the uint32 words
    (``mlx/backend/common/quantized.h``), so only the row's total is in x bits / 32 words.
    """
    if len(t.shape) < 2 or scales.shape[:-1] != t.shape[:-1] or not scales.shape[-1]:
        return None
    words, groups = t.shape[-1], scales.shape[-1]
    stated = None
    if decl is not None and decl.scheme == "mlx":
        stated = decl.layers.get(m, MLXParams(decl.group_size, decl.bits, decl.format))
    group, bits = (stated.group_size, stated.bits) if stated else (None, None)
    if stated is not None and stated.mode in MLX_MODES:
        mode = stated.mode
    elif has_biases:
        mode = "affine"
    else:  # the floating-point modes keep one 8-bit scale a group and no bias
        by_ratio = {2: "nvfp4", 4: "mxfp4", 8: "mxfp8"}  # words / groups = group x bits / 32
        mode = by_ratio.get(_ratio(words, groups) or 0, "affine")
    note = ""
    if mode != "affine":
        group, bits = group or MLX_MODES[mode][0], bits or MLX_MODES[mode][1]
    elif group and _fits(32 * words, group * groups, MLX_AFFINE_BITS):
        implied = 32 * words // (group * groups)
        if bits and bits != implied:
            note = f"{t.name}: config.json says {bits}-bit, the scales' shape says {implied}-bit"
        bits = implied
    elif bits and _fits(32 * words, bits * groups, MLX_AFFINE_GROUPS):
        group = 32 * words // (bits * groups)
    else:
        fits = [g for g in MLX_AFFINE_GROUPS if _fits(32 * words, g * groups, MLX_AFFINE_BITS)]
        if not fits:
            return None
        group = fits[0]
        bits = 32 * words // (group * groups)
        if len(fits) > 1:
            note = (
                f"MLX weights without their group size in config.json: group size {group} "
                "assumed (mlx's default) where the shapes allow several"
            )
    if groups * group * bits != 32 * words:
        note = f"{t.name}: {mode} {bits}-bit, group size {group} does not fit the shapes"
    return Unpacked(
        t.nbytes * 8 // bits, "mlx", bits, group, t.shape[:-1] + (groups * group,), note, mode
    )


def _fits(whole: int, part: int, allowed: frozenset[int] | tuple[int, ...]) -> bool:
    return bool(part) and whole % part == 0 and whole // part in allowed


def _bits_from_zeros(scales: TensorInfo | None, qzeros: TensorInfo | None) -> int | None:
    """GPTQ and AWQ pack zero points like weights: qzeros is [groups, out x bits / 32]."""
    if scales is None or qzeros is None or len(scales.shape) != 2 or len(qzeros.shape) != 2:
        return None
    out, packed = scales.shape[1], qzeros.shape[1]
    if not out or (32 * packed) % out:
        return None
    bits = 32 * packed // out
    return bits if bits in (2, 3, 4, 8) else None


def _ratio(whole: int, part: int) -> int | None:
    return whole // part if part and whole % part == 0 else None


def _qweight(t: TensorInfo, by_name: Mapping[str, TensorInfo], decl: Declared | None) -> Unpacked:
    """GPTQ or AWQ ``qweight``, told apart by where the packing went (scales are [groups, out])."""
    m = t.name[: -len(".qweight")]
    scales, qzeros = by_name.get(m + ".scales"), by_name.get(m + ".qzeros")
    inferred = _bits_from_zeros(scales, qzeros)
    note = ""
    if decl is not None and decl.scheme in ("gptq", "awq") and decl.bits:
        bits = decl.bits
        if inferred and inferred != bits:
            note = f"{t.name}: config.json says {bits}-bit, qzeros/scales shapes say {inferred}-bit"
    elif inferred:
        bits = inferred
    else:
        bits = 4
        note = "qweight without bits in config.json or qzeros/scales to infer them: 4-bit assumed"
    logical = t.nbytes * 8 // bits
    scheme = "gptq" if (m + ".g_idx") in by_name else "awq"
    out = inp = group = None
    if scales is not None and len(scales.shape) == 2 and len(t.shape) == 2:
        if scales.shape[1] == t.shape[1]:  # GPTQ: [in x bits/32, out], packed down the input
            scheme, out, groups = "gptq", t.shape[1], scales.shape[0]
        elif scales.shape[0] == t.shape[0]:  # AWQ GEMV: [out, in x bits/32]
            scheme, out, groups = "awq", t.shape[0], scales.shape[1]
        else:  # AWQ GEMM: [in, out x bits/32], packed across the output
            scheme, out, groups = "awq", scales.shape[1], scales.shape[0]
        inp = _ratio(logical, out)
        group = _ratio(inp, groups) if inp else None
    shape = (out, inp) if out and inp else None
    return Unpacked(logical, scheme, bits, group, shape, note)


def unpack(
    t: TensorInfo,
    role: Role,
    by_name: Mapping[str, TensorInfo],
    decl: Declared | None,
    n: int | None = None,
) -> Unpacked:
    """How many logical parameters ``t`` holds, and which scheme stored it (rules: module doc).

    ``n``: the tensor's stored element count, when the caller has it already.
    """
    name = t.name
    n = t.parameters if n is None else n
    if role.category == "quantization":
        return Unpacked(0)
    dtype = t.dtype
    if dtype in FP8:  # FP8 weights (per-tensor, per-channel or 128x128-block scales): 1:1
        return (
            Unpacked(n, "fp8", 8)
            if name.endswith(".weight") or role.component == "expert"
            else Unpacked(n)
        )
    if name.endswith(".qweight"):
        return _qweight(t, by_name, decl)
    if name.endswith(".weight_packed"):  # compressed-tensors pack-quantized, nvfp4-pack-quantized
        note = ""
        if decl is not None and decl.scheme == "compressed-tensors" and decl.bits:
            bits = decl.bits
        else:  # uint8 packs two FP4 values a byte; int32 is assumed to hold eight int4
            bits = 4
            if dtype != "U8":
                note = "weight_packed without num_bits in config.json: 4-bit assumed"
        logical = t.nbytes * 8 // bits
        m = name[: -len(".weight_packed")]
        rows = t.shape[0] if len(t.shape) == 2 else 0
        inp = _ratio(logical, rows)
        scale = by_name.get(m + ".weight_scale")
        group = None
        if inp and scale is not None and len(scale.shape) == 2 and scale.shape[0] == rows:
            group = _ratio(inp, scale.shape[1])
        return Unpacked(
            logical, "compressed-tensors", bits, group, (rows, inp) if inp else None, note
        )
    if name.endswith("_blocks") and dtype == "U8" and (name[:-7] + "_scales") in by_name:
        # MXFP4 (gpt-oss): [..., blocks, 16] bytes, two FP4 values a byte, 32 per E8M0 scale.
        shape = t.shape[:-2] + (t.shape[-2] * t.shape[-1] * 2,) if len(t.shape) >= 2 else None
        group = t.shape[-1] * 2 if t.shape else None
        return Unpacked(t.nbytes * 2, "mxfp4", 4, group, shape)
    if dtype in _SUB_BYTE_FLOATS:  # safetensors F4/F6: one element per value already
        return Unpacked(n, _SUB_BYTE_FLOATS[dtype], 4 if dtype == "F4" else 6)
    kind = dtypes.SAFETENSORS.get(dtype) or dtypes.GGUF.get(dtype)
    if kind is not None and kind.kind == dtypes.BLOCK:  # GGUF block types carry their scales
        return Unpacked(n, "gguf", None, kind.block_size)
    if not name.endswith(".weight"):
        return Unpacked(n)
    absmax = by_name.get(name + ".absmax")
    state = by_name.get(name + ".quant_state.bitsandbytes__nf4") or by_name.get(
        name + ".quant_state.bitsandbytes__fp4"
    )
    if absmax is not None or state is not None:
        # bitsandbytes 4-bit: (n + 1) // 2 bytes whatever the storage dtype; the logical
        # shape sits in the quant_state JSON bytes, which are values and not read.
        kind_name = "nf4"
        if state is not None:
            kind_name = state.name.rsplit("__", 1)[-1]
        elif decl is not None and decl.scheme.startswith("bitsandbytes-"):
            kind_name = decl.scheme.removeprefix("bitsandbytes-")
        logical = t.nbytes * 2
        group = _ratio(logical, absmax.parameters) if absmax is not None else None
        return Unpacked(logical, f"bitsandbytes-{kind_name}", 4, group)
    m = name[: -len(".weight")]
    if dtype == "U32" and (mlx_scales := by_name.get(m + ".scales")) is not None:
        mlx = _mlx(t, m, mlx_scales, (m + ".biases") in by_name, decl)
        if mlx is not None:
            return mlx
    scale = by_name.get(m + ".weight_scale")
    if (
        dtype == "U8"
        and len(t.shape) == 2
        and ((m + ".weight_scale_2") in by_name or (scale is not None and scale.dtype in FP8))
    ):  # NVFP4 (TensorRT Model Optimizer): [out, in / 2] bytes, an FP8 scale per 16
        inp = t.shape[1] * 2
        group = None
        if scale is not None and len(scale.shape) == 2 and scale.shape[0] == t.shape[0]:
            group = _ratio(inp, scale.shape[1])
        return Unpacked(t.nbytes * 2, "nvfp4", 4, group, (t.shape[0], inp))
    if dtype in ("I8", "U8"):
        if (m + ".SCB") in by_name:
            return Unpacked(n, "bitsandbytes-int8", 8)
        if scale is not None:
            return Unpacked(n, "int8", 8)
    return Unpacked(n)


@dataclass(frozen=True, slots=True)
class Analysis:
    """Per-tensor logical parameters (aligned with the tensors), the quantized ones, a summary."""

    parameters: tuple[int, ...]
    # tensor index -> how it was unpacked; FP8 weights (one parameter an element) are not listed
    unpacked: Mapping[int, Unpacked]
    quantization: Quantization | None


_PLAIN = dtypes.UNPACKED


def analyze(
    tensors: Sequence[TensorInfo],
    roles: Sequence[Role],
    config: Mapping[str, Any] | None,
    elements: Sequence[int] | None = None,
    file_type: str | None = None,
) -> Analysis:
    """Unpack every tensor; summarise when config.json or the tensors show a quantization.

    ``elements``: each tensor's stored element count, when the caller has it already.
    ``file_type``: a GGUF file's ``general.file_type`` name (``Q4_K_M``), reported as format.
    """
    if elements is None:
        elements = [t.parameters for t in tensors]
    groups: dict[tuple[int, str], list[Any]] = {}
    get = groups.get
    for i, (t, r, n) in enumerate(zip(tensors, roles, elements, strict=True)):
        if (g := get((id(r), t.dtype))) is None:
            g = groups[id(r), t.dtype] = [r, t.dtype, [], 0, 0]
        g[2].append(i)
        g[3] += n
        g[4] += t.end - t.start
    return analyze_groups(tensors, list(groups.values()), config, elements, file_type)


def analyze_groups(
    tensors: Sequence[TensorInfo],
    groups: Sequence[list[Any]],
    config: Mapping[str, Any] | None,
    elements: Sequence[int],
    file_type: str | None = None,
) -> Analysis:
    """:func:`analyze` over the tensors grouped by role and dtype: ``groups`` are lists
    ``[role, dtype, indexes (ascending), elements, bytes (end - start), ...]``. Metadata, plain
    tensors and FP8 experts are tallied a group at once; the rest are unpacked one by one,
    in the tensors' order."""
    decl = declared(config)
    # A plain float tensor can only be a bitsandbytes 4-bit weight stored in a float dtype
    # (bnb_4bit_quant_storage), which always has an absmax beside it.
    bnb = any(g[0].component in ("absmax", "quant_state") for g in groups)
    by_name: dict[str, TensorInfo] | None = None  # built when a rule needs a sibling
    parameters = list(elements)
    unpacked: dict[int, Unpacked] = {}
    overhead = [0, 0, 0]
    fp8 = [0, 0, 0]  # the common case, tallied inline: FP8 weights hold one parameter each
    schemes: dict[str, list[int]] = {}
    bit_set: set[int] = set()
    group_set: set[int] = set()
    mlx_bits: dict[int, int] = {}  # bits -> MLX weights stored at them (mixed recipes)
    mlx_modes: set[str] = set()
    notes: list[str] = []
    one_by_one: list[int] = []
    for r, dtype, indexes, n, nbytes, *_ in groups:
        if r.category == "quantization":
            for i in indexes:
                parameters[i] = 0
            overhead[0] += len(indexes)
            overhead[1] += n
            overhead[2] += nbytes
        elif dtype in _PLAIN and not bnb:
            continue
        elif dtype in FP8:
            if r.component == "expert":
                fp8[0] += len(indexes)
                fp8[1] += n
                fp8[2] += nbytes
                continue
            for i in indexes:
                t = tensors[i]
                if t.name.endswith(".weight"):
                    fp8[0] += 1
                    fp8[1] += elements[i]
                    fp8[2] += t.end - t.start
        else:
            one_by_one.extend(indexes)
    one_by_one.sort()
    roles = {i: g[0] for g in groups for i in g[2]} if one_by_one else {}
    for i in one_by_one:
        t, r = tensors[i], roles[i]
        if by_name is None:
            by_name = {x.name: x for x in tensors}
        u = unpack(t, r, by_name, decl, elements[i])
        if u.note and u.note not in notes and len(notes) < MAX_NOTES:
            notes.append(u.note)
        if u.scheme is None:
            continue
        unpacked[i] = u
        parameters[i] = u.parameters
        acc = schemes.setdefault(u.scheme, [0, 0, 0])
        acc[0] += 1
        acc[1] += u.parameters
        acc[2] += t.end - t.start
        if u.bits:
            bit_set.add(u.bits)
        if u.group_size:
            group_set.add(u.group_size)
        if u.scheme == "mlx" and u.bits:
            mlx_bits[u.bits] = mlx_bits.get(u.bits, 0) + 1
            if u.mode:
                mlx_modes.add(u.mode)
    if fp8[0]:
        acc = schemes.setdefault("fp8", [0, 0, 0])
        for k in range(3):
            acc[k] += fp8[k]
        bit_set.add(8)
    if decl is None and not schemes and not overhead[0]:
        return Analysis(tuple(parameters), {}, None)
    found = max(schemes, key=lambda s: schemes[s][1]) if schemes else None
    if decl is not None and found is not None:
        source = "config.json and tensor names"
        if not _agrees(decl.scheme, found):
            notes.append(f"config.json says {decl.scheme}, the tensor names say {found}")
    elif decl is not None:
        source = "config.json"
        notes.append(f"config.json declares {decl.scheme}, but no tensor is stored that way")
    else:
        source = "tensor names"
    bits = decl.bits if decl is not None and decl.bits else None
    group = decl.group_size if decl is not None and decl.group_size else None
    fmt = decl.format if decl is not None else file_type
    if mlx_bits:  # per-module settings override the top level: the tensors tell
        bits = group = None
        if len(mlx_bits) > 1:
            mix = ", ".join(f"{b}-bit x{n:,}" for b, n in sorted(mlx_bits.items()))
            notes.append(f"MLX weights at mixed bit widths: {mix}")
        if len(mlx_modes) == 1:
            fmt = next(iter(mlx_modes))
    if bits is None and len(bit_set) == 1:
        bits = next(iter(bit_set))
    if group is None and len(group_set) == 1:
        group = next(iter(group_set))
    q = [sum(v[i] for v in schemes.values()) for i in range(3)]
    summary = Quantization(
        scheme=decl.scheme if decl is not None else (found or "unknown"),
        method=decl.method if decl is not None else None,
        detected_from=source,
        bits=bits,
        group_size=group,
        format=fmt,
        block_size=decl.block_size if decl is not None else None,
        by_scheme={
            k: SchemeTally(*v) for k, v in sorted(schemes.items(), key=lambda kv: -kv[1][1])
        },
        quantized_tensors=q[0],
        quantized_parameters=q[1],
        quantized_bytes=q[2],
        overhead_tensors=overhead[0],
        overhead_elements=overhead[1],
        overhead_bytes=overhead[2],
        logical_parameters=sum(parameters),
        stored_elements=sum(elements),
        stored_bytes=sum(g[4] for g in groups),
        notes=tuple(notes),
    )
    return Analysis(tuple(parameters), unpacked, summary)


def _agrees(declared_scheme: str, found: str) -> bool:
    if declared_scheme == found:
        return True
    if declared_scheme == "compressed-tensors":  # packs ints, or stores FP8/INT8 as is
        return found in ("compressed-tensors", "fp8", "int8", "nvfp4")
    if declared_scheme.startswith("bitsandbytes"):
        return found.startswith("bitsandbytes")
    return False
