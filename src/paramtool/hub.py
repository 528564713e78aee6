"""Checkpoints on the Hugging Face Hub, read header-only by HTTP range requests.

huggingface_hub does the endpoint, auth (HF_TOKEN, stored login, --token),
revision resolution, the cache and offline mode; this module asks it for the
repo's info (one request, which pins the commit), the small JSON files (index,
config, adapter config, through the cache) and, for each shard, the first bytes
of the file: one range sized from the index to hold the whole header, and a
second only when the header turns out larger. Headers go through the same
strict parser as local files.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paramtool.checkpoint import (
    Checkpoint,
    HubInfo,
    assemble,
    check_shard_name,
    is_pickle_name,
    open_local,
    parse_index,
)
from paramtool.errors import HubError, ParamtoolError, ShardIndexError, UnsafeFormat
from paramtool.header import FileHeader, header_length, parse_header

_REPO = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+)(?:@(?P<rev>[^\s@]+))?$")
MAX_WORKERS = 32  # concurrent shard header requests
FIRST_RANGE_SINGLE = 100_000  # bytes asked of a file the index tells nothing about
_FILE_SUFFIXES = (".safetensors", ".json", ".gguf", ".bin", ".pt", ".pth", ".ckpt")
_ENTRY_OVERHEAD = 84  # bytes of JSON around a tensor name in a typical header entry


@dataclass(frozen=True, slots=True)
class HubSource:
    repo_id: str
    revision: str | None


def parse_hub_source(text: str) -> HubSource | None:
    """``org/name``, ``org/name@rev`` or ``hf://org/name[@rev]``; None if it is not one."""
    t = text[5:] if text.startswith("hf://") else text
    m = _REPO.match(t)
    if not m or ".." in m.group("repo"):
        return None
    return HubSource(m.group("repo"), m.group("rev"))


def is_hub_source(text: str) -> bool:
    """A local path of that name wins unless ``hf://`` forces the Hub."""
    if text.startswith("hf://"):
        return True
    if os.path.exists(text) or text.lower().endswith(_FILE_SUFFIXES):
        return False
    return parse_hub_source(text) is not None


# ---------------------------------------------------------------- error table


def _hub_error(e: BaseException, repo_id: str, revision: str | None) -> ParamtoolError:
    """Map huggingface_hub / HTTP exceptions to one line (never the token)."""
    from huggingface_hub import errors as hf

    endpoint = _endpoint()
    if isinstance(e, hf.GatedRepoError):
        return HubError(repo_id, "gated repo: accept its licence on the Hub, then set HF_TOKEN (or --token)")
    if isinstance(e, hf.RepositoryNotFoundError):
        return HubError(repo_id, "repository not found (or private: set HF_TOKEN or pass --token)")
    if isinstance(e, hf.RevisionNotFoundError):
        return HubError(f"{repo_id}@{revision}", "revision not found (no such branch, tag or commit)")
    if isinstance(e, hf.DisabledRepoError):
        return HubError(repo_id, "this repository has been disabled on the Hub")
    if isinstance(e, hf.EntryNotFoundError):
        return HubError(repo_id, f"file not found in the repo: {e}".splitlines()[0])
    if isinstance(e, hf.OfflineModeIsEnabled):
        return HubError(repo_id, "HF_HUB_OFFLINE is set and this needs the network")
    if isinstance(e, hf.HfHubHTTPError):
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status in (401, 403):
            return HubError(repo_id, f"access denied ({status}): set HF_TOKEN or pass --token with access to it")
        return HubError(repo_id, f"the Hub at {endpoint} answered {status}")
    name = type(e).__name__
    if "Timeout" in name:
        return HubError(endpoint, "timed out talking to the Hub (HF_HUB_DOWNLOAD_TIMEOUT sets the limit)")
    return HubError(endpoint, f"network failure talking to the Hub ({name})")


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _network_errors() -> tuple[type[BaseException], ...]:
    import httpx2
    from huggingface_hub import errors as hf

    return (hf.HfHubHTTPError, hf.OfflineModeIsEnabled, hf.EntryNotFoundError, httpx2.HTTPError, OSError)


# ---------------------------------------------------------------- choosing files


