"""Local files and folders as a checkpoint, headers only.

:func:`open_local` resolves what a user typed (a file, a folder, several files) into one
:class:`~paramtool.records.Checkpoint`.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from paramtool.errors import ParamtoolError, ShardIndexError, SourceNotFound
from paramtool.files import is_regular, read_capped, read_prefix, require_path
from paramtool.formats.index import MAX_JSON_SIDECAR, parse_index
from paramtool.formats.safetensors import read_local_header, read_local_header_if
from paramtool.formats.sniff import PREFIX, sniff
from paramtool.records import Checkpoint, FileHeader
from paramtool.sources.assemble import assemble
from paramtool.sources.weights import (
    DCP_METADATA,
    is_pickle_index_name,
    is_pickle_name,
    is_trainer_file,
    pick_weights,
)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (restored after): reading headers makes many
    objects and no cycles, and each collection would rescan the growing heap."""
    collecting = gc.isenabled()
    if collecting:
        gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def read_json_sidecar(path: Path, notes: list[str]) -> dict[str, Any] | None:
    """Read config.json-like files next to a checkpoint; trouble is a warning, not an error.

    Only a regular file of at most ``MAX_JSON_SIDECAR`` bytes is read; a FIFO or a
    device of that name is skipped with a note, never opened.
    """
    if not os.path.exists(path):
        return None
    try:
        raw = read_capped(path, MAX_JSON_SIDECAR)
    except ParamtoolError as e:
        notes.append(f"{path}: {e.why}, ignored")
        return None
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as e:
        notes.append(f"{path}: unreadable ({e.__class__.__name__}), ignored")
        return None
    if not isinstance(obj, dict):
        notes.append(f"{path}: not a JSON object, ignored")
        return None
    return obj


def is_index_name(name: str) -> bool:
    """A shard index: ``*.safetensors.index.json`` or a pickle's (``*.bin.index.json``)."""
    return name.endswith(".safetensors.index.json") or is_pickle_index_name(name)


def read_weight_file(path: Path | str, shown: str) -> FileHeader:
    """One weight file's header: a pickled PyTorch file (zip or legacy) by its bytes, or by
    its name when the bytes say nothing; safetensors otherwise (a FIFO is refused unopened)."""
    p = Path(path)
    if p.name == DCP_METADATA:  # a distributed checkpoint: .metadata and its .distcp files
        from paramtool.sources.distcp import read_dcp_header

        return read_dcp_header(p, shown)

    def safetensors_bytes(first: bytes) -> bool:
        kind = sniff(first)
        return kind not in ("zip", "pickle") and not (kind is None and is_pickle_name(p.name))

    header = read_local_header_if(p, shown, PREFIX, safetensors_bytes)  # one open a shard
    if header is not None:
        return header
    kind = sniff(read_prefix(p, PREFIX) or b"") if is_regular(p) else None
    if kind in ("zip", "pickle") or (kind is None and is_pickle_name(p.name)):
        from paramtool.sources.pickled import read_pickle_header  # pickles only: lazily

        return read_pickle_header(p, shown)
    return read_local_header(p, shown)


def _open_indexed(index: Path) -> tuple[list[FileHeader], dict[str, Any]]:
    folder = index.parent
    where = str(index)
    raw = read_capped(index, MAX_JSON_SIDECAR, where, too_large=ShardIndexError)
    weight_map, meta = parse_index(raw, where)
    roots = _allowed_roots(folder)
    headers = []
    shards = sorted(set(weight_map.values()))
    headers.extend(_read_shards(folder, shards, roots, where))  # GC paused by open_local
    kw = {
        "weight_map": weight_map,
        "shard_names": shards,
        "index_path": where,
        "index_metadata": meta,
    }
    return headers, kw


