"""A small Hugging Face Hub emulator: a real HTTP server on 127.0.0.1 for offline tests.

Tests point ``HF_ENDPOINT`` (or ``HfApi(endpoint=...)``) at :meth:`HubEmulator.start`'s URL and let
``huggingface_hub`` talk to it unmodified. It implements the read side of the Hub API that
``huggingface_hub`` 2.4 uses for models:

- ``GET /api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}``: model info
  (``?blobs=true`` adds sizes and LFS data to ``siblings``; ``?expand=...`` selects properties).
- ``GET /api/models/{repo}/tree/{rev}[/{path}]``: ``recursive``, ``expand`` and ``Link``-header
  pagination (``cursor``), page sizes as the Hub (1000, or 50 with ``expand``).
- ``POST /api/models/{repo}/paths-info/{rev}``: form fields ``paths`` (repeated) and ``expand``.
- ``GET /api/models/{repo}/refs`` and ``GET /api/models/{repo}/safetensors-metadata/{index}``.
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: ``X-Repo-Commit``, ``ETag``, ``Accept-Ranges``
  and, for LFS files, ``X-Linked-Etag``/``X-Linked-Size``. Like the real Hub, LFS files answer
  ``302`` to a "CDN": a second server on another host (127.0.0.2, or ``localhost`` where only
  127.0.0.1 is a loopback address), so it is another origin and ``huggingface_hub`` treats it as
  the Hub's CDN (the HEAD stops at the redirect, the GET follows it and drops the
  ``Authorization`` header). ``lfs_redirect=False`` serves LFS files directly.
- ``Range: bytes=a-b``, ``bytes=a-`` and ``bytes=-n`` give ``206`` with ``Content-Range``; a start
  past the end gives ``416``. Ranges are served with seek+read, so sparse files of hundreds of GB
  (a header followed by a hole) cost only the bytes asked for.

Errors carry ``X-Error-Code``/``X-Error-Message`` and a JSON ``{"error": ...}`` body, as the Hub:
unknown or private repo -> ``401 RepoNotFound`` without a token (``404`` with a valid one), unknown
revision -> ``404 RevisionNotFound``, missing file -> ``404 EntryNotFound`` (with
``X-Repo-Commit``), gated file without a valid token -> ``401 GatedRepo``, an ``Authorization:
Bearer`` token not in ``valid_tokens`` -> ``401 Invalid credentials in Authorization header``.
A gated repo's info, tree and paths-info stay public; only file contents are gated. Any token
in ``valid_tokens`` can read every gated or private repo.

Hashes: git blob ids are real for files up to ``hash_limit`` bytes (64 MiB), and so is the LFS
sha256 unless ``add_repo(lfs_sha256=...)`` gives it. Beyond the limit both are fakes,
deterministic and stable: ``sha256(b"hub-emulator-fake\\0" + path + b"\\0" + size + b"\\0" +
first 1 MiB)``, so a huge sparse file is never read in full. Hashes are computed on first use.

Faults (:meth:`HubEmulator.add_fault`), for the requests whose path matches a pattern, on the Hub
or the CDN, for a number of requests or all: ``stall`` (the request is read and never answered,
until :meth:`stop`), ``drip`` (a 200 whose body comes one byte per ``interval`` seconds),
``status`` (that status, headers and body, e.g. ``429`` with ``Retry-After``), ``body`` (a 200
with that body and content type: HTML, wrong JSON) and ``large`` (a 200 of ``size`` bytes made
lazily, with or without ``Content-Length``; ``bytes_sent`` then says how far the client read).
:meth:`HubEmulator.move_branch` points a branch at another commit, at once or after a number of
further requests (the branch moves between the requests of one run).

Every request is recorded (:class:`RequestRecord`), thread-safely. ``latency`` seconds are slept
at the start of every request, in the request's own thread (``ThreadingHTTPServer``), so
concurrent requests overlap instead of queueing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import ssl
import struct
import threading
import time
import traceback
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode

__all__ = ["Fault", "HubEmulator", "RequestRecord"]

_HEX40 = re.compile(r"[0-9a-f]{40}")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_CHUNK = 1 << 20
_HEAD_BYTES_FOR_FAKE = 1 << 20
_EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
# Suffixes the Hub's default .gitattributes sends to LFS (the model-weight subset).
_LFS_SUFFIXES = frozenset(
    ".safetensors .bin .pt .pth .ckpt .gguf .h5 .msgpack .onnx .npy .npz .pkl .pickle .tflite .ot"
    " .model .zip .tar .gz .xz .zst .7z .arrow .parquet .joblib .mlmodel .pb .tgz .wasm".split()
)
_LFS_SIZE_LIMIT = 10 * 1024 * 1024  # the Hub refuses non-LFS files above 10 MiB
_TREE_PAGE = 1000
_TREE_EXPAND_PAGE = 50
_BLOBS_DIR = ".emulator-blobs"  # under root: contents given as bytes
_SUBPATHS = frozenset({"revision", "tree", "paths-info", "refs", "safetensors-metadata", "resolve"})


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the emulator saw it. ``path`` is percent-decoded, without the query."""

    method: str
    path: str
    query: str
    range: str | None
    status: int
    bytes_sent: int  # response body bytes actually written
    token: str | None  # the Bearer token sent, if any
    server: str  # "hub" or "cdn"
    commit: str | None = None  # the X-Repo-Commit answered (a resolve), if any


