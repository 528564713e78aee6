"""Horizontal bars from block characters, readable in any terminal and in exports."""

from __future__ import annotations

_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(fraction: float, width: int = 20) -> str:
    """A bar ``fraction`` (0..1) of ``width`` cells long, in eighths of a cell."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, rest = divmod(eighths, 8)
    text = "█" * full + (_EIGHTHS[rest] if rest else "")
    if fraction > 0 and not text:
        text = "▏"
    return text.ljust(width)
