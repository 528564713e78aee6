"""``paramtool stats``: what the values of a checkpoint look like, tensor by tensor."""

from __future__ import annotations

from typing import Annotated

import typer

from paramtool.cli.common import (
    JsonOpt,
    RevisionOpt,
    SourcesArg,
    SubfolderOpt,
    TokenOpt,
    handle_errors,
    print_json,
    stdout_console,
    warn,
)
from paramtool.cli.inspect_cmd import compile_filter
from paramtool.cli.root import app
from paramtool.errors import UsageError

# Options shared by the commands that read tensor values (stats, hash, diff).
DownloadOpt = Annotated[
    bool,
    typer.Option(
        "--download",
        help="For a Hub repo: fetch the weights into the huggingface_hub cache and read them "
        "there (refused without it: it can be gigabytes).",
    ),
]
FilterOpt = Annotated[
    str | None,
    typer.Option("--filter", metavar="REGEX", help="Only tensors whose name matches."),
]
TopOpt = Annotated[
    int,
    typer.Option("--top", metavar="N", help="Show the N most notable tensors (0: none)."),
]
TensorsOpt = Annotated[bool, typer.Option("--tensors", help="List every tensor read.")]


def check_top(top: int) -> int:
    if top < 0:
        raise UsageError(f"--top {top}", "must be 0 or more")
    return top


@app.command("stats")
@handle_errors
def stats_command(
    sources: SourcesArg,
    filter_: FilterOpt = None,
    top: TopOpt = 10,
    tensors: TensorsOpt = False,
    download: DownloadOpt = False,
    json_: JsonOpt = False,
    revision: RevisionOpt = None,
    token: TokenOpt = None,
    subfolder: SubfolderOpt = None,
) -> None:
    """Min, max, mean, std, mean |x|, zeros, NaN and Inf of every tensor, by category and layer.

    Reads every value once, in bounded chunks (memory stays well under 512 MB).
    """
    from paramtool.render.values_progress import byte_progress
    from paramtool.sources.download import open_values_source
    from paramtool.values.reader import CODECS, select
    from paramtool.values.stats import compute_stats

    pattern = compile_filter(filter_)
    check_top(top)
    checkpoint = open_values_source(
        sources, revision=revision, token=token, subfolder=subfolder, download=download, quiet=json_
    )
    for w in checkpoint.warnings:
        warn(w)
    total = sum(t.nbytes for _, t in select(checkpoint, pattern) if t.dtype in CODECS)
    with byte_progress(total, "Reading values", enabled=not json_) as advance:
        report = compute_stats(checkpoint, pattern=pattern, progress=advance)
    for s in report.skipped:
        warn(f"tensor {s.tensor.name!r} ({s.tensor.dtype}) not read: {s.reason}")
    if json_:
        from paramtool.render.values_json import stats_json

        print_json(stats_json(report, top))
        return
    from paramtool.render.values_tables import stats_report

    console = stdout_console()
    console.print(stats_report(report, top=top, tensors=tensors, width=console.width))
