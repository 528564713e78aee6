"""The one way paramtool opens a local file: a regular file, read within a cap.

A path can name something that is not a file of bytes at rest: a FIFO (opening it
waits for a writer, reading it waits forever), a character device (``/dev/zero``
behind a symlink reads as 0 bytes long and never ends), a directory or a socket.
:func:`open_fd` refuses all of them: the path is stat'ed first, so a device is never
even opened, then opened with ``O_NONBLOCK`` (a FIFO swapped in meanwhile cannot block
the open) and checked again on the open descriptor, which is what is read. Only a
regular file passes; ``O_NONBLOCK`` is then cleared.

Every read is capped by what its format allows (:func:`read_capped`): at most
``cap + 1`` bytes are read whatever the file's size claims, and more than ``cap`` is
refused.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from paramtool.errors import ConfigError, ParamtoolError, SourceNotFound, reading

_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_CHUNK = 1 << 20


def kind_of_mode(mode: int) -> str:
    """What a non-regular file is, in words: ``a FIFO (named pipe)``, ``a character device``."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse(shown: str, mode: int) -> SourceNotFound:
    if stat.S_ISDIR(mode):
        return SourceNotFound(shown, "is a directory")
    return SourceNotFound(shown, f"is {kind_of_mode(mode)}, not a regular file")


def is_regular(path: str | os.PathLike[str]) -> bool | None:
    """True for a regular file (symlinks followed), False for anything else, None if absent."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):  # ValueError: a NUL or a lone surrogate in the name
        return None


def require_path(path: str | os.PathLike[str], shown: str | None = None) -> None:
    """Refuse, in one line, a path that is missing or cannot be looked at (a name too long
    for the OS, a NUL in it, a folder on the way that denies access)."""
    shown = shown if shown is not None else os.fspath(path)
    try:
        os.stat(path)
    except FileNotFoundError:
        raise SourceNotFound(shown, "no such file or directory") from None
    except ValueError:
        raise SourceNotFound(shown, "not a valid file name") from None
    except OSError as e:
        with reading(shown):
            raise e from None


def open_fd(path: str | os.PathLike[str], shown: str | None = None) -> int:
    """Open a regular file for reading and return its descriptor; refuse anything else.

    Errors are one :class:`~paramtool.errors.SourceNotFound` line naming ``shown``
    (default: the path). The caller closes the descriptor.
    """
    return open_fd_stat(path, shown)[0]


def open_fd_stat(
    path: str | os.PathLike[str], shown: str | None = None
) -> tuple[int, os.stat_result]:
    """:func:`open_fd`, and the open descriptor's ``fstat`` (its size, without asking again)."""
    shown = shown if shown is not None else os.fspath(path)
    with reading(shown):
        try:
            st = os.stat(path)
        except ValueError:  # a NUL or a lone surrogate: no file can have this name
            raise SourceNotFound(shown, "not a valid file name") from None
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(shown, st.st_mode)
        try:
            fd = os.open(path, _FLAGS)
        except OSError as e:
            if e.errno in (errno.ENXIO, errno.EOPNOTSUPP):  # a socket swapped in
                raise SourceNotFound(shown, "is not a regular file") from None
            raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(shown, st.st_mode)
        if hasattr(os, "set_blocking") and _FLAGS & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_fd(fd: int, n: int) -> bytes:
    """Up to ``n`` bytes from ``fd``'s position, fewer only at its end (short reads retried)."""
    data = os.read(fd, n)
    if len(data) == n or not data:
        return data
    parts, got = [data], len(data)
    while got < n and (chunk := os.read(fd, min(n - got, _CHUNK))):
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


@contextmanager
def open_binary(path: str | os.PathLike[str], shown: str | None = None) -> Iterator[BinaryIO]:
    """:func:`open_fd` as a binary file object; the OS's read errors become one line."""
    shown = shown if shown is not None else os.fspath(path)
    fd = open_fd(path, shown)
    with reading(shown), os.fdopen(fd, "rb") as f:
        yield f


def read_at_most(f: BinaryIO, limit: int) -> bytes:
    """Up to ``limit`` bytes from ``f``, stopping at its end; memory follows what is read."""
    try:
        hint = os.fstat(f.fileno()).st_size
    except (OSError, ValueError):
        hint = 0
    want = min(hint + 1, limit)
    data = f.read(want)
    if len(data) < want:
        return data
    parts, total = [data], len(data)
    while total < limit:
        chunk = f.read(min(_CHUNK, limit - total))
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


def read_capped(
    path: str | os.PathLike[str],
    cap: int,
    shown: str | None = None,
    *,
    too_large: type[ParamtoolError] = ConfigError,
) -> bytes:
    """A whole regular file of at most ``cap`` bytes; larger is ``too_large(shown, ...)``.

    At most ``cap + 1`` bytes are read, whatever the file's size says (a file in
    ``/proc`` says 0).
    """
    shown = shown if shown is not None else os.fspath(path)
    with open_binary(path, shown) as f:
        if os.fstat(f.fileno()).st_size > cap:
            raise too_large(shown, f"larger than {cap:,} bytes")
        data = read_at_most(f, cap + 1)
    if len(data) > cap:
        raise too_large(shown, f"larger than {cap:,} bytes")
    return data


def read_prefix(path: str | os.PathLike[str], n: int) -> bytes | None:
    """The first ``n`` bytes of a regular file (fewer if it is shorter); None if unreadable."""
    try:
        with open_binary(path) as f:
            return f.read(n)
    except ParamtoolError:
        return None


def pread_upto(fd: int, offset: int, n: int, size: int) -> bytes:
    """Up to ``n`` bytes of the open file ``fd`` (``size`` bytes long) from ``offset``: fewer
    at its end, none past it or for a negative offset or count."""
    if offset < 0 or n < 0 or offset >= size:
        return b""
    n = min(n, size - offset)
    parts: list[bytes] = []
    while n > 0:
        chunk = os.pread(fd, n, offset)
        if not chunk:
            break
        parts.append(chunk)
        offset += len(chunk)
        n -= len(chunk)
    return b"".join(parts)
