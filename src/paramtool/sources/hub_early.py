"""An inspection's first wave of Hub requests: the model info and the JSON files most repos have.

Both are asked for at the requested revision before the commit is known: the model info
(which pins it) and, beside it, the index and ``config.json`` (:class:`EarlyFile`), each
answer of the latter used only when the Hub says (``X-Repo-Commit``) it is the file at
the commit the model info pins, and the file otherwise fetched again at that commit.

:func:`first_wave` starts them, each GET on its own daemon thread. The console script
starts the wave of a Hub ``inspect`` before it even builds its command line
(:mod:`paramtool.cli.head_start`): it keeps the wave (:func:`keep`), and the inspection's
own :func:`first_wave` with the same repo, revision, subfolder and request headers takes
it rather than asking again. So this module imports only what the requests need.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlencode

from paramtool.formats.index import MAX_JSON_SIDECAR
from paramtool.sources.hub_http import Answer, fetch, resolve_url

DEFAULT_REVISION = "main"  # the ref huggingface_hub records when no revision is named
MAX_MODEL_INFO = 20_000_000  # bytes: a repo of 100,000 files lists in about 10 MB
EARLY = ("model.safetensors.index.json", "config.json")  # guessed before the model info
INFO_FIELDS = ("sha", "siblings", "cardData", "gated", "private", "safetensors")
_SHA40 = re.compile(r"[0-9a-f]{40}")


class Call:
    """One :func:`~paramtool.sources.hub_http.fetch`, run at once on a daemon thread."""

    def __init__(self, url: str, headers: Mapping[str, str], limit: int, what: str) -> None:
        self._done = threading.Event()
        self._answer: Answer | None = None
        self._error: BaseException | None = None
        self._args = (url, dict(headers), limit, what)
        threading.Thread(target=self._run, name="paramtool-hub-early", daemon=True).start()

    def _run(self) -> None:
        from paramtool.sources.hub_errors import quiet_hub

        url, headers, limit, what = self._args
        try:
            with quiet_hub():
                self._answer = fetch(url, headers, limit=limit, what=what)
        except BaseException as e:  # kept for result(); EarlyFile.at drops it
            self._error = e
        finally:
            self._done.set()

    def result(self) -> Answer:
        """The answer, once it came; the fetch's error, raised here, if it failed."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._answer is not None
        return self._answer


class EarlyFile(Call):
    """A small file asked for at the requested revision, before its commit is known.

    Any failure (a 404 for a wrong guess, a timeout) is dropped: :meth:`at` then answers
    None, and the file is fetched again at the pinned commit, where its errors are reported.
    """

    def __init__(self, url: str, headers: Mapping[str, str], name: str) -> None:
        super().__init__(url, headers, MAX_JSON_SIDECAR, name)

    def at(self, sha: str) -> Answer | None:
        """The answer, once it came, when the Hub served it from commit ``sha`` in full."""
        self._done.wait()
        a = self._answer
        if a is None or a.status != 200 or not a.complete:
            return None
        return a if a.headers.get("x-repo-commit", "").strip() == sha else None


def model_info_url(repo_id: str, revision: str | None) -> str:
    """The model info's URL at ``revision`` (the default branch when None), its query aside."""
    from huggingface_hub import constants

    path = f"/revision/{quote(revision, safe='')}" if revision else ""
    return f"{constants.ENDPOINT.rstrip('/')}/api/models/{repo_id}{path}"


def model_info_query() -> str:
    return urlencode([("expand", f) for f in INFO_FIELDS])


def subfolder_prefix(subfolder: str) -> str:
    """``subfolder`` as the prefix of the repo paths inside it: ``""`` or ``"dir/"``."""
    s = subfolder.strip("/")
    return f"{s}/" if s else ""


Wave = tuple[dict[str, EarlyFile], Call]
_Key = tuple[str, str | None, str, tuple[tuple[str, str], ...]]
_kept: dict[_Key, Wave] = {}
_kept_lock = threading.Lock()


def _key(repo_id: str, revision: str | None, subfolder: str, headers: Mapping[str, str]) -> _Key:
    return (repo_id, revision, subfolder_prefix(subfolder), tuple(sorted(headers.items())))


def first_wave(
    repo_id: str, revision: str | None, subfolder: str, headers: Mapping[str, str]
) -> Wave:
    """The early files (:func:`early_files`) and the model info's :class:`Call`: the ones
    :func:`keep` holds for these arguments, taken (once), or started now."""
    with _kept_lock:
        kept = _kept.pop(_key(repo_id, revision, subfolder, headers), None)
    if kept is not None:
        return kept
    url = f"{model_info_url(repo_id, revision)}?{model_info_query()}"
    info = Call(url, headers, MAX_MODEL_INFO, "model info")
    prefix = subfolder_prefix(subfolder)
    return early_files(repo_id, revision, [prefix + n for n in EARLY], headers), info


def keep(repo_id: str, revision: str | None, subfolder: str, headers: Mapping[str, str]) -> None:
    """Start the first wave now, for the inspection that will ask for it (:func:`first_wave`)."""
    wave = first_wave(repo_id, revision, subfolder, headers)
    with _kept_lock:
        _kept[_key(repo_id, revision, subfolder, headers)] = wave


def early_files(
    repo_id: str, revision: str | None, names: list[str], headers: Mapping[str, str]
) -> dict[str, EarlyFile]:
    """Start the GETs of ``names`` at ``revision`` (``main`` when None, as huggingface_hub),
    except those the cache holds at the commit its ref for that revision names (a repeat
    run reads them from there, asking nothing)."""
    rev = revision or DEFAULT_REVISION
    known = rev if _SHA40.fullmatch(rev) else None
    if known is None and plain_path(rev):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            ref = repo_storage(repo_id) / "refs" / rev
            known = ref.read_text().strip() if ref.is_file() else None
    return {
        n: EarlyFile(resolve_url(repo_id, n, rev), headers, n)
        for n in names
        if known is None or cached_file(repo_id, known, n) is None
    }


def plain_path(name: str) -> bool:
    """A repo path that stays inside the folder it is joined to."""
    parts = name.split("/")
    return bool(name) and "\\" not in name and all(p not in ("", ".", "..") for p in parts)


def repo_storage(repo_id: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))


def cached_file(repo_id: str, sha: str, name: str) -> Path | None:
    """``try_to_load_from_cache`` at a commit sha: the snapshot's file, if it is there."""
    if not plain_path(name):
        return None
    path = repo_storage(repo_id) / "snapshots" / sha / name
    return path if path.is_file() else None
