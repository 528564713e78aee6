"""Turn what the user typed (paths or a Hub repo id) into a Checkpoint."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from paramtool.errors import UsageError
from paramtool.records import Checkpoint
from paramtool.sources.local import open_local


def open_source(
    sources: Sequence[str],
    *,
    revision: str | None = None,
    token: str | None = None,
    subfolder: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Checkpoint:
    """Open local paths, or one Hub repo (``org/name[@rev]``, ``hf://...``), headers only.

    A local path of that name wins over a Hub repo id unless ``hf://`` is given.
    ``progress`` is called with (shard headers read, shard headers to read) while a Hub
    repo is read; nothing is drawn.
    """
    hub = [s for s in sources if is_hub_source(s)]
    if hub:
        if len(sources) != 1:
            raise UsageError(
                " ".join(sources), "give one Hub repo, or local files, not both or several"
            )
        from paramtool.sources.hub import open_hub
        from paramtool.sources.hub_source import parse_hub_source

        parsed = parse_hub_source(hub[0])
        if parsed is None:
            raise UsageError(hub[0], "not a Hub repo id (expected org/name or org/name@revision)")
        if revision and parsed.revision and revision != parsed.revision:
            given = parsed.revision
            raise UsageError(
                hub[0],
                lambda p: f"two revisions given ({given!r} and {p('revision')} {revision!r})",
            )
        return open_hub(
            parsed, revision=revision, token=token, subfolder=subfolder, progress=progress
        )
    if revision or subfolder:
        raise UsageError(
            "", "only apply to Hub repos, not local paths", param=("revision", "subfolder")
        )
    return open_local(sources)


def is_hub_source(text: str) -> bool:
    """:func:`paramtool.sources.hub_source.is_hub_source`, without importing that module
    for a path that is there (the usual case: a local run builds none of the Hub's records)."""
    if not text.startswith("hf://"):
        try:
            os.lstat(text)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except (OSError, ValueError):
            return False  # local, though it cannot be looked at (is_local_path)
        else:
            return False  # a local path of that name wins
    from paramtool.sources.hub_source import is_hub_source as by_name

    return by_name(text)
