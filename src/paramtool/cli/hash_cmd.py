"""``paramtool hash`` and ``paramtool verify``: integrity of files and of the weights in them."""

from __future__ import annotations

import sys
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
from paramtool.cli.root import app
from paramtool.cli.stats_cmd import DownloadOpt
from paramtool.errors import UsageError


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
    from paramtool.render.values_progress import byte_progress
    from paramtool.sources.download import open_values_source
    from paramtool.values.hashing import hash_checkpoint

    checkpoint = open_values_source(
        sources, revision=revision, token=token, subfolder=subfolder, download=download, quiet=json_
    )
    for w in checkpoint.warnings:
        warn(w)
    total = checkpoint.file_bytes + checkpoint.tensor_bytes
    with byte_progress(total, "Hashing", enabled=not json_) as advance:
        report = hash_checkpoint(checkpoint, progress=advance)
    if json_:
        from paramtool.render.values_json import hash_json

        print_json(hash_json(report))
        return
    from paramtool.render.values_text import hash_lines

    sys.stdout.write("\n".join(hash_lines(report, tensors=tensors)) + "\n")


@handle_errors
def _verify(
    path: str, against: str | None, subfolder: str | None, token: str | None, json_: bool
) -> int:
    from paramtool.render.values_progress import byte_progress
    from paramtool.sources.hub_source import parse_hub_source
    from paramtool.values.verify import hub_file_hashes, plan_verify, run_verify

    if not against:
        raise UsageError("--against", "name the Hub repo to compare with (org/name[@revision])")
    parsed = parse_hub_source(against)
    if parsed is None:
        raise UsageError(f"--against {against}", "not a Hub repo id (org/name or org/name@rev)")
    hub = hub_file_hashes(parsed.repo_id, parsed.revision, token)
    plan = plan_verify(path, hub, subfolder or "")
    with byte_progress(plan.total_bytes, "Hashing", enabled=not json_) as advance:
        report = run_verify(plan, progress=advance)
    if json_:
        from paramtool.render.values_json import verify_json

        print_json(verify_json(report))
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
