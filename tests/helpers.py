"""What the CLI tests share: one runner, the one error line, the JSON a command prints.

Plain functions, imported as ``from helpers import cli, cli_json, error_line``
(``conftest.py`` puts ``tests/`` on ``sys.path``). Checkpoint builders are in
``layouts.py`` (``make_checkpoint``, ``write_sparse_checkpoint``, ``tiny_model``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from typer.testing import CliRunner, Result

from paramtool.cli import app

ERROR_PREFIX = "paramtool: error: "

_runner = CliRunner()  # r.stdout and r.stderr apart, r.output both


def cli(
    *args: str,
    env: Mapping[str, str | None] | None = None,
    input: str | bytes | None = None,
    catch_exceptions: bool = False,
) -> Result:
    """Run ``paramtool ARGS`` in-process; ``env`` is laid over ``os.environ`` for the run.

    An exception that escapes the app propagates (``catch_exceptions=False``), so a test
    fails with its traceback; ``catch_exceptions=True`` turns it into exit status 1 instead.
    """
    return _runner.invoke(app, list(args), input=input, env=env, catch_exceptions=catch_exceptions)


def cli_json(*args: str, code: int = 0, env: Mapping[str, str | None] | None = None) -> Any:
    """Run ``paramtool ARGS --json``, check the exit status, and parse what it printed."""
    r = cli(*args, "--json", env=env)
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    return json.loads(r.stdout)


def strict_json(text: str) -> Any:
    """Parse standard JSON only: ``NaN``, ``Infinity`` and ``-Infinity`` are refused."""

    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def error_line(r: Result, *words: str, code: int = 2, stdout: str | None = "") -> str:
    """The one ``paramtool: error:`` line of a failed run, checked; returns it.

    Checks: exit status ``code``; stderr is exactly that one line (no traceback, no
    internal error); stdout equals ``stdout`` (``None``: not checked); each of ``words``
    is in the line.
    """
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), r.stderr
    assert r.stderr == lines[0] + "\n", r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in lines[0], r.stderr
    if stdout is not None:
        assert r.stdout == stdout, r.stdout
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]
