"""A Hub ``inspect``'s requests, started before the command line is built.

Building the command line (typer, click, the command's modules) takes longer than a
round trip to the Hub. So for ``paramtool inspect org/name ...`` the console script reads
its own arguments first and, when they are plainly a Hub inspection, starts it
(:func:`paramtool.sources.start_hub`): the first wave of requests leaves before typer is
imported, and the rest of the reading runs on a daemon thread while the command is built.
The command's own :func:`~paramtool.sources.open_source` then takes that reading when its
arguments are exactly the ones started, and otherwise reads as it always does.

Only the arguments ``inspect`` takes are read here, and any other (``--help``, ``--base``,
an unknown option, ``--``, several sources) leaves the start to the command: this reading
of them can at worst start a reading nobody takes, never change an answer.
"""

from __future__ import annotations

_FLAGS = frozenset({"--tensors", "--layers", "--gib", "--json"})
_VALUED = frozenset({"--filter", "--units", "--export", "--revision", "--token", "--subfolder"})


def parse(args: list[str]) -> tuple[str, str | None, str | None, str | None] | None:
    """``inspect``'s arguments (those after the command name) as (source, revision, token,
    subfolder), read as click reads them; None unless they are plain enough to be sure."""
    given: dict[str, str] = {}
    sources: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if not a.startswith("-") or a == "-":
            sources.append(a)
            continue
        name, eq, value = a.partition("=")
        if name in _FLAGS and not eq:
            continue
        if name not in _VALUED or name in given:
            return None
        if not eq:
            if i == len(args):
                return None
            value = args[i]
            i += 1
            if value.startswith("-"):  # click may read it as the value or as an option
                return None
        given[name] = value
    if len(sources) != 1:
        return None
    return sources[0], given.get("--revision"), given.get("--token"), given.get("--subfolder")


def head_start(args: list[str]) -> None:
    """Start the Hub inspection ``args`` (after ``inspect``) ask for, if they plainly do."""
    parsed = parse(args)
    if parsed is None:
        return
    source, revision, token, subfolder = parsed
    if source.startswith("hf://") or "/" in source:  # a local path goes no further
        from paramtool.sources import start_hub

        start_hub(source, revision=revision, token=token, subfolder=subfolder)
