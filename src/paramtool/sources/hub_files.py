"""The Hub's files as byte sources: ranged reads of shard headers, online or from the cache.

Weights live in LFS, so the Hub answers a ranged GET with a redirect to its CDN, which the
read follows; a second range goes straight to that CDN URL, without the token (the token only
ever goes to the Hub). Offline, the same reads come from the huggingface_hub cache.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from paramtool.errors import HubError
from paramtool.formats.index import MAX_JSON_SIDECAR
from paramtool.formats.safetensors import header_length, parse_header, read_local_header
from paramtool.records import FileHeader
from paramtool.sources.hub_http import iter_body, read_body, stream_get

FIRST_RANGE_SINGLE = 100_000  # asked of a file the index says nothing about, as huggingface_hub
# JSON bytes around each tensor name in a header: '"":{"dtype":"","shape":[],"data_offsets":[,]},'
# is 46, plus the dtype (4 for BF16), the shape (about 11 for 2-D) and two offsets (10 digits each
# in a 5 GB shard). Measured on the layouts in tests/layouts.py (Llama 3.1 8B/70B/405B, Mixtral,
# Qwen2, Gemma 2, Phi-3, Falcon, DeepSeek-V3): 73.6 to 80.7 per tensor, so with the slack below
# the first range never falls short there and asks 1.6-5.9% more than the headers hold.
_ENTRY_OVERHEAD = 81
_HEADER_SLACK = 48  # the 8-byte length, {"__metadata__":{"format":"pt"}, and padding to 8 bytes
_RETRIES = 2  # per shard range, on 429/5xx, timeouts and dropped keep-alive connections


def estimate_header_bytes(names: Sequence[str]) -> int:
    """A first range that holds the whole header of a shard holding ``names``, most of the time.

    Asking too much costs bytes, too little a second request for the rest.
    """
    return sum(len(n.encode()) for n in names) + _ENTRY_OVERHEAD * len(names) + _HEADER_SLACK


class ByteSource(Protocol):
    """Where a repo's files come from: the Hub, or the local cache when offline."""

    def json(self, name: str) -> bytes: ...

    def header(self, name: str, first: int) -> FileHeader: ...


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
def _download_options() -> dict[str, Any]:
    """What keeps ``hf_hub_download`` silent, per call: a silent ``tqdm_class`` where it takes one.

    The 0.x line's takes none; its bars then follow huggingface_hub's own switch
    (``HF_HUB_DISABLE_PROGRESS_BARS``), which is the application's to set, not paramtool's core.
    """
    from huggingface_hub import hf_hub_download

    if "tqdm_class" in inspect.signature(hf_hub_download).parameters:
        return {"tqdm_class": _silent_tqdm()}
    return {}


class HubRanges:
    """Files at one commit of a Hub repo: JSON through the cache, headers by range requests."""

    def __init__(self, repo_id: str, sha: str, revision: str | None, token: str | None) -> None:
        from huggingface_hub import constants
        from huggingface_hub.utils import build_hf_headers

        self.repo_id, self.sha, self.revision, self.token = repo_id, sha, revision, token
        self._headers = build_hf_headers(token=token)
        self._anonymous = {k: v for k, v in self._headers.items() if k.lower() != "authorization"}
        self._timeout = constants.HF_HUB_DOWNLOAD_TIMEOUT

    def json(self, name: str) -> bytes:
        """A small file at the pinned commit, through the cache.

        Cached at that commit: no request. Otherwise it is downloaded at the revision the
        user asked for, so that the cache also records where that branch or tag points and
        an offline run finds the snapshot; should the branch have moved since
        ``model_info``, the file is fetched again at the commit.
        """
        from huggingface_hub import hf_hub_download, try_to_load_from_cache

        cached = try_to_load_from_cache(self.repo_id, name, revision=self.sha)
        if isinstance(cached, str):
            path = Path(cached)
        else:
            kw = {"token": self.token, **_download_options()}
            path = Path(hf_hub_download(self.repo_id, name, revision=self.revision, **kw))
            if path.parts[-len(name.split("/")) - 1] != self.sha:
                path = Path(hf_hub_download(self.repo_id, name, revision=self.sha, **kw))
        if path.stat().st_size > MAX_JSON_SIDECAR:
            raise HubError(f"{self.repo_id}/{name}", f"larger than {MAX_JSON_SIDECAR:,} bytes")
        return path.read_bytes()

    def _range(
        self, url: str, start: int, stop: int, headers: dict[str, str]
    ) -> tuple[bytes, int, str]:
        """Bytes [start, stop) of a file, the file's size, and the URL that served them.

        Reading stops at ``stop``: a server that ignores Range costs a dropped connection,
        not the whole file.
        """
        from huggingface_hub.utils import hf_raise_for_status

        from paramtool.sources.hub_http import http_errors

        want = stop - start
        with stream_get(
            url,
            {**headers, "Range": f"bytes={start}-{stop - 1}"},
            timeout=self._timeout,
            max_retries=_RETRIES,
            base_wait_time=0.5,
            max_wait_time=2,
        ) as r:
            served_by = str(r.url)
            if r.status_code == 416:  # the file is shorter than ``start``
                read_body(r)
                return b"", _content_range_total(r.headers) or 0, served_by
            if r.status_code >= 400:
                read_body(r)
                hf_raise_for_status(r)
            skip = 0
            if r.status_code == 206:
                total = _content_range_total(r.headers)
                first = r.headers.get("content-range", "").partition(" ")[2].partition("-")[0]
                if total is None or first != str(start):
                    raise HubError(url.split("?")[0], "the server sent a bad Content-Range")
            else:  # the range was ignored: the body is the file from byte 0
                length = r.headers.get("content-length", "")
                if not length.isdigit():
                    raise HubError(url.split("?")[0], "the server did not give the file's size")
                total, skip = int(length), start
            buf = bytearray()
            try:
                for chunk in iter_body(r):
                    buf += chunk
                    if len(buf) >= skip + want:
                        break
            except http_errors().network as e:  # thrown into the backoff, it would break it
                raise HubError(
                    url.split("?")[0], f"the connection failed while reading ({type(e).__name__})"
                ) from None
        return bytes(buf[skip : skip + want]), total, served_by

    def header(self, name: str, first: int) -> FileHeader:
        from huggingface_hub import hf_hub_url

        url = hf_hub_url(self.repo_id, name, revision=self.sha)
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


class CachedRanges:
    """The files of one snapshot in the huggingface_hub cache (HF_HUB_OFFLINE=1)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def json(self, name: str) -> bytes:
        path = self.folder / name
        if path.stat().st_size > MAX_JSON_SIDECAR:
            raise HubError(name, f"larger than {MAX_JSON_SIDECAR:,} bytes")
        return path.read_bytes()

    def header(self, name: str, first: int) -> FileHeader:
        return read_local_header(self.folder / name, name)
