"""``paramtool diff A B``: which tensors differ between two checkpoints, and by how much."""

from __future__ import annotations

from typing import Annotated

import typer

from paramtool.cli.common import (
    DownloadOpt,
    FilterOpt,
    JsonOpt,
    TokenOpt,
    TopOpt,
    WorkersOpt,
    check_top,
    check_workers,
    handle_errors,
    print_json,
    stdout_console,
    warn,
)
from paramtool.cli.root import app

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
    workers: int | None,
) -> int:
    from paramtool import api
    from paramtool.render.values_progress import byte_progress

    check_top(top)
    check_workers(workers)
    with byte_progress("Comparing", enabled=not json_) as progress:
        report = api.diff(
            a,
            b,
            filter=filter_,
            download=download,
            workers=workers,
            token=token,
            progress=progress,
        )
    for w in (*report.a.warnings, *report.b.warnings):
        warn(w)
    if json_:
        print_json(report.to_dict())
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
    workers: WorkersOpt = None,
) -> None:
    """Tensors added, removed, reshaped, retyped, and how much each common one changed.

    Exit status 0 when identical, 1 when they differ (like diff), 2 on error.
    """
    code = _diff(a, b, filter_, top, tensors, download, json_, token, workers)
    if code:
        raise typer.Exit(code)
