"""Patterns users give to pick tensors by name (``--filter``), compiled once and checked.

A user's pattern meets names from files, and a file can name a tensor with 100,000
characters chosen to make a backtracking engine take minutes (``(a+)+$`` against
``aaa…ab``). User patterns are therefore compiled by RE2 (``google-re2``), whose matching
time is linear in the name's length: the price is RE2's syntax, which has no
backreferences (``\\1``) and no lookaround (``(?=``, ``(?<=``), and spells the end of
text ``\\z`` (Python's ``\\Z``). https://github.com/google/re2/wiki/Syntax
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramtool.errors import UsageError
from paramtool.safe_text import clip

if TYPE_CHECKING:
    import re2

RE2_SYNTAX = "https://github.com/google/re2/wiki/Syntax"


class NamePattern:
    """A user's regular expression, compiled by RE2, searched in names (``re.search``'s
    meaning: it matches anywhere unless anchored with ``^`` or ``$``)."""

    __slots__ = ("pattern", "_regexp")

    def __init__(self, pattern: str, regexp: re2._Regexp[str]) -> None:
        self.pattern = pattern
        self._regexp = regexp

    def search(self, name: str) -> bool:
        """Whether the pattern occurs in ``name``, in time linear in its length."""
        # As UTF-8 bytes (what RE2 reads anyway); surrogatepass: a name that is not valid
        # Unicode is still searched, never an error.
        return self._regexp.search(name.encode("utf-8", "surrogatepass")) is not None

    def __repr__(self) -> str:
        return f"NamePattern({self.pattern!r})"


def compile_pattern(pattern: str, param: str) -> NamePattern:
    """``pattern`` compiled by RE2; one UsageError about ``param`` when RE2 refuses it."""
    import re2

    options = re2.Options()
    options.log_errors = False  # RE2 would also log the refusal on stderr
    try:
        return NamePattern(pattern, re2.compile(pattern, options))
    except re2.error as e:
        detail = e.args[0] if e.args else ""
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise UsageError(
            repr(clip(pattern)),
            f"not a regular expression RE2 accepts ({clip(str(detail))}); patterns use RE2 "
            f"syntax, which runs in linear time and so has no backreferences or lookaround "
            f"(see {RE2_SYNTAX})",
            param=param,
        ) from None


def compile_filter(pattern: str | None) -> NamePattern | None:
    """A ``--filter`` regular expression, searched in each tensor name; None selects all."""
    if pattern is None:
        return None
    return compile_pattern(pattern, "filter")
