"""Safe conversion of a plain-state-dict PyTorch pickle to safetensors, without torch.

The pickle is read symbolically (:func:`paramtool.formats.torch_pickle.read_torch_file`):
nothing in it is imported or called, and a pickle that names any global outside the
allowlist is refused before anything is written. Tensor bytes are copied straight from
the zip entries (torch >= 1.6) or the legacy format's raw storages, in reads of at most
:data:`BUFFER_BYTES`, so memory stays bounded whatever the checkpoint's size.

Views and ties, as ``save_pretrained`` resolves them:

- a contiguous tensor is its byte range of the storage (a view with an offset too);
- a strided view is gathered into a contiguous copy: runs of at least :data:`RUN_BYTES`
  are copied run by run; shorter runs are gathered by numpy from the storage span the view
  touches, when that span fits :data:`GATHER_BYTES`, and refused otherwise (one line: save
  it with ``.contiguous()`` first);
- tensors that are the same view of one storage (tied weights: same offset, shape, strides
  and dtype) are written once, under the name that comes first in the state dict; the
  others are reported as ties (transformers drops the names its ``_tied_weights_keys``
  match, which is ``lm_head.weight`` after ``model.embed_tokens.weight``, the first name);
- distinct views of one storage (overlapping or not) are each written whole: safetensors
  cannot share bytes, and each comes back equal to what ``torch.load`` gives for it.

Files are written as the safetensors library writes them: the header JSON (``__metadata__``
``{"format": "pt"}`` first, then the tensors in data order: by dtype, widest first, then by
name, so each tensor is aligned to its element size), padded with spaces to a multiple of 8
bytes. Above ``max_shard_size`` (5 GB by default), shards are cut as huggingface_hub's
``split_state_dict_into_shards`` cuts them, named ``model-00001-of-0000N.safetensors``,
with a ``model.safetensors.index.json`` (``total_size``, ``weight_map``). Each file is
written to a temporary name, re-read (the header by paramtool's strict parser, every byte
hashed against what was copied), then renamed into place; nothing is replaced without
``force``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from paramtool import dtypes
from paramtool.errors import ParamtoolError, ShardIndexError, SourceNotFound, UsageError, reading
from paramtool.files import open_fd, read_capped
from paramtool.formats.index import MAX_JSON_SIDECAR, parse_index
from paramtool.formats.safetensors import read_local_header
from paramtool.formats.torch_pickle import TorchStorage, TorchTensor
from paramtool.sources.weights import is_pickle_index_name, pick_pickles
from paramtool.values.hashing import (
    DIGEST_SCHEME,
    WEIGHTS_DIGEST_SCHEME,
    Hasher,
    file_sha256,
    tensor_digest,
    tensor_hasher,
    weights_digest,
)
from paramtool.values.pickles import unsafe_line
from paramtool.values.reader import page_aligned
from paramtool.values.views import (
    GATHER_BYTES,
    RUN_BYTES,
    extent,
    gather_refusal,
    is_contiguous,
    run_starts,
    runs,
)

SCHEMA_VERSION = 2  # of the --json document (2: tensor digests are BLAKE3; 1 had SHA-256)
BUFFER_BYTES = 8 << 20  # one read or write
DEFAULT_MAX_SHARD_SIZE = "5GB"  # huggingface_hub's MAX_SHARD_SIZE
METADATA = {"format": "pt"}
INDEX_NAME = "model.safetensors.index.json"
# What transformers' Trainer writes beside the weights: never a state dict of the model.
_OUTPUT = re.compile(r"model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?")
# The safetensors library's Dtype order; it writes the widest (last) first.
_DTYPE_ORDER = (
    "BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0",
    "F8_E4M3FNUZ", "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64",
    "F64", "I64", "U64",
)  # fmt: skip
_RANK = {name: i for i, name in enumerate(_DTYPE_ORDER)}
_UINT = {1: "uint8", 2: "uint16", 4: "uint32", 8: "uint64"}

Progress = Callable[[int], None]  # bytes just copied or re-read


class ConvertError(ParamtoolError):
    """A checkpoint that cannot be converted safely, or an output that is in the way."""


# ------------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class ConvertedTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    file: str  # the safetensors file it was written to (its name in the output folder)
    source: str  # the pickle it came from
    digest: str  # paramtool's tensor digest (values/hashing.py)
    gathered: bool = False  # a strided view, written as a contiguous copy


@dataclass(frozen=True, slots=True)
class ConvertedFile:
    path: str
    size: int
    sha256: str
    tensors: int


@dataclass(frozen=True, slots=True)
class Tie:
    """A name not written because it is the same view of the same storage as ``kept``."""

    name: str
    kept: str


@dataclass(frozen=True, slots=True)
class ConvertReport:
    """``paramtool convert``: what was read, what was written, and its digests."""

    sources: tuple[str, ...]
    out: str
    files: tuple[ConvertedFile, ...]
    index: str | None  # the index file written, when sharded
    tensors: tuple[ConvertedTensor, ...]
    ties: tuple[Tie, ...]
    skipped: tuple[str, ...]  # non-tensor entries, and tensors outside ``prefix``
    total_size: int  # tensor bytes written, as the index's total_size
    max_shard_size: int
    weights_digest: str

    @property
    def sharded(self) -> bool:
        return self.index is not None

    def to_dict(self) -> dict[str, Any]:
        """The document ``paramtool convert --json`` prints."""
        return {
            "schema_version": SCHEMA_VERSION,
            "sources": list(self.sources),
            "out": self.out,
            "files": [
                {"path": f.path, "bytes": f.size, "sha256": f.sha256, "tensors": f.tensors}
                for f in self.files
            ],
            "index": self.index,
            "total_size": self.total_size,
            "max_shard_size": self.max_shard_size,
            "weights_digest": self.weights_digest,
            "digest_scheme": DIGEST_SCHEME,
            "weights_digest_scheme": WEIGHTS_DIGEST_SCHEME,
            "tensor_count": len(self.tensors),
            "tensors": [
                {
                    "name": t.name,
                    "dtype": t.dtype,
                    "shape": list(t.shape),
                    "file": t.file,
                    "source": t.source,
                    "digest": t.digest,
                    "gathered": t.gathered,
                }
                for t in self.tensors
            ],
            "ties": [{"name": t.name, "kept": t.kept} for t in self.ties],
            "skipped": list(self.skipped),
        }


# ------------------------------------------------------------------------------ sources


def discover(folder: str) -> tuple[list[str], dict[str, str] | None]:
    """The pickle files of a folder, and the index's weight_map when there is one: the one
    weight-picking rule (:func:`paramtool.sources.weights.pick_pickles`), whose index is
    followed to the shards its ``weight_map`` names."""
    with reading(folder):
        names = sorted(n for n in os.listdir(folder) if os.path.isfile(os.path.join(folder, n)))
        pick = pick_pickles(names)
        if pick.choices:
            shown = ", ".join(pick.choices[:3])
            raise ConvertError(folder, f"holds {len(pick.choices)} pickle indexes ({shown})")
        if not pick.files:
            raise SourceNotFound(folder, "no PyTorch checkpoint (.bin, .pt, .pth, .ckpt) in it")
        if not is_pickle_index_name(pick.files[0]):
            return [os.path.join(folder, n) for n in pick.files], None
        index = os.path.join(folder, pick.files[0])
        raw = read_capped(index, MAX_JSON_SIDECAR, too_large=ShardIndexError)
        weight_map, _ = parse_index(raw, index)
        if not weight_map:
            raise ShardIndexError(index, "weight_map is empty")
        shards = list(dict.fromkeys(sorted(weight_map.values())))
        paths = [os.path.join(folder, s) for s in shards]
        for p, s in zip(paths, shards, strict=True):
            if not os.path.isfile(p):
                raise ShardIndexError(index, f"names shard {s!r}, which is not in the folder")
        return paths, weight_map


@dataclass(frozen=True, slots=True)
class _Item:
    """One tensor to write, and where its bytes are."""

    name: str
    tensor: TorchTensor
    storage: TorchStorage
    source: str

    @property
    def nbytes(self) -> int:
        return self.tensor.nbytes


def _check_tensor(t: TorchTensor, s: TorchStorage, path: str, name: str) -> None:
    if t.dtype not in dtypes.SAFETENSORS:
        raise ConvertError(path, f"tensor {name!r}: dtype {t.dtype} has no safetensors name")
    dt = dtypes.lookup(t.dtype)
    if dt.block_size != 1:
        raise ConvertError(path, f"tensor {name!r}: {t.dtype} elements are not whole bytes")
    if s.data_offset is None:
        raise ConvertError(
            path, f"tensor {name!r}: its storage {s.key!r} is compressed or not located"
        )
    if not name:
        raise ConvertError(path, "the checkpoint is a bare tensor, without a name")
    if name == "__metadata__":
        raise ConvertError(path, "a tensor named '__metadata__', which safetensors reserves")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ConvertError(path, f"tensor name {ascii(name)[:80]} is not valid Unicode") from None


def plan_sources(
    paths: Sequence[str], prefix: str | None = None
) -> tuple[list[_Item], list[Tie], list[str], list[str]]:
    """Read every pickle and decide what to write: (items, ties, skipped, files read).

    Refuses, before anything is written: an unsafe pickle, a big-endian checkpoint, a dtype
    safetensors lacks, a compressed storage, two tensors of one name, an index that
    disagrees with its shards.
    """
    from paramtool.formats.torch_pickle import read_torch_file

    files: list[tuple[str, dict[str, str] | None]] = []
    for p in paths:
        if os.path.isdir(p):
            shards, weight_map = discover(p)
            files.extend((s, weight_map) for s in shards)
        else:
            files.append((p, None))
    items: list[_Item] = []
    ties: list[Tie] = []
    skipped: list[str] = []
    seen: dict[str, str] = {}
    indexed: dict[str, str] = {}
    for path, weight_map in files:
        ck = read_torch_file(path)
        if ck.verdict == "unsafe":
            raise ConvertError(path, unsafe_line(ck.unsafe_globals, "not converted"))
        if ck.byteorder != "little":
            raise ConvertError(
                path, f"written with byte order {ck.byteorder[:20]!r}; only little-endian converts"
            )
        storages = {s.key: s for s in ck.storages}
        kept: dict[tuple[object, ...], str] = {}  # a view of a storage -> its first name
        skipped.extend(o.name for o in ck.others)
        if weight_map is not None:
            base = os.path.basename(path)
            mine = {n for n, f in weight_map.items() if f == base}
            have = {t.name for t in ck.tensors}
            missing = sorted(mine - have)
            if missing:
                raise ShardIndexError(path, f"the index puts {missing[0]!r} here, but it is not")
            extra = sorted(have - set(weight_map))
            if extra:
                raise ShardIndexError(path, f"holds {extra[0]!r}, which the index does not list")
            indexed.update((n, path) for n in mine)
        for t in ck.tensors:
            name = t.name
            if prefix is not None:
                if not name.startswith(prefix + "."):
                    skipped.append(name)
                    continue
                name = name[len(prefix) + 1 :]
            s = storages.get(t.storage)
            if s is None:
                raise ConvertError(path, f"tensor {name!r}: storage {t.storage!r} not found")
            _check_tensor(t, s, path, name)
            _check_gather(t, path, name)
            if name in seen:
                raise ConvertError(path, f"tensor {name!r} is also in {seen[name]}")
            seen[name] = path
            view = (t.storage, t.storage_offset, t.shape, t.strides, t.dtype)
            if view in kept:
                ties.append(Tie(name, kept[view]))
                continue
            kept[view] = name
            items.append(_Item(name, t, s, path))
    if not items:
        why = f"no tensor named {prefix}.*" if prefix is not None else "no tensors in it"
        raise ConvertError(", ".join(paths)[:200], why)
    return items, ties, skipped, [f for f, _ in files]


# ------------------------------------------------------------------------------ sharding


def split_shards(items: Sequence[_Item], max_shard_size: int) -> list[list[_Item]]:
    """Shards as huggingface_hub's ``split_state_dict_into_shards_factory`` cuts them: in
    order, a new shard when the next tensor would pass the limit, a tensor larger than the
    limit alone in its own (sizes: the bytes each tensor takes in the file)."""
    shards: list[list[_Item]] = []
    current: list[_Item] = []
    size = 0
    for it in items:
        n = it.nbytes
        if n > max_shard_size:
            shards.append([it])
            continue
        if size + n > max_shard_size:
            shards.append(current)
            current, size = [], 0
        current.append(it)
        size += n
    if current:
        shards.append(current)
    return [s for s in shards if s]  # hub can append an empty first shard; it writes none


def shard_names(count: int) -> list[str]:
    if count == 1:
        return ["model.safetensors"]
    return [f"model-{i + 1:05d}-of-{count:05d}.safetensors" for i in range(count)]


def layout(items: Sequence[_Item]) -> tuple[bytes, list[tuple[_Item, int]]]:
    """The padded header of a file holding ``items``, and each item with its data offset."""
    order = sorted(items, key=lambda it: (-_RANK[it.tensor.dtype], it.name))
    entries: dict[str, object] = {"__metadata__": METADATA}
    placed: list[tuple[_Item, int]] = []
    offset = 0
    for it in order:
        t = it.tensor
        entries[it.name] = {
            "dtype": t.dtype,
            "shape": list(t.shape),
            "data_offsets": [offset, offset + it.nbytes],
        }
        placed.append((it, offset))
        offset += it.nbytes
    raw = json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * ((8 - len(raw) % 8) % 8)
    return len(raw).to_bytes(8, "little") + raw, placed


# ------------------------------------------------------------------------------- copying


def _contiguous(t: TorchTensor) -> bool:
    return is_contiguous(t.shape, t.strides)


def _runs(t: TorchTensor) -> tuple[int, list[tuple[int, int]]]:
    """(elements per contiguous run, the strides and sizes of the outer dimensions)."""
    return runs(t.shape, t.strides)


class _Writer:
    """Bytes into the output file, through its SHA-256 and the current tensor's digest."""

    def __init__(self, fd: int, path: str, progress: Progress | None) -> None:
        self.fd = fd
        self.path = path
        self.file = hashlib.sha256()
        self.tensor: Hasher = tensor_hasher("", ())
        self.progress = progress

    def write(self, data: bytes | memoryview, tensor: bool = True) -> None:
        view = memoryview(data)
        if tensor:
            self.tensor.update(view)
        self.file.update(view)
        with reading(self.path):
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
        if tensor and self.progress is not None:
            self.progress(len(data))


