"""The Hub's files as byte sources: ranged reads of shard headers, online or from the cache.

Weights live in LFS, so the Hub answers a ranged GET with a redirect to its CDN, which the
read follows; a second range goes straight to that CDN URL, without the token (the token only
ever goes to the Hub). Offline, the same reads come from the huggingface_hub cache.

A pickled file (``.bin``/``.pt``...) is read through :class:`RangeReader`: a block from byte 0
(a torch zip's ``data.pkl`` comes first; a legacy file's pickles are all there is before the
storages), for a zip one block at the end (the end records and the central directory), and
a range for whatever a read then needs beyond those, each fetched once.

The small JSON files a repo most likely has are asked for at the requested revision at the
same time as the model info, before the commit is known (:mod:`~paramtool.sources.hub_early`);
:class:`HubRanges` uses such an answer only when it is the file at the pinned commit.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from paramtool.errors import HubError
from paramtool.files import open_binary
from paramtool.formats.index import MAX_JSON_SIDECAR
from paramtool.formats.safetensors import header_length, parse_header, read_local_header
from paramtool.records import FileHeader
from paramtool.sources.hub_early import (
    DEFAULT_REVISION,
    EarlyFile,
    cached_file,
    plain_path,
    repo_storage,
)
from paramtool.sources.hub_http import Answer, fetch, hub_headers, resolve_url, shown_url

FIRST_RANGE_SINGLE = 100_000  # asked of a file the index says nothing about, as huggingface_hub
# JSON bytes around each tensor name in a header: '"":{"dtype":"","shape":[],"data_offsets":[,]},'
# is 46, plus the dtype (4 for BF16), the shape (about 11 for 2-D) and two offsets (10 digits each
# in a 5 GB shard). Measured on the layouts in tests/layouts.py (Llama 3.1 8B/70B/405B, Mixtral,
# Qwen2, Gemma 2, Phi-3, Falcon, DeepSeek-V3): 73.6 to 80.7 per tensor, so with the slack below
# the first range never falls short there and asks 1.6-5.9% more than the headers hold.
_ENTRY_OVERHEAD = 81
_HEADER_SLACK = 48  # the 8-byte length, {"__metadata__":{"format":"pt"}, and padding to 8 bytes
FIRST_RANGE_PICKLE = 1 << 16  # the first block of a pickle the index says nothing about
TAIL_RANGE_PICKLE = 1 << 16  # the last block of such a zip: end records and directory
# data.pkl bytes per tensor beside its name (torch.save of a state dict: the rebuild call, the
# persistent id, shape and strides) and central-directory bytes per storage beside the shard's
# name (46, "/data/" and the key, a zip64 offset past 4 GB): tests/test_hub_pickle.py measures.
_PICKLE_PER_TENSOR = 96
_DIRECTORY_PER_STORAGE = 80
_TAIL_SLACK = 4096  # the end records and the directory's fixed entries (version, byteorder...)
MIN_FETCH = 1024  # bytes: the least one range request of a pickled file asks for
MAX_PICKLE_REQUESTS = 16  # range requests for one pickled file (a legacy prefix doubles)


def estimate_pickle_bytes(names: Sequence[str], shard: str) -> tuple[int, int]:
    """(first block, last block) for a pickled shard holding ``names``: ``data.pkl``, and the
    zip's central directory with its end records."""
    stem = len(shard.rsplit("/", 1)[-1].encode()) + 16
    first = sum(len(n.encode()) for n in names) + _PICKLE_PER_TENSOR * len(names) + 4096
    last = (_DIRECTORY_PER_STORAGE + stem) * (len(names) + 8) + 1024
    return first, last


def estimate_header_bytes(names: Sequence[str]) -> int:
    """A first range that holds the whole header of a shard holding ``names``, most of the time.

    Asking too much costs bytes, too little a second request for the rest.
    """
    return sum(len(n.encode()) for n in names) + _ENTRY_OVERHEAD * len(names) + _HEADER_SLACK


