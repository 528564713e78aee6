"""A zip archive's directory, read from bytes: the container of a torch >= 1.6 checkpoint.

``torch.save`` writes an uncompressed zip: ``<root>/data.pkl``, one ``<root>/data/<key>``
entry per storage, ``<root>/byteorder``, ``<root>/version``. The reader here parses the
end-of-central-directory record (zip64 too) and the central directory itself, from a byte
source ``read_at(offset, length)``, so the same code serves a local file and HTTP range
reads: the end records, the directory, and 30 bytes plus a name per local header, never an
entry's data (where each read is a request, :func:`predicted_data_offset` says where torch put
an entry's data without reading its local header). Every count and size is checked against the
file's size before anything is read, and capped (:data:`MAX_ENTRIES`, :data:`MAX_DIRECTORY_BYTES`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from paramtool.errors import HeaderError

ReadAt: TypeAlias = Callable[[int, int], bytes]
"""``read_at(offset, length)``: up to ``length`` bytes of the source from ``offset``."""

MAX_ENTRIES = 1_000_000  # a state dict of 300k tensors has 300k storages
MAX_DIRECTORY_BYTES = 128 << 20
MAX_NAME = 4096
_EOCD = b"PK\x05\x06"
_EOCD64 = b"PK\x06\x06"
_LOCATOR64 = b"PK\x06\x07"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_EOCD_SIZE = 22
_MAX_COMMENT = 0xFFFF
STORED = 0
DEFLATED = 8


class InvalidZip(HeaderError):
    """A zip archive whose end records, directory or local headers do not hold together."""


@dataclass(frozen=True, slots=True)
class ZipEntry:
    """One central-directory entry: where its local header is and how big its data is."""

    name: str
    method: int  # 0 stored, 8 deflated
    compressed_size: int
    size: int
    header_offset: int  # of the local header
    flags: int = 0

    @property
    def stored(self) -> bool:
        return self.method == STORED


@dataclass(frozen=True, slots=True)
class ZipDirectory:
    """The entries, and where the central directory starts (no entry's data may cross it)."""

    entries: tuple[ZipEntry, ...]
    offset: int

    def find(self, name: str) -> ZipEntry | None:
        for e in self.entries:
            if e.name == name:
                return e
        return None


def _read_exact(read_at: ReadAt, offset: int, n: int, shown: str, what: str) -> bytes:
    data = read_at(offset, n)
    if len(data) != n:
        raise InvalidZip(shown, f"{what} at byte {offset:,} runs past the end of the file")
    return data


def _find_eocd(read_at: ReadAt, size: int, shown: str) -> tuple[int, bytes]:
    if size < _EOCD_SIZE:
        raise InvalidZip(shown, f"file is {size} bytes, too short for a zip archive")
    # torch writes no archive comment: the record is the last 22 bytes; else look further back.
    last = _read_exact(read_at, size - _EOCD_SIZE, _EOCD_SIZE, shown, "end of central directory")
    if last[:4] == _EOCD and last[20:22] == b"\0\0":
        return size - _EOCD_SIZE, last
    tail_len = min(size, _EOCD_SIZE + _MAX_COMMENT)
    tail = _read_exact(read_at, size - tail_len, tail_len, shown, "end of central directory")
    pos = tail.rfind(_EOCD)
    while pos >= 0:
        rec = tail[pos : pos + _EOCD_SIZE]
        if len(rec) == _EOCD_SIZE:
            comment_len = struct.unpack_from("<H", rec, 20)[0]
            if pos + _EOCD_SIZE + comment_len == tail_len:
                return size - tail_len + pos, rec
        pos = tail.rfind(_EOCD, 0, pos)
    raise InvalidZip(shown, "no end-of-central-directory record: not a zip archive, or truncated")


def _zip64_end(read_at: ReadAt, eocd_at: int, size: int, shown: str) -> tuple[int, int, int]:
    if eocd_at < 20:
        raise InvalidZip(shown, "zip64 sizes without a zip64 end-of-directory locator")
    loc = _read_exact(read_at, eocd_at - 20, 20, shown, "zip64 locator")
    if loc[:4] != _LOCATOR64:
        raise InvalidZip(shown, "zip64 sizes without a zip64 end-of-directory locator")
    _disk, rec_at, disks = struct.unpack_from("<IQI", loc, 4)
    if disks > 1:
        raise InvalidZip(shown, f"a multi-disk zip archive ({disks} disks)")
    if rec_at + 56 > eocd_at - 20:
        raise InvalidZip(shown, f"zip64 end record offset {rec_at:,} is out of range")
    rec = _read_exact(read_at, rec_at, 56, shown, "zip64 end record")
    if rec[:4] != _EOCD64:
        raise InvalidZip(shown, f"no zip64 end record at byte {rec_at:,}")
    n_disk, n_total, cd_size, cd_offset = struct.unpack_from("<QQQQ", rec, 24)
    if n_disk != n_total:
        raise InvalidZip(shown, "a multi-disk zip archive")
    return n_total, cd_size, cd_offset


def _zip64_extra(
    extra: bytes, usize: int, csize: int, offset: int, shown: str, name: str
) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + length]
        if len(body) != length:
            break
        if tag == 0x0001:
            fields = [v for v in (usize, csize, offset) if v == 0xFFFFFFFF]
            if len(body) < 8 * len(fields):
                raise InvalidZip(shown, "zip64 extra field is too short", name)
            vals = list(struct.unpack_from(f"<{len(fields)}Q", body)) if fields else []
            if usize == 0xFFFFFFFF:
                usize = vals.pop(0)
            if csize == 0xFFFFFFFF:
                csize = vals.pop(0)
            if offset == 0xFFFFFFFF:
                offset = vals.pop(0)
            return usize, csize, offset
        pos += 4 + length
    if 0xFFFFFFFF in (usize, csize, offset):
        raise InvalidZip(shown, "zip64 sizes without a zip64 extra field", name)
    return usize, csize, offset


