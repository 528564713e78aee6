"""``paramtool check --markdown``: a table for a pull-request comment or a CI job summary.

Pure string building. Every value that came from the checkpoint or the user (tensor
names, metadata, paths) is escaped, so it renders as the text it is: no markup, no
HTML, no table breaks, no maths, no @-mentions.
"""

from __future__ import annotations

import re

from paramtool.checks.findings import Report
from paramtool.checks.rules import FAIL, PASS, UNAVAILABLE
from paramtool.safe_text import FORMAT_CHARS

# Control, bidi and other invisible format characters (each run becomes one space).
_CONTROL = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{FORMAT_CHARS}]+")
# Backslash-escaped (CommonMark allows it for any ASCII punctuation); | also splits GFM cells.
_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~&#!$])")
BADGES = {PASS: "✅ PASS", FAIL: "❌ FAIL", UNAVAILABLE: "⚠️ UNAVAILABLE"}


def escape(text: object) -> str:
    """Plain text as inert Markdown on one line."""
    t = _CONTROL.sub(" ", str(text))
    t = _SPECIAL.sub(r"\\\1", t)
    return t.replace("@", "@\u200b")  # a zero-width space keeps GitHub from mentioning anyone


def summary_line(report: Report) -> str:
    n = len(report.findings)
    parts = [f"{report.count(PASS)} passed", f"{report.count(FAIL)} failed"]
    if report.count(UNAVAILABLE):
        parts.append(f"{report.count(UNAVAILABLE)} unavailable")
    return f"{n} rule{'s' if n != 1 else ''}: " + ", ".join(parts)


def to_markdown(report: Report) -> str:
    verdict = "✅ passed" if report.passed else "❌ failed"
    lines = [f"### paramtool check: {verdict}", ""]
    source = f"**Checkpoint:** {escape(report.source)}"
    if report.revision:
        source += f" at revision {escape(report.revision)}"
    lines.append(source + "  ")
    if report.config:
        lines.append(f"**Config:** {escape(report.config)}  ")
    lines += [f"**Result:** {summary_line(report)}", ""]
    lines.append("| result | rule | measured | limit | details |")
    lines.append("| --- | --- | --- | --- | --- |")
    for f in report.findings:
        cells = [
            BADGES[f.status],
            escape(f.name),
            escape(f.measured_text),
            escape(f.limit_text),
            escape(f.message),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
