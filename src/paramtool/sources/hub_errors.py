"""The one table from huggingface_hub's exceptions to paramtool's errors; its noise kept quiet."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any, cast

from paramtool.errors import HubError, ParamtoolError

_quiet_lock = threading.Lock()
_quiet_depth = 0
_saved: tuple[int, Any] = (logging.NOTSET, None)  # the logger's level, the filter added


@contextlib.contextmanager
def quiet_hub() -> Iterator[None]:
    """While any Hub call of paramtool's runs, huggingface_hub logs and warns nothing.

    Its retry messages carry full URLs and would come before paramtool's one line; what
    went wrong is paramtool's to say. Counted, so that threads overlap: the logger's level
    and the warnings filters are put back when the last call ends.
    """
    global _quiet_depth, _saved
    log = logging.getLogger("huggingface_hub")
    with _quiet_lock:
        _quiet_depth += 1
        if _quiet_depth == 1:
            level = log.level
            log.setLevel(logging.CRITICAL + 1)
            warnings.filterwarnings("ignore", module=r"huggingface_hub(\.|$)")
            _saved = (level, warnings.filters[0])
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                level, added = _saved
                log.setLevel(level)
                with contextlib.suppress(ValueError):
                    cast(list[Any], warnings.filters).remove(added)


@contextlib.contextmanager
def hub_errors(repo_id: str, revision: str | None) -> Iterator[None]:
    """Turn huggingface_hub's and the network's exceptions into one-line HubErrors.

    The one error table for every Hub call paramtool makes (inspect, verify, --download);
    huggingface_hub stays quiet meanwhile (:func:`quiet_hub`).
    """
    try:
        with quiet_hub():
            yield
    except ParamtoolError:
        raise
    except _network_errors() as e:
        raise _hub_error(e, repo_id, revision) from None


_REPO_API = re.compile(r"^https://[^/]+(/api/(models|datasets|spaces)/(.+)|/(.+)/resolve/(.+))")


def _status_error(e: Any, repo_id: str, revision: str | None) -> ParamtoolError:
    """An error status on the direct transport, classified as ``hf_raise_for_status`` does."""
    from paramtool.sources.hub_http import shown_url

    status, code, message = e.status, e.code, e.message
    if code == "RevisionNotFound":
        kind = "revision"
    elif code == "EntryNotFound":
        kind = "entry"
    elif code == "GatedRepo":
        kind = "gated"
    elif message == "Access to this resource is disabled.":
        kind = "disabled"
    elif code == "RepoNotFound" or (
        status == 401
        and message != "Invalid credentials in Authorization header"
        and _REPO_API.search(e.url) is not None
    ):
        kind = "repo"
    else:
        kind = ""
    return _line(kind, status, shown_url(e.url), repo_id, revision)


def _line(
    kind: str, status: int | None, url: str | None, repo_id: str, revision: str | None
) -> ParamtoolError:
    """The one line for a Hub error of ``kind`` (or an HTTP ``status``)."""
    endpoint = _endpoint()
    if kind == "gated":
        return HubError(
            repo_id,
            lambda p: (
                "gated repo: accept its licence on the Hub, then set HF_TOKEN "
                f"(or pass {p('token')})"
            ),
        )
    if kind == "repo":
        return HubError(
            repo_id,
            lambda p: (
                f"repository not found on {endpoint} (if it is private or gated, "
                f"set HF_TOKEN or pass {p('token')})"
            ),
        )
    if kind == "revision":
        return HubError(
            f"{repo_id}@{revision}", "revision not found (no branch, tag or commit of that name)"
        )
    if kind == "disabled":
        return HubError(repo_id, "this repository has been disabled on the Hub")
    if kind == "entry":
        return HubError(repo_id, "a file the repo lists is missing on the Hub")
    if status in (401, 403):
        return HubError(
            repo_id,
            lambda p: (
                f"access denied ({status}): accept the repo's licence on the "
                f"Hub if it is gated, and set HF_TOKEN (or pass {p('token')}) to a "
                "token with access"
            ),
        )
    if status == 429:
        return HubError(endpoint, "rate limited by the Hub (429); wait, or set HF_TOKEN")
    return HubError(url or endpoint, f"the Hub answered HTTP {status}")


def _hub_error(e: BaseException, repo_id: str, revision: str | None) -> ParamtoolError:
    """Map huggingface_hub / HTTP exceptions to one line; never their text, which has URLs."""
    from paramtool.sources.hub_http import (
        HubNetworkError,
        HubStatusError,
        http_errors,
        shown_url,
        unreachable,
    )

    endpoint = _endpoint()
    if isinstance(e, HubStatusError):
        return _status_error(e, repo_id, revision)
    if isinstance(e, HubNetworkError):
        if isinstance(e.cause, TimeoutError):
            return HubError(
                endpoint, "timed out talking to the Hub (HF_HUB_DOWNLOAD_TIMEOUT sets the limit)"
            )
        cause = unreachable(e.cause)
        if cause is not None:
            return _cannot_reach(endpoint, cause)
        return HubError(endpoint, f"network failure talking to the Hub ({type(e.cause).__name__})")
    from huggingface_hub import errors as hf

    if isinstance(e, hf.GatedRepoError):
        return HubError(
            repo_id,
            lambda p: (
                "gated repo: accept its licence on the Hub, then set HF_TOKEN "
                f"(or pass {p('token')})"
            ),
        )
    if isinstance(e, hf.RepositoryNotFoundError):
        return HubError(
            repo_id,
            lambda p: (
                f"repository not found on {endpoint} (if it is private or gated, "
                f"set HF_TOKEN or pass {p('token')})"
            ),
        )
    if isinstance(e, hf.RevisionNotFoundError):
        return _line("revision", None, None, repo_id, revision)
    if isinstance(e, hf.DisabledRepoError):
        return _line("disabled", None, None, repo_id, revision)
    if isinstance(e, hf.OfflineModeIsEnabled):
        return HubError(repo_id, "HF_HUB_OFFLINE is set and this needs the network")
    if isinstance(e, hf.LocalEntryNotFoundError):  # hf_hub_download could not reach the Hub
        if offline():
            return HubError(repo_id, "HF_HUB_OFFLINE is set and a file needed is not cached")
        cause = unreachable(e)
        if cause is not None:
            return _cannot_reach(endpoint, cause)
        return HubError(endpoint, "could not reach the Hub, and the file is not in the local cache")
    if isinstance(e, hf.EntryNotFoundError):
        return _line("entry", None, None, repo_id, revision)
    if isinstance(e, hf.HfHubHTTPError):
        status = getattr(getattr(e, "response", None), "status_code", None)
        url = getattr(getattr(e, "response", None), "url", None)
        return _line("", status, shown_url(str(url)) if url else None, repo_id, revision)
    if isinstance(e, OSError) and e.strerror and not isinstance(e, ConnectionError):
        return HubError(str(e.filename or repo_id), e.strerror)  # the cache, not the network
    if isinstance(e, http_errors().timeout):
        return HubError(
            endpoint, "timed out talking to the Hub (HF_HUB_DOWNLOAD_TIMEOUT sets the limit)"
        )
    cause = unreachable(e)
    if cause is not None:
        return _cannot_reach(endpoint, cause)
    return HubError(endpoint, f"network failure talking to the Hub ({type(e).__name__})")


def _cannot_reach(endpoint: str, cause: str) -> HubError:
    return HubError(
        endpoint,
        f"cannot reach the Hub: {cause} (offline? HF_HUB_OFFLINE=1 answers from the local cache)",
    )


def offline() -> bool:
    """HF_HUB_OFFLINE, as huggingface_hub reads it (``is_offline_mode()`` in later 1.x and 2.x)."""
    from huggingface_hub import constants

    check = getattr(constants, "is_offline_mode", None)
    return bool(check() if check is not None else constants.HF_HUB_OFFLINE)


def _endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def _network_errors() -> tuple[type[BaseException], ...]:
    from paramtool.sources.hub_http import HubNetworkError, HubStatusError, http_errors

    if isinstance(sys.exc_info()[1], (HubNetworkError, HubStatusError)):
        return (HubNetworkError, HubStatusError)  # without importing huggingface_hub's client
    from huggingface_hub import errors as hf

    return (
        HubNetworkError,
        HubStatusError,
        hf.HfHubHTTPError,
        hf.OfflineModeIsEnabled,
        hf.EntryNotFoundError,
        *http_errors().network,
        OSError,
    )
