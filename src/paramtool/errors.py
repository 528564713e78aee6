"""The error kinds paramtool raises.

Every failure a user can cause is a :class:`ParamtoolError`; the CLI turns it
into one line, ``paramtool: error: <what>: <why>``, and an exit code. Errors name
the parameters they are about (``lora_rank``); the CLI spells them as its flags
(``--lora-rank``). Header errors are named after the safetensors library's own
failure kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeAlias

from paramtool.safe_text import clip, shorten

Spell: TypeAlias = Callable[[str], str]
"""How a message names a parameter: :func:`by_name` for a Python caller; the CLI spells flags."""


def by_name(param: str) -> str:
    """A parameter as a Python caller knows it: its own name (``lora_rank``)."""
    return param


Why: TypeAlias = str | Callable[[Spell], str]
"""What is wrong: a string, or, when it mentions parameters, a function of how to spell them."""


class ParamtoolError(Exception):
    """Root of every error paramtool reports to the user (exit code 2).

    ``what`` names the subject and ``why`` says what is wrong with it. An error about a
    parameter says which with ``param`` (``"lora_rank"``; several: ``("context", "batch")``),
    and ``what`` is then only the value as shown (``"0"``, ``"'16XB'"``, or ``""``). The
    message names the parameter, ``lora_rank 0: must be at least 1``, unless the reader
    spells parameters otherwise (:meth:`message`): the CLI writes ``--lora-rank 0``. A
    ``why`` that mentions parameters is a function of the speller:
    ``lambda p: f"give the sequence length with {p('context')}"``.

    >>> str(ParamtoolError("0", "must be at least 1", param="lora_rank"))
    'lora_rank 0: must be at least 1'
    >>> ParamtoolError("0", "must be at least 1", param="lora_rank").message(lambda p: "--" + p)
    '--lora_rank 0: must be at least 1'
    """

    exit_code = 2

    def __init__(self, what: str, why: Why, *, param: str | tuple[str, ...] | None = None) -> None:
        self.param = param
        self.value = what
        self._why = why
        super().__init__(self.message())

    @property
    def params(self) -> tuple[str, ...]:
        """The parameters the error is about, if any."""
        if self.param is None:
            return ()
        return (self.param,) if isinstance(self.param, str) else self.param

    def subject(self, spell: Spell = by_name) -> str:
        """What the error is about: ``lora_rank 0``, or, spelled as flags, ``--lora-rank 0``."""
        if not self.params:
            return self.value
        named = "/".join(spell(p) for p in self.params)
        return f"{named} {self.value}" if self.value else named

    def reason(self, spell: Spell = by_name) -> str:
        return self._why if isinstance(self._why, str) else self._why(spell)

    def message(self, spell: Spell = by_name) -> str:
        """The one line: ``<what>: <why>``, parameters spelled by ``spell``; a name in it
        longer than 200 characters is cut with a marker (:func:`~paramtool.safe_text.shorten`),
        the whole line to 400 (``value`` keeps the subject whole)."""
        return shorten(f"{self.subject(spell)}: {self.reason(spell)}")

    @property
    def what(self) -> str:
        return self.subject()

    @property
    def why(self) -> str:
        return self.reason()


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
    """A pickle refused: an unsafe one where a plain state dict is needed (convert), or a
    pickle on the Hub, whose range reads are not built yet."""


class UnsupportedFormat(ParamtoolError):
    """A file that is not safetensors (GGUF, zip, ...) where safetensors is required."""


class UsageError(ParamtoolError):
    """Bad option values: a size or count that does not parse, an unknown dtype."""


class HubError(ParamtoolError):
    """The Hub could not answer: repo or revision missing, gated, offline, network."""


class OutputError(ParamtoolError):
    """Standard output could not be written: a full disk (``ENOSPC``), an I/O error."""


class ConfigError(ParamtoolError):
    """A malformed config file (config.json, index, paramtool.toml)."""


# Header errors: the safetensors library's failure kinds, with path and tensor.


class HeaderError(ParamtoolError):
    """A safetensors header that the reference library would refuse."""

    def __init__(self, path: str, why: str, tensor: str | None = None) -> None:
        if tensor is not None:
            why = f"tensor {clip(tensor, 120)!r}: {why}"  # beside the path, within ~300
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
