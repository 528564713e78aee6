"""The shard index (``*.safetensors.index.json``, or a pickle's ``pytorch_model.bin.index.json``,
the same JSON): parsed and checked, never followed.

An index maps each tensor name to the shard that holds it; every shard it names must
stay inside the index's folder.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from paramtool.errors import ShardIndexError

MAX_JSON_SIDECAR = 50_000_000  # config.json / index files larger than this are refused


def check_shard_name(shard: str, index_path: str) -> None:
    """A shard named by an index must stay inside the index's folder."""
    if not shard or "\x00" in shard:
        raise ShardIndexError(index_path, f"shard name {shard!r} is empty or invalid")
    try:
        shard.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape ("\\ud800"): no file has this name
        raise ShardIndexError(
            index_path, f"shard name {ascii(shard)[:80]} is not valid Unicode"
        ) from None
    if shard.startswith(("/", "\\")) or (len(shard) > 1 and shard[1] == ":") or "\\" in shard:
        raise ShardIndexError(index_path, f"shard {shard!r} is an absolute or non-POSIX path")
    parts = posixpath.normpath(shard).split("/")
    if ".." in shard.split("/") or parts[0] == "..":
        raise ShardIndexError(index_path, f"shard {shard!r} points outside the checkpoint folder")


def parse_index(raw: bytes, index_path: str) -> tuple[dict[str, str], Mapping[str, Any]]:
    """Parse a shard index (``*.safetensors.index.json``, ``*.bin.index.json``) into
    (weight_map, metadata)."""
    obj = _parse_typed(raw) if len(raw) >= TYPED_FROM_BYTES else None
    if obj is None:
        obj = _parse_json(raw, index_path)
    if not isinstance(obj, dict) or not isinstance(obj.get("weight_map"), dict):
        raise ShardIndexError(index_path, "expected a JSON object with a 'weight_map' object")
    weight_map: dict[str, Any] = obj["weight_map"]
    try:
        shards = set(weight_map.values())
    except TypeError:  # a list or an object among them
        shards = {None}
    if weight_map and set(map(type, shards)) != {str}:
        for name, shard in weight_map.items():
            if not isinstance(shard, str):
                raise ShardIndexError(index_path, f"weight_map[{name!r}] is not a file name")
    for shard in shards:
        check_shard_name(shard, index_path)
    meta = obj.get("metadata") or {}
    if not isinstance(meta, dict):
        raise ShardIndexError(index_path, "'metadata' is not an object")
    return weight_map, MappingProxyType(meta)  # parsed here: nobody else holds it


# An index past this size (a checkpoint of ~20k tensors) is decoded by msgspec, about twice
# as fast as json; its import (~15 ms) is not worth it below.
TYPED_FROM_BYTES = 1 << 20
_typed: list[Any] = []


def _parse_typed(raw: bytes) -> dict[str, Any] | None:
    """The index as ``json.loads`` reads it, or None (then json reads it, and says what is
    wrong). Only the two keys an index has are taken (any other declines), ``weight_map``
    as strings (a repeated key keeps the last, as json's), ``metadata`` cut out and read by
    json; no backslash, so no escape can decode differently; msgspec refuses what json
    refuses here (invalid or non-UTF-8 bytes, control characters, trailing data)."""
    if b"\\" in raw:
        return None
    if not _typed:
        import msgspec

        index = msgspec.defstruct(
            "Index",
            [("weight_map", dict[str, str]), ("metadata", msgspec.Raw, msgspec.Raw(b"null"))],
            forbid_unknown_fields=True,
        )
        _typed.extend((msgspec.json.Decoder(index).decode, msgspec.DecodeError))
    decode, failed = _typed
    try:
        obj = decode(raw)
        meta = json.loads(bytes(obj.metadata))
    except (failed, ValueError, RecursionError):
        return None
    return {"weight_map": obj.weight_map, "metadata": meta}


def _parse_json(raw: bytes, index_path: str) -> Any:
    text: str | bytes = raw
    if raw[:1] == b"{" and raw[1:2] != b"\x00":  # json.loads(raw) would decode it as UTF-8
        try:  # with "surrogatepass" (slower), which only differs where strict UTF-8 refuses
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ShardIndexError(index_path, f"not valid JSON: {e}") from None
