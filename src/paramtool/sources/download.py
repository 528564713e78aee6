"""Sources whose values are read: local paths as they are, Hub repos downloaded first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

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
    quiet: bool = False,
) -> Checkpoint:
    """Open a checkpoint whose values will be read: local paths, or a Hub repo with ``download``.

    A Hub repo is refused without ``download`` (before any request): reading values
    means fetching the weights. With it, the headers are read first (pinning the
    commit), then exactly those files are fetched into the huggingface_hub cache.
    """
    from paramtool.sources import open_source

    hub = None
    if len(sources) == 1 and (sources[0].startswith("hf://") or not os.path.exists(sources[0])):
        from paramtool.sources.hub_source import is_hub_source

        hub = sources[0] if is_hub_source(sources[0]) else None
    if hub is not None and not download:
        raise UsageError(
            hub,
            "reading values needs the weights themselves (often gigabytes): pass "
            "--download to fetch them into the huggingface_hub cache, or give a "
            "local path",
        )
    checkpoint = open_source(
        sources, revision=revision, token=token, subfolder=subfolder, quiet=quiet
    )
    if checkpoint.hub is None:
        return checkpoint
    return download_checkpoint(checkpoint, token=token, quiet=quiet)


def download_checkpoint(
    checkpoint: Checkpoint, *, token: str | None = None, quiet: bool = False
) -> Checkpoint:
    """Fetch the files of a Hub checkpoint into the huggingface_hub cache and re-open them there.

    They are fetched by the revision the user named, so that the cache learns where
    that branch or tag points (an offline run finds them again), and by commit when
    the branch has moved since the headers were read: the values always belong to
    the headers' commit.
    """
    from huggingface_hub import snapshot_download

    from paramtool.sources.hub_errors import hub_errors

    info = checkpoint.hub
    assert info is not None
    names = [f.path for f in checkpoint.files]
    if checkpoint.index_path:
        names.append(checkpoint.index_path)
    if quiet:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    with hub_errors(info.repo_id, info.requested_revision):
        folder = snapshot_download(
            info.repo_id, revision=info.requested_revision, allow_patterns=names, token=token
        )
        if os.path.basename(os.path.normpath(folder)) != info.revision:
            folder = snapshot_download(
                info.repo_id, revision=info.revision, allow_patterns=names, token=token
            )
    # The same validation as any local checkpoint (cache snapshots link into blobs/, which
    # open_local accepts); the Hub's custody facts and the repo's configs are kept.
    if checkpoint.index_path:
        local = open_local([os.path.join(folder, checkpoint.index_path)])
    else:
        local = open_local([os.path.join(folder, f.path) for f in checkpoint.files])
    return replace(
        local,
        source=checkpoint.source,
        config=checkpoint.config,
        adapter_config=checkpoint.adapter_config,
        warnings=checkpoint.warnings,
        hub=info,
        pickle_files=checkpoint.pickle_files,
    )