def pick_weights(files: Sequence[str], subfolder: str, repo_id: str) -> tuple[str | None, list[str]]:
    """From a repo's file list, choose (index file, weight files) under ``subfolder``."""
    prefix = f"{subfolder.strip('/')}/" if subfolder else ""
    here = [f[len(prefix):] for f in files if f.startswith(prefix) and "/" not in f[len(prefix):]]
    indexes = sorted(f for f in here if f.endswith(".safetensors.index.json"))
    for preferred in ("model.safetensors.index.json", "diffusion_pytorch_model.safetensors.index.json"):
        if preferred in indexes:
            return prefix + preferred, []
    if len(indexes) == 1:
        return prefix + indexes[0], []
    if len(indexes) > 1:
        raise HubError(repo_id, f"several indexes ({', '.join(indexes)}); say which with a local path")
    for name in ("model.safetensors", "adapter_model.safetensors", "diffusion_pytorch_model.safetensors"):
        if name in here:
            return None, [prefix + name]
    singles = sorted(f for f in here if f.endswith(".safetensors"))
    if singles:
        return None, [prefix + f for f in singles]
    pickles = sorted(f for f in here if is_pickle_name(f))
    if pickles:
        raise UnsafeFormat(
            repo_id,
            f"the only weights are pickles ({pickles[0]}{', ...' if len(pickles) > 1 else ''}); pickles can "
            "execute code, so nothing was downloaded; look for a safetensors revision or convert it",
        )
    nested = sorted({f.rsplit("/", 1)[0] for f in files if f.endswith(".safetensors") and "/" in f})
    if nested and not prefix:
        raise HubError(repo_id, f"no safetensors weights at the top level; try --subfolder {nested[0]} "
                                f"(weights found in: {', '.join(nested[:5])})")
    where = f" under {subfolder!r}" if prefix else ""
    raise HubError(repo_id, f"no safetensors weights in this repo{where}")


def estimate_header_bytes(names: Sequence[str]) -> int:
    """A first range that holds the whole header of a shard holding ``names``, most of the time."""
    body = sum(len(n) + _ENTRY_OVERHEAD for n in names)
    return 8 + body + 64


# ---------------------------------------------------------------- reading


class _Reader:
    def __init__(self, repo_id: str, sha: str, token: str | None) -> None:
        from huggingface_hub import constants, hf_hub_url
        from huggingface_hub.utils import build_hf_headers, get_session

        self.repo_id, self.sha, self.token = repo_id, sha, token
        self._url = lambda f: hf_hub_url(repo_id, f, revision=sha)
        self._headers = build_hf_headers(token=token)
        self._session = get_session()
        self._timeout = constants.HF_HUB_DOWNLOAD_TIMEOUT

    def _range(self, filename: str, start: int, stop: int) -> tuple[bytes, int]:
        """Bytes [start, stop) of a file and the file's total size, streaming (no more is read)."""
        from huggingface_hub.utils import hf_raise_for_status

        headers = {**self._headers, "Range": f"bytes={start}-{stop - 1}"}
        with self._session.stream("GET", self._url(filename), headers=headers, timeout=self._timeout) as r:
            if r.status_code >= 400:
                r.read()
                hf_raise_for_status(r)
            total = _total_size(r.headers, start)
            chunks, got = [], 0
            for chunk in r.iter_bytes():
                chunks.append(chunk)
                got += len(chunk)
                if got >= stop - start:
                    break
        return b"".join(chunks)[: stop - start], total

    def header(self, filename: str, first: int, display: str) -> FileHeader:
        raw, total = self._range(filename, 0, max(first, 16))
        n = header_length(raw[:8], display, total)
        if 8 + n > len(raw):
            more, _ = self._range(filename, len(raw), 8 + n)
            raw += more
        body = raw[8 : 8 + n]
        if len(body) != n:
            raise HubError(display, "the Hub sent a short header")
        return parse_header(body, display, data_size=total - 8 - n)

    def json_file(self, filename: str) -> bytes:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(self.repo_id, filename, revision=self.sha, token=self.token)
        return Path(path).read_bytes()


def _total_size(headers: Any, start: int) -> int:
    cr = headers.get("content-range", "")
    if "/" in cr and cr.rsplit("/", 1)[1].strip().isdigit():
        return int(cr.rsplit("/", 1)[1])
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        return start + int(length)
    raise HubError("Hub", "the server gave no file size for a range request")


def _progress(total: int, quiet: bool) -> tuple[Callable[[], None], Callable[[], None]]:
    """(advance, close) for a stderr progress bar, shown only to a person watching."""
    if quiet or total < 8 or not sys.stderr.isatty():
        return (lambda: None), (lambda: None)
    from rich.console import Console
    from rich.progress import Progress

    progress = Progress(console=Console(stderr=True), transient=True)
    progress.start()
    task = progress.add_task("Reading shard headers", total=total)
    return (lambda: progress.advance(task)), progress.stop


def open_hub(
    source: HubSource,
    *,
    revision: str | None = None,
    token: str | None = None,
    subfolder: str | None = None,
    quiet: bool = False,
) -> Checkpoint:
    """Inspect a Hub repo header-only; offline mode answers from the local cache."""
    from huggingface_hub import constants

    rev = revision or source.revision
    if constants.HF_HUB_OFFLINE:
        return _open_cached(source.repo_id, rev, subfolder or "")
    try:
        return _open_online(source.repo_id, rev, token, subfolder or "", quiet)
    except ParamtoolError:
        raise
    except _network_errors() as e:
        raise _hub_error(e, source.repo_id, rev) from None


