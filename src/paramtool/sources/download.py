"""Sources whose values are read: local paths as they are, Hub repos downloaded first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

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
    from paramtool.sources import open_source

    hub = None
    if len(sources) == 1 and (sources[0].startswith("hf://") or not os.path.exists(sources[0])):
        from paramtool.sources.hub_source import is_hub_source

        hub = sources[0] if is_hub_source(sources[0]) else None
    if hub is not None and not download:
        raise UsageError(
            hub,
            lambda p: "reading values needs the weights themselves (often gigabytes): pass "
            f"{p('download')} to fetch them into the huggingface_hub cache, or give a "
            "local path",
        )
    checkpoint = open_source(sources, revision=revision, token=token, subfolder=subfolder)
    if checkpoint.hub is None:
        return checkpoint
    return download_checkpoint(checkpoint, token=token, progress=progress)


def download_checkpoint(
    checkpoint: Checkpoint,
    *,
    token: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Checkpoint:
    """Fetch the files of a Hub checkpoint into the huggingface_hub cache and re-open them there.

    They are fetched by the revision the user named, so that the cache learns where
    that branch or tag points (an offline run finds them again), and by commit when
    the branch has moved since the headers were read: the values always belong to
    the headers' commit. ``progress`` is called with (files fetched, files to fetch).
    """
    from huggingface_hub import snapshot_download

    from paramtool.sources.hub_errors import hub_errors

    info = checkpoint.hub
    assert info is not None
    names = [f.path for f in checkpoint.files]
    if checkpoint.index_path:
        names.append(checkpoint.index_path)
    kw: dict[str, Any] = {"allow_patterns": names, "token": token}
    with hub_errors(info.repo_id, info.requested_revision):
        kw["tqdm_class"] = _reporting_tqdm(progress)
        folder = snapshot_download(info.repo_id, revision=info.requested_revision, **kw)
        if os.path.basename(os.path.normpath(folder)) != info.revision:
            kw["tqdm_class"] = _reporting_tqdm(progress)
            folder = snapshot_download(info.repo_id, revision=info.revision, **kw)
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


def _reporting_tqdm(progress: Callable[[int, int], None] | None) -> type[Any]:
    """A ``tqdm_class`` for ``snapshot_download`` that draws nothing and reports files fetched.

    snapshot_download counts the files it fetches on a bar of this class (advanced by
    ``update`` or, in the 0.x line, by iterating it); its byte bars (``unit="B"``, 1.x
    and later) are silent too, and not reported.
    """
    from huggingface_hub.utils import tqdm

    class Reporting(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            iterable: Any = args[0] if args else kwargs.get("iterable")
            total = kwargs.get("total")
            if total is None and hasattr(iterable, "__len__"):
                total = len(iterable)
            self._report = progress if kwargs.get("unit", "it") != "B" else None
            self._done, self._all = 0, int(total or 0)
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
            if self._report is not None and self._all:
                self._report(0, self._all)

        def update(self, n: float | None = 1) -> bool | None:
            if self._report is not None and self._all:
                self._done = min(self._all, self._done + int(n or 0))
                self._report(self._done, self._all)
            return super().update(n)  # type: ignore[no-any-return]

        def __iter__(self) -> Any:  # a disabled tqdm iterates without counting
            for item in self.iterable:
                yield item
                self.update(1)

    return Reporting
