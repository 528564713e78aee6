"""Plain-text output of ``paramtool verify --signature``: the verdict, then file by file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from paramtool.safe_text import clip, printable

if TYPE_CHECKING:
    from paramtool.values.signatures import SignatureReport


def _shown(text: object) -> str:
    return printable(clip(str(text)))


def signature_lines(report: SignatureReport) -> list[str]:
    """The verdict and method, why it did not verify, then each covered, uncovered and
    ignored path (names from the folder and the bundle are clipped and made printable)."""
    verdict = "verified" if report.ok else "NOT verified"
    lines = [
        f"{_shown(report.path)}: {verdict} ({report.method} signature {_shown(report.signature)})"
    ]
    if report.reason:
        lines.append(f"  reason: {_shown(report.reason)}")
    hashed = report.serialization.get("hash_type", "?")
    per = report.serialization.get("method", "?")
    lines.append(f"  covers {len(report.files)} file(s), {_shown(hashed)} per {_shown(per)}")
    for f in report.files:
        lines.append(f"  {f.status or 'unchecked':9} {_shown(f.path)}")
    for u in report.uncovered:
        note = "allowed" if report.allow_uncovered else "fails"
        lines.append(f"  uncovered {_shown(u)} ({note})")
    lines.append("  ignored: " + ", ".join(_shown(i) for i in report.ignored))
    return lines