class _Sources:
    """Open pickles, read by byte ranges into one reused buffer."""

    def __init__(self) -> None:
        self.fds: dict[str, int] = {}
        self.buf = page_aligned(BUFFER_BYTES)

    def fd(self, path: str) -> int:
        if path not in self.fds:
            self.fds[path] = open_fd(path)
        return self.fds[path]

    def read_into(self, path: str, offset: int, view: memoryview) -> None:
        fd = self.fd(path)
        done = 0
        with reading(path):
            while done < len(view):
                n = os.preadv(fd, [view[done:]], offset + done)
                if n == 0:
                    raise ConvertError(path, f"ends at byte {offset + done:,}, inside a storage")
                done += n

    def copy(self, path: str, offset: int, nbytes: int, out: _Writer) -> None:
        view = memoryview(self.buf)
        done = 0
        while done < nbytes:
            n = min(BUFFER_BYTES, nbytes - done)
            self.read_into(path, offset + done, view[:n])
            out.write(view[:n])
            done += n

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def _check_gather(t: TorchTensor, path: str, name: str) -> None:
    """Refuse, before anything is written, a strided view too sparse to gather in bounds."""
    item = dtypes.lookup(t.dtype).bytes_per_block
    why = gather_refusal(t.shape, t.strides, item, run_bytes=RUN_BYTES, gather_bytes=GATHER_BYTES)
    if why is not None:
        raise ConvertError(path, f"tensor {name!r} is {why}")