@dataclass(slots=True)
class Fault:
    """A misbehaviour for the requests whose (decoded) path matches ``path`` (a regex, searched).

    kind: ``stall``, ``drip``, ``status``, ``body`` or ``large`` (see the module docstring).
    times: how many requests it spoils; ``None``: all. ``hits`` counts those it spoiled and
    ``hit`` is set at the first, as the request arrives.
    """

    path: str
    kind: str
    server: str = "hub"
    method: str | None = None  # only this method (GET, HEAD); None: any
    ranged: bool | None = None  # only requests with (True) or without (False) a Range header
    times: int | None = None
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    size: int = 0
    chunked: bool = False
    interval: float = 1.0
    hits: int = 0
    hit: threading.Event = field(default_factory=threading.Event)
    sent: int = 0  # body bytes written, kept current while a ``large`` or ``drip`` body goes out
    done: threading.Event = field(default_factory=threading.Event)  # the last request ended


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


class _Blob:
    """File content on disk, with lazily computed hashes; reads by range only."""

    def __init__(self, source: Path, size: int, path: str, sha256: str | None, limit: int):
        self.source = source
        self.size = size
        self.path = path
        self._sha256 = sha256
        self._git_sha1: str | None = None
        self._limit = limit
        self._lock = threading.Lock()

    def read(self, start: int, length: int) -> Iterator[bytes]:
        with open(self.source, "rb") as f:
            f.seek(start)
            while length > 0:
                chunk = f.read(min(_CHUNK, length))
                if not chunk:
                    return
                length -= len(chunk)
                yield chunk

    def prefix(self, n: int) -> bytes:
        return b"".join(self.read(0, min(n, self.size)))

    def _digest(self, algo: str, prefix: bytes = b"") -> str:
        h = hashlib.new(algo, prefix)
        for chunk in self.read(0, self.size):
            h.update(chunk)
        return h.hexdigest()

    def _fake(self, kind: bytes) -> str:
        h = hashlib.sha256(b"hub-emulator-fake\0" + kind + b"\0" + self.path.encode())
        h.update(b"\0%d\0" % self.size + self.prefix(_HEAD_BYTES_FOR_FAKE))
        return h.hexdigest()

    @property
    def sha256(self) -> str:
        with self._lock:
            if self._sha256 is None:
                self._sha256 = (
                    self._digest("sha256") if self.size <= self._limit else self._fake(b"sha256")
                )
            return self._sha256

    @property
    def git_sha1(self) -> str:
        """The git blob id of the content itself (used for non-LFS files)."""
        with self._lock:
            if self._git_sha1 is None:
                if self.size <= self._limit:
                    self._git_sha1 = self._digest("sha1", b"blob %d\0" % self.size)
                else:
                    self._git_sha1 = self._fake(b"sha1")[:40]
            return self._git_sha1

    @property
    def pointer(self) -> bytes:
        """The git-lfs pointer file that git stores in place of the content."""
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\n"
            f"size {self.size}\n"
        ).encode()


@dataclass(slots=True)
class _File:
    path: str
    blob: _Blob
    lfs: bool

    @property
    def blob_id(self) -> str:
        if self.lfs:
            pointer = self.blob.pointer
            return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()
        return self.blob.git_sha1


@dataclass(slots=True)
class _Commit:
    sha: str
    files: dict[str, _File]
    date: datetime
    title: str
    card_data: dict | None
    safetensors: dict | bool | None
    safetensors_total: int | None
    info: dict
    dirs: frozenset[str] = frozenset()
    _safetensors_cache: dict | None = None
    _safetensors_done: bool = False

    def __post_init__(self) -> None:
        dirs = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        self.dirs = frozenset(dirs)

    def safetensors_info(self) -> dict | None:
        """Parameter counts per dtype, from the headers, as the Hub computes them."""
        if self.safetensors is False:
            return None
        if isinstance(self.safetensors, dict):
            return self.safetensors
        if not self._safetensors_done:
            params: dict[str, int] = {}
            found = False
            for f in self.files.values():
                if not f.path.endswith(".safetensors") or f.blob.size < 8:
                    continue
                (n,) = struct.unpack("<Q", f.blob.prefix(8))
                if n > 100_000_000 or n + 8 > f.blob.size:
                    continue
                try:
                    header = json.loads(f.blob.prefix(8 + n)[8:])
                except ValueError:
                    continue
                found = True
                for name, tensor in header.items():
                    if name == "__metadata__" or not isinstance(tensor, dict):
                        continue
                    count = 1
                    for dim in tensor.get("shape", []):
                        count *= int(dim)
                    dtype = str(tensor.get("dtype"))
                    params[dtype] = params.get(dtype, 0) + count
            if found or self.safetensors_total is not None:
                total = sum(params.values())
                if self.safetensors_total is not None:
                    total = self.safetensors_total
                self._safetensors_cache = {"parameters": params, "total": total}
            self._safetensors_done = True
        return self._safetensors_cache


