"""Build a :class:`~paramtool.records.Checkpoint` from shard headers, checked against their index.

Shared by every byte source (local files, the Hub, the cache), so a Hub answer equals a local one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any

from paramtool.errors import ShardIndexError
from paramtool.formats.sniff import misnamed_note
from paramtool.records import _EMPTY, Checkpoint, FileHeader, HubInfo

_NAME = attrgetter("name")


def misnamed_notes(headers: Iterable[FileHeader]) -> list[str]:
    """One warning per file whose extension claims another format than its bytes."""
    return [n for h in headers if (n := misnamed_note(h.path, h.format)) is not None]


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
    code_files: tuple[str, ...] | None = None,
) -> Checkpoint:
    """Check the shards against the index (when there is one) and build the Checkpoint.

    ``shard_names`` gives, for each header in order, the name the index uses for it.
    """
    notes = [*warnings, *misnamed_notes(headers)]
    if weight_map is not None:
        where = index_path or source
        assert shard_names is not None and len(shard_names) == len(headers)
        names = [list(map(_NAME, h.tensors)) for h in headers]
        for h_names, shard in zip(names, shard_names, strict=True):
            owners = list(map(weight_map.get, h_names))
            if owners.count(shard) != len(owners):  # name the first that is off
                for name, owner in zip(h_names, owners, strict=True):
                    if owner is None:
                        raise ShardIndexError(
                            where,
                            f"shard {shard!r} holds tensor {name!r}, which the index does not name",
                        )
                    if owner != shard:
                        raise ShardIndexError(
                            where, f"tensor {name!r} is indexed in {owner!r} but found in {shard!r}"
                        )
        if all(h.format == "safetensors" for h in headers) and len(set(shard_names)) == len(
            shard_names
        ):  # a header's names are unique (its parser refuses a repeated key), and each
            seen_count = sum(map(len, names))  # is indexed in its own shard: none is in two
        else:
            seen_count = len(set(chain.from_iterable(names)))
        if seen_count != len(weight_map):  # every name seen is indexed: some were not seen
            seen = set(chain.from_iterable(names))
            missing = [n for n in weight_map if n not in seen]
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
        notes.extend(_duplicates_note(headers))
    pickled = bool(headers) and all(h.format == "pickle" for h in headers)
    return Checkpoint(
        source=source,
        files=tuple(headers),
        format="pickle" if pickled else "safetensors",
        config=config,
        adapter_config=adapter_config,
        index_path=index_path,
        index_metadata=index_metadata,
        warnings=tuple(notes),
        hub=hub,
        pickle_files=pickle_files,
        code_files=code_files,
    )


def _duplicates_note(headers: Sequence[FileHeader]) -> list[str]:
    """One line for all the tensor names held by more than one file (two checkpoints read
    as one share thousands): how many, and the first of them."""
    if len(headers) == 1 and headers[0].format == "safetensors":
        return []  # one header's names are unique: its parser refuses a repeated key
    every = list(chain.from_iterable(map(_NAME, h.tensors) for h in headers))
    if len(set(every)) == len(every):
        return []
    names: dict[str, str] = {}
    first: tuple[str, str, str] | None = None
    count = 0
    for h in headers:
        for t in h.tensors:
            owner = names.get(t.name)
            if owner is None:
                names[t.name] = h.path
                continue
            count += 1
            if first is None:
                first = (t.name, owner, h.path)
    if first is None:
        return []
    name, a, b = first
    if count == 1:
        return [f"tensor {name!r} appears in both {a} and {b}"]
    return [
        f"{count:,} tensor names appear in more than one file (the first, {name!r}, "
        f"in both {a} and {b}); several checkpoints read as one?"
    ]