def _gather(src: _Sources, it: _Item, out: _Writer) -> None:
    """A strided view, written as its contiguous copy in C order."""
    t, path = it.tensor, it.source
    item = dtypes.lookup(t.dtype).bytes_per_block
    base = it.storage.data_offset
    assert base is not None
    run, outer = _runs(t)
    if run * item >= RUN_BYTES:
        for start in run_starts(outer, t.storage_offset):
            src.copy(path, base + start * item, run * item, out)
        return
    _check_gather(t, path, it.name)
    span = extent(t.shape, t.strides)
    import numpy as np

    raw = bytearray(span * item)
    src.read_into(path, base + t.storage_offset * item, memoryview(raw))
    flat = np.frombuffer(raw, dtype=_UINT.get(item, f"V{item}"))
    view = np.lib.stride_tricks.as_strided(
        flat, shape=t.shape, strides=tuple(s * item for s in t.strides), writeable=False
    )

    def emit(a: Any) -> None:
        if a.nbytes <= BUFFER_BYTES or a.ndim <= 1:
            out.write(np.ascontiguousarray(a).tobytes())
            return
        for sub in a:
            emit(sub)

    emit(view)


def _write_tensor(src: _Sources, it: _Item, out: _Writer) -> bool:
    """Copy one tensor's bytes; True when it was gathered from a strided view."""
    t = it.tensor
    out.tensor = tensor_hasher(t.dtype, t.shape)
    if t.numel == 0:
        return False
    item = dtypes.lookup(t.dtype).bytes_per_block
    assert it.storage.data_offset is not None
    if _contiguous(t):
        src.copy(it.source, it.storage.data_offset + t.storage_offset * item, it.nbytes, out)
        return False
    _gather(src, it, out)
    return True