def _read_shards(folder: Path, shards: list[str], roots: list[str], where: str) -> list[FileHeader]:
    headers = []
    for shard in shards:
        p = os.path.join(folder, shard)
        if "/" in shard or os.path.islink(p):  # only then can the path leave the folder
            real = os.path.realpath(p)
            if not any(os.path.commonpath([r, real]) == r for r in roots):
                raise ShardIndexError(
                    where, f"shard {shard!r} is a symlink that leaves the checkpoint folder"
                )
        try:  # a FIFO or device is refused, never opened
            headers.append(read_weight_file(p, p))
        except ParamtoolError:
            if is_regular(p) is None:  # asked only now: a stat a shard saved when all is well
                raise ShardIndexError(where, f"shard {shard!r} is missing") from None
            raise
    return headers


def _allowed_roots(folder: Path) -> list[str]:
    """Where a shard may really live: the folder, and for a huggingface_hub cache snapshot
    (``models--org--name/snapshots/<sha>/...``, whose files are symlinks into
    ``models--org--name/blobs``), that repo's blob store too."""
    root = os.path.realpath(folder)
    roots = [root]
    parts = Path(root).parts
    if "snapshots" in parts:
        i = len(parts) - 1 - parts[::-1].index("snapshots")
        repo = Path(*parts[:i])
        if (
            repo.name.startswith(("models--", "datasets--", "spaces--"))
            and (repo / "blobs").is_dir()
        ):
            roots.append(str(repo / "blobs"))
    return roots


def _resolve_folder(folder: Path) -> tuple[list[Path], Path | None]:
    """Pick the weight files of a folder: (files, index), by the rule a Hub listing uses too.

    Every entry but a folder is a candidate, so a FIFO or a device named like a shard or
    an index is picked, then refused when opened, not silently passed over.
    """
    names = [e.name for e in os.scandir(folder) if not e.is_dir()]
    pick = pick_weights(names)
    if pick.kind in ("index", "pickle") and pick.choices:
        raise SourceNotFound(
            str(folder), f"several indexes ({', '.join(pick.choices)}); name the one to inspect"
        )
    if pick.kind == "gguf" and pick.choices:
        raise SourceNotFound(
            str(folder),
            f"several GGUF models ({', '.join(pick.choices)}); name the file to inspect",
        )
    if pick.kind is None:
        raise SourceNotFound(str(folder), "no safetensors checkpoint in this folder")
    if pick.kind in ("index", "pickle") and is_index_name(pick.files[0]):
        return [], folder / pick.files[0]
    if pick.kind == "gguf":  # the first part names the split; open_gguf finds the rest
        return [folder / pick.files[0]], None
    return [folder / n for n in pick.files], None


def open_local(paths: Sequence[str | os.PathLike[str]]) -> Checkpoint:
    """Open one or more local paths (files or folders) as one checkpoint, headers only."""
    with gc_paused():  # the index, the headers and their check: 100k+ objects, no cycle
        return _open_local(paths)


def _open_local(paths: Sequence[str | os.PathLike[str]]) -> Checkpoint:
    if not paths:
        raise SourceNotFound("(no path)", "give a checkpoint file or folder")
    # An index named with safetensors files of its own folder (all of them staged in a
    # commit): the index alone, as the folder rule would read that folder.
    idx = [Path(p) for p in paths if str(p).endswith(".safetensors.index.json")]
    if len(idx) == 1 and all(
        Path(p) == idx[0] or (Path(p).parent == idx[0].parent and str(p).endswith(".safetensors"))
        for p in paths
    ):
        paths = [idx[0]]
    for raw in paths:
        require_path(raw)
    if any(_is_gguf_file(Path(p)) for p in paths):
        return _open_gguf(paths, [Path(p) for p in paths])
    notes: list[str] = []
    headers: list[FileHeader] = []
    extra: dict[str, Any] = {}
    sidecar_dir: Path | None = None
    folders: list[Path] = []
    for raw in paths:
        p = Path(raw)
        folders.append(p if p.is_dir() else p.parent)
        if p.is_dir():
            files, index = _resolve_folder(p)
            if any(_is_gguf_file(f) for f in files):
                return _open_gguf(paths, files)
            notes.extend(_passed_over(p, files, index))
            sidecar_dir = sidecar_dir or p
        else:
            files, index = ([], p) if is_index_name(p.name) else ([p], None)
            sidecar_dir = sidecar_dir or p.parent
        if index is not None:
            if len(paths) > 1:
                raise SourceNotFound(str(p), "a sharded checkpoint must be inspected on its own")
            hs, extra = _open_indexed(index)
            headers.extend(hs)
        else:
            headers.extend(read_weight_file(f, str(f)) for f in files)
    config = adapter_config = None
    if sidecar_dir is not None:
        config = read_json_sidecar(sidecar_dir / "config.json", notes)
        adapter_config = read_json_sidecar(sidecar_dir / "adapter_config.json", notes)
    source = " ".join(str(p) for p in paths)
    return assemble(
        source,
        headers,
        config=config,
        adapter_config=adapter_config,
        warnings=notes,
        pickle_files=_pickles_beside(folders),
        code_files=_code_beside(sidecar_dir) if sidecar_dir is not None else None,
        **extra,
    )


