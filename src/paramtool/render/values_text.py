"""Plain-text output of ``paramtool hash``: the lines ``sha256sum`` prints, and more."""

from __future__ import annotations

from paramtool.safe_text import printable
from paramtool.values.hashing import HashReport


def hash_lines(r: HashReport, tensors: bool = False) -> list[str]:
    """``<sha256>  <path>`` per file (``sha256sum -c`` reads them), then the weights digest.

    With ``tensors``, one ``<digest>  <tensor name>`` line per tensor follows.
    """
    lines = [f"{f.sha256}  {printable(f.path)}" for f in r.files]
    lines.append(f"# weights digest {r.weights_digest} ({len(r.tensors):,} tensors)")
    if tensors:
        lines.extend(f"{t.digest}  {printable(t.name)}" for t in r.tensors)
    return lines
