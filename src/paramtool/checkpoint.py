"""A checkpoint: the headers of its files, its index and its config, validated together.

:func:`assemble` checks a sharded checkpoint's index against the shard headers
and is shared by every byte source; :func:`open_local` resolves what a user
typed on the command line (a file, a folder, several files) into one.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from paramtool.errors import ShardIndexError, SourceNotFound, UnsafeFormat
from paramtool.header import FileHeader, TensorInfo, read_local_header

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
MAX_JSON_SIDECAR = 50_000_000  # config.json / index files larger than this are refused
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class HubInfo:
    """Where a Hub checkpoint came from: custody facts recorded with the result."""

    repo_id: str
    revision: str  # the resolved commit sha
    requested_revision: str | None = None
    subfolder: str = ""
    license: str | None = None
    gated: str | bool = False
    private: bool = False
    stated_parameters: int | None = None  # the Hub's own safetensors.total


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Everything paramtool knows about a checkpoint without reading its values."""

    source: str
    files: tuple[FileHeader, ...]
    config: Mapping[str, Any] | None = None
    adapter_config: Mapping[str, Any] | None = None
    index_path: str | None = None
    index_metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    warnings: tuple[str, ...] = ()
    hub: HubInfo | None = None
    # Pickle weight files beside the checkpoint (named, never opened); None: nobody looked.
    pickle_files: tuple[str, ...] | None = None
    format: str = "safetensors"  # or "gguf"
    # GGUF only: version, architecture, name, context_length, file_type, kind
    # ("model", "mmproj", "adapter"), alignment, split_count (paramtool.gguf_reader.summary).
    gguf: Mapping[str, Any] | None = None

    @property
    def tensors(self) -> tuple[TensorInfo, ...]:
        return tuple(t for f in self.files for t in f.tensors)

    @property
    def total_parameters(self) -> int:
        return sum(f.parameters for f in self.files)

    @property
    def tensor_bytes(self) -> int:
        return sum(f.data_size for f in self.files)

    @property
    def file_bytes(self) -> int:
        return sum(f.file_size for f in self.files)


def _pickle_refusal(path: str) -> UnsafeFormat:
    return UnsafeFormat(
        path,
        "pickle checkpoints can execute arbitrary code when loaded, so paramtool never opens them; "
        "convert to safetensors first (e.g. `safetensors.torch.save_file("
        "torch.load(p, weights_only=True), "
        "'model.safetensors')` in a sandbox, or the Hub's convert space)",
    )


def is_pickle_name(name: str) -> bool:
    return name.lower().endswith(PICKLE_SUFFIXES)


def check_shard_name(shard: str, index_path: str) -> None:
    """A shard named by an index must stay inside the index's folder."""
    if not shard or "\x00" in shard:
        raise ShardIndexError(index_path, f"shard name {shard!r} is empty or invalid")
    if shard.startswith(("/", "\\")) or (len(shard) > 1 and shard[1] == ":") or "\\" in shard:
        raise ShardIndexError(index_path, f"shard {shard!r} is an absolute or non-POSIX path")
    parts = posixpath.normpath(shard).split("/")
    if ".." in shard.split("/") or parts[0] == "..":
        raise ShardIndexError(index_path, f"shard {shard!r} points outside the checkpoint folder")


