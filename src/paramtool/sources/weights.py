"""Which files of a folder or a repo listing hold the weights: one rule for both.

:func:`pick_weights` sees names only (a folder's entries, or a Hub repo's listing at one
level), so a local folder and the same files on the Hub pick alike. Precedence:

1. a safetensors index (``model.safetensors.index.json``, then
   ``diffusion_pytorch_model.safetensors.index.json``, then the only one);
2. ``model.safetensors``, ``adapter_model.safetensors``, ``diffusion_pytorch_model.safetensors``;
3. every other ``*.safetensors``;
4. one GGUF model (the parts of a split count as one; an ``mmproj`` projector only
   when there is nothing else);
5. pickles, which are refused and never opened.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from paramtool.errors import UnsafeFormat
from paramtool.records import PICKLE_SUFFIXES

_PREFERRED_INDEXES = (
    "model.safetensors.index.json",
    "diffusion_pytorch_model.safetensors.index.json",
)
_PREFERRED_SINGLES = (
    "model.safetensors",
    "adapter_model.safetensors",
    "diffusion_pytorch_model.safetensors",
)
# llama.cpp's split naming (llama_split_path): PREFIX-00001-of-00003.gguf
SPLIT_NAME = re.compile(r"(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf", re.IGNORECASE)

WeightKind = Literal["index", "safetensors", "gguf", "pickle"]


@dataclass(frozen=True, slots=True)
class WeightPick:
    """What to read among a listing.

    ``kind`` is None when nothing there holds weights. ``files`` is what to read: the
    index, the safetensors files, or the GGUF model's parts in order; for ``pickle``, the
    pickles that were refused. ``choices`` is set instead of ``files`` when several
    indexes or several GGUF models tie and the user must name one.
    """

    kind: WeightKind | None
    files: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()


def is_pickle_name(name: str) -> bool:
    return name.lower().endswith(PICKLE_SUFFIXES)


def is_gguf_name(name: str) -> bool:
    return name.lower().endswith(".gguf")


def pick_weights(names: Iterable[str]) -> WeightPick:
    """Pick the weights among the file names of one folder (relative POSIX paths).

    Names in a subfolder (with a ``/``) are not weights of this level and are skipped.

    >>> pick_weights(["config.json", "model.safetensors", "pytorch_model.bin"])
    WeightPick(kind='safetensors', files=('model.safetensors',), choices=())
    >>> pick_weights(["pytorch_model.bin", "model-Q4_K_M.gguf"]).files
    ('model-Q4_K_M.gguf',)
    """
    here = sorted({n for n in names if "/" not in n})
    indexes = [n for n in here if n.endswith(".safetensors.index.json")]
    for preferred in _PREFERRED_INDEXES:
        if preferred in indexes:
            return WeightPick("index", (preferred,))
    if len(indexes) == 1:
        return WeightPick("index", (indexes[0],))
    if indexes:
        return WeightPick("index", choices=tuple(indexes))
    for single in _PREFERRED_SINGLES:
        if single in here:
            return WeightPick("safetensors", (single,))
    singles = tuple(n for n in here if n.endswith(".safetensors"))
    if singles:
        return WeightPick("safetensors", singles)
    gguf = _pick_gguf([n for n in here if is_gguf_name(n)])
    if gguf is not None:
        return gguf
    pickles = tuple(n for n in here if is_pickle_name(n))
    if pickles:
        return WeightPick("pickle", pickles)
    return WeightPick(None)


def _pick_gguf(found: list[str]) -> WeightPick | None:
    """One GGUF model among ``found`` (sorted): a split is one model, projectors come last."""
    if not found:
        return None
    groups: dict[str, list[str]] = {}
    for name in found:
        m = SPLIT_NAME.fullmatch(name)
        groups.setdefault(f"{m['stem']}-*-of-{m['count']}.gguf" if m else name, []).append(name)
    models = {k: v for k, v in groups.items() if "mmproj" not in k.lower()}
    pool = models or groups
    if len(pool) == 1:
        return WeightPick("gguf", tuple(next(iter(pool.values()))))
    return WeightPick("gguf", choices=tuple(sorted(pool)))


def _pickle_refusal(path: str) -> UnsafeFormat:
    return UnsafeFormat(
        path,
        "pickle checkpoints can execute arbitrary code when loaded, so paramtool never opens them; "
        "convert to safetensors first (e.g. `safetensors.torch.save_file("
        "torch.load(p, weights_only=True), "
        "'model.safetensors')` in a sandbox, or the Hub's convert space)",
    )
