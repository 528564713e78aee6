"""Which files of a folder or a repo listing hold the weights: one rule for both.

:func:`pick_weights` sees names only (a folder's entries, or a Hub repo's listing at one
level), so a local folder and the same files on the Hub pick alike. Precedence:

1. a safetensors index (``model.safetensors.index.json``, then
   ``diffusion_pytorch_model.safetensors.index.json``, then the only one);
2. ``model.safetensors``, ``adapter_model.safetensors``, ``diffusion_pytorch_model.safetensors``;
3. every other ``*.safetensors``;
4. one GGUF model (the parts of a split count as one; an ``mmproj`` projector only
   when there is nothing else);
5. a PyTorch distributed checkpoint (``.metadata`` beside ``*.distcp`` files);
6. pickled PyTorch weights (read symbolically, never unpickled): a pickle index
   (``pytorch_model.bin.index.json``, then the only one), then ``pytorch_model.bin``,
   then every other pickle but a trainer's side files (``optimizer.pt``, ``training_args.bin``...).

A local folder and a Hub listing read the pickles they pick (symbolically, by ranges on the Hub).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from paramtool.frozen import dataclass
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
_PICKLE_INDEX_SUFFIXES = (".bin.index.json", ".pt.index.json", ".pth.index.json")
_PREFERRED_PICKLES = ("pytorch_model.bin", "adapter_model.bin", "diffusion_pytorch_model.bin")
# What a trainer writes beside the weights: pickles, but not the model.
_TRAINER_FILES = re.compile(
    r"(optimizer|scheduler|scaler|training_args|rng_state(_\d+)?|trainer_state)\.(pt|pth|bin)",
    re.IGNORECASE,
)
# llama.cpp's split naming (llama_split_path): PREFIX-00001-of-00003.gguf
SPLIT_NAME = re.compile(r"(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf", re.IGNORECASE)

DCP_METADATA = ".metadata"  # a distributed checkpoint's pickled metadata, beside *.distcp
WeightKind = Literal["index", "safetensors", "gguf", "pickle"]


@dataclass(frozen=True, slots=True)
class WeightPick:
    """What to read among a listing.

    ``kind`` is None when nothing there holds weights. ``files`` is what to read: the
    index, the safetensors files, or the GGUF model's parts in order; for ``pickle``, a
    pickle index or the pickled weight files. ``choices`` is set instead of ``files`` when several
    indexes or several GGUF models tie and the user must name one.
    """

    kind: WeightKind | None
    files: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()


def is_pickle_name(name: str) -> bool:
    return name.lower().endswith(PICKLE_SUFFIXES)


def is_pickle_index_name(name: str) -> bool:
    """``pytorch_model.bin.index.json`` and its kin: the shard index of pickled weights."""
    return name.lower().endswith(_PICKLE_INDEX_SUFFIXES)


def is_trainer_file(name: str) -> bool:
    """A pickle a trainer writes beside the weights (``optimizer.pt``, ``training_args.bin``)."""
    return _TRAINER_FILES.fullmatch(name) is not None


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
    if DCP_METADATA in here and any(n.endswith(".distcp") for n in here):
        return WeightPick("pickle", (DCP_METADATA,))
    return pick_pickles(here)


def pick_pickles(here: list[str]) -> WeightPick:
    """Pickled weights among ``here`` (sorted): an index, the preferred file, the rest."""
    indexes = [n for n in here if is_pickle_index_name(n)]
    if "pytorch_model.bin.index.json" in indexes:
        return WeightPick("pickle", ("pytorch_model.bin.index.json",))
    if len(indexes) == 1:
        return WeightPick("pickle", (indexes[0],))
    if indexes:
        return WeightPick("pickle", tuple(indexes), choices=tuple(indexes))
    pickles = [n for n in here if is_pickle_name(n)]
    for single in _PREFERRED_PICKLES:
        if single in pickles:
            return WeightPick("pickle", (single,))
    weights = tuple(n for n in pickles if not _TRAINER_FILES.fullmatch(n))
    if weights or pickles:
        return WeightPick("pickle", weights or tuple(pickles))
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
