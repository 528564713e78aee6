"""Checkpoints on the Hugging Face Hub, read header-only by HTTP range requests.

huggingface_hub does the endpoint, auth (HF_TOKEN, stored login, --token), the
HTTP session, the cache layout and offline mode; every request goes through
:func:`~paramtool.sources.hub_http.fetch` (a deadline, a size cap, bounded retries)
on daemon threads (:mod:`~paramtool.sources.hub_pool`: Ctrl-C stops at once). An
inspection is:

1. The model info, one request (capped at :data:`MAX_MODEL_INFO` bytes, each field
   checked): it pins the commit sha, lists the files and gives the licence, the
   gating and the Hub's own parameter count. Every later request names that sha,
   so all the files of one run come from one commit. At the same time, the index
   and ``config.json`` most repos have are asked for at the requested revision
   (``main`` by default); each answer is used only when the Hub's ``X-Repo-Commit``
   names that same sha, and is otherwise asked again at the sha
   (:mod:`~paramtool.sources.hub_early`; the console script starts this wave before it
   builds its command line: :mod:`paramtool.cli.head_start`).
2. The small JSON files (the index, ``config.json``, ``adapter_config.json``),
   concurrently: one GET each the first time, stored in the huggingface_hub cache
   as huggingface_hub lays it out, no request once cached. So a repeat run at the
   same commit reads them from disk, and ``HF_HUB_OFFLINE=1`` finds the snapshot
   and names exactly the files it lacks (the shards) rather than "this repo is not
   in the cache".
3. For each shard, concurrently (``MAX_WORKERS``), one ranged GET sized from
   the index's tensor names to hold the whole header
   (:func:`estimate_header_bytes`), and a second only when the header turns out
   larger. Weights live in LFS, so the Hub answers with a redirect to its CDN,
   which the GET follows; a second range goes straight to that CDN URL, without
   the token (the token only ever goes to the Hub).
4. A pickled shard (``pytorch_model*.bin``, ``*.pt``...; a repo without safetensors) is
   read by ranges too, never unpickled: a block from byte 0 (a torch zip's ``data.pkl``,
   a legacy file's pickles), for a zip a block from the end (its end records and central
   directory), then what is missing: kilobytes per shard in three or four requests. The
   storages' offsets in a zip follow torch's layout rule rather than a read of each local
   header; a legacy file's prefix doubles until its pickles parse.

Headers go through the same strict parser as local files and the checkpoint is
assembled by the same code as a local one, so a Hub answer equals a local one.
With ``HF_HUB_OFFLINE=1`` the same steps read the huggingface_hub cache.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from paramtool.errors import HubError, ShardIndexError
from paramtool.formats.index import parse_index
from paramtool.records import Checkpoint, FileHeader, HubInfo
from paramtool.sources.assemble import assemble
from paramtool.sources.hub_early import (
    MAX_MODEL_INFO,
    Call,
    first_wave,
    model_info_query,
    model_info_url,
    subfolder_prefix,
)
from paramtool.sources.hub_errors import hub_errors, offline
from paramtool.sources.hub_files import (
    FIRST_RANGE_PICKLE,
    FIRST_RANGE_SINGLE,
    MAX_PICKLE_REQUESTS,
    TAIL_RANGE_PICKLE,
    ByteSource,
    CachedRanges,
    HubRanges,
    estimate_header_bytes,
    estimate_pickle_bytes,
)
from paramtool.sources.hub_http import fetch, hub_headers, hub_timeout, shown_url
from paramtool.sources.hub_pool import Job, counter, run_all, run_one
from paramtool.sources.hub_source import HubSource
from paramtool.sources.weights import (
    DCP_METADATA,
    is_pickle_index_name,
    is_pickle_name,
    is_trainer_file,
    pick_pickles,
    pick_weights,
)

_SIDECARS = ("config.json", "adapter_config.json")

MAX_WORKERS = 64  # concurrent requests (huggingface_hub's shared pool holds 100; 0.x: per thread)
_SHA = re.compile(r"[0-9a-f]{40}")

Progress = Callable[[int, int], None]


def pick_repo_weights(
    files: Sequence[str], subfolder: str, repo_id: str
) -> tuple[str | None, list[str]]:
    """From a repo's file list, choose (index file, weight files) under ``subfolder``.

    The rule is a local folder's (:func:`~paramtool.sources.weights.pick_weights`); GGUF
    is read from local files only, so a repo whose weights are GGUF is an error here.
    Pickled weights are read when there is nothing else: their index, or the files.
    """
    prefix = subfolder_prefix(subfolder)
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
    if pick.files[:1] == (DCP_METADATA,) or str(pick.kind) == "dcp":
        raise HubError(
            repo_id,
            f"the weights{f' under {subfolder!r}' if prefix else ''} are a PyTorch distributed "
            "checkpoint (.metadata and *.distcp); distributed checkpoints are read from local "
            "folders: download the repo",
        )
    if pick.kind == "pickle":
        if pick.choices:
            raise HubError(
                repo_id,
                f"several indexes ({', '.join(pick.choices)}); say which with a local path",
            )
        if is_pickle_index_name(pick.files[0]):
            return prefix + pick.files[0], []
        return None, [prefix + f for f in pick.files]
    nested = sorted({f.rsplit("/", 1)[0] for f in files if f.endswith(".safetensors") and "/" in f})
    if nested and not prefix:
        raise HubError(
            repo_id,
            lambda p: (
                f"no safetensors weights at the top level; try {p('subfolder')} "
                f"{nested[0]} (weights found in: {', '.join(nested[:5])})"
            ),
        )
    where = f" under {subfolder!r}" if prefix else ""
    raise HubError(repo_id, f"no safetensors weights in this repo{where}")


def _read_checkpoint(
    src: ByteSource,
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
    prefix = subfolder_prefix(subfolder)
    present = set(files)
    beside = [f for f in files if f.startswith(prefix) and "/" not in f[len(prefix) :]]
    pickles = tuple(sorted(f for f in beside if is_pickle_name(f))) if complete else None
    code = (
        tuple(sorted(f[len(prefix) :] for f in beside if f.endswith(".py"))) if complete else None
    )
    sidecars = [prefix + s for s in _SIDECARS if prefix + s in present]
    small = [*sidecars, *([index_name] if index_name is not None else [])]
    limit = hub_timeout() if isinstance(src, HubRanges) else None
    raw = dict(
        zip(
            small,
            run_all(
                [Job(src.where(n), partial(src.json, n), limit, "no complete file") for n in small],
                workers=workers,
            ),
            strict=True,
        )
    )
    weight_map: dict[str, str] | None = None
    index_meta: Any = {}
    shard_names: list[str] = []
    if index_name is not None:
        weight_map, index_meta = parse_index(raw[index_name], index_name)
        names_by_shard: dict[str, list[str]] = {}
        for tensor, shard in weight_map.items():
            names_by_shard.setdefault(shard, []).append(tensor)
        shard_names = sorted(names_by_shard)
        missing = [prefix + s for s in shard_names if prefix + s not in present]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ShardIndexError(index_name, f"shard {missing[0]!r} is not in the repo{more}")
        jobs = [(prefix + s, _sizes(prefix + s, names_by_shard[s])) for s in shard_names]
    else:
        jobs = [(f, _sizes(f, None)) for f in weight_files]
    advance = counter(len(jobs), progress)

    def fetch_header(name: str, first: int, last: int) -> FileHeader:
        if is_pickle_name(name):
            h = src.pickle_header(name, first, last)
        else:
            h = src.header(name, first)
        advance()
        return h

    def deadline(name: str) -> float | None:
        if limit is None:
            return None  # a header takes up to two requests; a pickle a few more
        return (MAX_PICKLE_REQUESTS if is_pickle_name(name) else 2) * limit

    headers = run_all(
        [
            Job(src.where(n), partial(fetch_header, n, *sizes), deadline(n), "no complete header")
            for n, sizes in jobs
        ],
        workers=workers,
    )
    chosen = [index_name] if index_name is not None else weight_files
    if complete and not any(is_pickle_name(f) or is_pickle_index_name(f) for f in chosen):
        notes.extend(_passed_over(beside, prefix))
    config = _json_object(raw, prefix + "config.json", notes)
    adapter_config = _json_object(raw, prefix + "adapter_config.json", notes)

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
        code_files=code,
    )


def _sizes(name: str, names: Sequence[str] | None) -> tuple[int, int]:
    """The first (and, for a pickle, last) range to ask of a weight file."""
    if is_pickle_name(name):
        if names is None:
            return FIRST_RANGE_PICKLE, TAIL_RANGE_PICKLE
        return estimate_pickle_bytes(names, name)
    return (estimate_header_bytes(names) if names is not None else FIRST_RANGE_SINGLE), 0


def _passed_over(beside: Sequence[str], prefix: str) -> list[str]:
    """A note when the repo holds pickled weights beside the safetensors that were read."""
    names = [
        f[len(prefix) :]
        for f in beside
        if (is_pickle_name(f) and not is_trainer_file(f.rsplit("/", 1)[-1]))
        or is_pickle_index_name(f)
    ]
    weights = pick_pickles(sorted(names))
    if not weights.files:
        return []
    shown = ", ".join(prefix + f for f in weights.files[:3]) + (
        ", ..." if len(weights.files) > 3 else ""
    )
    return [f"pickled weights here too ({shown}); the safetensors were read instead"]


def _json_object(raw: dict[str, bytes], name: str, notes: list[str]) -> dict[str, Any] | None:
    """A sidecar that was downloaded (a failed download raised already), if it is JSON."""
    data = raw.get(name)
    if data is None:
        return None
    try:
        obj = json.loads(data)
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
    if offline():
        return _open_cached(source.repo_id, rev, subfolder or "", progress)
    with hub_errors(source.repo_id, rev):
        return _open_online(source.repo_id, rev, token, subfolder or "", progress)


def _display(repo_id: str, rev: str | None) -> str:
    return f"{repo_id}@{rev}" if rev else repo_id


def _open_online(
    repo_id: str, rev: str | None, token: str | None, subfolder: str, progress: Progress | None
) -> Checkpoint:
    headers = hub_headers(token)
    # The model info, and beside it the index and config.json most repos have.
    early, info_call = first_wave(repo_id, rev, subfolder, headers)
    info = model_info(repo_id, rev, token, headers=headers, started=info_call)
    # The Hub counts the weights at the top of the repo; a subfolder holds another checkpoint.
    stated = None if subfolder_prefix(subfolder) else info.stated_parameters
    hub = HubInfo(
        repo_id=repo_id,
        revision=info.sha,
        requested_revision=rev,
        subfolder=subfolder,
        license=info.license,
        gated=info.gated,
        private=info.private,
        stated_parameters=stated,
    )
    src = HubRanges(repo_id, info.sha, rev, token, headers, early)
    return _read_checkpoint(
        src,
        repo_id,
        list(info.files),
        subfolder,
        _display(repo_id, rev),
        hub,
        [],
        progress,
        MAX_WORKERS,
    )


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What paramtool takes from the Hub's model info, each field checked."""

    sha: str
    files: tuple[str, ...]
    license: str | None
    gated: bool | str
    private: bool
    stated_parameters: int | None


