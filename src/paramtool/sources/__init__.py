"""Turn what the user typed (paths or a Hub repo id) into a Checkpoint."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from paramtool.errors import UsageError

if TYPE_CHECKING:
    from paramtool.records import Checkpoint


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
    started = _take_started(sources, revision, token, subfolder)
    if started is not None:
        return started.result(progress)
    return _open_source(
        sources, revision=revision, token=token, subfolder=subfolder, progress=progress
    )


def _open_source(
    sources: Sequence[str],
    *,
    revision: str | None,
    token: str | None,
    subfolder: str | None,
    progress: Callable[[int, int], None] | None,
) -> Checkpoint:
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
    from paramtool.sources.local import open_local

    return open_local(sources)


_Args = tuple[tuple[str, ...], str | None, str | None, str | None]


class _Started:
    """:func:`open_source` of one Hub repo, under way on a daemon thread (:func:`start_hub`).

    What it reports of its progress is passed on to the caller's callback once there is one
    (the last report first), and its error, if it fails, is raised to that caller as is.
    """

    def __init__(self, args: _Args) -> None:
        self.args = args
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._report: Callable[[int, int], None] | None = None
        self._last: tuple[int, int] | None = None
        self._checkpoint: Checkpoint | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, name="paramtool-hub-start", daemon=True).start()

    def _run(self) -> None:
        sources, revision, token, subfolder = self.args
        try:
            self._checkpoint = _open_source(
                sources, revision=revision, token=token, subfolder=subfolder, progress=self._pass
            )
        except BaseException as e:  # raised by result(), in the caller's thread
            self._error = e
        finally:
            self._done.set()

    def _pass(self, done: int, total: int) -> None:
        with self._lock:
            self._last = (done, total)
            if self._report is not None:
                self._report(done, total)

    def result(self, progress: Callable[[int, int], None] | None) -> Checkpoint:
        with self._lock:
            self._report = progress
            if progress is not None and self._last is not None:
                progress(*self._last)
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._checkpoint is not None
        return self._checkpoint


_started: list[_Started] = []


def start_hub(
    source: str, *, revision: str | None, token: str | None, subfolder: str | None
) -> bool:
    """Begin reading a Hub repo's headers now, for the :func:`open_source` call that will ask
    for exactly this (the console script's ``inspect``, before it builds its command line:
    :mod:`paramtool.cli.head_start`); the first wave of requests leaves before this returns.

    Only online, on paramtool's own HTTP transport, for a source that names a Hub repo;
    anything else is left to that call (False). Nothing here raises: what goes wrong is
    met again, and reported, there.
    """
    try:
        if not is_hub_source(source):
            return False
        from paramtool.sources.hub_early import keep
        from paramtool.sources.hub_errors import offline
        from paramtool.sources.hub_http import direct, hub_headers
        from paramtool.sources.hub_source import parse_hub_source

        parsed = parse_hub_source(source)
        if parsed is None or (revision and parsed.revision and revision != parsed.revision):
            return False
        if offline() or not direct():
            return False
        keep(parsed.repo_id, revision or parsed.revision, subfolder or "", hub_headers(token))
    except Exception:
        return False
    _started.append(_Started(((source,), revision, token, subfolder)))
    return True


def reading_started() -> bool:
    """Whether a reading :func:`start_hub` began waits to be taken."""
    return bool(_started)


def _take_started(
    sources: Sequence[str], revision: str | None, token: str | None, subfolder: str | None
) -> _Started | None:
    if not _started:
        return None
    started = _started.pop()
    return started if started.args == (tuple(sources), revision, token, subfolder) else None


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
