"""``paramtool inspect``: what is in a checkpoint, from its headers alone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from paramtool.cli.common import (
    JsonOpt,
    RevisionOpt,
    SourcesArg,
    SubfolderOpt,
    TokenOpt,
    handle_errors,
    note,
    print_json,
    stdout_console,
    warn,
)
from paramtool.cli.root import app
from paramtool.errors import UsageError

if TYPE_CHECKING:
    from paramtool.records import Checkpoint


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
        typer.Option(
            "--filter", metavar="REGEX", help="Only tensors whose name matches (implies --tensors)."
        ),
    ] = None,
    layers: Annotated[
        bool, typer.Option("--layers", help="Show per-layer totals as a bar chart.")
    ] = False,
    binary: Annotated[
        bool, typer.Option("--gib", help="Binary units (GiB) instead of decimal GB.")
    ] = False,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export", metavar="FILE", help="Also save the report as .svg, .html or .txt."
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
    from paramtool.analysis.breakdown import build
    from paramtool.sources import open_source

    pattern = compile_filter(filter_)
    if export is not None and export.suffix.lower() not in (".svg", ".html", ".htm", ".txt"):
        raise UsageError(f"--export {export}", "the file name must end in .svg, .html or .txt")
    checkpoint = open_source(
        sources, revision=revision, token=token, subfolder=subfolder, quiet=json_
    )
    base_checkpoint = _open_base(checkpoint, base, token, json_)
    b = build(checkpoint, base=base_checkpoint)
    for w in b.warnings:
        warn(w)
    for w in base_checkpoint.warnings if base_checkpoint is not None else ():
        warn(f"base model: {w}")
    if json_:
        from paramtool.render.inspect_json import to_json

        print_json(to_json(b, tensors=tensors or pattern is not None, pattern=pattern))
        return
    from paramtool.render.inspect_tables import print_report

    console = stdout_console(record=export is not None)
    print_report(
        console,
        b,
        tensors=tensors or pattern is not None,
        pattern=pattern,
        layers=layers,
        binary=binary,
    )
    if export is not None:
        save_export(console, export)


def _open_base(
    checkpoint: Checkpoint, base: str | None, token: str | None, quiet: bool
) -> Checkpoint | None:
    """The adapter's base: ``--base``, else (for a Hub adapter) its ``base_model_name_or_path``.

    A base named by the Hub adapter that cannot be read (gated, offline, gone) is a note on
    stderr, not an error: the adapter is still described, without the share and merged size.
    """
    if base is None and (checkpoint.hub is None or checkpoint.adapter_config is None):
        return None
    from paramtool.analysis.adapters import base_reference
    from paramtool.analysis.anatomy import classify
    from paramtool.sources import open_source

    ref = base_reference(checkpoint.adapter_config)
    if base is None and ref is None:
        return None
    is_adapter = any(classify(t.name).category == "adapter" for t in checkpoint.tensors)
    if base is not None:
        if not is_adapter:
            raise UsageError(f"--base {base}", "the checkpoint is not a PEFT adapter")
        return open_source([base], token=token, quiet=quiet)
    if not is_adapter or ref is None:
        return None
    from paramtool.errors import ParamtoolError
    from paramtool.sources.hub_source import is_hub_source

    if not is_hub_source(ref):
        return None
    try:
        return open_source([ref], token=token, quiet=True)
    except ParamtoolError as e:
        note(f"base model {ref} not read ({e}); give --base SOURCE")
        return None


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