def model_info(
    repo_id: str,
    revision: str | None,
    token: str | None,
    *,
    headers: dict[str, str] | None = None,
    started: Call | None = None,
) -> ModelInfo:
    """The model info of ``repo_id`` at ``revision`` (its default branch when None).

    One GET of at most :data:`MAX_MODEL_INFO` bytes under the request deadline, retried
    like every Hub request; an answer that is not the Hub's JSON is one line naming it.
    ``started``: that GET, already under way (:func:`~paramtool.sources.hub_early.first_wave`).
    """
    query = model_info_query()
    body, content_type, where = _model_info_body(
        repo_id, revision, token, query, headers, started
    )
    return _parse_model_info(body, content_type, where)


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One file as the Hub records it: size, LFS SHA-256 (LFS files) and git blob id."""

    name: str
    size: int | None
    sha256: str | None
    blob_id: str | None
    lfs: bool


def file_records(
    repo_id: str, revision: str | None, token: str | None
) -> tuple[str, tuple[FileRecord, ...]]:
    """The commit sha and every file's record (``?blobs=true``), under the same deadline,
    size cap, retries and field checks as :func:`model_info`."""
    body, content_type, where = _model_info_body(repo_id, revision, token, "blobs=true")
    info = _parse_model_info(body, content_type, where)
    obj = json.loads(body)
    out = []
    for sib in obj.get("siblings", []):
        lfs = sib.get("lfs")
        if lfs is not None and not isinstance(lfs, dict):
            raise HubError(where, "the Hub's model info is malformed: an 'lfs' is not an object")
        size = (lfs or sib).get("size")
        sha = (lfs or {}).get("sha256")
        blob = sib.get("blobId")
        if size is not None and type(size) is not int:
            raise HubError(where, "the Hub's model info is malformed: a file size is not a number")
        if (sha is not None and not isinstance(sha, str)) or (
            blob is not None and not isinstance(blob, str)
        ):
            raise HubError(where, "the Hub's model info is malformed: a hash is not a string")
        out.append(FileRecord(sib["rfilename"], size, sha, blob, lfs is not None))
    return info.sha, tuple(out)


def _model_info_body(
    repo_id: str,
    revision: str | None,
    token: str | None,
    query: str,
    headers: dict[str, str] | None = None,
    started: Call | None = None,
) -> tuple[bytes, str, str]:
    url = model_info_url(repo_id, revision)
    limit = hub_timeout()
    headers = hub_headers(token) if headers is None else headers
    get = (
        started.result
        if started is not None
        else partial(fetch, f"{url}?{query}", headers, limit=MAX_MODEL_INFO, what="model info")
    )
    answer = run_one(Job(shown_url(url), get, limit, "no complete model info"))
    where = shown_url(url)
    if not answer.complete:
        raise HubError(where, f"the model info is larger than {MAX_MODEL_INFO:,} bytes, refused")
    return answer.body, answer.headers.get("content-type", ""), where


def _parse_model_info(body: bytes, content_type: str, where: str) -> ModelInfo:
    def bad(why: str) -> HubError:
        return HubError(where, f"the Hub's model info is malformed: {why}")

    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        kind = content_type.partition(";")[0].strip()[:40] or "no content type"
        raise HubError(
            where, f"the model info is not JSON ({kind}); is HF_ENDPOINT the Hub?"
        ) from None
    if not isinstance(obj, dict):
        raise bad("not a JSON object")
    sha = obj.get("sha")
    if not isinstance(sha, str) or not _SHA.fullmatch(sha):
        raise HubError(where, "the Hub did not say which commit this is")
    siblings = obj.get("siblings", [])
    if not isinstance(siblings, list):
        raise bad("'siblings' is not a list")
    files = []
    for s in siblings:
        name = s.get("rfilename") if isinstance(s, dict) else None
        if not isinstance(name, str):
            raise bad("a 'siblings' entry has no 'rfilename' string")
        files.append(name)
    card = {} if obj.get("cardData") is None else obj["cardData"]
    if not isinstance(card, dict):
        raise bad("'cardData' is not an object")
    lic = card.get("license")
    gated = obj.get("gated", False)
    if not isinstance(gated, (bool, str)):
        raise bad("'gated' is neither true, false nor a string")
    private = obj.get("private", False)
    if not isinstance(private, bool):
        raise bad("'private' is not true or false")
    st = obj.get("safetensors")
    if st is not None and not isinstance(st, dict):
        raise bad("'safetensors' is not an object")
    total = (st or {}).get("total")
    return ModelInfo(
        sha=sha,
        files=tuple(files),
        license=lic if isinstance(lic, str) else None,
        gated=gated or False,
        private=private,
        stated_parameters=total if type(total) is int else None,
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
        weight_map, _ = parse_index(CachedRanges(folder).json(index_name), index_name)
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
        for n in (subfolder_prefix(subfolder) + s for s in _SIDECARS)
        if n in files and not (folder / n).is_file()
    ]
    if uncached:
        notes.append(f"offline: {', '.join(uncached)} not in the local cache, ignored")
    files = [f for f in files if f not in uncached]
    hub = HubInfo(
        repo_id=repo_id, revision=folder.name, requested_revision=rev, subfolder=subfolder
    )
    return _read_checkpoint(
        CachedRanges(folder),
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
