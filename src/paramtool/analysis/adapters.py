"""PEFT adapters: method, ranks, targets, size, and what they weigh against their base.

Read from ``adapter_config.json`` (``peft_type``, ``r``, ``lora_alpha``,
``target_modules``, ``use_dora``, ``rank_pattern``, ``base_model_name_or_path``)
and from the tensors of ``adapter_model.safetensors``, whose names and shapes are
the truth the config only describes: a LoRA module's rank is its ``lora_A``
shape[0] ([r, in]; ``lora_B`` is [out, r]), so per-module ranks show even where
``rank_pattern`` was used. An adapter of rank r on a d_in x d_out linear holds
r x (d_in + d_out) parameters (Hu et al. 2021, LoRA): r=16 on Llama-3.1-8B's q_proj
and v_proj is 32 x 16 x ((4096 + 4096) + (4096 + 1024)) = 6,815,744.

transformers' ``Conv1D`` (GPT-2 and its kin) stores its weight transposed, [in, out]; PEFT
still saves A [r, in] and B [out, r] and marks the adapter ``fan_in_fan_out`` (it sets the
flag itself for a ``Conv1D`` target), so against such a base the shape A and B imply is
checked transposed.

Merging adds the deltas into the base's weights in place (PEFT ``merge_and_unload``),
so a merged model has the base's parameters and, at the base's dtype, its bytes.
Prompt-learning adapters (prompt, prefix, P-tuning) add virtual tokens at run
time and have nothing to merge. Pure: no typer, no rich.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from paramtool.analysis.anatomy import Role
from paramtool.fields import is_int
from paramtool.frozen import dataclass
from paramtool.records import TensorInfo

PEFT_PREFIX = "base_model.model."
# model_type of the transformers models built on pytorch_utils.Conv1D ([in, out] weights).
CONV1D_MODEL_TYPES = frozenset({"gpt2", "openai-gpt", "imagegpt", "decision_transformer", "clvp"})
PROMPT_LEARNING = frozenset(
    {"PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING", "MULTITASK_PROMPT_TUNING", "CPT"}
)
# adapter tensor -> (module it adapts, kind). PEFT drops the adapter name ("default") on save;
# a file that kept it ("lora_A.default.weight") parses the same.
_DELTA = re.compile(
    r"^(?P<module>.+?)\.(?P<kind>lora_A|lora_B|lora_embedding_A|lora_embedding_B|"
    r"lora_magnitude_vector|lora_E|ia3_l|hada_w[12]_[ab]|hada_t[12]|lokr_w[12](?:_[ab])?|"
    r"lokr_t2|oft_r|oft_s|boft_R|boft_s|vera_lambda_b|vera_lambda_d)(?:\.|\Z)",
    re.IGNORECASE,
)
_RANK_FROM = {  # kind -> which dimension holds the rank
    "lora_a": 0, "lora_embedding_a": 0, "hada_w1_b": 0, "lokr_w1_b": 0, "lokr_w2_b": 0,
}  # fmt: skip
_METHOD_BY_COMPONENT = (  # first present wins: DoRA and AdaLoRA carry LoRA tensors too
    ("lora_magnitude", "DORA"), ("lora_E", "ADALORA"), ("lora_A", "LORA"),
    ("lora_embedding_A", "LORA"), ("loha", "LOHA"), ("lokr", "LOKR"), ("oft", "OFT"),
    ("vera", "VERA"), ("ia3", "IA3"), ("prompt", "PROMPT_TUNING"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Target:
    """One kind of adapted module (``q_proj``) over all the layers."""

    name: str
    modules: int
    parameters: int
    ranks: tuple[int, ...]  # distinct ranks found, ascending


@dataclass(frozen=True, slots=True)
class BaseInfo:
    """The base model an adapter was compared against (from its own breakdown)."""

    source: str
    parameters: int  # logical
    bytes: int  # stored
    dtype: str | None  # the floating dtype holding most of its parameters
    quantized: bool
    weight_shapes: Mapping[str, tuple[int, ...]]  # unquantized 2-D ``*.weight`` shapes
    model_type: str | None = None  # config.json's: Conv1D families store weights [in, out]


@dataclass(frozen=True, slots=True)
class BaseCheck:
    source: str
    parameters: int
    bytes: int
    dtype: str | None
    quantized: bool
    modules_found: int  # adapted modules whose weight the base holds
    modules_missing: int
    modules_mismatched: int  # held, but of another shape than the adapter's A and B say


@dataclass(frozen=True, slots=True)
class Adapter:
    """What a PEFT adapter is and what it weighs."""

    method: str  # "LORA", "DORA", "ADALORA", "IA3", "LOHA", "LOKR", "OFT", "VERA", ...
    peft_type: str | None  # adapter_config.json's, verbatim
    rank: int | None  # the single rank of every module (or config ``r`` when none is found)
    ranks: Mapping[int, int]  # rank -> modules with it, from the tensor shapes
    alpha: int | float | None
    use_rslora: bool
    target_modules: tuple[str, ...] | str | None  # as the config gives them (a list or a regex)
    targets: tuple[Target, ...]  # found in the tensors
    modules: int  # adapted modules
    parameters: int
    bytes: int
    dtype: str | None
    modules_to_save: tuple[str, ...]
    modules_to_save_parameters: int
    base_model: str | None  # base_model_name_or_path
    base: BaseCheck | None
    notes: tuple[str, ...] = ()

    @property
    def share_of_base(self) -> float | None:
        if self.base is None or not self.base.parameters:
            return None
        return self.parameters / self.base.parameters

    @property
    def mergeable(self) -> bool:
        return self.method not in PROMPT_LEARNING

    @property
    def merged_parameters(self) -> int | None:
        """A merged model is the base with the deltas added in place: the base's size."""
        if self.base is None or not self.mergeable:
            return None
        return self.base.parameters

    @property
    def merged_bytes(self) -> int | None:
        """The base's bytes; a quantized base is dequantized to merge, priced at 16-bit."""
        if self.base is None or not self.mergeable:
            return None
        return 2 * self.base.parameters if self.base.quantized else self.base.bytes


