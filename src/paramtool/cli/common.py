"""What every command shares: options, the error table, output streams."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Any, TextIO, TypeVar

import typer

from paramtool.cli import resume_collection
from paramtool.cli.interrupts import INTERRUPTED, ctrl_c
from paramtool.errors import OutputError, ParamtoolError, UsageError
from paramtool.safe_text import escape_json, printable, shorten

F = TypeVar("F", bound=Callable[..., Any])

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON object on stdout (schemas in docs/schemas/).")
]
SourcesArg = Annotated[
    list[str],
    typer.Argument(
        metavar="SOURCE...",
        help="Checkpoint: a .safetensors or .gguf file, a folder (sharded or not), several "
        "files, or a Hub repo id (org/name[@revision]).",
        show_default=False,
    ),
]
RevisionOpt = Annotated[
    str | None,
    typer.Option(
        "--revision", metavar="REV", help="Hub branch, tag or commit (also org/name@rev)."
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        metavar="TOKEN",
        help="Hub token (default: HF_TOKEN or the stored login).",
        show_default=False,
    ),
]
SubfolderOpt = Annotated[
    str | None,
    typer.Option("--subfolder", metavar="DIR", help="Hub repo subfolder holding the weights."),
]

DownloadOpt = Annotated[
    bool,
    typer.Option(
        "--download",
        help="For a Hub repo: fetch the weights into the huggingface_hub cache and read them "
        "there (refused without it: it can be gigabytes).",
    ),
]
FilterOpt = Annotated[
    str | None,
    typer.Option("--filter", metavar="REGEX", help="Only tensors whose name matches."),
]
TopOpt = Annotated[
    int,
    typer.Option("--top", metavar="N", help="Show the N most notable tensors (0: none)."),
]
# Who signed: the options `verify --signature` and `check --signature` share.
PublicKeyOpt = Annotated[
    str | None,
    typer.Option("--public-key", metavar="FILE", help="The signer's EC public key (PEM)."),
]
CertificateOpt = Annotated[
    str | None,
    typer.Option(
        "--certificate",
        metavar="FILE",
        help="The exact signing certificate (PEM) the signature must carry.",
    ),
]
CertificateChainOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--certificate-chain",
        metavar="FILE",
        help="Trusted CA certificate(s) (PEM) for a certificate signature; repeatable.",
    ),
]
SigstoreOpt = Annotated[
    bool,
    typer.Option(
        "--sigstore", help="A Sigstore signature: give --identity and --identity-provider."
    ),
]
IdentityOpt = Annotated[
    str | None,
    typer.Option("--identity", metavar="ID", help="The Sigstore signer's identity (email, URI)."),
]
IdentityProviderOpt = Annotated[
    str | None,
    typer.Option("--identity-provider", metavar="URL", help="The signer's OIDC issuer."),
]
TrustConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--trust-config",
        metavar="FILE",
        help="A Sigstore client trust config, to verify without fetching the trust root.",
    ),
]
TensorsOpt = Annotated[bool, typer.Option("--tensors", help="List every tensor read.")]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        metavar="N",
        help="Threads that read and compute (default: one per core, at most 8).",
        show_default=False,
    ),
]

_GIB = "paramtool.gib"  # ctx.meta: the older --gib was given


def _gib_alias(ctx: typer.Context, value: bool) -> None:
    """``--gib``, the older spelling of ``--units gib``: eager, so ``--units`` sees it."""
    if value:
        ctx.meta[_GIB] = True


def _units(ctx: typer.Context, param: typer.CallbackParam, value: str) -> str:
    """``--units`` lower-cased and checked: ``gb`` or ``gib`` (also what ``--gib`` asks)."""
    units = value.lower()
    if units not in ("gb", "gib"):
        raise die(f"--units {value!r}: use gb or gib")
    if ctx.meta.get(_GIB) and units != "gib":
        source = ctx.get_parameter_source(param.name or "units")
        if source is not None and source.name != "DEFAULT":
            raise die(f"--gib and --units {value}: give one")
        return "gib"
    return units


# Every command that prints sizes spells the unit one way: --units gb|gib.
# The model's dimensions as flags (footprint and fit): they override config.json.
LayersOpt = Annotated[
    str | None,
    typer.Option("--layers", metavar="N", help="Transformer layers (overrides config.json)."),
]
HeadsOpt = Annotated[
    str | None,
    typer.Option("--heads", metavar="N", help="Attention (query) heads (overrides config.json)."),
]
KvHeadsOpt = Annotated[
    str | None,
    typer.Option(
        "--kv-heads", metavar="N", help="Key/value heads: 1 for MQA, fewer than --heads for GQA."
    ),
]
HeadDimOpt = Annotated[
    str | None,
    typer.Option("--head-dim", metavar="N", help="Size of one head (default hidden / heads)."),
]
HiddenSizeOpt = Annotated[
    str | None,
    typer.Option("--hidden-size", metavar="N", help="Model width (overrides config.json)."),
]
UnitsOpt = Annotated[
    str,
    typer.Option(
        "--units",
        metavar="gb|gib",
        callback=_units,
        help="Human units: decimal GB or binary GiB.",
    ),
]
GibOpt = Annotated[
    bool,
    typer.Option(
        "--gib",
        hidden=True,
        is_eager=True,
        expose_value=False,
        callback=_gib_alias,
        help="The older spelling of --units gib.",
    ),
]


def check_top(top: int) -> int:
    if top < 0:
        raise UsageError(f"--top {top}", "must be 0 or more")
    return top


def check_workers(workers: int | None) -> int | None:
    if workers is not None and workers < 1:
        raise UsageError(f"--workers {workers}", "must be 1 or more")
    return workers


def _line(kind: str, message: str) -> None:
    """One line on stderr: hostile text made inert, long names cut (at most 400 chars)."""
    try:
        sys.stderr.write(f"paramtool: {kind}: {shorten(printable(message))}\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr full or closed: there is no one left to tell
        pass


def die(message: str, code: int = 2) -> typer.Exit:
    """Print one error line on stderr; return the Exit to raise."""
    if code == INTERRUPTED:
        return interrupted()
    _line("error", message)
    return typer.Exit(code)


def note(message: str) -> None:
    """A hint on stderr (which config was used, a base model that could not be read)."""
    _line("note", message)


def warn(message: str) -> None:
    _line("warning", message)


def interrupted() -> typer.Exit:
    """Report Ctrl-C (once: :mod:`paramtool.cli.interrupts`); the Exit (130) to raise."""
    ctrl_c.report()
    return typer.Exit(INTERRUPTED)


# Standard output. A full disk (or any I/O error) on stdout is one line, exit 2: writes go
# through _GuardedOutput while a command runs, and handle_errors flushes before returning,
# so the error surfaces where it can be reported, not in the interpreter's flush at exit.


class _GuardedOutput:
    """``sys.stdout`` while a command runs: an OSError writing it raises OutputError."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise _output_error(e) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as e:
            raise _output_error(e) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _output_error(e: OSError) -> OutputError:
    return OutputError("cannot write output", e.strerror or str(e))