def parse_index(raw: bytes, index_path: str) -> tuple[dict[str, str], Mapping[str, Any]]:
    """Parse ``*.safetensors.index.json`` into (weight_map, metadata)."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ShardIndexError(index_path, f"not valid JSON: {e}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("weight_map"), dict):
        raise ShardIndexError(index_path, "expected a JSON object with a 'weight_map' object")
    weight_map = obj["weight_map"]
    for name, shard in weight_map.items():
        if not isinstance(shard, str):
            raise ShardIndexError(index_path, f"weight_map[{name!r}] is not a file name")
    for shard in set(weight_map.values()):
        check_shard_name(shard, index_path)
    meta = obj.get("metadata") or {}
    if not isinstance(meta, dict):
        raise ShardIndexError(index_path, "'metadata' is not an object")
    return dict(weight_map), MappingProxyType(meta)


def assemble(
    source: str,
    headers: Sequence[FileHeader],
    *,
    weight_map: Mapping[str, str] | None = None,
    shard_names: Sequence[str] | None = None,
    index_path: str | None = None,
    index_metadata: Mapping[str, Any] = _EMPTY,
    config: Mapping[str, Any] | None = None,
    adapter_config: Mapping[str, Any] | None = None,
    warnings: Iterable[str] = (),
    hub: HubInfo | None = None,
    pickle_files: tuple[str, ...] | None = None,
) -> Checkpoint:
    """Check the shards against the index (when there is one) and build the Checkpoint.

    ``shard_names`` gives, for each header in order, the name the index uses for it.
    """
    notes = list(warnings)
    if weight_map is not None:
        where = index_path or source
        assert shard_names is not None and len(shard_names) == len(headers)
        seen: set[str] = set()
        for h, shard in zip(headers, shard_names, strict=True):
            for t in h.tensors:
                owner = weight_map.get(t.name)
                if owner is None:
                    raise ShardIndexError(
                        where,
                        f"shard {shard!r} holds tensor {t.name!r}, which the index does not name",
                    )
                if owner != shard:
                    raise ShardIndexError(
                        where, f"tensor {t.name!r} is indexed in {owner!r} but found in {shard!r}"
                    )
                seen.add(t.name)
        missing = [n for n in weight_map if n not in seen]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ShardIndexError(
                where,
                f"indexed tensor {missing[0]!r} is not in its shard "
                f"{weight_map[missing[0]]!r}{more}",
            )
        total = index_metadata.get("total_size")
        actual = sum(h.data_size for h in headers)
        if total is not None and total != actual:
            notes.append(
                f"{where}: metadata.total_size says {total} bytes, "
                f"the shards hold {actual:,} bytes of tensors"
            )
    else:
        names: dict[str, str] = {}
        for h in headers:
            for t in h.tensors:
                if t.name in names:
                    notes.append(f"tensor {t.name!r} appears in both {names[t.name]} and {h.path}")
                names.setdefault(t.name, h.path)
    return Checkpoint(
        source=source,
        files=tuple(headers),
        config=config,
        adapter_config=adapter_config,
        index_path=index_path,
        index_metadata=index_metadata,
        warnings=tuple(notes),
        hub=hub,
        pickle_files=pickle_files,
    )


def read_json_sidecar(path: Path, notes: list[str]) -> dict[str, Any] | None:
    """Read config.json-like files next to a checkpoint; trouble is a warning, not an error."""
    try:
        if not path.is_file():
            return None
        if path.stat().st_size > MAX_JSON_SIDECAR:
            notes.append(f"{path}: larger than {MAX_JSON_SIDECAR:,} bytes, ignored")
            return None
        obj = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as e:
        notes.append(f"{path}: unreadable ({e.__class__.__name__}), ignored")
        return None
    if not isinstance(obj, dict):
        notes.append(f"{path}: not a JSON object, ignored")
        return None
    return obj


def _find_index(folder: Path) -> Path | None:
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if not indexes:
        return None
    for preferred in (
        "model.safetensors.index.json",
        "diffusion_pytorch_model.safetensors.index.json",
    ):
        for p in indexes:
            if p.name == preferred:
                return p
    if len(indexes) > 1:
        raise SourceNotFound(
            str(folder),
            f"several indexes ({', '.join(p.name for p in indexes)}); name the one to inspect",
        )
    return indexes[0]


def _open_indexed(index: Path) -> tuple[list[FileHeader], dict[str, Any]]:
    folder = index.parent
    where = str(index)
    if index.stat().st_size > MAX_JSON_SIDECAR:
        raise ShardIndexError(where, f"larger than {MAX_JSON_SIDECAR:,} bytes")
    weight_map, meta = parse_index(index.read_bytes(), where)
    roots = _allowed_roots(folder)
    headers = []
    shards = sorted(set(weight_map.values()))
    for shard in shards:
        p = os.path.join(folder, shard)
        if "/" in shard or os.path.islink(p):  # only then can the path leave the folder
            real = os.path.realpath(p)
            if not any(os.path.commonpath([r, real]) == r for r in roots):
                raise ShardIndexError(
                    where, f"shard {shard!r} is a symlink that leaves the checkpoint folder"
                )
        if not os.path.isfile(p):
            raise ShardIndexError(where, f"shard {shard!r} is missing")
        headers.append(read_local_header(p, p))
    kw = {
        "weight_map": weight_map,
        "shard_names": shards,
        "index_path": where,
        "index_metadata": meta,
    }
    return headers, kw


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
    """Pick the weight files of a folder: (files, index)."""
    index = _find_index(folder)
    if index is not None:
        return [], index
    for name in (
        "model.safetensors",
        "adapter_model.safetensors",
        "diffusion_pytorch_model.safetensors",
    ):
        if (folder / name).is_file():
            return [folder / name], None
    files = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
    if files:
        return files, None
    from paramtool.gguf_reader import pick_in_folder

    gguf = pick_in_folder(folder)
    if gguf:
        return gguf, None
    pickles = sorted(p.name for p in folder.iterdir() if p.is_file() and is_pickle_name(p.name))
    if pickles:
        raise _pickle_refusal(str(folder / pickles[0]))
    raise SourceNotFound(str(folder), "no safetensors checkpoint in this folder")


def open_local(paths: Sequence[str | os.PathLike[str]]) -> Checkpoint:
    """Open one or more local paths (files or folders) as one checkpoint, headers only."""
    if not paths:
        raise SourceNotFound("(no path)", "give a checkpoint file or folder")
    if any(_is_gguf_file(Path(p)) for p in paths):
        return _open_gguf(paths, [Path(p) for p in paths])
    notes: list[str] = []
    headers: list[FileHeader] = []
    extra: dict[str, Any] = {}
    sidecar_dir: Path | None = None
    folders: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if is_pickle_name(p.name):
            raise _pickle_refusal(str(p))
        if not p.exists():
            raise SourceNotFound(str(p), "no such file or directory")
        folders.append(p if p.is_dir() else p.parent)
        if p.is_dir():
            files, index = _resolve_folder(p)
            if files and files[0].name.lower().endswith(".gguf"):
                return _open_gguf(paths, files)
            sidecar_dir = sidecar_dir or p
        else:
            files, index = ([], p) if p.name.endswith(".safetensors.index.json") else ([p], None)
            sidecar_dir = sidecar_dir or p.parent
        if index is not None:
            if len(paths) > 1:
                raise SourceNotFound(str(p), "a sharded checkpoint must be inspected on its own")
            hs, extra = _open_indexed(index)
            headers.extend(hs)
        else:
            headers.extend(read_local_header(f, str(f)) for f in files)
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
        **extra,
    )


def _is_gguf_file(p: Path) -> bool:
    """A ``.gguf`` file, or a file of another name that starts with the GGUF magic."""
    if is_pickle_name(p.name) or p.name.endswith(".safetensors.index.json") or not p.is_file():
        return False
    from paramtool.gguf_reader import is_gguf_name, sniff_gguf

    return is_gguf_name(p.name) or sniff_gguf(p)


def _open_gguf(paths: Sequence[str | os.PathLike[str]], files: Sequence[Path]) -> Checkpoint:
    """A GGUF model (one file or the parts of a split), which is inspected on its own."""
    from paramtool.gguf_reader import open_gguf

    source = " ".join(str(p) for p in paths)
    mixed = len(paths) > 1 and any(Path(p).is_dir() for p in paths)
    if mixed or not all(_is_gguf_file(f) for f in files):
        raise SourceNotFound(source, "inspect a GGUF model on its own, not with other files")
    folders = {f.parent for f in files}
    return open_gguf(files, source=source, pickle_files=_pickles_beside(sorted(folders)))


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
