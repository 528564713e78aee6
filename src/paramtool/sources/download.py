"""Sources whose values are read: local paths as they are, Hub repos downloaded first."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from paramtool.errors import UsageError
from paramtool.records import Checkpoint
from paramtool.sources.local import open_local


def open_values_source(
    sources: Sequence[str],
    *,
    revision: str | None = None,
    token: str | None = None,
    subfolder: str | None = None,
    download: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> Checkpoint:
    """Open a checkpoint whose values will be read: local paths, or a Hub repo with ``download``.

    A Hub repo is refused without ``download`` (before any request): reading values
    means fetching the weights. With it, the headers are read first (pinning the
    commit), then exactly those files are fetched into the huggingface_hub cache;
    ``progress`` is called with (files fetched, files to fetch).
    """
    from paramtool.sources import is_hub_source, open_source

    hub = sources[0] if len(sources) == 1 and is_hub_source(sources[0]) else None
    if hub is not None and not download:
        raise UsageError(
            hub,
            lambda p: (
                "reading values needs the weights themselves (often gigabytes): pass "
                f"{p('download')} to fetch them into the huggingface_hub cache, or give a "
                "local path"
            ),
        )
    checkpoint = open_source(sources, revision=revision, token=token, subfolder=subfolder)
    if checkpoint.hub is None:
        return checkpoint
    return download_checkpoint(checkpoint, token=token, progress=progress)


MIN_RATE = 1_000_000  # bytes per second: a file's download deadline is the timeout plus this
DOWNLOAD_WORKERS = 8  # files fetched at once, as snapshot_download


def download_checkpoint(
    checkpoint: Checkpoint,
    *,
    token: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Checkpoint:
    """Fetch the files of a Hub checkpoint into the huggingface_hub cache and re-open them there.

    Exactly the files whose headers were read, each at the headers' commit (never at a
    branch, which may have moved: the values always belong to the headers), and no
    listing of the repo is asked for. The cache then records where the revision the user
    named points, so an offline run finds them again. Each file must arrive within
    ``PARAMTOOL_HUB_TIMEOUT`` plus one second per megabyte. ``progress`` is called with
    (files fetched, files to fetch).
    """
    from paramtool.sources.hub_errors import hub_errors
    from paramtool.sources.hub_http import hub_timeout
    from paramtool.sources.hub_pool import Job, counter, run_all

    info = checkpoint.hub
    assert info is not None
    sizes = {f.path: f.file_size for f in checkpoint.files}
    if checkpoint.index_path:
        sizes[checkpoint.index_path] = 0
    names = list(sizes)
    timeout = hub_timeout()
    advance = counter(len(names), progress)

    def fetch(name: str) -> str:
        path = _hf_download(info.repo_id, name, info.revision, token)
        advance()
        return path

    with hub_errors(info.repo_id, info.requested_revision):
        paths = run_all(
            [
                Job(
                    f"{info.repo_id}/{n}",
                    partial(fetch, n),
                    timeout + sizes[n] / MIN_RATE,
                    "the download did not finish",
                )
                for n in names
            ],
            workers=DOWNLOAD_WORKERS,
        )
    local = dict(zip(names, paths, strict=True))
    _record_ref(local[names[0]], names[0], info.revision, info.requested_revision)
    # The same validation as any local checkpoint (cache snapshots link into blobs/, which
    # open_local accepts); the Hub's custody facts and the repo's configs are kept.
    if checkpoint.index_path:
        opened = open_local([local[checkpoint.index_path]])
    else:
        opened = open_local([local[f.path] for f in checkpoint.files])
    return replace(
        opened,
        source=checkpoint.source,
        config=checkpoint.config,
        adapter_config=checkpoint.adapter_config,
        warnings=checkpoint.warnings,
        hub=info,
        pickle_files=checkpoint.pickle_files,
        code_files=checkpoint.code_files,
    )


def _hf_download(repo_id: str, name: str, sha: str, token: str | None) -> str:
    """One file through ``hf_hub_download``, retried as every Hub request on 5xx and drops."""
    import time

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    from paramtool.sources.hub_files import download_options
    from paramtool.sources.hub_http import RETRIES, RETRY_WAITS, http_errors

    retried: tuple[type[BaseException], ...] = (HfHubHTTPError, *http_errors().transient)
    for tries in range(RETRIES + 1):
        try:
            return str(
                hf_hub_download(repo_id, name, revision=sha, token=token, **download_options())
            )
        except retried as e:
            status = getattr(getattr(e, "response", None), "status_code", None) or 0
            if tries == RETRIES or (isinstance(e, HfHubHTTPError) and status < 500):
                raise
            time.sleep(RETRY_WAITS[tries])
    raise AssertionError("unreachable")


def _record_ref(path: str, name: str, sha: str, revision: str | None) -> None:
    """``refs/<revision>`` in the cache: the sha the files were fetched at (best effort).

    huggingface_hub writes it when it fetches by a branch or tag name; these files were
    fetched by commit, so that the branch moving meanwhile cannot mix two commits.
    """
    from paramtool.sources.hub_early import DEFAULT_REVISION

    revision = revision or DEFAULT_REVISION
    if revision == sha:
        return
    parts = [p for p in revision.split("/") if p]
    if any(p in (".", "..") for p in parts) or "\\" in revision:
        return
    # <cache>/models--org--name/snapshots/<sha>/<name>
    snapshot = Path(path).parents[len(name.split("/")) - 1]
    if snapshot.name != sha or snapshot.parent.name != "snapshots":
        return
    ref = snapshot.parent.parent / "refs" / revision
    try:
        if ref.is_file() and ref.read_text() == sha:
            return
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref.with_name(f"{ref.name}.{os.getpid()}.tmp")
        tmp.write_text(sha)
        os.replace(tmp, ref)
    except OSError:
        pass


