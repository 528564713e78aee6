"""Checkpoints on the Hugging Face Hub, read header-only by HTTP range requests.

huggingface_hub does the endpoint, auth (HF_TOKEN, stored login, --token),
revision resolution, retries, the cache and offline mode. An inspection is:

1. ``HfApi.model_info``, one request: it pins the commit sha, lists the files
   and gives the licence, the gating and the Hub's own parameter count.
2. The small JSON files (the index, ``config.json``, ``adapter_config.json``),
   concurrently, through ``hf_hub_download``: a HEAD and a GET each the first
   time, no request once cached. The HEAD costs one round trip on a first run;
   it buys the cache, so a repeat run at the same commit reads them from disk,
   and ``HF_HUB_OFFLINE=1`` finds the snapshot and names exactly the files it
   lacks (the shards) rather than "this repo is not in the cache".
3. For each shard, concurrently (``MAX_WORKERS``), one ranged GET sized from
   the index's tensor names to hold the whole header
   (:func:`estimate_header_bytes`), and a second only when the header turns out
   larger. Weights live in LFS, so the Hub answers with a redirect to its CDN,
   which the GET follows; a second range goes straight to that CDN URL, without
   the token (the token only ever goes to the Hub).

Headers go through the same strict parser as local files and the checkpoint is
assembled by the same code as a local one, so a Hub answer equals a local one.
With ``HF_HUB_OFFLINE=1`` the same steps read the huggingface_hub cache.
"""

from __future__ import annotations

import functools
import inspect
import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from paramtool.errors import HubError, ShardIndexError, UnsafeFormat
from paramtool.formats.index import MAX_JSON_SIDECAR, parse_index
from paramtool.formats.safetensors import header_length, parse_header, read_local_header
from paramtool.records import Checkpoint, FileHeader, HubInfo
from paramtool.sources.assemble import assemble
from paramtool.sources.hub_errors import hub_errors
from paramtool.sources.hub_http import iter_body, read_body, stream_get
from paramtool.sources.hub_source import HubSource
from paramtool.sources.weights import is_pickle_name, pick_weights

_SIDECARS = ("config.json", "adapter_config.json")

MAX_WORKERS = 64  # concurrent requests (huggingface_hub's shared pool holds 100; 0.x: per thread)
FIRST_RANGE_SINGLE = 100_000  # asked of a file the index says nothing about, as huggingface_hub
# JSON bytes around each tensor name in a header: '"":{"dtype":"","shape":[],"data_offsets":[,]},'
# is 46, plus the dtype (4 for BF16), the shape (about 11 for 2-D) and two offsets (10 digits each
# in a 5 GB shard). Measured on the layouts in tests/layouts.py (Llama 3.1 8B/70B/405B, Mixtral,
# Qwen2, Gemma 2, Phi-3, Falcon, DeepSeek-V3): 73.6 to 80.7 per tensor, so with the slack below
# the first range never falls short there and asks 1.6-5.9% more than the headers hold.
_ENTRY_OVERHEAD = 81
_HEADER_SLACK = 48  # the 8-byte length, {"__metadata__":{"format":"pt"}, and padding to 8 bytes
_INFO_FIELDS = ["sha", "siblings", "cardData", "gated", "private", "safetensors"]
_RETRIES = 2  # per shard range, on 429/5xx, timeouts and dropped keep-alive connections

Progress = Callable[[int, int], None]


def _prefix(subfolder: str) -> str:
    s = subfolder.strip("/")
    return f"{s}/" if s else ""


def pick_repo_weights(
    files: Sequence[str], subfolder: str, repo_id: str
) -> tuple[str | None, list[str]]:
    """From a repo's file list, choose (index file, weight files) under ``subfolder``.

    The rule is a local folder's (:func:`~paramtool.sources.weights.pick_weights`); GGUF
    is read from local files only, so a repo whose weights are GGUF is an error here.
    """
    prefix = _prefix(subfolder)
    pick = pick_weights(f[len(prefix) :] for f in files if f.startswith(prefix))
    if pick.kind == "index":
        if pick.choices:
            raise HubError(
                repo_id,
                f"several indexes ({', '.join(pick.choices)}); say which with a local path",
            )
        return prefix + pick.files[0], []
    if pick.kind == "safetensors":
        return None, [prefix + f for f in pick.files]
    if pick.kind == "gguf":
        shown = pick.files or pick.choices
        more = ", ..." if len(shown) > 1 else ""
        raise HubError(
            repo_id,
            f"the only weights are GGUF files ({prefix}{shown[0]}{more}); GGUF is "
            "read from local files: download one and inspect it",
        )
    if pick.kind == "pickle":
        more = ", ..." if len(pick.files) > 1 else ""
        raise UnsafeFormat(
            repo_id,
            f"the only weights are pickles ({prefix}{pick.files[0]}{more}); pickles can execute "
            "code, so nothing was downloaded; look for a safetensors revision or convert it",
        )
    nested = sorted({f.rsplit("/", 1)[0] for f in files if f.endswith(".safetensors") and "/" in f})
    if nested and not prefix:
        raise HubError(
            repo_id,
            lambda p: f"no safetensors weights at the top level; try {p('subfolder')} "
            f"{nested[0]} (weights found in: {', '.join(nested[:5])})",
        )
    where = f" under {subfolder!r}" if prefix else ""
    raise HubError(repo_id, f"no safetensors weights in this repo{where}")


