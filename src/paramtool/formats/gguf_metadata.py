"""What a parsed GGUF file is (a model, a projector, an adapter) and the summary a checkpoint shows.

:mod:`paramtool.formats.gguf` parses the bytes into typed records; this module reads
their metadata for meaning: the kind of file, its architecture, context length and
file type (``general.file_type``, by llama.cpp's names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from paramtool.fields import is_int
from paramtool.formats.gguf import GGUFFile

# general.file_type (llama.h enum llama_ftype), without the MOSTLY_/ALL_ prefix.
FILE_TYPES: Mapping[int, str] = MappingProxyType({
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_1_SOME_F16", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
    22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
    28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0", 1024: "GUESSED",
})  # fmt: skip


def kind_of(kv: Mapping[str, Any], file_name: str) -> str:
    """``mmproj`` (a vision/audio projector), ``adapter`` (a LoRA) or ``model``."""
    gtype = kv.get("general.type")
    if (
        gtype == "mmproj"
        or kv.get("general.architecture") == "clip"
        or any(k.startswith("clip.") for k in kv)
    ):
        return "mmproj"
    if gtype == "adapter":
        return "adapter"
    if "mmproj" in file_name.lower():
        return "mmproj"
    return "model"


def summary(files: Sequence[GGUFFile], kind: str) -> dict[str, Any]:
    """What ``Checkpoint.gguf`` holds: version, architecture, context, file type, kind."""
    first = files[0]
    kv = first.kv
    arch = (
        kv.get("general.architecture") if isinstance(kv.get("general.architecture"), str) else None
    )
    ctx = kv.get(f"{arch}.context_length") if arch else None
    ftype = kv.get("general.file_type")
    name = kv.get("general.name")
    return {
        "version": first.version,
        "architecture": arch,
        "name": name if isinstance(name, str) else None,
        "context_length": ctx if is_int(ctx) else None,
        "file_type": FILE_TYPES.get(ftype, f"unknown ({ftype})") if is_int(ftype) else None,
        "kind": kind,
        "alignment": first.alignment,
        "split_count": len(files),
    }
