"""``paramtool inspect``: what is in a checkpoint, from its headers alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from paramtool.cli.common import (
    GibOpt,
    JsonOpt,
    RevisionOpt,
    SourcesArg,
    SubfolderOpt,
    TokenOpt,
    UnitsOpt,
    handle_errors,
    note,
    print_json,
    stdout_console,
    warn,
)
from paramtool.cli.root import app
from paramtool.errors import UsageError
from paramtool.patterns import compile_filter


@app.command("inspect")
@handle_errors
def inspect_command(
    sources: SourcesArg,
    tensors: Annotated[bool, typer.Option("--tensors", help="List every tensor.")] = False,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter", metavar="REGEX", help="Only tensors whose name matches (implies --tensors)."
        ),
    ] = None,
    layers: Annotated[
        bool, typer.Option("--layers", help="Show per-layer totals as a bar chart.")
    ] = False,
    units: UnitsOpt = "gb",
    gib: GibOpt = False,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            metavar="FILE",
            help="Also save the printed tables as .svg, .html or .txt (not with --json).",
        ),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            metavar="SOURCE",
            help="For a PEFT adapter: the base model (a path or Hub repo), for the adapter's "
            "share of it and the merged model's size.",
        ),
    ] = None,
    json_: JsonOpt = False,
    revision: RevisionOpt = None,
    token: TokenOpt = None,
    subfolder: SubfolderOpt = None,
) -> None:
    """Parameter count, dtype mix and anatomy of a checkpoint, reading only its headers.

    Quantized checkpoints report logical parameters, adapters their rank and size,
    mixtures of experts their active parameters per token.
    """
    from paramtool import api

    pattern = compile_filter(filter_)
    if export is not None and export.suffix.lower() not in (".svg", ".html", ".htm", ".txt"):
        raise UsageError(f"--export {export}", "the file name must end in .svg, .html or .txt")
    if export is not None and json_:
        # The export is a recording of the printed tables, which --json does not print.
        raise UsageError(
            "--export/--json",
            "--export saves the tables, which --json does not print; run it once for each",
        )
    import gc

    # No cycles are made here; the collector's rescans of 100k+ records would cost more.
    paused = gc.isenabled()
    gc.disable()
    try:
        _inspect(
            api,
            sources,
            tensors,
            pattern,
            layers,
            units,
            export,
            base,
            json_,
            revision,
            token,
            subfolder,
        )
    finally:
        if paused:
            gc.enable()


def _inspect(
    api: Any,
    sources: Any,
    tensors: bool,
    pattern: Any,
    layers: bool,
    units: str,
    export: Path | None,
    base: str | None,
    json_: bool,
    revision: str | None,
    token: str | None,
    subfolder: str | None,
) -> None:
    from paramtool.render.progress import count_progress

    with count_progress("Reading shard headers", enabled=not json_, min_total=8) as progress:
        result = api.inspect(
            sources,
            revision=revision,
            token=token,
            subfolder=subfolder,
            base=base,
            progress=progress,
        )
    for n in result.notes:
        note(n)
    for w in result.warnings:
        warn(w)
    if json_:
        print_json(result.to_dict(tensors=tensors, filter=pattern))
        return
    from paramtool.render.inspect_tables import print_report

    console = stdout_console(record=export is not None)
    print_report(
        console,
        result.breakdown,
        tensors=tensors or pattern is not None,
        pattern=pattern,
        layers=layers,
        binary=units == "gib",
    )
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
