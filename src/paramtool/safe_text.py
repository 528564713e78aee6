"""Hostile text (tensor names, metadata, paths) made safe to print: no control characters.

A header can name a tensor ``"\x1b[2J"`` or put a newline in a path; printed raw, that
would clear the user's terminal or split paramtool's one-line errors. Every renderer and
the CLI's error line pass such text through :func:`printable`.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: object, replacement: str = "?") -> str:
    """``text`` as a string with each control character replaced."""
    return _CONTROL.sub(replacement, str(text))
