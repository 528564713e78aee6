"""``paramtool inspect``: what is in a checkpoint, from its headers alone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from paramtool.cli.app import app
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
from paramtool.errors import UsageError


def compile_filter(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as e:
        raise UsageError(f"--filter {pattern!r}", f"not a regular expression: {e}") from None


@app.command("inspect")
@handle_errors
def inspect_command(
    sources: SourcesArg,
    tensors: Annotated[bool, typer.Option("--tensors", help="List every tensor.")] = False,
    filter_: Annotated[
        str | None,
        typer.Option("--filter", metavar="REGEX", help="Only tensors whose name matches (implies --tensors)."),
    ] = None,
    layers: Annotated[bool, typer.Option("--layers", help="Show per-layer totals as a bar chart.")] = False,
    binary: Annotated[bool, typer.Option("--gib", help="Binary units (GiB) instead of decimal GB.")] = False,
    export: Annotated[
        Path | None,
        typer.Option("--export", metavar="FILE", help="Also save the report as .svg, .html or .txt."),
    ] = None,
    json_: JsonOpt = False,
    revision: RevisionOpt = None,
    token: TokenOpt = None,
    subfolder: SubfolderOpt = None,
) -> None:
    """Parameter count, dtype mix and anatomy of a checkpoint, reading only its headers."""
    from paramtool.breakdown import build
    from paramtool.sources import open_source

    pattern = compile_filter(filter_)
    if export is not None and export.suffix.lower() not in (".svg", ".html", ".htm", ".txt"):
        raise UsageError(f"--export {export}", "the file name must end in .svg, .html or .txt")
    checkpoint = open_source(sources, revision=revision, token=token, subfolder=subfolder, quiet=json_)
    b = build(checkpoint)
    for w in checkpoint.warnings:
        warn(w)
    if json_:
        from paramtool.render.inspect_json import to_json

        print_json(to_json(b, tensors=tensors or pattern is not None, pattern=pattern))
        return
    from paramtool.render.inspect_tables import print_report

    console = stdout_console(record=export is not None)
    print_report(console, b, tensors=tensors or pattern is not None, pattern=pattern, layers=layers, binary=binary)
    if export is not None:
        save_export(console, export)


def save_export(console: object, path: Path) -> None:
    """Write what the console printed as SVG, HTML or text (Rich's console export)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".svg":
            console.save_svg(str(path), title="paramtool inspect")  # type: ignore[attr-defined]
        elif suffix in (".html", ".htm"):
            console.save_html(str(path))  # type: ignore[attr-defined]
        else:
            console.save_text(str(path))  # type: ignore[attr-defined]
    except OSError as e:
        raise UsageError(f"--export {path}", e.strerror or str(e)) from None
