"""Tables that fit the console they are printed on, without cutting a number or a name.

A :class:`FitTable` is filled like a Rich ``Table`` and picks its shape when printed, at
the width it is given. It gives up, in this order, until the table fits:

1. decoration: columns marked ``decoration`` (bars), then the box's lines (a compact
   style: a rule under the header, two spaces between columns);
2. one-line cells: columns marked ``wrap`` (prose) wrap between words, never inside one;
3. optional columns, by their ``drop`` rank (1 first);
4. a column marked ``name`` (tensor, file, rule names) moves onto a line of its own above
   the rest of its row.

Numbers and names are never cut or wrapped; only a name longer than the whole width is
folded. When even that does not fit, Rich's own layout is the last resort.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from rich import box as boxes
from rich.console import (
    Console,
    ConsoleOptions,
    Group,
    JustifyMethod,
    RenderableType,
    RenderResult,
)
from rich.measure import Measurement
from rich.padding import Padding
from rich.style import StyleType
from rich.table import Table
from rich.text import Text

from paramtool.frozen import dataclass

_UNBOUNDED = 1_000_000  # a width to measure cells at without wrapping them
STACK_INDENT = 4  # the rest of a row, under a name on its own line
_COMPACT = {
    "box": boxes.SIMPLE_HEAD,
    "show_edge": False,
    "pad_edge": False,
    "padding": (0, 1, 0, 0),
}


@dataclass(frozen=True, slots=True)
class _Column:
    header: str
    justify: JustifyMethod = "left"
    style: StyleType | None = None
    decoration: bool = False
    drop: int = 0
    name: bool = False
    wrap: bool = False
    width: int | None = None
    min_width: int | None = None


@dataclass(frozen=True, slots=True)
class _Row:
    cells: tuple[RenderableType, ...]
    style: StyleType | None
    end_section: bool


@dataclass(frozen=True, slots=True)
class _Shape:
    """Which columns are shown, in which style, and how each is laid out."""

    columns: tuple[int, ...]
    compact: bool
    stacked: bool = False
    widths: tuple[int, ...] = ()  # fixed content widths, when a column wraps or is stacked


class FitTable:
    """A table that drops decoration, wraps prose, drops optional columns, then puts names
    on lines of their own, until it fits the width it is printed at.

    ``table_options`` are those of ``rich.table.Table`` (title, box, padding...).
    """

    def __init__(self, title: str | Text | None = None, **table_options: Any) -> None:
        self.title = title
        self.caption: str | Text | None = table_options.pop("caption", None)
        self.options = table_options
        self.columns: list[_Column] = []
        self.rows: list[_Row] = []

    def add_column(
        self,
        header: str = "",
        *,
        justify: JustifyMethod = "left",
        style: StyleType | None = None,
        decoration: bool = False,
        drop: int = 0,
        name: bool = False,
        wrap: bool = False,
        width: int | None = None,
        min_width: int | None = None,
    ) -> None:
        """``decoration``: goes first; ``drop``: optional, goes in rank order (1 first);
        ``name``: never wrapped, moves to a line of its own when the row does not fit;
        ``wrap``: prose, may wrap between words."""
        self.columns.append(
            _Column(header, justify, style, decoration, drop, name, wrap, width, min_width)
        )

    def add_row(
        self, *cells: RenderableType, style: StyleType | None = None, end_section: bool = False
    ) -> None:
        self.rows.append(_Row(tuple(cells), style, end_section))

    def add_section(self) -> None:
        if self.rows:
            self.rows[-1] = replace(self.rows[-1], end_section=True)

    @property
    def row_count(self) -> int:
        return len(self.rows)

    # ------------------------------------------------------------------ layout

    def table_for(self, console: Console, width: int) -> Table:
        """The Rich table this one becomes at ``width`` columns."""
        return self._build(console, self._shape(console, width))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table_for(console, options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.table_for(console, options.max_width))

    def _measure(self, console: Console) -> list[tuple[int, int]]:
        """(narrowest, widest) content width of each column: a wrapped column's narrowest
        is its longest word; any other column's is its longest line."""
        options = console.options.update_width(_UNBOUNDED)
        result = []
        for i, c in enumerate(self.columns):
            if c.width is not None:
                result.append((c.width, c.width))
                continue
            cells: list[RenderableType] = (
                [c.header] if self.options.get("show_header", True) else []
            )
            cells += [r.cells[i] for r in self.rows if i < len(r.cells) and r.cells[i] is not None]
            lo = hi = 0
            for cell in cells:
                m = Measurement.get(console, options, cell)
                lo, hi = max(lo, m.minimum), max(hi, m.maximum)
            if not c.wrap:
                lo = hi
            floor = c.min_width or 0
            result.append((max(lo, floor), max(hi, floor)))
        return result

    def _style(self, compact: bool) -> dict[str, Any]:
        return {**self.options, **_COMPACT} if compact else dict(self.options)

    def _overhead(self, n: int, compact: bool) -> int:
        """Cells a table of ``n`` columns spends on borders and padding."""
        style = self._style(compact)
        box = style.get("box", boxes.HEAVY_HEAD)
        pad = Padding.unpack(style.get("padding", (0, 1)))
        left, right = pad[3], pad[1]
        extra = (2 if box and style.get("show_edge", True) else 0) + (n - 1 if box else 0)
        padding = n * (left + right)
        if not style.get("pad_edge", True):
            padding -= left + right
        return extra + padding

    def _levels(self) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
        """The column sets to try in the table's own style (all, then without decoration)
        and then in the compact style (without decoration, then fewer optional columns)."""
        every = tuple(range(len(self.columns)))
        plain = tuple(i for i in every if not self.columns[i].decoration)
        loose = [every] if every == plain else [every, plain]
        tight = [plain]
        for rank in sorted({c.drop for c in self.columns if c.drop}):
            tight.append(tuple(i for i in tight[-1] if self.columns[i].drop != rank))
        return loose, tight

    def _shape(self, console: Console, width: int) -> _Shape:
        sizes = self._measure(console)
        loose, tight = self._levels()
        for cols in loose:  # every cell on one line: bars go first, then the box's lines
            if self._overhead(len(cols), False) + sum(sizes[i][1] for i in cols) <= width:
                return _Shape(cols, False)
        for cols in tight:  # prose wraps between words; optional columns go when not enough
            avail = width - self._overhead(len(cols), True)
            widths = _allocate(
                [sizes[i] for i in cols], [self.columns[i].wrap for i in cols], avail
            )
            if widths is not None:
                wraps = any(w < sizes[i][1] for i, w in zip(cols, widths, strict=True))
                return _Shape(cols, True, widths=tuple(widths) if wraps else ())
        names = [i for i, c in enumerate(self.columns) if c.name]
        if names:  # the name on a line of its own, the rest of the row under it
            for cols in tight:
                data = [i for i in cols if i not in names]
                avail = width - STACK_INDENT - 2 * max(len(data) - 1, 0)
                widths = _allocate(
                    [sizes[i] for i in data], [self.columns[i].wrap for i in data], avail
                )
                if widths is not None:
                    return _Shape((names[0], *data), True, stacked=True, widths=tuple(widths))
        return _Shape(tight[-1], True)  # Rich's own layout: the last resort

    # ------------------------------------------------------------------ building

    def _table(self, compact: bool) -> Table:
        return Table(title=self.title, caption=self.caption, **self._style(compact))

    def _build(self, console: Console, shape: _Shape) -> Table:
        if shape.stacked:
            return self._build_stacked(console, shape)
        t = self._table(shape.compact)
        widths: Sequence[int | None] = shape.widths or (None,) * len(shape.columns)
        for i, fixed in zip(shape.columns, widths, strict=True):
            c = self.columns[i]
            t.add_column(
                c.header,
                justify=c.justify,
                style=c.style,
                no_wrap=not c.wrap,
                overflow="fold" if c.name or c.wrap else "ellipsis",
                width=fixed if fixed is not None else c.width,
                min_width=c.min_width,
            )
        for r in self.rows:
            t.add_row(
                *(_cell(r, i) for i in shape.columns), style=r.style, end_section=r.end_section
            )
        return t

    def _build_stacked(self, console: Console, shape: _Shape) -> Table:
        name, *data = shape.columns
        columns = [self.columns[i] for i in data]
        t = self._table(True)

        def line(cells: Sequence[RenderableType]) -> RenderableType:
            texts = [console.render_str(x) if isinstance(x, str) else x for x in cells]
            if all(
                isinstance(x, Text) and "\n" not in x.plain and x.cell_len <= w
                for x, w in zip(texts, shape.widths, strict=True)
            ):  # one line of padded cells, much cheaper than a grid per row
                out = Text(" " * STACK_INDENT)
                for k, (x, c, w) in enumerate(zip(texts, columns, shape.widths, strict=True)):
                    assert isinstance(x, Text)
                    out.append(" " * (2 if k else 0))
                    start, pad = len(out), " " * (w - x.cell_len)
                    if c.justify == "right":
                        out.append(pad)
                    out.append_text(x)
                    if c.justify != "right":
                        out.append(pad)
                    if c.style:
                        out.stylize_before(c.style, start, len(out))
                return out
            grid = Table.grid(padding=(0, 2, 0, 0))
            for c, w in zip(columns, shape.widths, strict=True):
                grid.add_column(justify=c.justify, style=c.style, width=w, no_wrap=not c.wrap)
            grid.add_row(*cells)
            return Padding(grid, (0, 0, 0, STACK_INDENT))

        header = Group(self.columns[name].header, line([c.header for c in columns]))
        t.add_column(header, overflow="fold")
        for r in self.rows:
            t.add_row(
                Group(_cell(r, name), line([_cell(r, i) for i in data])),
                style=r.style,
                end_section=r.end_section,
            )
        return t


def _cell(row: _Row, i: int) -> RenderableType:
    return row.cells[i] if i < len(row.cells) and row.cells[i] is not None else ""


def _allocate(
    sizes: Sequence[tuple[int, int]], wrap: Sequence[bool], avail: int
) -> list[int] | None:
    """Content widths for columns of these (narrowest, widest) sizes in ``avail`` cells,
    or None when they do not fit.

    A column that does not wrap gets its widest, a wrapped one at least its narrowest; what
    is left goes to the wrapped columns a cell at a time, to the narrowest one that is not
    yet as wide as it would like."""
    widths = [lo if w else hi for (lo, hi), w in zip(sizes, wrap, strict=True)]
    spare = avail - sum(widths)
    if spare < 0:
        return None
    while spare > 0:
        short = [k for k, ((_, hi), w) in enumerate(zip(sizes, wrap, strict=True)) if w]
        short = [k for k in short if widths[k] < sizes[k][1]]
        if not short:
            break
        widths[min(short, key=widths.__getitem__)] += 1
        spare -= 1
    return widths
