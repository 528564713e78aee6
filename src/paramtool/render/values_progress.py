"""A byte progress bar on stderr (bytes, rate, ETA) for the commands that read values."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def byte_progress(
    description: str, enabled: bool = True
) -> Iterator[Callable[[int, int], None] | None]:
    """Yield a ``progress(done, total)`` callback for the core, or None when no bar is shown.

    Shown only to a person watching: ``enabled`` (not ``--json``) and stderr a terminal.
    The bar appears on the first call with a total above zero; the callback may be
    called from several threads (Rich's Progress locks). huggingface_hub's own bars
    (``--download``) are turned off whether or not this one is shown.
    """
    from paramtool.render.progress import library_bars_off

    library_bars_off()
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task: list[Any] = []

    def update(done: int, total: int) -> None:
        if not task:
            if total <= 0:
                return
            bar.start()
            task.append(bar.add_task(description, total=total))
        bar.update(task[0], completed=done, total=total)

    try:
        yield update
    finally:
        if task:
            bar.stop()