def base_reference(adapter_config: Mapping[str, Any] | None) -> str | None:
    """``base_model_name_or_path`` from adapter_config.json, when it is a plain string."""
    if not adapter_config:
        return None
    ref = adapter_config.get("base_model_name_or_path")
    return ref if isinstance(ref, str) and ref.strip() else None


def _relative(module: str) -> str:
    return module[len(PEFT_PREFIX) :] if module.startswith(PEFT_PREFIX) else module


def analyze(
    tensors: Sequence[TensorInfo],
    roles: Sequence[Role],
    parameters: Sequence[int],
    adapter_config: Mapping[str, Any] | None,
    base: BaseInfo | None = None,
    metadata: Mapping[str, str] | None = None,
) -> Adapter | None:
    """Summarise a PEFT adapter; None when no tensor is an adapter delta.

    ``metadata``: the file's header metadata; a llama.cpp LoRA keeps its alpha there
    (``adapter.lora.alpha``), having no adapter_config.json.
    """
    if not any(r.category == "adapter" for r in roles):
        return None
    cfg = dict(adapter_config or {})
    meta = metadata or {}
    if "lora_alpha" not in cfg and "adapter.lora.alpha" in meta:
        try:
            alpha_text = float(meta["adapter.lora.alpha"])
            cfg["lora_alpha"] = int(alpha_text) if alpha_text.is_integer() else alpha_text
        except ValueError:
            pass
    notes: list[str] = []
    modules: dict[str, dict[str, TensorInfo]] = {}  # module -> kind -> tensor
    module_params: dict[str, int] = {}
    save: dict[str, int] = {}
    components: set[str] = set()
    dtype_params: dict[str, int] = {}
    for t, r, n in zip(tensors, roles, parameters, strict=True):
        components.add(r.component)
        dtype_params[t.dtype] = dtype_params.get(t.dtype, 0) + n
        if r.component == "modules_to_save":
            head = t.name.split(".modules_to_save", 1)[0]
            save[_relative(head)] = save.get(_relative(head), 0) + n
            continue
        m = _DELTA.match(t.name)
        if m is None:
            continue
        module = _relative(m.group("module")).removesuffix(".weight")  # GGUF: blk.0.attn_q.weight
        modules.setdefault(module, {})[m.group("kind").lower()] = t
        module_params[module] = module_params.get(module, 0) + n
    ranks: dict[str, int] = {}
    for module, kinds in modules.items():
        dims = lora_dims(kinds)
        if dims is not None:
            ranks[module] = dims[0]
            continue
        for kind, dim in _RANK_FROM.items():
            held = kinds.get(kind)
            if held is not None and len(held.shape) > dim:
                ranks[module] = held.shape[dim]
                break
    rank_counts: dict[int, int] = {}
    for r_ in ranks.values():
        rank_counts[r_] = rank_counts.get(r_, 0) + 1
    by_target: dict[str, list[Any]] = {}
    for module, n in module_params.items():
        name = module.rsplit(".", 1)[-1]
        acc = by_target.setdefault(name, [0, 0, set()])
        acc[0] += 1
        acc[1] += n
        if module in ranks:
            acc[2].add(ranks[module])
    targets = tuple(
        Target(name, v[0], v[1], tuple(sorted(v[2]))) for name, v in sorted(by_target.items())
    )
    found = next((m for c, m in _METHOD_BY_COMPONENT if c in components), "UNKNOWN")
    peft_type = cfg.get("peft_type") if isinstance(cfg.get("peft_type"), str) else None
    method = peft_type.upper() if peft_type else found
    if method == "LORA" and cfg.get("use_dora") is True:
        method = "DORA"
    if peft_type and found not in ("UNKNOWN", method) and (method, found) != ("ADALORA", "LORA"):
        notes.append(f"adapter_config.json says {method}, the tensor names say {found}")
    r_cfg = cfg.get("r")
    r_cfg = r_cfg if is_int(r_cfg) else None
    if len(rank_counts) == 1:
        rank: int | None = next(iter(rank_counts))
        if r_cfg is not None and r_cfg != rank and not cfg.get("rank_pattern"):
            notes.append(f"adapter_config.json says r={r_cfg}, the tensors have rank {rank}")
    else:
        rank = r_cfg if not rank_counts else None
    alpha = cfg.get("lora_alpha", cfg.get("alpha"))
    alpha = alpha if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) else None
    tm = cfg.get("target_modules")
    if isinstance(tm, list):
        target_modules: tuple[str, ...] | str | None = tuple(str(x) for x in tm)
    elif isinstance(tm, str):
        target_modules = tm
    else:
        target_modules = None
    total = sum(parameters)
    by_dtype = {d: n for d, n in dtype_params.items() if n}
    dtype = max(by_dtype, key=lambda d: by_dtype[d]) if by_dtype else None
    transposed = cfg.get("fan_in_fan_out") is True
    check = _check_base(base, modules, notes, transposed) if base is not None else None
    if base is not None and method in PROMPT_LEARNING:
        notes.append(f"{method} adds virtual tokens at run time: there is nothing to merge")
    return Adapter(
        method=method,
        peft_type=peft_type,
        rank=rank,
        ranks=dict(sorted(rank_counts.items())),
        alpha=alpha,
        use_rslora=cfg.get("use_rslora") is True,
        target_modules=target_modules,
        targets=targets,
        modules=len(modules),
        parameters=total,
        bytes=sum(t.nbytes for t in tensors),
        dtype=dtype,
        modules_to_save=tuple(sorted(save)),
        modules_to_save_parameters=sum(save.values()),
        base_model=base_reference(cfg),
        base=check,
        notes=tuple(notes),
    )


