"""huggingface_hub's HTTP client, whichever it is: requests (0.x), httpx (1.x) or httpx2 (2.x).

huggingface_hub names the endpoint, the cache, the timeouts and (:func:`hub_headers`) the
token; paramtool's own requests (model info, the small JSON files, header ranges) go out on
Python's ``http.client`` with a keep-alive pool per host (:class:`_Pool`): importing
huggingface_hub's HTTP client costs more than a whole first inspection's requests, and every
range then reuses a connection. Where the environment asks for what only that client does
(a proxy, a CA bundle: :func:`direct`), the same requests go through huggingface_hub's session
(``http_backoff``, and ``http_stream_backoff`` since 1.0), found at run time like its errors.
Either way a redirect to another origin (the Hub's CDN) is followed without the token.

:func:`fetch` is the one GET every request of paramtool's own goes through (model info,
the small JSON files, shard header ranges). It bounds what a server can cost: a total
deadline per request (:func:`hub_timeout`, ``PARAMTOOL_HUB_TIMEOUT``), a cap on the bytes
read (stopped while streaming), a few retries with short waits, and a 429 whose
``Retry-After`` is waited out only when it is short.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from paramtool.errors import HubError, UsageError

RETRY_ON_STATUS = (408, 500, 502, 503, 504)  # 429 is handled apart: its wait is the server's
RETRIES = 2  # after the first try, on 408/5xx, timeouts and dropped keep-alive connections
RETRY_WAITS = (0.25, 1.0)  # seconds before the first and second retry
MAX_RETRY_AFTER = 5  # seconds: a 429 asking for a longer wait fails at once, saying how long
DEFAULT_TIMEOUT = 60.0  # seconds per request, all of it: connecting, waiting, reading
TIMEOUT_ENV = "PARAMTOOL_HUB_TIMEOUT"
_ERROR_BODY = 1 << 16  # an error answer's body is read (for its message) only up to this
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class HttpErrors:
    """The exception classes of huggingface_hub's HTTP client."""

    network: tuple[type[BaseException], ...]  # every failure of a request or a transfer
    timeout: tuple[type[BaseException], ...]
    transient: tuple[type[BaseException], ...]  # retried: timeouts, dropped keep-alive connections


class HubStatusError(Exception):
    """An error status from the Hub on the direct transport: hub_errors words it as
    huggingface_hub's ``hf_raise_for_status`` would classify it."""

    def __init__(self, status: int, headers: Mapping[str, str], url: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.url = status, url
        self.code = headers.get("x-error-code")
        self.message = headers.get("x-error-message")


class HubNetworkError(Exception):
    """A request that failed on the direct transport (``cause``: the socket's error)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


@functools.cache
def _direct_errors() -> HttpErrors:
    import http.client

    transient = (
        TimeoutError,
        ConnectionResetError,
        ConnectionAbortedError,
        BrokenPipeError,
        http.client.RemoteDisconnected,
        http.client.IncompleteRead,
    )
    return HttpErrors(network=(HubNetworkError,), timeout=(TimeoutError,), transient=transient)


_PROXIES = frozenset(("http_proxy", "https_proxy", "all_proxy"))
_REQUESTS_CA = frozenset(("requests_ca_bundle", "curl_ca_bundle"))  # requests' own (0.x)
_CERT_FILE, _CERT_DIR = "SSL_CERT_FILE", "SSL_CERT_DIR"  # honoured by httpx and httpx2 (1.x, 2.x)


CLIENT_ENV = "PARAMTOOL_HUB_CLIENT"
"""``huggingface_hub``: every request through huggingface_hub's own session (a client
configured there, e.g. by ``set_client_factory``, is then used); unset or ``auto``: see
:func:`direct`."""


def direct() -> bool:
    """Whether requests go out on ``http.client``: unless :data:`CLIENT_ENV` says
    ``huggingface_hub``, or the environment asks for what only huggingface_hub's client does
    (its session is then used): a proxy, or under 0.x, whose client is requests, requests'
    own CA variables (``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``; they mean nothing to httpx
    and httpx2, 1.x and 2.x). ``SSL_CERT_FILE``/``SSL_CERT_DIR``, which httpx and httpx2
    read, are honoured here the same way whatever the version (:func:`_tls_context`)."""
    if os.environ.get(CLIENT_ENV, "").strip().lower() == "huggingface_hub":
        return False
    names = {k.lower() for k, v in os.environ.items() if v}
    if names & _PROXIES:
        return False
    if names & _REQUESTS_CA:
        import huggingface_hub

        return not str(huggingface_hub.__version__).startswith("0.")
    return True


def _tls_context() -> Any:
    """The TLS context of an HTTPS connection: httpx's and httpx2's rule for the CA variables
    (``SSL_CERT_FILE``, else ``SSL_CERT_DIR``), else Python's default trust store."""
    return _tls_context_for(os.environ.get(_CERT_FILE) or None, os.environ.get(_CERT_DIR) or None)


