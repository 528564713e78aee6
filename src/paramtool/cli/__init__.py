"""Command-line interface: a thin Typer layer over the pure core.

Each command lives in its own module and registers itself on the Typer app of
``root.py`` when imported. :func:`main` imports only the module of the command
being run, so ``paramtool inspect`` never pays for building the other commands;
``paramtool.cli.app`` (for tests and tools) is the app with every command.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from importlib import import_module
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import typer

# command name -> the module that registers it, in the order `--help` lists them
COMMANDS = {
    "inspect": "inspect_cmd",
    "footprint": "footprint_cmd",
    "fit": "fit_cmd",
    "check": "check_cmd",
    "stats": "stats_cmd",
    "hash": "hash_cmd",
    "verify": "hash_cmd",
    "diff": "diff_cmd",
    "convert": "convert_cmd",
}


def load(names: list[str] | None = None) -> typer.Typer:
    """The app with the given commands registered (all of them by default)."""
    for name in COMMANDS if names is None else names:
        import_module(f"paramtool.cli.{COMMANDS[name]}")
    from paramtool.cli.root import app

    return app


def __getattr__(name: str) -> object:
    if name == "app":
        return load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_collection_paused = False


def resume_collection() -> None:
    """As a command starts (:func:`paramtool.cli.common.handle_errors`): what start-up made
    goes to the collector's permanent generation (:func:`gc.freeze`), and collection
    resumes. Nothing when :func:`main` did not pause it (a test's ``CliRunner``)."""
    global _collection_paused
    if _collection_paused:
        _collection_paused = False
        gc.freeze()
        gc.enable()


def main() -> None:
    """Console-script entry point.

    Ctrl-C, from start-up on, ends the process within a second: exit 130 and one line
    (:mod:`paramtool.cli.interrupts`).

    Start-up (typer, the command's modules, its click command) makes some hundred thousand
    objects that live as long as the process, and next to no garbage; the collector's
    passes over them would cost several milliseconds. So collection waits for the command,
    which freezes them first (:func:`resume_collection`).

    It ends in ``SystemExit``; :func:`run` (the console script) then ends the process.
    """
    global _collection_paused
    from paramtool.cli.interrupts import INTERRUPTED, ctrl_c, install

    if gc.isenabled():
        gc.disable()
        _collection_paused = True
    install()
    try:
        from paramtool.render.progress import library_bars_off

        library_bars_off()  # the process is paramtool's: it draws the only progress bars
        args = sys.argv[1:]
        first = next((a for a in args if not a.startswith("-")), None)
        if first in COMMANDS:
            names: list[str] | None = [first]
            if args[0] == "inspect":
                from paramtool.cli.head_start import head_start

                head_start(args[1:])
        elif args == ["--version"]:
            names = []
        else:
            names = None  # --help, no command, a typo: Typer lists (or suggests) every command
        load(names)(prog_name="paramtool")
    except KeyboardInterrupt:  # raised outside a command (the handler is not installed)
        ctrl_c.exit()
    except SystemExit as e:
        if e.code == INTERRUPTED:  # reported: exit now, not after worker threads
            try:
                sys.stdout.flush()
            except (OSError, ValueError):
                pass
            ctrl_c.exit()
        raise
    finally:
        resume_collection()  # when no command ran (--help, a usage error)


def run() -> NoReturn:
    """The console script (and ``python -m paramtool``): :func:`main`, then :func:`end`."""
    try:
        main()
    except SystemExit as e:
        end(e.code)
    end(0)


def end(code: object) -> NoReturn:
    """End the process with ``code`` (a ``SystemExit``'s, read as the interpreter reads it),
    its output flushed, without the interpreter's teardown.

    The command has ended: its output is written and flushed (or reported), its files
    closed and the work it waits for done, so what the teardown would still do is free a
    large checkpoint's records one by one (a third of a second at a million tensors) and
    run the C libraries' exit handlers. OpenSSL's would clean up under a daemon thread
    that is still in a TLS handshake (a request the command no longer waits for, once an
    error is reported): a crash, as a signal, after the error line.
    """
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # as the interpreter: the message on stderr, status 1
        with contextlib.suppress(OSError, ValueError):
            print(code, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or a reader gone
            stream.flush()
    os._exit(status & 0xFF)


__all__ = ["COMMANDS", "app", "end", "load", "main", "resume_collection", "run"]
