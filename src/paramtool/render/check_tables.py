"""The Rich report of ``paramtool check``: a table of rules (PASS/FAIL, measured, limit),
then why each rule that did not pass failed, then the verdict."""

from __future__ import annotations

from rich.console import Console, Group
from rich.text import Text

from paramtool.checks.findings import Report
from paramtool.checks.rules import FAIL, PASS, UNAVAILABLE
from paramtool.render.check_markdown import summary_line
from paramtool.render.fit import FitTable
from paramtool.render.inspect_tables import plain

STYLES = {PASS: "bold green", FAIL: "bold red", UNAVAILABLE: "bold yellow"}


def results_table(report: Report) -> FitTable:
    """A row per rule; when narrow, measured and limit wrap between words, then each rule
    name moves to a line of its own."""
    t = FitTable(title=Text.assemble("Checks of ", plain(report.source)), title_justify="left")
    t.add_column("rule", name=True)
    t.add_column("result", min_width=11)
    t.add_column("measured", wrap=True)
    t.add_column("limit", wrap=True)
    for f in report.findings:
        t.add_row(
            plain(f.name),
            Text(f.status.upper(), style=STYLES[f.status]),
            plain(f.measured_text),
            plain(f.limit_text),
        )
    return t


def reasons(report: Report) -> Text:
    """One line per rule that did not pass: its name and what was wrong."""
    lines = [
        Text.assemble(Text(f"{f.name}: ", style=STYLES[f.status]), plain(f.message))
        for f in report.findings
        if f.status != PASS
    ]
    return Text("\n").join(lines)


def verdict(report: Report) -> Text:
    status = PASS if report.passed else FAIL
    word = Text("PASSED" if report.passed else "FAILED", style=STYLES[status])
    return Text.assemble(word, "  ", summary_line(report))


def print_report(console: Console, report: Report) -> None:
    parts: list[FitTable | Text] = [results_table(report)]
    if not report.passed:
        parts.append(reasons(report))
    parts.append(verdict(report))
    console.print(Group(*parts))
