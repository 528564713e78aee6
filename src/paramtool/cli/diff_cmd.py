"""``paramtool diff A B``: which tensors differ between two checkpoints, and by how much."""

from __future__ import annotations

from typing import Annotated

import typer

from paramtool.cli.common import (
    JsonOpt,
    TokenOpt,
    handle_errors,
    print_json,
    stdout_console,
    warn,
)
from paramtool.cli.inspect_cmd import compile_filter
from paramtool.cli.root import app
from paramtool.cli.stats_cmd import DownloadOpt, FilterOpt, TopOpt, check_top

_SIDE = (
    "Checkpoint: a .safetensors file, a folder (sharded or not), or a Hub repo id "
    "(org/name[@revision], with --download)."
)


@handle_errors
def _diff(
    a: str,
    b: str,
    filter_: str | None,
    top: int,
    tensors: bool,
    download: bool,
    json_: bool,
    token: str | None,
) -> int:
    from paramtool.render.values_progress import byte_progress
    from paramtool.sources.download import open_values_source
    from paramtool.values.diff import diff_checkpoints
    from paramtool.values.reader import select

    pattern = compile_filter(filter_)
    check_top(top)
    ca = open_values_source([a], token=token, download=download, quiet=json_)
    cb = open_values_source([b], token=token, download=download, quiet=json_)
    for w in (*ca.warnings, *cb.warnings):
        warn(w)
    names_b = {t.name: t for _, t in select(cb, pattern)}
    total = sum(
        t.nbytes + names_b[t.name].nbytes
        for _, t in select(ca, pattern)
        if t.name in names_b and names_b[t.name].shape == t.shape
    )
    with byte_progress(total, "Comparing", enabled=not json_) as advance:
        report = diff_checkpoints(ca, cb, pattern=pattern, progress=advance)
    if json_:
        from paramtool.render.values_json import diff_json

        print_json(diff_json(report))
    else:
        from paramtool.render.values_tables import diff_report

        stdout_console().print(diff_report(report, top=top, tensors=tensors))
    return 0 if report.identical else 1


@app.command("diff")
def diff_command(
    a: Annotated[str, typer.Argument(metavar="A", help=_SIDE, show_default=False)],
    b: Annotated[str, typer.Argument(metavar="B", help=_SIDE, show_default=False)],
    filter_: FilterOpt = None,
    top: TopOpt = 10,
    tensors: Annotated[bool, typer.Option("--tensors", help="List every tensor compared.")] = False,
    download: DownloadOpt = False,
    json_: JsonOpt = False,
    token: TokenOpt = None,
) -> None:
    """Tensors added, removed, reshaped, retyped, and how much each common one changed.

    Exit status 0 when identical, 1 when they differ (like diff), 2 on error.
    """
    code = _diff(a, b, filter_, top, tensors, download, json_, token)
    if code:
        raise typer.Exit(code)