def _drop_output(stream: TextIO) -> None:
    """What is left in ``stream``'s buffer goes to /dev/null, so the flush at exit cannot
    fail (and print a traceback) once the error is reported."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return  # not a file (a test's capture): nothing flushes it at exit
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except OSError:
        pass


# The core names parameters (``lora_rank``); the command line spells each as its flag.
# Listed here: the parameters whose flag is not ``--`` + the name with dashes.
FLAGS: Mapping[str, str] = MappingProxyType({})


def flag(param: str) -> str:
    """The flag that sets a core parameter: ``lora_rank`` -> ``--lora-rank``."""
    return FLAGS.get(param, "--" + param.replace("_", "-"))


def handle_errors(fn: F) -> F:
    """The error table at the edge: ParamtoolError -> one line and its exit code.

    Core errors name parameters; the line names the flags (:func:`flag`). Also: Ctrl-C
    is ``interrupted``, exit 130 (:mod:`paramtool.cli.interrupts`); stdout that cannot be
    written (a full disk) is ``cannot write output: <why>``, exit 2, flushed here so that
    it is reported here; a closed pipe ends quietly, exit 0; any other exception is one
    ``internal error`` line, exit 2.

    ``PARAMTOOL_DEBUG=1`` lets the traceback through instead.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        resume_collection()  # paused for start-up by cli.main
        stdout = sys.stdout
        sys.stdout = _GuardedOutput(stdout)
        if not ctrl_c.depth:
            ctrl_c.reset()
        ctrl_c.depth += 1
        try:
            try:
                result = fn(*args, **kwargs)
            except typer.Exit:
                sys.stdout.flush()
                raise
            sys.stdout.flush()
            return result
        except ParamtoolError as e:
            if isinstance(e, OutputError):
                _drop_output(stdout)
            if os.environ.get("PARAMTOOL_DEBUG"):
                raise
            raise die(e.message(flag), e.exit_code) from None
        except KeyboardInterrupt:
            raise interrupted() from None
        except BrokenPipeError:
            _drop_output(stdout)
            sys.stderr.close()
            raise typer.Exit(0) from None
        except Exception as e:  # a bug, but still one line and exit 2
            if os.environ.get("PARAMTOOL_DEBUG"):
                raise
            raise die(
                f"internal error: {e.__class__.__name__}: {e} "
                "(PARAMTOOL_DEBUG=1 shows the traceback)"
            ) from None
        finally:
            ctrl_c.depth -= 1
            sys.stdout = stdout

    return wrapper  # type: ignore[return-value]


def print_json(obj: Any) -> None:
    """One JSON document on stdout: indented for a terminal, compact (and fast) for pipes."""
    indent = 2 if sys.stdout.isatty() else None
    # Text from files stays text, but bidi, C1 and other invisible controls are written as
    # \uXXXX escapes: the same document once parsed, inert on a terminal.
    sys.stdout.write(escape_json(json.dumps(obj, indent=indent, ensure_ascii=False)) + "\n")


def stdout_console(width: int | None = None, record: bool = False) -> Any:
    """A Rich console on stdout (imported lazily: rich is for people, not for --json)."""
    from rich.console import Console

    if width is None and not sys.stdout.isatty() and not os.environ.get("COLUMNS"):
        width = 160  # piped into a file or a CI log: room for long tensor names
    return Console(width=width, record=record, soft_wrap=False, highlight=False)


def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)
