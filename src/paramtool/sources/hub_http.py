"""huggingface_hub's HTTP client, whichever it is: requests (0.x), httpx (1.x) or httpx2 (2.x).

paramtool reaches the Hub only through huggingface_hub's public API: its session, its
retrying requests (``http_backoff``, and ``http_stream_backoff`` since 1.0) and its
errors. What still differs between those lines (the exception classes, how a streamed
body is read) is found here at run time, from the library huggingface_hub's own
session is made with; paramtool imports no HTTP client of its own.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

RETRY_ON_STATUS = (408, 429, 500, 502, 503, 504)
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class HttpErrors:
    """The exception classes of huggingface_hub's HTTP client."""

    network: tuple[type[BaseException], ...]  # every failure of a request or a transfer
    timeout: tuple[type[BaseException], ...]
    transient: tuple[type[BaseException], ...]  # retried: timeouts, dropped keep-alive connections


@functools.cache
def http_errors() -> HttpErrors:
    """The classes of the client behind ``huggingface_hub.utils.get_session()``."""
    from huggingface_hub.utils import get_session

    client = importlib.import_module(type(get_session()).__module__.partition(".")[0])
    if hasattr(client, "RequestException"):  # requests
        exc = client.exceptions
        return HttpErrors(
            network=(exc.RequestException,),
            timeout=(exc.Timeout,),
            # huggingface_hub 0.x drops its cached sessions on a ConnectionError, leaving the
            # ones other threads hold open: retrying one is safe there.
            transient=(exc.Timeout, exc.ConnectionError, exc.ChunkedEncodingError),
        )
    return HttpErrors(  # httpx and httpx2
        network=(client.HTTPError, client.StreamError, client.InvalidURL),
        timeout=(client.TimeoutException,),
        # Not ConnectError: huggingface_hub then closes the client the other threads use.
        transient=(client.TimeoutException, client.RemoteProtocolError, client.ReadError),
    )


@contextlib.contextmanager
def stream_get(
    url: str,
    headers: Mapping[str, str],
    *,
    timeout: float,
    max_retries: int,
    base_wait_time: float,
    max_wait_time: float,
) -> Iterator[Any]:
    """A GET whose body is read as it arrives, retried by huggingface_hub's backoff."""
    from huggingface_hub import utils

    kw: dict[str, Any] = {
        "headers": dict(headers),
        "timeout": timeout,
        "max_retries": max_retries,
        "base_wait_time": base_wait_time,
        "max_wait_time": max_wait_time,
        "retry_on_exceptions": http_errors().transient,
        "retry_on_status_codes": RETRY_ON_STATUS,
    }
    stream_backoff = getattr(utils, "http_stream_backoff", None)
    if stream_backoff is not None:  # 1.0 and later
        with stream_backoff("GET", url, **kw) as r:
            yield r
        return
    r = utils.http_backoff("GET", url, stream=True, **kw)  # 0.x: requests
    try:
        yield r
    finally:
        r.close()


def iter_body(r: Any) -> Iterator[bytes]:
    """The chunks of a streamed response body."""
    if hasattr(r, "iter_bytes"):  # httpx, httpx2
        return iter(r.iter_bytes())
    return iter(r.iter_content(chunk_size=_CHUNK))


def read_body(r: Any) -> bytes:
    """The rest of a streamed response body (before an error is raised from it)."""
    if hasattr(r, "iter_bytes"):
        return bytes(r.read())
    return bytes(r.content)