@functools.cache
def _tls_context_for(cafile: str | None, capath: str | None) -> Any:
    """Certificates verified, hostnames checked. Where the system store Python finds is
    empty (python.org's macOS builds, some containers), certifi's bundle, which requests and
    httpx trust by default (a dependency of both, so present with huggingface_hub)."""
    import ssl

    if cafile:
        return ssl.create_default_context(cafile=cafile)
    if capath:
        return ssl.create_default_context(capath=capath)
    ctx = ssl.create_default_context()
    if not ctx.cert_store_stats().get("x509_ca"):
        try:
            import certifi

            ctx.load_verify_locations(cafile=certifi.where())
        except (ImportError, OSError):
            pass
    return ctx


def hub_headers(token: str | None) -> dict[str, str]:
    """huggingface_hub's request headers (``build_hf_headers``): the same token, found the same
    way. The common cases (``--token``, ``HF_TOKEN``, no login) are decided here without
    importing its HTTP client; a stored login (which it may refresh), OIDC or Colab ask it."""
    import huggingface_hub
    from huggingface_hub import constants

    env = os.environ
    stored = getattr(constants, "HF_TOKEN_PATH", None)
    send: str | None = token
    if token is None:
        if env.get("HF_OIDC_RESOURCE") or "google.colab" in sys.modules or not direct():
            return _library_headers(token)
        if getattr(constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", False):
            send = None
        else:
            send = _clean_token(env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN"))
            if send is None and stored is not None and os.path.exists(stored):
                return _library_headers(token)
    agent = f"paramtool; hf_hub/{huggingface_hub.__version__}; python/{sys.version.split()[0]}"
    headers = {"user-agent": agent}
    if send is not None:
        headers["authorization"] = f"Bearer {send}"
    return headers


def _clean_token(token: str | None) -> str | None:
    if token is None:
        return None
    return token.replace("\r", "").replace("\n", "").strip() or None


def _library_headers(token: str | None) -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    return dict(build_hf_headers(token=token))


def resolve_url(repo_id: str, name: str, revision: str) -> str:
    """``hf_hub_url`` for a model repo: the file's resolve URL at ``revision``."""
    from huggingface_hub import constants

    return str(constants.HUGGINGFACE_CO_URL_TEMPLATE).format(
        repo_id=repo_id, revision=quote(revision, safe=""), filename=quote(name)
    )


def http_errors() -> HttpErrors:
    """The classes of the transport in use (see :func:`direct`)."""
    return _direct_errors() if direct() else library_errors()


@functools.cache
def library_errors() -> HttpErrors:
    """The classes of the client behind ``huggingface_hub.utils.get_session()``."""
    from huggingface_hub.utils import get_session

    client = importlib.import_module(type(get_session()).__module__.partition(".")[0])
    if hasattr(client, "RequestException"):  # requests
        exc = client.exceptions
        return HttpErrors(
            network=(exc.RequestException,),
            timeout=(exc.Timeout,),
            transient=(exc.Timeout, exc.ConnectionError, exc.ChunkedEncodingError),
        )
    return HttpErrors(  # httpx and httpx2
        network=(client.HTTPError, client.StreamError, client.InvalidURL),
        timeout=(client.TimeoutException,),
        transient=(client.TimeoutException, client.RemoteProtocolError, client.ReadError),
    )


def hub_timeout() -> float:
    """The total deadline of one Hub request, in seconds: ``PARAMTOOL_HUB_TIMEOUT`` or 60."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e6:
        raise UsageError(f"{TIMEOUT_ENV}={raw[:40]!r}", "give a number of seconds above 0")
    return value


def shown_url(url: str) -> str:
    """What an error names of a URL: host and path; never the query (a CDN's signature)."""
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"


def timed_out(url: str, what: str, seconds: float) -> HubError:
    """The one line for a request that ran past its deadline."""
    return HubError(
        shown_url(url),
        f"timed out: no complete {what} within {seconds:g} s ({TIMEOUT_ENV} sets the limit)",
    )


class Deadline:
    """A point in time a request must be done by."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return self.at - time.monotonic()


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful GET: the first ``limit + 1`` bytes of its body at most."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str  # the URL that served it, after redirects
    complete: bool  # the body ended within the limit


def fetch(
    url: str,
    headers: Mapping[str, str],
    *,
    limit: int,
    what: str,
    timeout: float | None = None,
    cut: bool = False,
    accept: tuple[int, ...] = (),
) -> Answer:
    """GET ``url``: its status, headers and at most ``limit`` bytes of its body.

    Reading stops once the body has run past ``limit`` (``complete`` is then False); one
    whose ``Content-Length`` says it is longer is not read at all, unless ``cut`` (a range
    read from a server that may ignore Range: its first ``limit`` bytes are what is wanted).
    ``accept``: error statuses returned as answers rather than raised.
    Each try and the waits between them share one deadline (``timeout``, by default
    :func:`hub_timeout`): a server that drips or stalls ends in one line naming the URL
    and ``what`` was awaited. 408/5xx and dropped connections are retried (:data:`RETRIES`);
    a 429 is retried after its ``Retry-After`` when that is at most :data:`MAX_RETRY_AFTER`
    seconds, and otherwise fails at once. Errors the Hub names (a missing repo, revision or
    file, a gated repo) are raised as huggingface_hub's, for :mod:`hub_errors` to word.
    """
    from huggingface_hub import constants

    errors = http_errors()
    deadline = Deadline(hub_timeout() if timeout is None else timeout)
    tries = 0
    while True:
        tries += 1
        left = deadline.left()
        if left <= 0:
            raise timed_out(url, what, deadline.seconds)
        per_read = max(0.05, min(float(constants.HF_HUB_DOWNLOAD_TIMEOUT), left))
        wait = 0.0
        try:
            with stream_get(url, headers, timeout=per_read) as r:
                status = int(r.status_code)
                if status in RETRY_ON_STATUS and tries <= RETRIES:
                    wait = RETRY_WAITS[tries - 1]
                    _drain(r)
                elif status == 429:
                    asked = _retry_after(r.headers)
                    if asked is not None and asked <= MAX_RETRY_AFTER and tries <= RETRIES:
                        wait = float(asked)
                        _drain(r)
                    else:
                        raise _rate_limited(url, asked)
                elif status >= 400 and status not in accept:
                    _raise_for_status(r, url, tries)
                else:
                    body, complete = _read(r, limit, cut, url, what, deadline)
                    return Answer(status, r.headers, body, str(r.url), complete)
        except errors.timeout as e:
            if deadline.left() <= 0.05:
                raise timed_out(url, what, deadline.seconds) from None
            if tries > RETRIES:
                raise _wrapped(e) from None
            wait = RETRY_WAITS[tries - 1]
        except errors.transient as e:
            if tries > RETRIES or unreachable(e) is not None:
                raise _wrapped(e) from None
            wait = RETRY_WAITS[tries - 1]
        except Exception as e:  # the direct transport's other failures: refused, no such host
            if direct() and isinstance(e, _socket_errors()):
                raise HubNetworkError(e) from None
            raise
        if wait > deadline.left():
            raise timed_out(url, what, deadline.seconds)
        time.sleep(wait)


def _wrapped(e: BaseException) -> BaseException:
    """A direct transport's socket error as a HubNetworkError; the library's as it is."""
    return HubNetworkError(e) if direct() and isinstance(e, _socket_errors()) else e


def _socket_errors() -> tuple[type[BaseException], ...]:
    import http.client

    return (OSError, http.client.HTTPException)


def _read(
    r: Any, limit: int, cut: bool, url: str, what: str, deadline: Deadline
) -> tuple[bytes, bool]:
    """The body up to ``limit`` bytes, and whether it ended there."""
    length = r.headers.get("content-length", "")
    if not cut and length.isdigit() and int(length) > limit:
        return b"", False
    buf = bytearray()
    for chunk in iter_body(r):
        buf += chunk
        if len(buf) > limit or (cut and len(buf) == limit):
            return bytes(buf[:limit]), False
        if deadline.left() <= 0:
            raise timed_out(url, what, deadline.seconds)
    return bytes(buf), True


def _drain(r: Any) -> None:
    """Read a short error body, so that the connection is kept for the retry."""
    length = r.headers.get("content-length", "")
    if length.isdigit() and int(length) <= _ERROR_BODY:
        read_body(r)


def _retry_after(headers: Mapping[str, str]) -> int | None:
    value = headers.get("retry-after", "").strip()
    return int(value) if value.isdigit() else None


def _rate_limited(url: str, asked: int | None) -> HubError:
    when = f"; it asks to retry after {asked:,} s" if asked is not None else ""
    return HubError(shown_url(url), f"rate limited by the Hub (429){when}; wait, or set HF_TOKEN")


def _raise_for_status(r: Any, url: str, tries: int) -> None:
    """huggingface_hub's own error for a 4xx (repo, revision or file not found, gated...).

    Its body is read for that only when it is short; a long one is not read at all, nor is
    a 5xx's: their line is the status and the tries.
    """
    status = int(r.status_code)
    length = r.headers.get("content-length", "")
    if status < 500 and length.isdigit() and int(length) <= _ERROR_BODY:
        read_body(r)
        if isinstance(r, _Response):
            raise HubStatusError(status, r.headers, url)
        from huggingface_hub.utils import hf_raise_for_status

        hf_raise_for_status(r)
    after = f" ({tries} tries)" if tries > 1 else ""
    raise HubError(shown_url(url), f"the Hub answered HTTP {status}{after}")


def unreachable(e: BaseException) -> str | None:
    """Why the Hub could not be reached at all (refused, no such host...), or None.

    Read from the OS errors the client wraps; never the client's text, which has URLs.
    """
    import errno
    import socket
    import ssl

    untrusted = "its TLS certificate is not trusted"
    where = "SSL_CERT_FILE names the CA certificates to trust"
    seen: set[int] = set()
    stack: list[Any] = [e]
    while stack:
        x = stack.pop()
        if not isinstance(x, BaseException) or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, ssl.SSLCertVerificationError):
            why = str(x.verify_message or "verification failed")[:100]
            return f"{untrusted} ({why}; {where})"
        if isinstance(x, ssl.SSLError):
            return f"the TLS handshake failed ({str(x.reason or 'no reason given')[:60]})"
        if isinstance(x, socket.gaierror):
            return "the host name does not resolve"
        if isinstance(x, ConnectionRefusedError) or getattr(x, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
        if getattr(x, "errno", None) in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "no route to the host"
        stack.extend([x.__cause__, x.__context__, *x.args])
        stack.extend(getattr(x, a, None) for a in ("reason", "original_error"))
    text = str(e)
    for needle, why in (
        ("CERTIFICATE_VERIFY_FAILED", f"{untrusted} ({where})"),
        ("Connection refused", "connection refused"),
        ("Name or service not known", "the host name does not resolve"),
        ("nodename nor servname", "the host name does not resolve"),
        ("Temporary failure in name resolution", "the host name does not resolve"),
        ("getaddrinfo failed", "the host name does not resolve"),
        ("Network is unreachable", "no route to the host"),
    ):
        if needle in text:
            return why
    return None


@contextlib.contextmanager
def stream_get(url: str, headers: Mapping[str, str], *, timeout: float) -> Iterator[Any]:
    """One GET whose body is read as it arrives, through huggingface_hub's session.

    huggingface_hub's own retries are off (:func:`fetch` retries, with bounded waits).
    """
    if direct():
        answer = _POOL.get(url, headers, timeout)
        try:
            yield answer
        finally:
            answer.close()
        return
    from huggingface_hub import utils

    kw: dict[str, Any] = {
        "headers": dict(headers),
        "timeout": timeout,
        "max_retries": 0,
        "retry_on_exceptions": (),
        "retry_on_status_codes": (),
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


_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 10


class _Response:
    """An answer on the direct transport, shaped like an httpx one where fetch looks."""

    def __init__(self, pool: _Pool, key: tuple[str, str], conn: Any, raw: Any, url: str) -> None:
        self._pool, self._key, self._conn, self._raw = pool, key, conn, raw
        self.status_code = int(raw.status)
        self.headers = {k.lower(): v for k, v in raw.getheaders()}
        self.url = url

    def iter_bytes(self) -> Iterator[bytes]:
        while True:
            chunk = self._raw.read1(_CHUNK) if hasattr(self._raw, "read1") else self._raw.read()
            if not chunk:
                return
            yield chunk

    def read(self) -> bytes:
        return bytes(self._raw.read())

    def close(self) -> None:
        """Hand the connection back when the body was read to its end, else close it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._raw.isclosed() and not self._raw.will_close:
            self._pool.put(self._key, conn)
        else:
            conn.close()


class _Pool:
    """Idle keep-alive connections per (scheme, host:port), shared by the request threads."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str], list[Any]] = {}
        self._lock = threading.Lock()

    def put(self, key: tuple[str, str], conn: Any) -> None:
        with self._lock:
            self._idle.setdefault(key, []).append(conn)

    def _connection(self, key: tuple[str, str], timeout: float) -> tuple[Any, bool]:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                conn = idle.pop()
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
                return conn, True
        import http.client

        scheme, netloc = key
        if scheme == "https":
            conn = http.client.HTTPSConnection(netloc, timeout=timeout, context=_tls_context())
            return conn, False
        if scheme != "http":
            raise HubError(netloc, f"not an http(s) URL ({scheme})")
        return http.client.HTTPConnection(netloc, timeout=timeout), False

    def get(self, url: str, headers: Mapping[str, str], timeout: float) -> _Response:
        """GET ``url``, following redirects (the token only to the first URL's origin)."""
        import http.client

        sent = dict(headers)
        origin = urlsplit(url)[:2]
        for _ in range(_MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            key = (parts.scheme, parts.netloc)
            if key != origin:
                sent = {k: v for k, v in sent.items() if k.lower() != "authorization"}
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            while True:
                conn, reused = self._connection(key, timeout)
                try:
                    conn.request("GET", target, headers=sent)
                    raw = conn.getresponse()
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    conn.close()
                    if not reused:  # a kept connection the server had closed: try a new one
                        raise
                except BaseException:
                    conn.close()
                    raise
            r = _Response(self, key, conn, raw, url)
            location = r.headers.get("location")
            if r.status_code not in _REDIRECTS or not location:
                return r
            if int(r.headers.get("content-length", "0") or 0) <= _ERROR_BODY:
                raw.read()
            r.close()
            url = urljoin(url, location)
        raise HubError(shown_url(url), "too many redirects")


_POOL = _Pool()