def _open_online(repo_id: str, rev: str | None, token: str | None, subfolder: str, quiet: bool) -> Checkpoint:
    from huggingface_hub import HfApi

    info = HfApi(token=token).model_info(repo_id, revision=rev)
    sha = info.sha or rev or "main"
    files = [s.rfilename for s in (info.siblings or [])]
    index_name, weight_files = pick_weights(files, subfolder, repo_id)
    reader = _Reader(repo_id, sha, token)
    folder = f"{subfolder.strip('/')}/" if subfolder else ""
    sidecars = [n for n in (folder + "config.json", folder + "adapter_config.json") if n in files]

    with ThreadPoolExecutor(max_workers=MAX_WORKERS) as pool:
        side = {n: pool.submit(reader.json_file, n) for n in sidecars}
        weight_map: dict[str, str] | None = None
        index_meta: Any = {}
        shard_names: list[str] = []
        if index_name is not None:
            weight_map, index_meta = parse_index(reader.json_file(index_name), f"{repo_id}/{index_name}")
            shard_names = sorted(set(weight_map.values()))
            for s in shard_names:
                check_shard_name(s, f"{repo_id}/{index_name}")
                if folder + s not in files:
                    raise ShardIndexError(f"{repo_id}/{index_name}", f"shard {s!r} is missing from the repo")
            names_by_shard: dict[str, list[str]] = {}
            for name, shard in weight_map.items():
                names_by_shard.setdefault(shard, []).append(name)
            jobs = [(folder + s, estimate_header_bytes(names_by_shard[s])) for s in shard_names]
        else:
            jobs = [(f, FIRST_RANGE_SINGLE) for f in weight_files]
        advance, close = _progress(len(jobs), quiet)

        def fetch(job: tuple[str, int]) -> FileHeader:
            h = reader.header(job[0], job[1], job[0])
            advance()
            return h

        try:
            headers = list(pool.map(fetch, jobs))
        finally:
            close()
        notes: list[str] = []
        config = _json_object(side, folder + "config.json", notes)
        adapter_config = _json_object(side, folder + "adapter_config.json", notes)

    card = info.card_data.to_dict() if getattr(info, "card_data", None) is not None else {}
    lic = card.get("license")
    stated = getattr(getattr(info, "safetensors", None), "total", None)
    hub = HubInfo(
        repo_id=repo_id, revision=sha, requested_revision=rev, subfolder=subfolder,
        license=lic if isinstance(lic, str) else None, gated=info.gated or False,
        private=bool(info.private), stated_parameters=stated,
    )
    if index_meta and isinstance(index_meta.get("total_parameters"), int):
        notes.append(f"the index states {index_meta['total_parameters']:,} parameters")
    return assemble(
        repo_id if not rev else f"{repo_id}@{rev}", headers,
        weight_map=weight_map, shard_names=shard_names if weight_map is not None else None,
        index_path=index_name, index_metadata=index_meta, config=config, adapter_config=adapter_config,
        warnings=notes, hub=hub,
    )


def _json_object(futures: dict[str, Any], name: str, notes: list[str]) -> dict[str, Any] | None:
    fut = futures.get(name)
    if fut is None:
        return None
    try:
        obj = json.loads(fut.result())
    except (ValueError, RecursionError):
        notes.append(f"{name}: not valid JSON, ignored")
        return None
    return obj if isinstance(obj, dict) else None


def _open_cached(repo_id: str, rev: str | None, subfolder: str) -> Checkpoint:
    """HF_HUB_OFFLINE=1: the files must already be in the huggingface_hub cache."""
    from huggingface_hub import snapshot_download
    from huggingface_hub import errors as hf

    try:
        folder = Path(snapshot_download(repo_id, revision=rev, local_files_only=True))
    except (hf.LocalEntryNotFoundError, hf.OfflineModeIsEnabled, OSError):
        raise HubError(repo_id, f"HF_HUB_OFFLINE is set and revision {rev or 'main'!r} of this repo is not in "
                                "the local cache (run once online, or `hf download` it)") from None
    target = folder / subfolder if subfolder else folder
    try:
        ck = open_local([str(target)])
    except (ShardIndexError, ParamtoolError) as e:
        raise HubError(repo_id, f"HF_HUB_OFFLINE is set and the cache lacks what is needed: {e.why}") from None
    hub = HubInfo(repo_id=repo_id, revision=folder.name, requested_revision=rev, subfolder=subfolder)
    return Checkpoint(
        source=repo_id if not rev else f"{repo_id}@{rev}", files=ck.files, config=ck.config,
        adapter_config=ck.adapter_config, index_path=ck.index_path, index_metadata=ck.index_metadata,
        warnings=ck.warnings + ("offline: answered from the local cache; licence and gating unknown",), hub=hub,
    )
