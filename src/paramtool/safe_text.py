"""Hostile text (tensor names, metadata, paths) made safe to print and to quote.

A header can name a tensor ``"\x1b[2J"``, put a newline in a path, hide a right-to-left
override (U+202E) in a name so that it reads backwards, or carry an 8-bit CSI (U+009B)
that some terminals obey; printed raw, that would clear the user's terminal, split
paramtool's one-line errors or disguise what a table says. Every renderer and the CLI's
error line pass such text through :func:`printable`; JSON documents keep the characters
but write them as ``\\uXXXX`` escapes (:func:`escape_json`); error lines cut long names
with a marker (:func:`clip`).
"""

from __future__ import annotations

import re
from functools import cache

# Unicode's control (Cc: C0, DEL, C1), format (Cf: bidi embeddings, overrides and isolates,
# the marks U+200E/U+200F/U+061C, zero-width characters, the BOM, tag characters), line and
# paragraph separators (Zl, Zp) and lone surrogates (Cs), as of Unicode 16. A test checks
# this list against the running Python's unicodedata. As the inside of a [...] class.
FORMAT_CHARS = (
    "\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    "\u2028-\u202e\u2060-\u2064\u2066-\u206f\ud800-\udfff\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
)


# Compiled on first use: each costs about half a millisecond, which every start-up would pay.
@cache
def _unsafe() -> re.Pattern[str]:
    return re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{FORMAT_CHARS}]")


@cache
def _unsafe_in_json() -> re.Pattern[str]:
    """What json.dumps(ensure_ascii=False) leaves raw: it already escapes C0 (and only C0)."""
    return re.compile(f"[\\x7f-\\x9f{FORMAT_CHARS}]")


MAX_SHOWN = 200
"""How many characters of a hostile name or value an error line shows (:func:`clip`)."""


def printable(text: object, replacement: str = "?") -> str:
    """``text`` as a string with each control, format or bidi character replaced."""
    text = str(text)
    if text.isascii() and text.isprintable():  # no control character: nothing to replace
        return text
    return _unsafe().sub(replacement, text)


def _json_escape(m: re.Match[str]) -> str:
    cp = ord(m.group())
    if cp > 0xFFFF:  # astral: the UTF-16 surrogate pair JSON spells it with
        cp -= 0x10000
        return f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04x}"
    return f"\\u{cp:04x}"


def escape_json(document: str) -> str:
    """A JSON text from ``json.dumps(..., ensure_ascii=False)`` with the characters that
    :func:`printable` replaces written as ``\\uXXXX`` escapes: still valid JSON, equal
    when parsed, and inert on a terminal.

    Those characters can only stand inside strings (JSON's own syntax is ASCII), so each
    one is escaped where it is.

    >>> escape_json('{"name": "a\u202eb\x9b"}')
    '{"name": "a\\\\u202eb\\\\u009b"}'
    """
    if document.isascii() and "\x7f" not in document:  # DEL is the only ASCII one
        return document
    if (unsafe := _unsafe_in_json()).search(document) is None:
        return document
    return unsafe.sub(_json_escape, document)


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` cut to at most ``limit`` characters: its start and its end, joined by a
    marker that says how many were left out (``abc…(+1,048,376 chars)…xyz``).

    The end is kept because it often holds what matters (``….safetensors``, ``…: no such
    file``). Text already short enough comes back as it is, so clipping twice is clipping
    once.

    >>> clip("x" * 50, 24)
    'xxxxxxx…(+39 chars)…xxxx'
    """
    if len(text) <= limit:
        return text
    keep = max(limit - len(f"…(+{len(text):,} chars)…"), 2)  # the longest the marker can be
    head = keep * 2 // 3
    tail = keep - head
    return f"{text[:head]}…(+{len(text) - keep:,} chars)…{text[len(text) - tail :]}"


MAX_LINE = 400
"""The most characters a message line (an error, a warning, a note) holds."""


def shorten(message: str) -> str:
    """A message with each name in it cut to :data:`MAX_SHOWN` characters (a run without
    spaces: a tensor name, a path, a quoted value), and the whole to :data:`MAX_LINE`.

    A header can name a tensor with a million characters; the one error line that
    repeats the name stays a line.
    """
    if len(message) <= MAX_SHOWN:
        return message
    message = re.sub(f"\\S{{{MAX_SHOWN + 1},}}", lambda m: clip(m.group()), message)
    return clip(message, MAX_LINE)
