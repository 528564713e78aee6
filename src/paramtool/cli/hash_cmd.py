"""``paramtool hash`` and ``paramtool verify``: integrity of files and of the weights in them."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from paramtool.cli.common import (
    DownloadOpt,
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
from paramtool.cli.root import app


@app.command("hash")
@handle_errors
def hash_command(
    sources: SourcesArg,
    tensors: Annotated[
        bool, typer.Option("--tensors", help="Also print each tensor's content digest.")
    ] = False,
    download: DownloadOpt = False,
    json_: JsonOpt = False,
    revision: RevisionOpt = None,
    token: TokenOpt = None,
    subfolder: SubfolderOpt = None,
) -> None:
    """SHA-256 of each file (as sha256sum and the Hub's LFS record), tensor and weights digests.

    The weights digest is the same for the same tensors however they are sharded.
    """
    from paramtool import api
    from paramtool.render.values_progress import byte_progress

    with byte_progress("Hashing", enabled=not json_) as progress:
        report = api.digest(
            sources,
            download=download,
            revision=revision,
            token=token,
            subfolder=subfolder,
            progress=progress,
        )
    for w in report.checkpoint.warnings:
        warn(w)
    if json_:
        print_json(report.to_dict())
        return
    from paramtool.render.values_text import hash_lines

    sys.stdout.write("\n".join(hash_lines(report, tensors=tensors)) + "\n")


@handle_errors
def _verify(
    path: str, against: str | None, subfolder: str | None, token: str | None, json_: bool
) -> int:
    from paramtool import api
    from paramtool.render.values_progress import byte_progress

    with byte_progress("Hashing", enabled=not json_) as progress:
        report = api.verify(
            path, against or "", subfolder=subfolder, token=token, progress=progress
        )
    if json_:
        print_json(report.to_dict())
    else:
        from paramtool.render.values_tables import verify_report

        stdout_console().print(verify_report(report))
    return 0 if report.ok else 1


@app.command("verify")
def verify_command(
    path: Annotated[
        str,
        typer.Argument(
            metavar="PATH",
            help="A local checkpoint folder (or one file) to check.",
            show_default=False,
        ),
    ],
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            metavar="ORG/NAME[@REV]",
            help="The Hub repo (and revision) whose recorded hashes to compare with.",
        ),
    ] = None,
    subfolder: SubfolderOpt = None,
    token: TokenOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Compare local files with the hashes the Hub records, downloading nothing.

    The checkpoint's weights and index must be present; other files the repo lists are
    checked when present. Exit status 1 when a file differs or is missing.
    """
    code = _verify(path, against, subfolder, token, json_)
    if code:
        raise typer.Exit(code)