@dataclass(slots=True)
class _Repo:
    repo_id: str
    gated: str | bool = False
    private: bool = False
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def default_branch(self) -> str:
        return "main" if "main" in self.branches else next(iter(self.branches), "main")

    def resolve(self, revision: str) -> _Commit | None:
        sha = self.branches.get(revision) or self.tags.get(revision)
        if sha is None and _HEX40.fullmatch(revision.lower()):
            sha = revision.lower()
        return self.commits.get(sha) if sha else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many concurrent connects must not overflow the listen backlog

    def __init__(self, emulator: HubEmulator, role: str, address: str = "127.0.0.1"):
        self.emulator = emulator
        self.role = role
        super().__init__((address, 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up between requests is no error; anything else is printed."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class HubEmulator:
    """An in-process Hugging Face Hub for models: add repos, ``start()``, point HF_ENDPOINT at it.

    ``root`` is a scratch folder the emulator owns: ``bytes`` contents are written there
    (content-addressed) so that every file is served from disk; relative ``Path`` arguments to
    :meth:`add_repo` are resolved against it. Files given as paths are served in place (never
    copied) and must not change afterwards.
    """

    def __init__(
        self,
        root: Path,
        latency: float = 0.0,
        *,
        lfs_redirect: bool = True,
        hash_limit: int = 64 * 1024 * 1024,
    ):
        self.root = Path(root)
        self.latency = latency  # may be changed while running
        self.lfs_redirect = lfs_redirect
        self.hash_limit = hash_limit
        self.valid_tokens: set[str] = set()
        self.tree_page_size = _TREE_PAGE
        self.tree_expand_page_size = _TREE_EXPAND_PAGE
        self.requests: list[RequestRecord] = []
        self.url: str | None = None
        self.cdn_url: str | None = None
        self._repos: dict[str, _Repo] = {}
        self._cdn: dict[str, _Blob] = {}
        self._lock = threading.RLock()
        self._secret = secrets.token_bytes(16)
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self._connections: set[socket.socket] = set()
        self.faults: list[Fault] = []
        self._moves: list[tuple[list[int], str, str, str]] = []  # [left], repo, branch, sha
        self._stopping = threading.Event()

    # ---- faults --------------------------------------------------------------------------

    def add_fault(self, path: str, kind: str, **options: Any) -> Fault:
        """Spoil the requests whose path matches ``path``; see :class:`Fault` for ``options``."""
        if kind not in ("stall", "drip", "status", "body", "large"):
            raise ValueError(f"unknown fault kind {kind!r}")
        fault = Fault(path, kind, **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    def move_branch(self, repo_id: str, branch: str, sha: str, *, after: int = 0) -> None:
        """Point ``branch`` at commit ``sha``: now, or once ``after`` more requests came in."""
        with self._lock:
            if sha not in self._repos[repo_id].commits:
                raise ValueError(f"no commit {sha} in {repo_id}")
            if after <= 0:
                self._repos[repo_id].branches[branch] = sha
            else:
                self._moves.append(([after], repo_id, branch, sha))

    def _take_fault(self, server: str, method: str, path: str, ranged: bool) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.server != server or not re.search(fault.path, path):
                    continue
                if fault.method not in (None, method) or fault.ranged not in (None, ranged):
                    continue
                if fault.times is not None and fault.hits >= fault.times:
                    continue
                fault.hits += 1
                fault.hit.set()
                return fault
        return None

    # ---- content -------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, Path | bytes] | Path,
        *,
        revision: str = "main",
        sha: str | None = None,
        tags: Collection[str] = (),
        gated: bool | str | None = None,
        private: bool | None = None,
        card_data: dict | None = None,
        safetensors_total: int | None = None,
        safetensors: dict | bool | None = None,
        lfs: bool | Collection[str] = True,
        lfs_sha256: Mapping[str, str] | None = None,
        info: Mapping[str, Any] | None = None,
        title: str | None = None,
    ) -> str:
        """Commit ``files`` as the new head of branch ``revision``; return the commit sha.

        A repo can get several commits: each call adds one, moves branch ``revision`` to it and
        points each git tag in ``tags`` at it; older commits stay reachable by sha and tag.

        files: a folder (every file below it, relative paths kept, ``.git`` skipped), or a
            ``{path_in_repo: Path | bytes}`` dict.
        sha: the commit id (40 hex); by default derived from repo, revision and file list.
        gated: ``True``/``"auto"``/``"manual"`` or ``False``; private: bool. Both are repo-wide
            and kept from earlier calls when left at ``None``.
        card_data: ``cardData`` of the model info (e.g. ``{"license": "mit"}``); its ``tags``,
            ``license`` and ``library_name`` also feed the info's ``tags``.
        safetensors: the info's ``safetensors`` block. ``None`` computes it from the headers of
            the commit's ``*.safetensors`` files, as the Hub does (``safetensors_total``, when
            given, replaces the total); ``False`` omits it; a dict is sent as is.
        lfs: ``True`` stores weights (by suffix) and files over 10 MiB in LFS, as the Hub's
            default ``.gitattributes``; ``False`` stores everything in git; a collection names
            the LFS paths exactly.
        lfs_sha256: known sha256 per path, e.g. for huge sparse files (see the module docstring).
        info: extra top-level model-info fields (``pipeline_tag``, ``config``, ...), sent as is.
        """
        if not repo_id or repo_id.startswith("/") or repo_id.count("/") > 1:
            raise ValueError(f"repo_id must be 'name' or 'namespace/name', got {repo_id!r}")
        if sha is not None and not _HEX40.fullmatch(sha):
            raise ValueError(f"sha must be 40 lowercase hex digits, got {sha!r}")
        entries = self._collect(files)
        known = dict(lfs_sha256 or {})
        built: dict[str, _File] = {}
        for path, source in sorted(entries.items()):
            size = source.stat().st_size
            if lfs is True:
                in_lfs = Path(path).suffix.lower() in _LFS_SUFFIXES or size > _LFS_SIZE_LIMIT
            elif lfs is False:
                in_lfs = False
            else:
                in_lfs = path in lfs
            blob = _Blob(source, size, path, known.pop(path, None), self.hash_limit)
            built[path] = _File(path, blob, in_lfs)
        if known:
            raise ValueError(f"lfs_sha256 names paths that are not in the repo: {sorted(known)}")
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo(repo_id))
            if gated is not None:
                repo.gated = "auto" if gated is True else gated
            if private is not None:
                repo.private = private
            if sha is None:
                listing = "".join(f"{p}\0{f.blob.size}\0" for p, f in built.items())
                seed = f"{repo_id}\0{revision}\0{len(repo.commits)}\0{listing}"
                sha = hashlib.sha1(seed.encode()).hexdigest()
            if sha in repo.commits:
                raise ValueError(f"commit {sha} already exists in {repo_id}")
            repo.commits[sha] = _Commit(
                sha=sha,
                files=built,
                date=_EPOCH + timedelta(minutes=len(repo.commits)),
                title=title or f"Commit {len(repo.commits) + 1} on {revision}",
                card_data=card_data,
                safetensors=safetensors,
                safetensors_total=safetensors_total,
                info=dict(info or {}),
            )
            repo.branches[revision] = sha
            for tag in tags:
                repo.tags[tag] = sha
        return sha

    def _collect(self, files: Mapping[str, Path | bytes] | Path) -> dict[str, Path]:
        if isinstance(files, (str, os.PathLike)):
            folder = self._abs(Path(files))
            if not folder.is_dir():
                raise ValueError(f"not a folder: {folder}")
            out = {}
            for dirpath, dirnames, filenames in os.walk(folder):
                dirnames[:] = [d for d in dirnames if d not in (".git", _BLOBS_DIR)]
                for name in filenames:
                    full = Path(dirpath, name)
                    out[full.relative_to(folder).as_posix()] = full
            return out
        out = {}
        for path, value in files.items():
            if path.startswith("/") or ".." in path.split("/") or not path:
                raise ValueError(f"bad path in repo: {path!r}")
            if isinstance(value, bytes):
                out[path] = self._store_bytes(value)
            elif isinstance(value, os.PathLike):
                out[path] = self._abs(Path(value))
            else:
                raise TypeError(f"{path}: give a Path (a file) or bytes (content), not {value!r}")
        return out

    def _abs(self, path: Path) -> Path:
        return path if path.is_absolute() else self.root / path

    def _store_bytes(self, content: bytes) -> Path:
        target = self.root / _BLOBS_DIR / hashlib.sha256(content).hexdigest()
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f".{secrets.token_hex(4)}.tmp")
            tmp.write_bytes(content)
            tmp.replace(target)
        return target

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self, tls: ssl.SSLContext | None = None) -> str:
        """Start the Hub (127.0.0.1) and its CDN (another host) on free ports; return the Hub's URL.

        The CDN must be another host, not only another port: huggingface_hub 1.x to 2.0
        follows a HEAD's redirect to the same host name, whatever the port. ``tls``: a server
        context (its certificate for 127.0.0.1, 127.0.0.2 and localhost): both speak HTTPS.
        """
        if self.url is not None:
            return self.url
        hosts = {"hub": "127.0.0.1", "cdn": "127.0.0.2"}
        for role in ("hub", "cdn"):
            try:
                server = _Server(self, role, hosts[role])
            except OSError:  # 127.0.0.2 is no loopback address here (macOS)
                server, hosts[role] = _Server(self, role), "localhost"
            if tls is not None:
                server.socket = tls.wrap_socket(server.socket, server_side=True)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"hub-emulator-{role}",
                daemon=True,
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        scheme = "https" if tls is not None else "http"
        hub, cdn = (f"{scheme}://{hosts[s.role]}:{s.server_address[1]}" for s in self._servers)
        self.url, self.cdn_url = hub, cdn
        return hub

    def stop(self) -> None:
        """Stop both servers and close kept-alive connections (stalled requests end too)."""
        self._stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        self.url = self.cdn_url = None
        self._stopping.clear()

    def __enter__(self) -> HubEmulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- counters ------------------------------------------------------------------------

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()

    @property
    def bytes_sent(self) -> int:
        with self._lock:
            return sum(r.bytes_sent for r in self.requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)
            for move in list(self._moves):
                left, repo_id, branch, sha = move
                left[0] -= 1
                if left[0] <= 0:
                    self._repos[repo_id].branches[branch] = sha
                    self._moves.remove(move)

    def _amend(self, old: RequestRecord, new: RequestRecord) -> None:
        with self._lock:
            for i in range(len(self.requests) - 1, -1, -1):
                if self.requests[i] is old:
                    self.requests[i] = new
                    return

    # ---- lookups used by the handler ----------------------------------------------------

    def _find_repo(self, segments: list[str]) -> tuple[str, int]:
        """Split decoded path segments into (repo_id, segments used); prefer known repos."""
        with self._lock:
            if len(segments) >= 2 and "/".join(segments[:2]) in self._repos:
                return "/".join(segments[:2]), 2
            if segments and segments[0] in self._repos:
                return segments[0], 1
        # Unknown repo: guess its shape, so that the answer is still RepoNotFound.
        if len(segments) >= 2 and segments[1] not in _SUBPATHS:
            return "/".join(segments[:2]), 2
        return (segments[0], 1) if segments else ("", 0)

    def _cdn_url_for(self, blob: _Blob) -> str:
        key = blob.sha256
        with self._lock:
            self._cdn.setdefault(key, blob)
        return f"{self.cdn_url}/cdn-lfs/{key}?{urlencode({'sig': self._sign(key)})}"

    def _sign(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()[:32]


class _HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **headers: str):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hub-emulator"
    sys_version = ""
    timeout = 60  # idle keep-alive connections end eventually
    # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK
    # stalls every keep-alive response by ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    # ---- plumbing ------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        with self.server.emulator._lock:
            self.server.emulator._connections.add(self.connection)

    def finish(self) -> None:
        with self.server.emulator._lock:
            self.server.emulator._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    @property
    def emu(self) -> HubEmulator:
        return self.server.emulator

    def _handle(self) -> None:
        emu = self.emu
        self._sent, self._rec, self._repo_commit = 0, None, None
        raw_path, _, self._query = self.path.partition("?")
        self._segments = [unquote(s) for s in raw_path.split("/")[1:]]
        auth = self.headers.get("Authorization", "")
        self._token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        try:
            body = self._read_body()
            if emu.latency > 0:
                time.sleep(emu.latency)
            try:
                fault = emu._take_fault(
                    self.server.role,
                    self.command,
                    "/" + "/".join(self._segments),
                    self.headers.get("Range") is not None,
                )
                if fault is not None:
                    self._fault(fault)
                elif self.server.role == "cdn":
                    self._cdn()
                else:
                    self._route(body)
            except _HttpError as e:
                self._error(e)
        except (BrokenPipeError, ConnectionResetError):  # the client went away
            self.close_connection = True
        except Exception as e:  # an emulator bug: fail fast (501 is not retried by the client)
            traceback.print_exc()
            if self._rec is not None:
                self.close_connection = True
            else:
                self._error(_HttpError(501, f"hub emulator error: {e!r}"))
        finally:
            if self._rec is None:  # no response at all
                emu._record(self._record_for(0, 0))
            elif self._rec.bytes_sent != self._sent:  # the body was cut short
                emu._amend(self._rec, self._record_for(self._rec.status, self._sent))

    def _record_for(self, status: int, bytes_sent: int) -> RequestRecord:
        return RequestRecord(
            method=self.command,
            path="/" + "/".join(self._segments),
            query=self._query,
            range=self.headers.get("Range"),
            status=status,
            bytes_sent=bytes_sent,
            token=self._token,
            server=self.server.role,
            commit=self._repo_commit,
        )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _start(self, status: int, headers: Mapping[str, str], length: int) -> None:
        """Send the status line and headers, recording the request first.

        Recording before the client can see the end of the response means a test reading
        ``hub.requests`` right after a call always finds it; ``_handle`` amends the record if
        the body is then cut short.
        """
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length))
        self._repo_commit = dict(headers).get("X-Repo-Commit")
        self._rec = self._record_for(status, 0 if self.command == "HEAD" else length)
        self.emu._record(self._rec)
        self.end_headers()

    def _send(self, status: int, body: bytes = b"", headers: Mapping[str, str] = {}) -> None:
        self._start(status, headers, len(body))
        if self.command != "HEAD" and body:
            self.wfile.write(body)
            self._sent = len(body)

    def _json(self, data: Any, status: int = 200, headers: Mapping[str, str] = {}) -> None:
        body = json.dumps(data).encode()
        self._send(status, body, {"Content-Type": "application/json; charset=utf-8", **headers})

    def _error(self, e: _HttpError) -> None:
        headers = {"X-Error-Message": e.message, **e.headers}
        if e.code:
            headers["X-Error-Code"] = e.code
        self._json({"error": e.message}, e.status, headers)

    # ---- faults --------------------------------------------------------------------------

    def _fault(self, fault: Fault) -> None:
        try:
            self._misbehave(fault)
        finally:
            fault.sent = self._sent
            fault.done.set()

    def _misbehave(self, fault: Fault) -> None:
        stopping = self.emu._stopping
        if fault.kind == "stall":
            stopping.wait()
            self.close_connection = True
            return
        if fault.kind in ("status", "body"):
            headers = {"Content-Type": fault.content_type, **fault.headers}
            self._send(fault.status, fault.body, headers)
            return
        if fault.kind == "drip":
            body = fault.body or b" " * fault.size
            self._start(200, {"Content-Type": fault.content_type, **fault.headers}, len(body))
            self.close_connection = True
            for i in range(len(body)):
                if stopping.wait(fault.interval):
                    return
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                self._sent += 1
            return
        # large: ``size`` bytes, made as they are sent; the client decides how many it takes
        headers = {"Content-Type": fault.content_type, **fault.headers}
        self.close_connection = True
        if fault.chunked:
            self.send_response(200)
            for key, value in {**headers, "Transfer-Encoding": "chunked"}.items():
                self.send_header(key, value)
            self._rec = self._record_for(200, fault.size)
            self.emu._record(self._rec)
            self.end_headers()
        else:
            self._start(200, headers, fault.size)
        block = b" " * _CHUNK
        while self._sent < fault.size and not stopping.is_set():
            n = min(_CHUNK, fault.size - self._sent)
            if fault.chunked:
                self.wfile.write(b"%x\r\n" % n + block[:n] + b"\r\n")
            else:
                self.wfile.write(block[:n])
            self._sent += n
        if fault.chunked:
            self.wfile.write(b"0\r\n\r\n")

    # ---- access --------------------------------------------------------------------------

    def _check_token(self) -> bool:
        """True when a valid token was sent; 401 for a token the Hub would not know."""
        if self._token is None:
            return False
        if self._token not in self.emu.valid_tokens:
            raise _HttpError(401, "Invalid credentials in Authorization header")
        return True

    def _repo(self, repo_id: str, *, content: bool) -> _Repo:
        authed = self._check_token()
        with self.emu._lock:
            repo = self.emu._repos.get(repo_id)
        if repo is None or (repo.private and not authed):
            # The Hub answers 401 to anonymous callers, 404 to authenticated ones.
            raise _HttpError(404 if authed else 401, "Repository not found", "RepoNotFound")
        if content and repo.gated and not authed:
            raise _HttpError(
                401,
                f"Access to model {repo_id} is restricted. You must have access to it and be "
                "authenticated to access it. Please log in.",
                "GatedRepo",
            )
        return repo

    @staticmethod
    def _commit(repo: _Repo, revision: str) -> _Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise _HttpError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    # ---- routing -------------------------------------------------------------------------

    def _route(self, body: bytes) -> None:
        segs = self._segments
        if len(segs) >= 3 and segs[0] == "api" and segs[1] == "models":
            repo_id, used = self.emu._find_repo(segs[2:])
            rest = segs[2 + used :]
            self._api(repo_id, rest, body)
            return
        for i in (1, 2):
            if len(segs) > i + 1 and segs[i] == "resolve":
                repo_id, used = self.emu._find_repo(segs[:i])
                if used == i and self.command in ("GET", "HEAD"):
                    self._resolve(repo_id, segs[i + 1], "/".join(segs[i + 2 :]))
                    return
        raise _HttpError(404, "Sorry, we can't find the page you are looking for.")

    def _api(self, repo_id: str, rest: list[str], body: bytes) -> None:
        params = parse_qs(self._query, keep_blank_values=True)
        post = self.command == "POST"
        if not rest and not post:
            return self._model_info(repo_id, None, params)
        if len(rest) == 2 and rest[0] == "revision" and not post:
            return self._model_info(repo_id, rest[1], params)
        if len(rest) >= 2 and rest[0] == "tree" and not post:
            return self._tree(repo_id, rest[1], "/".join(rest[2:]).strip("/"), params)
        if len(rest) == 2 and rest[0] == "paths-info" and post:
            return self._paths_info(repo_id, rest[1], parse_qs(body.decode(), True))
        if rest == ["refs"] and not post:
            return self._refs(repo_id)
        if len(rest) >= 2 and rest[0] == "safetensors-metadata" and not post:
            return self._safetensors_metadata(repo_id, "/".join(rest[1:]))
        raise _HttpError(404, "Sorry, we can't find the page you are looking for.")

    # ---- API endpoints -------------------------------------------------------------------

    def _model_info(self, repo_id: str, revision: str | None, params: dict[str, list[str]]) -> None:
        repo = self._repo(repo_id, content=False)
        commit = self._commit(repo, revision or repo.default_branch)
        blobs = _truthy(params.get("blobs"))
        expand = [
            e
            for v in params.get("expand", []) + params.get("expand[]", [])
            for e in v.split(",")
            if e
        ]
        card = commit.card_data
        tags = list((card or {}).get("tags") or [])
        for key, prefix in (("library_name", ""), ("license", "license:")):
            if card and isinstance(card.get(key), str):
                tags.append(prefix + card[key])
        safetensors = commit.safetensors_info()
        if safetensors is not None or any(p.endswith(".safetensors") for p in commit.files):
            tags.insert(0, "safetensors")
        namespace = repo_id.split("/")[0] if "/" in repo_id else None
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "modelId": repo_id,
            "author": namespace,
            "sha": commit.sha,
            "lastModified": _iso(commit.date),
            "createdAt": _iso(_EPOCH),
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": list(dict.fromkeys(tags)),
            "library_name": (card or {}).get("library_name"),
            "pipeline_tag": (card or {}).get("pipeline_tag"),
            "cardData": card,
            "siblings": [self._sibling(f, blobs and not expand) for f in commit.files.values()],
            "spaces": [],
            "safetensors": safetensors,
            "usedStorage": sum(f.blob.size for f in commit.files.values()),
        }
        info = {k: v for k, v in info.items() if v is not None}
        info.update(commit.info)
        if expand:
            info = {k: v for k, v in info.items() if k in ("_id", "id") or k in expand}
        self._json(info)

    @staticmethod
    def _sibling(f: _File, blobs: bool) -> dict:
        entry: dict[str, Any] = {"rfilename": f.path}
        if blobs:
            entry["blobId"] = f.blob_id
            entry["size"] = f.blob.size
            if f.lfs:
                entry["lfs"] = {
                    "sha256": f.blob.sha256,
                    "size": f.blob.size,
                    "pointerSize": len(f.blob.pointer),
                }
        return entry

    def _entry(self, commit: _Commit, path: str, expand: bool) -> dict:
        """A tree / paths-info entry: a file or a directory."""
        last = {"id": commit.sha, "title": commit.title, "date": _iso(commit.date)}
        f = commit.files.get(path)
        if f is None:
            oid = hashlib.sha1(f"tree\0{commit.sha}\0{path}".encode()).hexdigest()
            entry: dict[str, Any] = {"type": "directory", "oid": oid, "size": 0, "path": path}
        else:
            entry = {"type": "file", "oid": f.blob_id, "size": f.blob.size, "path": path}
            if f.lfs:
                pointer = len(f.blob.pointer)
                entry["lfs"] = {"oid": f.blob.sha256, "size": f.blob.size, "pointerSize": pointer}
        if expand:
            entry["lastCommit"] = last
        return entry

    def _tree(self, repo_id: str, revision: str, path: str, params: dict[str, list[str]]) -> None:
        repo = self._repo(repo_id, content=False)
        commit = self._commit(repo, revision)
        if path and path not in commit.dirs:
            raise _HttpError(404, f"Entry not found: {path}", "EntryNotFound")
        recursive = _truthy(params.get("recursive"))
        expand = _truthy(params.get("expand"))
        prefix = f"{path}/" if path else ""
        names = []
        for name in sorted(commit.dirs | commit.files.keys()):
            if not name.startswith(prefix):
                continue
            if recursive or "/" not in name[len(prefix) :]:
                names.append(name)
        page = self.emu.tree_expand_page_size if expand else self.emu.tree_page_size
        start = int((params.get("cursor") or ["0"])[0] or 0)
        chunk = names[start : start + page]
        headers = {}
        if start + page < len(names):
            query = {k: v[0] for k, v in params.items()}
            query["cursor"] = str(start + page)
            raw_path = self.path.partition("?")[0]
            headers["Link"] = f'<{self.emu.url}{raw_path}?{urlencode(query)}>; rel="next"'
        self._json([self._entry(commit, n, expand) for n in chunk], headers=headers)

    def _paths_info(self, repo_id: str, revision: str, form: dict[str, list[str]]) -> None:
        repo = self._repo(repo_id, content=False)
        commit = self._commit(repo, revision)
        expand = _truthy(form.get("expand"))
        out = []
        for path in dict.fromkeys(p.strip("/") for p in form.get("paths", [])):
            if path in commit.files or path in commit.dirs:
                out.append(self._entry(commit, path, expand))
        self._json(out)

    def _refs(self, repo_id: str) -> None:
        repo = self._repo(repo_id, content=False)

        def refs(items: dict[str, str], kind: str) -> list[dict]:
            return [
                {"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": s}
                for n, s in sorted(items.items())
            ]

        self._json(
            {
                "branches": refs(repo.branches, "heads"),
                "converts": [],
                "tags": refs(repo.tags, "tags"),
                "pullRequests": [],
            }
        )

    def _safetensors_metadata(self, repo_id: str, filename: str) -> None:
        """Every shard header of the index on main, in one answer (get_sharded_...)."""
        repo = self._repo(repo_id, content=True)
        commit = self._commit(repo, repo.default_branch)
        index_file = commit.files.get(filename)
        if index_file is None:
            raise _entry_not_found(commit)
        index = json.loads(index_file.blob.prefix(index_file.blob.size))
        headers = {}
        for shard in sorted(set(index.get("weight_map", {}).values())):
            f = commit.files.get(shard)
            if f is None:
                raise _HttpError(404, f"Entry not found: {shard}", "EntryNotFound")
            (n,) = struct.unpack("<Q", f.blob.prefix(8))
            headers[shard] = json.loads(f.blob.prefix(8 + n)[8:])
        index.pop("weight_map", None)
        self._json({"index": index, "headers": headers})

    # ---- file contents -------------------------------------------------------------------

    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        repo = self._repo(repo_id, content=True)
        commit = self._commit(repo, revision)
        f = commit.files.get(path)
        if f is None:
            raise _entry_not_found(commit)
        headers = {"X-Repo-Commit": commit.sha, "Accept-Ranges": "bytes"}
        if f.lfs:
            headers["ETag"] = f'"{f.blob.sha256}"'
            headers["X-Linked-Etag"] = f'"{f.blob.sha256}"'
            headers["X-Linked-Size"] = str(f.blob.size)
            if self.emu.lfs_redirect:
                headers["Location"] = self.emu._cdn_url_for(f.blob)
                del headers["Accept-Ranges"]
                self._send(302, b"", headers)
                return
        else:
            headers["ETag"] = f'"{f.blob_id}"'
        self._serve(f.blob, headers)

    def _cdn(self) -> None:
        segs = self._segments
        if len(segs) != 2 or segs[0] != "cdn-lfs" or self.command not in ("GET", "HEAD"):
            raise _HttpError(404, "Not Found")
        key = segs[1]
        sig = (parse_qs(self._query).get("sig") or [""])[0]
        with self.emu._lock:
            blob = self.emu._cdn.get(key)
        if blob is None or not hmac.compare_digest(sig, self.emu._sign(key)):
            raise _HttpError(403, "AccessDenied: bad or missing signature")
        disposition = quote(blob.path.rsplit("/", 1)[-1])
        self._serve(
            blob,
            {
                "ETag": f'"{blob.sha256}"',
                "Accept-Ranges": "bytes",
                "Content-Disposition": f"inline; filename*=UTF-8''{disposition};",
            },
        )

    def _serve(self, blob: _Blob, headers: dict[str, str]) -> None:
        size = blob.size
        headers = {"Content-Type": "application/octet-stream", **headers}
        spec = self.headers.get("Range")
        start, end, status = 0, size - 1, 200
        if spec is not None:
            m = _RANGE.fullmatch(spec.strip().replace(" ", ""))
            if m and (m.group(1) or m.group(2)):
                first, last = m.group(1), m.group(2)
                if first:
                    start = int(first)
                    end = min(int(last), size - 1) if last else size - 1
                    ok = start < size and (not last or int(last) >= start)
                else:
                    start = max(size - int(last), 0)
                    ok = int(last) > 0 and size > 0
                if not ok:
                    raise _HttpError(
                        416,
                        "Requested Range Not Satisfiable",
                        **{"Content-Range": f"bytes */{size}"},
                    )
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            elif "," in spec:
                raise _HttpError(
                    416,
                    "Multiple ranges are not supported by the emulator",
                    **{"Content-Range": f"bytes */{size}"},
                )
        length = max(end - start + 1, 0)
        self._start(status, headers, length)
        if self.command == "HEAD":
            return
        for chunk in blob.read(start, length):
            self.wfile.write(chunk)
            self._sent += len(chunk)
        if self._sent != length:  # the file shrank under us: the connection cannot be reused
            self.close_connection = True


def _entry_not_found(commit: _Commit) -> _HttpError:
    # The Hub names the commit even on a miss; huggingface_hub caches the miss under it.
    return _HttpError(404, "Entry not found", "EntryNotFound", **{"X-Repo-Commit": commit.sha})


def _truthy(values: list[str] | None) -> bool:
    return bool(values) and values[-1].lower() in ("1", "true", "yes")