def _is_gguf_file(p: Path) -> bool:
    """Whether to read ``p`` as GGUF: its bytes decide; its name only when they say nothing.

    A GGUF file named ``.safetensors`` is GGUF, a safetensors file named ``.gguf`` is
    safetensors (the name that lies is reported by the checkpoint's warnings).
    """
    if is_pickle_name(p.name) or is_index_name(p.name):
        return False
    kind = sniff(read_prefix(p, PREFIX) or b"")
    if kind is not None:
        return kind == "gguf"
    if not p.name.lower().endswith(".gguf"):  # formats.gguf.is_gguf_name, not imported
        return False
    from paramtool.formats.gguf import is_gguf_name

    return is_gguf_name(p.name) and is_regular(p) is True


def _open_gguf(paths: Sequence[str | os.PathLike[str]], files: Sequence[Path]) -> Checkpoint:
    """A GGUF model (one file or the parts of a split), which is inspected on its own."""
    from paramtool.sources.gguf import open_gguf

    source = " ".join(str(p) for p in paths)
    mixed = len(paths) > 1 and any(Path(p).is_dir() for p in paths)
    if mixed or not all(_is_gguf_file(f) for f in files):
        raise SourceNotFound(source, "inspect a GGUF model on its own, not with other files")
    folders = {f.parent for f in files}
    return open_gguf(files, source=source, pickle_files=_pickles_beside(sorted(folders)))


def _passed_over(folder: Path, files: Sequence[Path], index: Path | None) -> list[str]:
    """A note when a folder holds pickled weights beside the safetensors it was read for."""
    chosen = [index] if index is not None else list(files)
    if any(is_pickle_name(f.name) or is_pickle_index_name(f.name) for f in chosen):
        return []
    names = sorted(
        e.name
        for e in os.scandir(folder)
        if (is_pickle_name(e.name) and not is_trainer_file(e.name)) or is_pickle_index_name(e.name)
    )
    weights = pick_weights(names)
    if not weights.files:
        return []
    shown = ", ".join(weights.files[:3]) + (", ..." if len(weights.files) > 3 else "")
    return [f"{folder}: pickled weights here too ({shown}); the safetensors were read instead"]


def _code_beside(folder: Path) -> tuple[str, ...]:
    """The Python files in ``folder``, by name (never opened): what custom code could import."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return ()
    return tuple(sorted(e.name for e in entries if e.name.endswith(".py") and e.is_file()))


def _pickles_beside(folders: Iterable[Path]) -> tuple[str, ...]:
    """Pickle files (every one: weights, optimizer states, training args) in these folders."""
    found: list[str] = []
    for folder in dict.fromkeys(folders):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        names = sorted(e.name for e in entries if is_pickle_name(e.name) and e.is_file())
        found.extend(str(folder / n) for n in names)
    return tuple(found)