def estimate_header_bytes(names: Sequence[str]) -> int:
    """A first range that holds the whole header of a shard holding ``names``, most of the time.

    Asking too much costs bytes, too little a second request for the rest.
    """
    return sum(len(n.encode()) for n in names) + _ENTRY_OVERHEAD * len(names) + _HEADER_SLACK


class _Files(Protocol):
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


class _HubFiles:
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


class _CachedFiles:
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


def _counter(total: int, progress: Progress | None) -> Callable[[], None]:
    """``advance()`` for work done on several threads: reports (done, total) to ``progress``."""
    if progress is None:
        return lambda: None
    lock = threading.Lock()
    done = 0
    progress(0, total)

    def advance() -> None:
        nonlocal done
        with lock:
            done += 1
            progress(done, total)

    return advance


def _read_checkpoint(
    src: _Files,
    repo_id: str,
    files: Sequence[str],
    subfolder: str,
    source: str,
    hub: HubInfo,
    notes: list[str],
    progress: Progress | None,
    workers: int,
    complete: bool = True,
) -> Checkpoint:
    """Pick the weights among ``files``; read index, sidecars and headers from ``src``.

    ``complete``: ``files`` is the repo's whole listing, so the pickles beside the
    weights are known (``check``'s safetensors_only rule), as for a local folder.
    ``progress`` gets (headers read, headers to read).
    """
    index_name, weight_files = pick_repo_weights(files, subfolder, repo_id)
    prefix = _prefix(subfolder)
    present = set(files)
    beside = [f for f in files if f.startswith(prefix) and "/" not in f[len(prefix) :]]
    pickles = tuple(sorted(f for f in beside if is_pickle_name(f))) if complete else None
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        sidecars = [prefix + s for s in _SIDECARS if prefix + s in present]
        side = {n: pool.submit(src.json, n) for n in sidecars}
        weight_map: dict[str, str] | None = None
        index_meta: Any = {}
        shard_names: list[str] = []
        if index_name is not None:
            weight_map, index_meta = parse_index(src.json(index_name), index_name)
            names_by_shard: dict[str, list[str]] = {}
            for tensor, shard in weight_map.items():
                names_by_shard.setdefault(shard, []).append(tensor)
            shard_names = sorted(names_by_shard)
            missing = [prefix + s for s in shard_names if prefix + s not in present]
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise ShardIndexError(index_name, f"shard {missing[0]!r} is not in the repo{more}")
            jobs = [(prefix + s, estimate_header_bytes(names_by_shard[s])) for s in shard_names]
        else:
            jobs = [(f, FIRST_RANGE_SINGLE) for f in weight_files]
        advance = _counter(len(jobs), progress)

        def fetch(job: tuple[str, int]) -> FileHeader:
            h = src.header(*job)
            advance()
            return h

        headers = list(pool.map(fetch, jobs))
        config = _json_object(side, prefix + "config.json", notes)
        adapter_config = _json_object(side, prefix + "adapter_config.json", notes)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

    ours = sum(h.parameters for h in headers)
    if hub.stated_parameters is not None and hub.stated_parameters != ours:
        notes.append(
            f"the Hub states {hub.stated_parameters:,} parameters for this repo; "
            f"the headers hold {ours:,}"
        )
    return assemble(
        source,
        headers,
        weight_map=weight_map,
        shard_names=shard_names if weight_map is not None else None,
        index_path=index_name,
        index_metadata=index_meta,
        config=config,
        adapter_config=adapter_config,
        warnings=notes,
        hub=hub,
        pickle_files=pickles,
    )


def _json_object(
    futures: dict[str, Future[bytes]], name: str, notes: list[str]
) -> dict[str, Any] | None:
    fut = futures.get(name)
    if fut is None:
        return None
    try:
        obj = json.loads(fut.result())
    except (ValueError, RecursionError):
        notes.append(f"{name}: not valid JSON, ignored")
        return None
    if not isinstance(obj, dict):
        notes.append(f"{name}: not a JSON object, ignored")
        return None
    return obj


def open_hub(
    source: HubSource,
    *,
    revision: str | None = None,
    token: str | None = None,
    subfolder: str | None = None,
    progress: Progress | None = None,
) -> Checkpoint:
    """Inspect a Hub repo header-only; offline mode answers from the local cache.

    ``progress`` is called with (shard headers read, shard headers to read).
    """
    rev = revision or source.revision
    if _offline():
        return _open_cached(source.repo_id, rev, subfolder or "", progress)
    with hub_errors(source.repo_id, rev):
        return _open_online(source.repo_id, rev, token, subfolder or "", progress)


