"""``paramtool convert``: a plain-state-dict PyTorch pickle to safetensors, never executed."""

from __future__ import annotations

from typing import Annotated

import typer

from paramtool.cli.common import JsonOpt, handle_errors, print_json, stdout_console
from paramtool.cli.root import app


@app.command("convert")
@handle_errors
def convert_command(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="SOURCE... OUT",
            help="The pickle checkpoint (a .bin/.pt/.pth/.ckpt file, several shard files, or a "
            "folder with pytorch_model.bin.index.json), then the folder to write into.",
            show_default=False,
        ),
    ],
    max_shard_size: Annotated[
        str,
        typer.Option(
            "--max-shard-size",
            metavar="SIZE",
            help="Shard above this size (5GB as huggingface_hub; KB, MB, GB, GiB...).",
        ),
    ] = "5GB",
    prefix: Annotated[
        str | None,
        typer.Option(
            "--prefix",
            metavar="KEY",
            help="Convert only the tensors under KEY. (e.g. state_dict of a Lightning .ckpt), "
            "named without it.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace model*.safetensors already in OUT.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Write safetensors from a PyTorch pickle without torch and without executing it.

    Unsafe pickles are refused. Tensor bytes are copied from the file; every written file
    is re-read and hashed before it is put in place.
    """
    from paramtool import api
    from paramtool.errors import UsageError
    from paramtool.render.values_progress import byte_progress

    if len(paths) < 2:
        raise UsageError("", "give the checkpoint, then the folder to write into (SOURCE... OUT)")
    with byte_progress("Converting", enabled=not json_) as progress:
        report = api.convert(
            paths[:-1],
            paths[-1],
            max_shard_size=max_shard_size,
            force=force,
            prefix=prefix,
            progress=progress,
        )
    if json_:
        print_json(report.to_dict())
        return
    from rich.table import Table
    from rich.text import Text

    from paramtool.safe_text import printable
    from paramtool.units import human_bytes

    table = Table(box=None, pad_edge=False)
    table.add_column("file", overflow="fold")
    table.add_column("size", justify="right")
    table.add_column("tensors", justify="right")
    table.add_column("sha256", overflow="fold")
    for f in report.files:
        table.add_row(Text(printable(f.path)), human_bytes(f.size), str(f.tensors), Text(f.sha256))
    console = stdout_console()
    console.print(table)
    lines = [f"weights digest {report.weights_digest} ({len(report.tensors)} tensors)"]
    if report.index is not None:
        lines.append(f"index {printable(report.index)}")
    for tie in report.ties:
        lines.append(f"tied: {printable(tie.name)} = {printable(tie.kept)} (written once)")
    if report.skipped:
        lines.append(f"left out: {len(report.skipped)} entries that are not tensors to convert")
    for line in lines:
        console.print(Text(line))
