"""Rich tables for ``stats``, ``verify`` and ``diff`` (``hash`` prints plain lines).

One compact style (a rule under the header, no vertical lines); on a narrow console
optional columns go and tensor names move to a line of their own (``render.fit``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from paramtool.analysis.anatomy import CATEGORIES
from paramtool.render.fit import FitTable
from paramtool.render.inspect_tables import plain
from paramtool.units import human_bytes
from paramtool.values.diff import DiffReport, DiffTally, TensorDiff, layer_ranges
from paramtool.values.stats import Skipped, StatsReport, Summary
from paramtool.values.verify import VerifyReport

_DASH = "-"


def fmt(x: float | int | None) -> str:
    """A statistic for a person: ints with separators, floats to 3 significant digits."""
    if x is None:
        return _DASH
    if isinstance(x, int):
        return f"{x:,}"
    if math.isnan(x) or math.isinf(x):
        return str(x)
    return f"{x:.3g}".replace("e-0", "e-").replace("e+0", "e+")


def skipped_warnings(skipped: Sequence[Skipped], most: int = 3) -> list[str]:
    """One warning line per dtype whose tensors were not read (not one per tensor)."""
    by_dtype: dict[str, list[Skipped]] = {}
    for s in skipped:
        by_dtype.setdefault(s.tensor.dtype, []).append(s)
    lines = []
    for dtype, group in by_dtype.items():
        names = ", ".join(repr(s.tensor.name) for s in group[:most])
        more = f" and {len(group) - most:,} more" if len(group) > most else ""
        word = "tensor" if len(group) == 1 else "tensors"
        lines.append(f"{len(group):,} {dtype} {word} not read ({names}{more}): {group[0].reason}")
    return lines


def _count(n: int, style: str = "") -> Text:
    return Text(f"{n:,}", style=style if n else "dim")


def _percent(fraction: float) -> str:
    if fraction == 0:
        return "0%"
    return f"{fraction:.2%}" if fraction >= 0.0001 else "<0.01%"


def _table(title: str) -> FitTable:
    return FitTable(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        show_edge=False,
        pad_edge=False,
    )


def _facts(title: str) -> Table:
    """The two-column block of facts that opens each report."""
    t = Table(show_header=False, box=None, padding=(0, 2), title=title, title_justify="left")
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")  # a long word (a path) folds, never ends in …
    return t


def _name_column(t: FitTable, header: str = "tensor") -> None:
    t.add_column(header, name=True)


# ---------------------------------------------------------------- stats

# The statistics columns; on a narrow console mean |x| goes first.
_STAT_COLUMNS = ("mean", "std", "min", "max", "mean |x|", "zeros", "NaN/Inf")


def _stats_table(title: str, first: str, dtype: bool = False) -> FitTable:
    t = _table(title)
    if first == "tensor":
        _name_column(t)
    else:
        t.add_column(first)
    if dtype:
        t.add_column("dtype")
    for name in _STAT_COLUMNS:
        t.add_column(name, justify="right", drop=1 if name == "mean |x|" else 0)
    return t


def _stats_row(label: Any, s: Summary, dtype: str | None = None) -> list[Any]:
    inf = s.posinf + s.neginf
    cells = {
        "mean": fmt(s.mean),
        "std": fmt(s.std),
        "min": fmt(s.min),
        "max": fmt(s.max),
        "mean |x|": fmt(s.mean_abs),
        "zeros": _percent(s.zero_fraction),
        "NaN/Inf": Text(
            f"{s.nan:,}/{inf:,}" if s.nonfinite else "0", "bold red" if s.nonfinite else "dim"
        ),
    }
    return [label, *([dtype] if dtype is not None else []), *(cells[n] for n in _STAT_COLUMNS)]


def stats_report(
    r: StatsReport,
    top: int = 10,
    tensors: bool = False,
    width: int | None = None,
    binary: bool = False,
) -> Group:
    """Summary, by category, by layer, the top tensors and (``tensors``) every tensor.

    ``binary``: sizes in GiB. ``width`` is ignored: each table fits the console it is
    printed on.
    """
    ck = r.checkpoint
    head = _facts("Values")
    head.add_row("Source", plain(ck.source))
    if ck.hub is not None:
        head.add_row("Revision", plain(ck.hub.revision))
    if r.pattern is not None:
        head.add_row("Filter", plain(r.pattern))
    nbytes = human_bytes(sum(t.tensor.nbytes for t in r.tensors), binary)
    head.add_row("Read", f"{len(r.tensors):,} tensors, {r.total.count:,} elements, {nbytes}")
    if r.skipped:
        dts = sorted({s.tensor.dtype for s in r.skipped})
        head.add_row("Not decoded", f"{len(r.skipped):,} tensors ({', '.join(dts)})")
    t = r.total
    nonfinite = f"{t.nan:,} NaN, {t.posinf:,} +Inf, {t.neginf:,} -Inf"
    head.add_row("Non-finite", Text(nonfinite, style="bold red" if t.nonfinite else ""))
    parts: list[Any] = [head]

    cats = _stats_table("By category", "category")
    for c in CATEGORIES:
        if r.by_category[c].tensors:
            cats.add_row(*_stats_row(c, r.by_category[c]))
    cats.add_section()
    cats.add_row(*_stats_row(Text("total", style="bold"), r.total))
    parts.append(cats)

    if r.by_layer:
        layers = _stats_table("By layer", "layer")
        for i, s in r.by_layer:
            layers.add_row(*_stats_row(str(i), s))
        parts.append(layers)

    big = r.top_abs(top)
    if big:
        tb = _table(f"Largest |x| (top {len(big)})")
        _name_column(tb)
        tb.add_column("dtype")
        for name in ("max |x|", "std", "max |x| / std"):
            tb.add_column(name, justify="right")
        for row in big:
            s = row.summary
            ratio = float(s.max_abs) / s.std if s.std and s.max_abs is not None else None
            tb.add_row(
                plain(row.tensor.name), row.tensor.dtype, fmt(s.max_abs), fmt(s.std), fmt(ratio)
            )
        parts.append(tb)
    bad = r.top_nonfinite(top)
    if bad:
        tb = _table(f"Most NaN / Inf (top {len(bad)})")
        _name_column(tb)
        tb.add_column("dtype")
        for name in ("NaN", "+Inf", "-Inf", "of elements"):
            tb.add_column(name, justify="right")
        for row in bad:
            s = row.summary
            tb.add_row(
                plain(row.tensor.name),
                row.tensor.dtype,
                _count(s.nan, "bold red"),
                _count(s.posinf, "bold red"),
                _count(s.neginf, "bold red"),
                _percent(s.nonfinite / s.count if s.count else 0.0),
            )
        parts.append(tb)

    if tensors:
        tb = _stats_table(f"Tensors ({len(r.tensors):,})", "tensor", dtype=True)
        for row in r.tensors:
            tb.add_row(*_stats_row(plain(row.tensor.name), row.summary, row.tensor.dtype))
        parts.append(tb)
    return Group(*parts)


# ---------------------------------------------------------------- verify

_STATUS_STYLE = {
    "ok": "green",
    "mismatch": "bold red",
    "missing": "bold red",
    "unverified": "yellow",
}


def verify_report(r: VerifyReport) -> Group:
    head = _facts("Verify")
    head.add_row("Local", plain(r.path))
    head.add_row("Hub", plain(r.hub.repo_id + (f" ({r.subfolder}/)" if r.subfolder else "")))
    head.add_row("Revision", plain(r.hub.revision))
    counts = ", ".join(
        f"{r.count(s)} {s}" for s in ("ok", "mismatch", "missing", "unverified") if r.count(s)
    )
    verdict = Text("all match" if r.ok else "DIFFERS", style="green" if r.ok else "bold red")
    head.add_row("Result", Text.assemble(verdict, f" ({counts or 'no files'})"))
    t = _table(f"Files ({len(r.files)})")
    _name_column(t, "file")
    t.add_column("status")
    t.add_column("check", wrap=True)
    t.add_column("bytes", justify="right")
    for f in r.files:
        size = f.actual_size if f.actual_size is not None else f.expected_size
        detail = f.algorithm or ""
        if f.status == "mismatch" and f.actual is None:
            detail = f"size {fmt(f.actual_size)}, the Hub says {fmt(f.expected_size)}"
        elif f.status == "mismatch":
            detail = (
                f"{f.algorithm} {(f.actual or '')[:12]}…, the Hub says {(f.expected or '')[:12]}…"
            )
        elif f.status == "unverified":
            detail = "the Hub records no hash"
        label = plain(f.path)
        if not f.required:
            label.append(" (optional)", style="dim")
        t.add_row(label, Text(f.status, style=_STATUS_STYLE[f.status]), detail, fmt(size))
    parts: list[Any] = [head, t]
    if r.extra:
        extra = ", ".join(r.extra)
        parts.append(Text(f"Not on the Hub, not checked: {extra}", style="yellow"))
    return Group(*parts)


# ---------------------------------------------------------------- diff


def touched_lines(r: DiffReport) -> list[str]:
    """What changed, category by category: "attention: 64 of 64 tensors changed in layers 0-15"."""
    lines = []
    for c in CATEGORIES:
        t = r.by_category[c]
        if not (t.compared or t.added or t.removed or t.reshaped):
            continue
        if not t.touched:
            lines.append(f"{c}: identical ({t.compared:,} tensors)")
            continue
        what = []
        if t.changed:
            what.append(f"{t.changed:,} of {t.compared:,} tensors changed")
        elif t.compared:
            what.append(f"{t.compared:,} compared, all identical")
        what += [
            f"{getattr(t, k):,} {k}" for k in ("added", "removed", "reshaped") if getattr(t, k)
        ]
        n = len(t.changed_layers)
        where = f" in layer{'s' if n > 1 else ''} {layer_ranges(t.changed_layers)}" if n else ""
        rel = f", relative L2 {fmt(t.rel_l2)}" if t.changed and t.rel_l2 is not None else ""
        lines.append(f"{c}: {', '.join(what)}{where}{rel}")
    return lines


def _tally_table(title: str, first: str) -> FitTable:
    t = _table(title)
    t.add_column(first)
    for name in ("compared", "changed", "+/-/~", "elements", "rel. L2", "max |B-A|"):
        t.add_column(name, justify="right")
    return t


def _tally_row(label: str, t: DiffTally) -> list[Any]:
    share = t.changed_elements / t.elements if t.elements else 0.0
    structure = (
        f"{t.added}/{t.removed}/{t.reshaped}" if t.added or t.removed or t.reshaped else _DASH
    )
    changed = bool(t.changed)
    return [
        label,
        f"{t.compared:,}",
        _count(t.changed, "yellow"),
        structure,
        _percent(share) if changed else _DASH,
        fmt(t.rel_l2) if changed else _DASH,
        fmt(t.max_abs) if changed else _DASH,
    ]


def _diff_table(title: str, rows: list[TensorDiff]) -> FitTable:
    t = _table(title)
    _name_column(t)
    t.add_column("dtype")
    for name in ("elements", "rel. L2", "max |B-A|"):
        t.add_column(name, justify="right")
    for d in rows:
        dt = d.a.dtype if not d.retyped else f"{d.a.dtype}→{d.b.dtype}"
        if d.identical:
            t.add_row(plain(d.name), dt, Text("identical", style="green"), "0", "0")
            continue
        share = (
            _DASH if d.changed is None else _percent(d.changed / d.elements if d.elements else 0)
        )
        t.add_row(plain(d.name), dt, share, fmt(d.rel_l2), fmt(d.max_abs))
    return t


def diff_report(r: DiffReport, top: int = 10, tensors: bool = False) -> Group:
    """Verdict, what changed per category, structure, tallies, the most changed tensors."""
    head = _facts("Diff")
    head.add_row("A", plain(r.a.source))
    head.add_row("B", plain(r.b.source))
    if r.pattern is not None:
        head.add_row("Filter", plain(r.pattern))
    same = r.identical
    head.add_row(
        "Result",
        Text("identical" if same else "different", style="green" if same else "bold yellow"),
    )
    lines = touched_lines(r)
    parts: list[Any] = [head, Text("\n".join(f"  {line}" for line in lines) or "  (no tensors)")]

    structure = [("added", t.name, f"{t.dtype} {list(t.shape)}") for t in r.added]
    structure += [("removed", t.name, f"{t.dtype} {list(t.shape)}") for t in r.removed]
    structure += [("reshaped", a.name, f"{list(a.shape)} → {list(b.shape)}") for a, b in r.reshaped]
    structure += [("retyped", d.name, f"{d.a.dtype} → {d.b.dtype}") for d in r.retyped]
    if structure:
        t = _table(f"Structure ({len(structure)} differences)")
        t.add_column("change")
        _name_column(t)
        t.add_column("detail")
        for kind, name, detail in structure:
            t.add_row(kind, plain(name), detail)
        parts.append(t)

    cats = _tally_table(
        "By category (elements: share changed; +/-/~: added, removed, reshaped)", "category"
    )
    for c in CATEGORIES:
        v = r.by_category[c]
        if v.compared or v.added or v.removed or v.reshaped:
            cats.add_row(*_tally_row(c, v))
    cats.add_section()
    cats.add_row(*_tally_row("total", r.total))
    parts.append(cats)

    if any(v.touched for _, v in r.by_layer):
        layers = _tally_table("By layer", "layer")
        for i, v in r.by_layer:
            layers.add_row(*_tally_row(str(i), v))
        parts.append(layers)

    most = r.most_changed(top)
    if most:
        parts.append(_diff_table(f"Most changed tensors (top {len(most)})", most))
    if tensors:
        parts.append(_diff_table(f"Tensors compared ({len(r.tensors):,})", list(r.tensors)))
    return Group(*parts)