def _offline() -> bool:
    """HF_HUB_OFFLINE, as huggingface_hub reads it (``is_offline_mode()`` in later 1.x and 2.x)."""
    from huggingface_hub import constants

    check = getattr(constants, "is_offline_mode", None)
    return bool(check() if check is not None else constants.HF_HUB_OFFLINE)


def _display(repo_id: str, rev: str | None) -> str:
    return f"{repo_id}@{rev}" if rev else repo_id


def _open_online(
    repo_id: str, rev: str | None, token: str | None, subfolder: str, progress: Progress | None
) -> Checkpoint:
    from huggingface_hub import HfApi, constants

    info = HfApi(token=token).model_info(
        repo_id,
        revision=rev,
        expand=_INFO_FIELDS,  # type: ignore[arg-type]
        timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
    )
    if not info.sha:
        raise HubError(_display(repo_id, rev), "the Hub did not say which commit this is")
    files = [s.rfilename for s in (info.siblings or [])]
    card = info.card_data.to_dict() if info.card_data is not None else {}  # type: ignore[no-untyped-call]
    lic = card.get("license")
    # The Hub counts the weights at the top of the repo; a subfolder holds another checkpoint.
    stated = None if _prefix(subfolder) else getattr(info.safetensors, "total", None)
    hub = HubInfo(
        repo_id=repo_id,
        revision=info.sha,
        requested_revision=rev,
        subfolder=subfolder,
        license=lic if isinstance(lic, str) else None,
        gated=info.gated or False,
        private=bool(info.private),
        stated_parameters=stated if type(stated) is int else None,
    )
    src = _HubFiles(repo_id, info.sha, rev, token)
    return _read_checkpoint(
        src, repo_id, files, subfolder, _display(repo_id, rev), hub, [], progress, MAX_WORKERS
    )


def _open_cached(
    repo_id: str, rev: str | None, subfolder: str, progress: Progress | None
) -> Checkpoint:
    """HF_HUB_OFFLINE=1: the same files from the huggingface_hub cache, or what is missing."""
    import huggingface_hub
    from huggingface_hub import errors as hf
    from huggingface_hub import snapshot_download

    what = _display(repo_id, rev)
    offline = "HF_HUB_OFFLINE is set and"
    fix = f"`hf download {repo_id}{f' --revision {rev}' if rev else ''}` fetches the repo"
    try:  # only where the snapshot is: which files it needs is decided below
        folder = Path(
            snapshot_download(repo_id, revision=rev, local_files_only=True, allow_patterns=[])
        )
    except (hf.LocalEntryNotFoundError, OSError, ValueError):
        raise HubError(
            what,
            f"{offline} revision {rev or 'main'!r} of this repo is not in the local cache ({fix})",
        ) from None
    # The repo's full listing, which snapshot_download and `hf download` cache (later 1.x and
    # 2.x); else what the snapshot holds.
    cached_tree = getattr(huggingface_hub, "get_cached_repo_tree", None)
    no_tree = (getattr(hf, "CachedRepoTreeNotFoundError", OSError), OSError, ValueError)
    try:
        if cached_tree is None:
            raise OSError("this huggingface_hub caches no repo listing")
        files = [f.path for f in cached_tree(repo_id, revision=folder.name)]
        listed = True
    except no_tree:
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        listed = False
    try:
        index_name, weight_files = pick_repo_weights(files, subfolder, repo_id)
    except HubError:
        if listed:
            raise
        raise HubError(
            what, f"{offline} the local cache holds no safetensors weights of this repo ({fix})"
        ) from None
    needed = [index_name] if index_name else list(weight_files)
    if index_name and (folder / index_name).is_file():
        weight_map, _ = parse_index(_CachedFiles(folder).json(index_name), index_name)
        prefix = index_name.rpartition("/")[0]
        needed += [f"{prefix}/{s}" if prefix else s for s in sorted(set(weight_map.values()))]
    missing = [n for n in needed if not (folder / n).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise HubError(
            what,
            f"{offline} the local cache lacks {len(missing)} of the files "
            f"needed: {', '.join(missing[:3])}{more} ({fix})",
        )
    notes = ["offline: answered from the local cache; licence and gating unknown"]
    uncached = [
        n
        for n in (_prefix(subfolder) + s for s in _SIDECARS)
        if n in files and not (folder / n).is_file()
    ]
    if uncached:
        notes.append(f"offline: {', '.join(uncached)} not in the local cache, ignored")
    files = [f for f in files if f not in uncached]
    hub = HubInfo(
        repo_id=repo_id, revision=folder.name, requested_revision=rev, subfolder=subfolder
    )
    return _read_checkpoint(
        _CachedFiles(folder),
        repo_id,
        files,
        subfolder,
        what,
        hub,
        notes,
        progress,
        1,
        complete=listed,
    )