def lora_dims(kinds: Mapping[str, TensorInfo]) -> tuple[int, tuple[int, int]] | None:
    """A LoRA module's rank and the base weight shape it implies, from its A and B.

    PEFT saves A [r, in] and B [out, r] (base weight [out, in]); GGUF keeps ggml's ne order,
    A [in, r] and B [r, out] (base weight [in, out]). The rank is the dimension they share.
    """
    a, b = kinds.get("lora_a"), kinds.get("lora_b")
    if a is None or b is None or len(a.shape) != 2 or len(b.shape) != 2:
        return None
    found = []
    if a.shape[0] == b.shape[1]:
        found.append((a.shape[0], (b.shape[0], a.shape[1])))
    if a.shape[1] == b.shape[0]:
        found.append((a.shape[1], (a.shape[0], b.shape[1])))
    return min(found) if found else None  # a square module fits both: the rank is the smaller


def _check_base(
    base: BaseInfo,
    modules: Mapping[str, Mapping[str, TensorInfo]],
    notes: list[str],
    fan_in_fan_out: bool = False,
) -> BaseCheck:
    """Does the base hold each adapted module, at the shape LoRA's A and B imply?

    A and B imply [out, in]; a base stored [in, out] (``fan_in_fan_out``, or a Conv1D
    family by its model_type) matches that shape transposed.
    """
    shapes = base.weight_shapes
    transposed_ok = fan_in_fan_out or base.model_type in CONV1D_MODEL_TYPES
    transposed_seen = 0
    found = missing = mismatched = 0
    first_missing = first_mismatch = ""
    for module, kinds in modules.items():
        shape = None
        for candidate in (module, module.split(".", 1)[-1]):  # base saved without "model."
            if candidate + ".weight" in shapes:
                shape = shapes[candidate + ".weight"]
                break
        if shape is None:
            if base.quantized:  # packed weights: their names differ, their shapes are not [out, in]
                continue
            missing += 1
            first_missing = first_missing or module
            continue
        found += 1
        dims = lora_dims(kinds)
        if dims is not None and len(shape) == 2 and dims[1] != tuple(shape):
            if dims[1][::-1] == tuple(shape):
                if transposed_ok:
                    continue
                transposed_seen += 1
            mismatched += 1
            implied = "x".join(map(str, dims[1]))
            first_mismatch = first_mismatch or (
                f"{module}: adapter {implied}, base {shape[0]}x{shape[1]}"
            )
    if missing:
        notes.append(
            f"{missing:,} of {len(modules):,} adapted modules are not in the base "
            f"(e.g. {first_missing}): is it the right base?"
        )
    if mismatched:
        notes.append(
            f"{mismatched:,} adapted modules differ in shape from the base (e.g. {first_mismatch})"
            + (
                f"; {transposed_seen:,} match it transposed, as Conv1D weights are stored, "
                "but adapter_config.json does not set fan_in_fan_out"
                if transposed_seen
                else ""
            )
        )
    return BaseCheck(
        source=base.source,
        parameters=base.parameters,
        bytes=base.bytes,
        dtype=base.dtype,
        quantized=base.quantized,
        modules_found=found,
        modules_missing=missing,
        modules_mismatched=mismatched,
    )
