"""A pickled PyTorch file as a :class:`~paramtool.records.FileHeader`, never unpickled.

:func:`paramtool.formats.torch_pickle.read_torch_file` reads the pickle symbolically; here
its tensors become the records every command uses: each tensor's byte span in the file
(its storage's data offset plus its storage offset), a storage shared by several tensors
(tied weights, views) counted once in bytes, a single wrapping prefix (``state_dict.``,
``model.``, ``module.``, as Lightning and DDP write) taken off the names, and everything
else (step counters, hyperparameters, optimizer state) kept as entries, not parameters.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from paramtool import dtypes
from paramtool.formats.torch_pickle import TorchCheckpoint, TorchTensor, read_torch_file
from paramtool.records import FileHeader, PickleEntry, PickleGlobal, PickleInfo, TensorInfo

WRAPPERS = ("state_dict", "module", "model")


def wrapper(names: Sequence[str], has_others: bool) -> str:
    """The single prefix that wraps the model's tensors, or "".

    ``state_dict.`` and ``module.`` wrap when every tensor is under them, or beside training
    state (non-tensor entries: a Lightning or training checkpoint); ``model.`` only beside
    training state, since a transformers state dict names ``model.layers...`` itself.

    >>> wrapper(["state_dict.w", "optimizer.state.0.exp_avg"], True)
    'state_dict.'
    >>> wrapper(["model.embed_tokens.weight", "lm_head.weight"], False)
    ''
    """
    for w in WRAPPERS:
        inside = sum(1 for n in names if n.startswith(w + "."))
        if not inside:
            continue
        if has_others or (inside == len(names) and w != "model"):
            return w + "."
    return ""


def _element_size(dtype: str) -> int:
    d = dtypes.lookup(dtype)
    return max(1, d.bytes_per_block // d.block_size)


def _contiguous(t: TorchTensor) -> bool:
    """Whether a view's elements lie back to back in C order (size-1 dimensions aside)."""
    expect = 1
    for d, s in zip(reversed(t.shape), reversed(t.strides), strict=True):
        if d != 1 and s != expect:
            return False
        expect *= d
    return True


def to_header(ck: TorchCheckpoint, file_size: int) -> FileHeader:
    """The records of one read pickle (tensors in file order; offsets absolute)."""
    names = [t.name for t in ck.tensors]
    prefix = wrapper(names, bool(ck.others))
    model = [t for t in ck.tensors if t.name.startswith(prefix)] if prefix else list(ck.tensors)
    aside = [t for t in ck.tensors if prefix and not t.name.startswith(prefix)]
    storages = {s.key: s for s in ck.storages}
    # One tensor per storage carries its bytes: the largest (the first of equals).
    owner: dict[str, TorchTensor] = {}
    for t in model:
        o = owner.get(t.storage)
        if o is None or t.numel > o.numel:
            owner[t.storage] = t
    tensors = []
    compressed = []
    data_size = 0
    for t in model:
        s = storages.get(t.storage)
        if s is not None and s.data_offset is None and t.numel:
            compressed.append((t.name[len(prefix) :], s.key))
        size = _element_size(t.dtype)
        base = s.data_offset if s is not None and s.data_offset is not None else 0
        start = base + t.storage_offset * size
        end = start + t.nbytes
        if owner[t.storage] is t:
            stored = s.nbytes if s is not None else end - start
            data_size += stored
        else:
            stored = 0
        strides = None if t.numel == 0 or _contiguous(t) else t.strides
        tensors.append(
            TensorInfo(
                t.name[len(prefix) :], t.dtype, t.shape, start, end, ck.path, stored, strides
            )
        )
    entries = [PickleEntry(t.name, "tensor") for t in aside]
    entries.extend(PickleEntry(o.name, o.kind) for o in ck.others)
    info = PickleInfo(
        container=ck.format,
        verdict=ck.verdict,
        unsafe_globals=tuple(PickleGlobal(g.qualname, g.offset) for g in ck.unsafe_globals),
        entries=tuple(entries),
        prefix=prefix,
        file_size=file_size,
        byteorder=ck.byteorder,
        compressed=tuple(compressed),
    )
    return FileHeader(
        path=ck.path,
        header_size=max(0, file_size - data_size),
        data_size=data_size,
        tensors=tuple(tensors),
        format="pickle",
        pickle=info,
    )


def read_pickle_header(path: str | os.PathLike[str], shown: str | None = None) -> FileHeader:
    """Read a local ``.bin``/``.pt``/``.pth``/``.ckpt`` (zip or legacy) without unpickling."""
    shown = shown if shown is not None else os.fspath(path)
    ck = read_torch_file(path, shown)
    return to_header(ck, os.stat(path).st_size)
