"""The Typer application object; commands register themselves on it."""

from __future__ import annotations

import typer

from paramtool import __version__

app = typer.Typer(
    name="paramtool",
    help="What is inside a model's weights, and what they cost to hold.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"paramtool {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """What is inside a model's weights, and what they cost to hold.

    Exit codes: 0 ok, 1 a check failed (or diff found differences), 2 error,
    130 interrupted (Ctrl-C).
    Set PARAMTOOL_DEBUG=1 to see tracebacks.
    """
