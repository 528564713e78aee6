"""Command-line interface: a thin Typer layer over the pure core.

Each command lives in its own module and registers itself on ``app``.
"""

from __future__ import annotations

from paramtool.cli import check_cmd, footprint_cmd, inspect_cmd  # noqa: F401  (registers commands)
from paramtool.cli import diff_cmd, hash_cmd, stats_cmd  # noqa: F401  (registers commands)
from paramtool.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app(prog_name="paramtool")


__all__ = ["app", "main"]