class ByteSource(Protocol):
    """Where a repo's files come from: the Hub, or the local cache when offline."""

    def json(self, name: str) -> bytes: ...

    def header(self, name: str, first: int) -> FileHeader: ...

    def pickle_header(self, name: str, first: int, last: int) -> FileHeader:
        """A pickled file's records, read symbolically; ``first``/``last``: the sizes of the
        blocks to fetch from its start and (a zip) its end."""
        ...

    def where(self, name: str) -> str:
        """How an error names the file: its URL's host and path, or its path in the cache."""
        ...


def _same_origin(a: str, b: str) -> bool:
    x, y = urlsplit(a), urlsplit(b)
    return (x.scheme, x.netloc) == (y.scheme, y.netloc)


def _content_range_total(headers: Any) -> int | None:
    total = headers.get("content-range", "").rpartition("/")[2].strip()
    return int(total) if total.isdigit() else None


@functools.cache
def _silent_tqdm() -> type[Any]:
    """huggingface_hub's tqdm, always disabled: the core draws nothing."""
    from huggingface_hub.utils import tqdm

    class Silent(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

    return Silent


@functools.cache
def download_options() -> dict[str, Any]:
    """What keeps ``hf_hub_download`` silent, per call: a silent ``tqdm_class`` where it takes one.

    The 0.x line's takes none; its bars then follow huggingface_hub's own switch
    (``HF_HUB_DISABLE_PROGRESS_BARS``), which is the application's to set, not paramtool's core.
    """
    from huggingface_hub import hf_hub_download

    if "tqdm_class" in inspect.signature(hf_hub_download).parameters:
        return {"tqdm_class": _silent_tqdm()}
    return {}


class HubRanges:
    """Files at one commit of a Hub repo: JSON through the cache, headers by range requests.

    Every file is asked for at the commit ``sha`` (model info's), never at a branch, so all
    the files of one run come from that one commit even if the branch moves meanwhile. The
    one exception, ``early`` (:class:`EarlyFile`), is used only when the Hub says it served
    it from that commit.
    """

    def __init__(
        self,
        repo_id: str,
        sha: str,
        revision: str | None,
        token: str | None,
        headers: dict[str, str] | None = None,
        early: dict[str, EarlyFile] | None = None,
    ) -> None:
        self.repo_id, self.sha, self.revision, self.token = repo_id, sha, revision, token
        self._headers = hub_headers(token) if headers is None else headers
        self._anonymous = {k: v for k, v in self._headers.items() if k.lower() != "authorization"}
        self._early = early or {}

    def where(self, name: str) -> str:
        return shown_url(resolve_url(self.repo_id, name, self.sha))

    def json(self, name: str) -> bytes:
        """A small file at the pinned commit: from the cache, else downloaded into it.

        The download is refused while streaming once it passes :data:`MAX_JSON_SIDECAR`.
        """
        cached = cached_file(self.repo_id, self.sha, name)
        if cached is not None:
            return read_capped(cached, f"{self.repo_id}/{name}")
        url = resolve_url(self.repo_id, name, self.sha)
        early = self._early.get(name)
        answer = early.at(self.sha) if early is not None else None
        if answer is None:
            answer = fetch(url, self._headers, limit=MAX_JSON_SIDECAR, what=name)
        if not answer.complete:
            raise HubError(shown_url(url), f"larger than {MAX_JSON_SIDECAR:,} bytes, refused")
        store_in_cache(self.repo_id, self.sha, self.revision, name, answer)
        return answer.body

    def _range(
        self, url: str, start: int, stop: int, headers: dict[str, str]
    ) -> tuple[bytes, int, str]:
        """Bytes [start, stop) of a file, the file's size, and the URL that served them.

        Reading stops at ``stop``: a server that ignores Range costs a dropped connection,
        not the whole file.
        """
        want = stop - start
        r = fetch(
            url,
            {**headers, "Range": f"bytes={start}-{stop - 1}"},
            limit=stop,
            what=f"range of {url.rsplit('/', 1)[-1].split('?')[0]}",
            cut=True,
            accept=(416,),
        )
        if r.status == 416:  # the file is shorter than ``start``
            return b"", _content_range_total(r.headers) or 0, r.url
        skip = 0
        if r.status == 206:
            total = _content_range_total(r.headers)
            first = r.headers.get("content-range", "").partition(" ")[2].partition("-")[0]
            if total is None or first != str(start):
                raise HubError(shown_url(url), "the server sent a bad Content-Range")
        else:  # the range was ignored: the body is the file from byte 0
            length = r.headers.get("content-length", "")
            if not length.isdigit():
                raise HubError(shown_url(url), "the server did not give the file's size")
            total, skip = int(length), start
        return r.body[skip : skip + want], total, r.url

    def header(self, name: str, first: int) -> FileHeader:
        url = resolve_url(self.repo_id, name, self.sha)
        first = max(first, 16)
        raw, total, served_by = self._range(url, 0, first, self._headers)
        n = header_length(raw[:8], name, total)
        if 8 + n > len(raw) and len(raw) == min(first, total):
            headers = self._headers if _same_origin(served_by, url) else self._anonymous
            more, _, _ = self._range(served_by, len(raw), 8 + n, headers)
            raw += more
        body = raw[8 : 8 + n]
        if len(body) != n:
            raise HubError(name, f"the Hub sent {len(raw):,} bytes of a {8 + n:,}-byte header")
        return parse_header(body, name, data_size=total - 8 - n)

    def pickle_header(self, name: str, first: int, last: int) -> FileHeader:
        """A pickled file read by ranges (:class:`RangeReader`), never unpickled: ``first``
        bytes from its start, then for a zip ``last`` bytes from its end, then what is missing."""
        from paramtool.formats.torch_pickle import Ranged, read_torch_source
        from paramtool.sources.pickled import to_header

        reader = RangeReader(self, resolve_url(self.repo_id, name, self.sha))
        reader.fetch(0, max(first, 64))
        if reader.read_at(0, 2) == b"PK":
            # torch writes data.pkl first; the next local header ends it. The directory holds
            # about as many bytes per storage as data.pkl per tensor: that sizes the tail.
            after = reader.read_at(0, first).find(b"PK\x03\x04", 30)
            tail = min(reader.size, after + _TAIL_SLACK if after > 0 else max(last, 64))
            reader.read_at(reader.size - tail, tail)  # fetches only what the first lacks
        ck = read_torch_source(
            reader.read_at, reader.size, name, Ranged(reader.held, min(first, reader.size))
        )
        return to_header(ck, reader.size)


class RangeReader:
    """``read_at(offset, n)`` over one file on the Hub, served from the blocks fetched so far.

    A read that is not all in hand fetches what is missing (a request per gap, at most
    :data:`MAX_PICKLE_REQUESTS` in all). The first request learns the file's size.
    """

    def __init__(self, ranges: HubRanges, url: str) -> None:
        self._ranges, self._url, self._served_by = ranges, url, url
        self._blocks: list[tuple[int, bytes]] = []  # disjoint, sorted by start
        self.size = -1
        self.requests = 0

    def fetch(self, start: int, stop: int) -> None:
        if self.size >= 0:
            start, stop = max(0, start), min(stop, self.size)
        if stop <= start:
            return
        self.requests += 1
        if self.requests > MAX_PICKLE_REQUESTS:
            raise HubError(
                shown_url(self._url), f"needs more than {MAX_PICKLE_REQUESTS} range requests"
            )
        r = self._ranges
        headers = r._headers if _same_origin(self._served_by, self._url) else r._anonymous
        raw, total, served_by = r._range(self._served_by, start, stop, headers)
        if self.size < 0:
            self.size, self._served_by = total, served_by
        elif total != self.size:
            raise HubError(shown_url(self._url), "the file changed size between two requests")
        if len(raw) != min(stop, self.size) - start:
            raise HubError(shown_url(self._url), f"the Hub sent a short range at byte {start:,}")
        self._add(start, raw)

    def _add(self, start: int, raw: bytes) -> None:
        if not raw:
            return
        blocks = [*self._blocks, (start, raw)]
        blocks.sort(key=lambda b: b[0])
        merged: list[tuple[int, bytes]] = []
        for s, b in blocks:
            if merged and s <= merged[-1][0] + len(merged[-1][1]):
                ms, mb = merged[-1]
                merged[-1] = (ms, mb + b[ms + len(mb) - s :])
            else:
                merged.append((s, b))
        self._blocks = merged

    def _gaps(self, offset: int, stop: int) -> list[tuple[int, int]]:
        gaps = []
        at = offset
        for s, b in self._blocks:
            if s + len(b) <= at:
                continue
            if s >= stop:
                break
            if s > at:
                gaps.append((at, s))
            at = max(at, s + len(b))
        if at < stop:
            gaps.append((at, stop))
        return gaps

    def held(self, offset: int, n: int) -> bool:
        """Whether bytes [offset, offset + n) of the file are fetched already."""
        stop = min(offset + n, self.size)
        return offset >= 0 and not self._gaps(offset, stop)

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or offset >= self.size:
            return b""
        stop = min(offset + n, self.size)
        # a small read (a local header) fetches a little more: its name comes next
        for a, b in self._gaps(offset, max(stop, min(offset + MIN_FETCH, self.size))):
            self.fetch(a, b)
        for at, block in self._blocks:
            if at <= offset and stop <= at + len(block):
                return block[offset - at : stop - at]
        raise HubError(shown_url(self._url), f"no bytes at {offset:,}")  # pragma: no cover


def read_capped(path: Path, shown: str) -> bytes:
    """A small file of the cache, refused past :data:`MAX_JSON_SIDECAR` whatever it claims."""
    with open_binary(path, shown) as f:  # a regular file only: never a FIFO or a device
        raw = f.read(MAX_JSON_SIDECAR + 1)
    if len(raw) > MAX_JSON_SIDECAR:
        raise HubError(shown, f"larger than {MAX_JSON_SIDECAR:,} bytes")
    return raw


def store_in_cache(repo_id: str, sha: str, revision: str | None, name: str, answer: Answer) -> None:
    """Put a downloaded file into the huggingface_hub cache, laid out as huggingface_hub does.

    ``blobs/<etag>``, ``snapshots/<sha>/<name>`` linking to it, and ``refs/<revision>``
    (``main`` when none was named, as huggingface_hub) holding the sha: a repeat run
    reads it from there, and an offline one finds the snapshot by the name the user gave.
    Best effort: the cache only saves requests.
    """
    etag = answer.headers.get("x-linked-etag") or answer.headers.get("etag") or ""
    etag = etag.removeprefix("W/").strip('"')
    if not etag or "/" in etag or etag.startswith(".") or not plain_path(name):
        return
    storage = repo_storage(repo_id)
    blob = storage / "blobs" / etag
    pointer = storage / "snapshots" / sha / name
    try:
        if not blob.exists():
            blob.parent.mkdir(parents=True, exist_ok=True)
            tmp = blob.with_name(f"{etag}.{os.getpid()}.{threading.get_ident()}.incomplete")
            tmp.write_bytes(answer.body)
            os.replace(tmp, blob)
        if not pointer.exists():
            pointer.parent.mkdir(parents=True, exist_ok=True)
            try:
                pointer.symlink_to(os.path.relpath(blob, pointer.parent))
            except OSError:  # no symlinks here (Windows without developer mode): a copy
                pointer.write_bytes(answer.body)
        ref_name = revision or DEFAULT_REVISION
        if ref_name != sha and plain_path(ref_name):
            ref = storage / "refs" / ref_name
            if not ref.is_file() or ref.read_text() != sha:
                ref.parent.mkdir(parents=True, exist_ok=True)
                tmp = ref.with_name(f"{ref.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_text(sha)
                os.replace(tmp, ref)
    except OSError:
        pass


class CachedRanges:
    """The files of one snapshot in the huggingface_hub cache (HF_HUB_OFFLINE=1)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def where(self, name: str) -> str:
        return name

    def json(self, name: str) -> bytes:
        return read_capped(self.folder / name, name)

    def header(self, name: str, first: int) -> FileHeader:
        return read_local_header(self.folder / name, name)

    def pickle_header(self, name: str, first: int, last: int) -> FileHeader:
        from paramtool.sources.pickled import read_pickle_header

        return read_pickle_header(self.folder / name, name)
