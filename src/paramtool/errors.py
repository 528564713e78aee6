"""The error kinds paramtool raises.

Every failure a user can cause is a :class:`ParamtoolError`; the CLI turns it
into one line, ``paramtool: error: <what>: <why>``, and an exit code. Header
errors are named after the safetensors library's own failure kinds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class ParamtoolError(Exception):
    """Root of every error paramtool reports to the user (exit code 2)."""

    exit_code = 2

    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what}: {why}")
        self.what = what
        self.why = why


class SourceNotFound(ParamtoolError):
    """A path that does not exist, or a folder with no checkpoint in it."""


@contextmanager
def reading(shown: str) -> Iterator[None]:
    """Turn the OS's errors while opening or reading ``shown`` into one SourceNotFound line."""
    try:
        yield
    except FileNotFoundError:
        raise SourceNotFound(shown, "no such file") from None
    except IsADirectoryError:
        raise SourceNotFound(shown, "is a directory") from None
    except PermissionError:
        raise SourceNotFound(shown, "permission denied") from None
    except OSError as e:
        raise SourceNotFound(shown, e.strerror or str(e)) from None


class UnsafeFormat(ParamtoolError):
    """A pickle checkpoint (.bin/.pt/.pth/.ckpt), refused unopened."""


class UnsupportedFormat(ParamtoolError):
    """A file that is not safetensors (GGUF, zip, ...) where safetensors is required."""


class UsageError(ParamtoolError):
    """Bad option values: a size or count that does not parse, an unknown dtype."""


class HubError(ParamtoolError):
    """The Hub could not answer: repo or revision missing, gated, offline, network."""


class ConfigError(ParamtoolError):
    """A malformed config file (config.json, index, paramtool.toml)."""


# Header errors: the safetensors library's failure kinds, with path and tensor.


class HeaderError(ParamtoolError):
    """A safetensors header that the reference library would refuse."""

    def __init__(self, path: str, why: str, tensor: str | None = None) -> None:
        if tensor is not None:
            why = f"tensor {tensor!r}: {why}"
        super().__init__(path, why)
        self.path = path
        self.tensor = tensor


class HeaderTooSmall(HeaderError):
    """Fewer than 8 bytes: no header length to read."""


class HeaderTooLarge(HeaderError):
    """The declared header length exceeds the 100 MB the format allows."""


class InvalidHeaderLength(HeaderError):
    """The declared header length runs past the end of the file."""


class InvalidHeader(HeaderError):
    """The header is not UTF-8, not JSON, or not a JSON object."""


class InvalidHeaderDeserialization(HeaderError):
    """The JSON is well formed but a field has the wrong type or value."""


class InvalidOffset(HeaderError):
    """Tensor data offsets leave a gap, overlap, or run backwards."""


class TensorInvalidInfo(HeaderError):
    """The byte range does not equal numel times the dtype size."""


class ValidationOverflow(HeaderError):
    """Shape or byte size overflows 64 bits."""


class MetadataIncompleteBuffer(HeaderError):
    """The tensors do not cover the data region exactly."""


class ShardIndexError(ConfigError):
    """A sharded checkpoint's index that disagrees with its shards."""
