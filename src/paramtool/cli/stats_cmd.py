"""``paramtool stats``: what the values of a checkpoint look like, tensor by tensor."""

from __future__ import annotations

from paramtool.cli.common import (
    DownloadOpt,
    FilterOpt,
    JsonOpt,
    RevisionOpt,
    SourcesArg,
    SubfolderOpt,
    TensorsOpt,
    TokenOpt,
    TopOpt,
    UnitsOpt,
    WorkersOpt,
    check_top,
    check_workers,
    handle_errors,
    print_json,
    stdout_console,
    warn,
)
from paramtool.cli.root import app


@app.command("stats")
@handle_errors
def stats_command(
    sources: SourcesArg,
    filter_: FilterOpt = None,
    top: TopOpt = 10,
    tensors: TensorsOpt = False,
    units: UnitsOpt = "gb",
    download: DownloadOpt = False,
    json_: JsonOpt = False,
    revision: RevisionOpt = None,
    token: TokenOpt = None,
    subfolder: SubfolderOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Min, max, mean, std, mean |x|, zeros, NaN and Inf of every tensor, by category and layer.

    Reads every value once, in bounded chunks (memory stays well under 512 MB).
    """
    from paramtool import api
    from paramtool.render.values_progress import byte_progress

    check_top(top)
    check_workers(workers)
    with byte_progress("Reading values", enabled=not json_) as progress:
        report = api.stats(
            sources,
            filter=filter_,
            download=download,
            workers=workers,
            revision=revision,
            token=token,
            subfolder=subfolder,
            progress=progress,
        )
    for w in report.checkpoint.warnings:
        warn(w)
    from paramtool.render.values_tables import skipped_warnings

    for line in skipped_warnings(report.skipped):
        warn(line)
    if json_:
        print_json(report.to_dict(top=top))
        return
    from paramtool.render.values_tables import stats_report

    console = stdout_console()
    console.print(
        stats_report(report, top=top, tensors=tensors, width=console.width, binary=units == "gib")
    )
