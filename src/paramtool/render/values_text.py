"""Plain-text output of ``paramtool hash``: the lines ``sha256sum`` prints, and more."""

from __future__ import annotations

import re

from paramtool.hashing import HashReport

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _clean(text: str) -> str:
    return _CONTROL.sub("?", text)


def hash_lines(r: HashReport, tensors: bool = False) -> list[str]:
    """``<sha256>  <path>`` per file (``sha256sum -c`` reads them), then the weights digest.

    With ``tensors``, one ``<digest>  <tensor name>`` line per tensor follows.
    """
    lines = [f"{f.sha256}  {_clean(f.path)}" for f in r.files]
    lines.append(f"# weights digest {r.weights_digest} ({len(r.tensors):,} tensors)")
    if tensors:
        lines.extend(f"{t.digest}  {_clean(t.name)}" for t in r.tensors)
    return lines
