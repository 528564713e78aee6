"""GGUF models from local files: one file, or the parts of a split.

Which model a folder holds is :func:`paramtool.sources.weights.pick_weights`'s to say.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

from paramtool.errors import ShardIndexError, SourceNotFound
from paramtool.fields import is_int
from paramtool.files import is_regular
from paramtool.formats.gguf import GGUFFile, read_gguf
from paramtool.formats.gguf_config import synthesize_config
from paramtool.formats.gguf_metadata import kind_of, summary
from paramtool.records import Checkpoint
from paramtool.sources.assemble import misnamed_notes
from paramtool.sources.weights import SPLIT_NAME


def split_part_paths(path: Path, count: int) -> list[Path] | None:
    """All part paths of a split named like ``path``; None when its name is not that scheme."""
    m = SPLIT_NAME.fullmatch(path.name)
    if m is None or int(m["count"]) != count:
        return None
    suffix = path.name[-5:]  # keep the user's .gguf / .GGUF spelling
    return [
        path.with_name(f"{m['stem']}-{i:05d}-of-{count:05d}{suffix}") for i in range(1, count + 1)
    ]


def _read_split(path: Path, shown: str) -> list[GGUFFile]:
    """The file at ``path`` and, when it is one part of a split, all its parts in order."""
    first = read_gguf(path, shown)
    split = first.split
    if split is None:
        return [first]
    no, count = split
    paths = split_part_paths(path, count)
    if paths is None:
        raise SourceNotFound(
            shown,
            f"part {no + 1} of a {count}-part split GGUF, but its name does not end in "
            f"-NNNNN-of-{count:05d}.gguf, so the other parts cannot be found",
        )
    files = []
    for i, p in enumerate(paths):
        if p.name == path.name:
            f = first
        elif is_regular(p) is None:  # a FIFO or device is refused by read_gguf, never opened
            raise SourceNotFound(str(p), f"part {i + 1} of {count} of this split GGUF is missing")
        else:
            f = read_gguf(p, str(p))
        if f.split != (i, count):
            got = (
                "no split metadata"
                if f.split is None
                else f"split.no {f.split[0]} of split.count {f.split[1]}"
            )
            raise ShardIndexError(
                f.path, f"expected part {i + 1} of {count} (split.no {i}), found {got}"
            )
        files.append(f)
    stated = files[0].kv.get("split.tensors.count")
    total = sum(len(f.tensors) for f in files)
    if is_int(stated) and stated != total:
        raise ShardIndexError(
            files[0].path, f"split.tensors.count says {stated:,} tensors, the parts hold {total:,}"
        )
    return files


def open_gguf(
    paths: Sequence[str | os.PathLike[str]],
    source: str | None = None,
    pickle_files: tuple[str, ...] | None = None,
) -> Checkpoint:
    """Open one GGUF model (a file, or any or all parts of a split) as a Checkpoint."""
    if not paths:
        raise SourceNotFound("(no path)", "give a GGUF file")
    shown = source if source is not None else " ".join(os.fspath(p) for p in paths)
    files = _read_split(Path(paths[0]), os.fspath(paths[0]))
    names = {os.path.realpath(f.path) for f in files}
    for extra in paths[1:]:
        if os.path.realpath(extra) not in names:
            raise SourceNotFound(
                os.fspath(extra),
                "not a part of the same GGUF model; inspect one GGUF model at a time",
            )
    return checkpoint_from(files, shown, pickle_files=pickle_files)


def checkpoint_from(
    files: Sequence[GGUFFile], source: str, pickle_files: tuple[str, ...] | None = None
) -> Checkpoint:
    """Combine parsed GGUF files (the parts of one model, in order) into a Checkpoint."""
    notes = [*misnamed_notes(f.header for f in files), *(w for f in files for w in f.warnings)]
    seen: dict[str, str] = {}
    for f in files:
        for t in f.tensors:
            if t.name in seen:
                raise ShardIndexError(f.path, f"tensor {t.name!r} is also in {seen[t.name]}")
            seen[t.name] = f.path
    kind = kind_of(files[0].kv, Path(files[0].path).name)
    tensors = [t for f in files for t in f.tensors]
    config = synthesize_config(files[0].kv, tensors, notes) or None
    return Checkpoint(
        source=source,
        files=tuple(f.header for f in files),
        config=config,
        warnings=tuple(notes),
        pickle_files=pickle_files,
        format="gguf",
        gguf=MappingProxyType(summary(files, kind)),
    )