def read_directory(read_at: ReadAt, size: int, shown: str) -> ZipDirectory:
    """The central directory of the zip archive of ``size`` bytes behind ``read_at``."""
    eocd_at, rec = _find_eocd(read_at, size, shown)
    disk, cd_disk, n_disk, n_total, cd_size, cd_offset = struct.unpack_from("<HHHHII", rec, 4)
    if 0xFFFF in (n_disk, n_total) or 0xFFFFFFFF in (cd_size, cd_offset):
        n_total, cd_size, cd_offset = _zip64_end(read_at, eocd_at, size, shown)
        cd_end_limit = eocd_at - 20 - 56
    else:
        if disk != 0 or cd_disk != 0 or n_disk != n_total:
            raise InvalidZip(shown, "a multi-disk zip archive")
        cd_end_limit = eocd_at
    if n_total > MAX_ENTRIES:
        raise InvalidZip(shown, f"{n_total:,} entries exceed the {MAX_ENTRIES:,}-entry limit")
    if cd_size > MAX_DIRECTORY_BYTES:
        raise InvalidZip(
            shown, f"central directory of {cd_size:,} bytes exceeds {MAX_DIRECTORY_BYTES:,}"
        )
    if cd_offset + cd_size > cd_end_limit or n_total * 46 > cd_size:
        raise InvalidZip(
            shown,
            f"central directory ({n_total:,} entries, {cd_size:,} bytes at {cd_offset:,}) "
            "does not fit before its end record",
        )
    cd = _read_exact(read_at, cd_offset, cd_size, shown, "central directory")
    entries: list[ZipEntry] = []
    seen: set[str] = set()
    pos = 0
    for _ in range(n_total):
        if cd[pos : pos + 4] != _CENTRAL or pos + 46 > len(cd):
            raise InvalidZip(shown, f"bad central directory entry at byte {cd_offset + pos:,}")
        (flags, method, csize, usize, nlen, elen, clen, _disk_start, offset) = struct.unpack_from(
            "<8xHH8xIIHHHH6xI", cd, pos
        )
        end = pos + 46 + nlen + elen + clen
        if end > len(cd) or nlen > MAX_NAME:
            raise InvalidZip(shown, f"central directory entry at byte {cd_offset + pos:,} overruns")
        raw_name = cd[pos + 46 : pos + 46 + nlen]
        try:
            name = raw_name.decode("utf-8") if flags & 0x800 else raw_name.decode("cp437")
        except UnicodeDecodeError:
            raise InvalidZip(shown, "an entry name is not valid UTF-8") from None
        extra = cd[pos + 46 + nlen : pos + 46 + nlen + elen]
        usize, csize, offset = _zip64_extra(extra, usize, csize, offset, shown, name)
        if name in seen:
            raise InvalidZip(shown, "duplicate zip entry", name)
        seen.add(name)
        if offset + 30 + csize > cd_offset:
            raise InvalidZip(shown, "entry data runs into the central directory", name)
        entries.append(ZipEntry(name, method, csize, usize, offset, flags))
        pos = end
    return ZipDirectory(tuple(entries), cd_offset)


def data_offset(read_at: ReadAt, entry: ZipEntry, shown: str, limit: int) -> int:
    """Where ``entry``'s data starts: after its local header, name and extra field.

    ``limit`` is where the data must end by (the central directory's offset).
    """
    head = _read_exact(read_at, entry.header_offset, 30, shown, "local file header")
    if head[:4] != _LOCAL:
        raise InvalidZip(shown, f"no local header at byte {entry.header_offset:,}", entry.name)
    nlen: int
    elen: int
    nlen, elen = struct.unpack_from("<HH", head, 26)
    name = read_at(entry.header_offset + 30, nlen)
    if name != entry.name.encode("utf-8") and name != entry.name.encode("cp437", "replace"):
        raise InvalidZip(shown, "local header names another entry", entry.name)
    start = entry.header_offset + 30 + nlen + elen
    if start + entry.compressed_size > limit:
        raise InvalidZip(shown, "entry data runs into the central directory", entry.name)
    return start


TORCH_ALIGNMENT = 64  # caffe2/serialize/inline_container.h kFieldAlignment; .storage_alignment


def predicted_data_offset(entry: ZipEntry, alignment: int = TORCH_ALIGNMENT) -> int:
    """Where torch's writer put ``entry``'s data, from its central-directory record alone.

    ``PyTorchStreamWriter`` (caffe2/serialize/inline_container.cc, ``getPadding``) pads the
    local header's extra field (an ``FB`` record) so that the data starts at the next
    multiple of the alignment after the 30-byte header, the name, the ``FB`` record's own 4
    bytes and, when the size or the header's offset reaches 0xFFFFFFFF, miniz's zip64 extra
    field (4 bytes, 16 for the two sizes, 8 for the offset).
    """
    start = entry.header_offset + 30 + len(entry.name.encode("utf-8")) + 4
    if entry.size >= 0xFFFFFFFF or entry.header_offset >= 0xFFFFFFFF:
        start += 4
        if entry.size >= 0xFFFFFFFF:
            start += 16
        if entry.header_offset >= 0xFFFFFFFF:
            start += 8
    return -(-start // alignment) * alignment
