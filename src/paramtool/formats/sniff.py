"""What a file is, by its first bytes; and what its name claims it is.

A file's format is decided by its bytes, never by its name: a GGUF file renamed
``model.safetensors`` is read as GGUF, and the name that lies is reported
(:func:`misnamed_note`), so that ``check --safetensors-only`` can fail it.
"""

from __future__ import annotations

import struct

from paramtool.records import named_format

PREFIX = 16  # bytes :func:`sniff` wants to see
_SAFETENSORS_MAX_HEADER = 100_000_000  # safetensors' own limit (formats.safetensors)

# Formats by the bytes they start with; "safetensors" is recognised by its structure.
_MAGIC = (
    (b"GGUF", "gguf"),
    (b"PK\x03\x04", "zip"),
    (b"\x89HDF", "hdf5"),
    (b"\x93NUMPY", "npy"),
)
NAMES = {
    "safetensors": "safetensors",
    "gguf": "GGUF",
    "zip": "a zip archive (a PyTorch checkpoint?)",
    "pickle": "a Python pickle",
    "hdf5": "HDF5",
    "npy": "a NumPy .npy file",
}


def sniff(prefix: bytes) -> str | None:
    """The format the first bytes show: ``safetensors``, ``gguf``, ``zip``, ``pickle``, ...

    safetensors is an 8-byte little-endian header length (at most 100 MB) followed by
    ``{``; None when the bytes match no format.

    >>> sniff(b"GGUF\\x03\\x00\\x00\\x00")
    'gguf'
    >>> sniff(struct.pack("<Q", 2) + b"{}")
    'safetensors'
    """
    if len(prefix) >= 9 and prefix[8:9] == b"{":
        (n,) = struct.unpack("<Q", prefix[:8])
        if 2 <= n <= _SAFETENSORS_MAX_HEADER:  # a 640-byte header starts like a pickle
            return "safetensors"
    for magic, name in _MAGIC:
        if prefix.startswith(magic):
            return name
    if prefix[:1] == b"\x80" and prefix[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    return None


def misnamed_note(path: str, actual: str) -> str | None:
    """A warning when ``path``'s extension claims another format than its bytes (``actual``)."""
    claimed = named_format(path)
    if claimed is None or claimed == actual:
        return None
    return (
        f"{path}: named as {NAMES[claimed]} but its bytes are {NAMES.get(actual, actual)}; "
        f"read as {NAMES.get(actual, actual)} (a file's format is decided by its bytes)"
    )