# ------------------------------------------------------------------------------- writing


def _existing(out: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(out) if _OUTPUT.fullmatch(n))
    except FileNotFoundError:
        return []


def _prepare_out(out: str, force: bool) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConvertError(out, "exists and is not a folder; give the folder to write into")
    in_the_way = _existing(out)
    if in_the_way and not force:
        raise ConvertError(
            os.path.join(out, in_the_way[0]),
            lambda p: f"already exists; give {p('force')} to replace it",
        )
    with reading(out):
        os.makedirs(out, exist_ok=True)


def _temp(out: str, name: str) -> tuple[int, str]:
    with reading(out):
        return tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".tmp")


def _verify(
    temp: str, final: str, header: bytes, placed: list[tuple[_Item, int]], sha: str,
    digests: dict[str, str], progress: Progress | None,
) -> int:  # fmt: skip
    """Re-read a written file: the strict header parser, then every byte hashed."""
    fh = read_local_header(temp)
    want = {it.name: (it.tensor.dtype, it.tensor.shape, off) for it, off in placed}
    got = {t.name: (t.dtype, t.shape, t.start) for t in fh.tensors}
    if got != want or dict(fh.metadata) != METADATA or fh.header_size != len(header) - 8:
        raise ConvertError(final, "re-read header differs from the one written")
    for t in fh.tensors:
        if tensor_digest(fh, t, progress) != digests[t.name]:
            raise ConvertError(final, f"tensor {t.name!r} reads back unlike what was copied")
    if file_sha256(temp) != sha:
        raise ConvertError(final, "file reads back different from what was written")
    return fh.file_size


def convert_checkpoint(
    paths: Sequence[str],
    out: str,
    *,
    max_shard_size: int,
    force: bool = False,
    prefix: str | None = None,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
) -> ConvertReport:
    """Convert the pickles at ``paths`` (files or folders) into safetensors under ``out``.

    ``progress`` gets the bytes copied, then re-read (each tensor's bytes twice in all);
    ``on_total`` is told that total first.
    """
    if max_shard_size <= 0:
        raise UsageError(str(max_shard_size), "must be more than 0 bytes", param="max_shard_size")
    items, ties, skipped, read = plan_sources(paths, prefix)
    shards = split_shards(items, max_shard_size)
    names = shard_names(len(shards))
    if on_total is not None:
        on_total(2 * sum(it.nbytes for it in items))
    _prepare_out(out, force)
    written: list[tuple[str, str]] = []  # (temp, final)
    files: list[ConvertedFile] = []
    tensors: list[ConvertedTensor] = []
    src = _Sources()
    try:
        for name, shard in zip(names, shards, strict=True):
            final = os.path.join(out, name)
            header, placed = layout(shard)
            fd, temp = _temp(out, name)
            written.append((temp, final))
            w = _Writer(fd, final, progress)
            digests: dict[str, str] = {}
            try:
                w.write(header, tensor=False)
                for it, _ in placed:
                    gathered = _write_tensor(src, it, w)
                    digests[it.name] = w.tensor.hexdigest()
                    t = it.tensor
                    tensors.append(
                        ConvertedTensor(
                            it.name, t.dtype, t.shape, name, it.source, digests[it.name], gathered
                        )
                    )
                with reading(final):
                    os.fsync(fd)
            finally:
                os.close(fd)
            sha = w.file.hexdigest()
            size = _verify(temp, final, header, placed, sha, digests, progress)
            files.append(ConvertedFile(final, size, sha, len(shard)))
        index_path = None
        if len(shards) > 1:
            index_path = os.path.join(out, INDEX_NAME)
            total = sum(it.nbytes for it in items)
            weight_map = {t.name: t.file for t in tensors}
            doc = {"metadata": {"total_size": total}, "weight_map": weight_map}
            fd, temp = _temp(out, INDEX_NAME)
            written.append((temp, index_path))
            with reading(index_path), os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
        with reading(out):
            for temp, final in written:  # shards first, the index last
                os.replace(temp, final)
            keep = {os.path.basename(f) for _, f in written}
            for stale in _existing(out):  # a previous conversion's other shards (force)
                if stale not in keep:
                    os.remove(os.path.join(out, stale))
        written = []
    finally:
        src.close()
        for temp, _ in written:
            try:
                os.remove(temp)
            except OSError:
                pass
    order = {it.name: i for i, it in enumerate(items)}
    tensors.sort(key=lambda t: order[t.name])  # the state dict's order
    return ConvertReport(
        sources=tuple(read),
        out=out,
        files=tuple(files),
        index=index_path,
        tensors=tuple(tensors),
        ties=tuple(ties),
        skipped=tuple(skipped),
        total_size=sum(it.nbytes for it in items),
        max_shard_size=max_shard_size,
        weights_digest=weights_digest((t.name, t.digest) for t in tensors),
    )
