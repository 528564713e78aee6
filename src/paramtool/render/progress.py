"""A count progress bar on stderr, fed by the callbacks the core reports progress through."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def count_progress(
    description: str, *, enabled: bool = True, min_total: int = 1
) -> Iterator[Callable[[int, int], None] | None]:
    """Yield a ``progress(done, total)`` callback for the core, or None when no bar is shown.

    Shown only to a person watching: ``enabled`` (not ``--json``) and stderr a terminal,
    and only once ``total`` reaches ``min_total`` (a few quick steps flash no bar). The bar
    is transient, and Rich honours ``NO_COLOR``. The callback may be called from several
    threads. huggingface_hub's own bars are turned off: the CLI draws the only one.
    """
    library_bars_off()
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress, TaskID

    lock = threading.Lock()
    shown: list[tuple[Progress, TaskID]] = []

    def progress(done: int, total: int) -> None:
        if total < min_total:
            return
        with lock:
            if not shown:
                bar = Progress(console=Console(stderr=True), transient=True)
                bar.start()
                shown.append((bar, bar.add_task(description, total=total)))
            bar, task = shown[0]
            bar.update(task, completed=done, total=total)

    try:
        yield progress
    finally:
        with lock:
            if shown:
                shown[0][0].stop()


def library_bars_off() -> None:
    """No progress bars from huggingface_hub in this process, unless the user set its switch.

    The core passes a silent ``tqdm_class`` wherever huggingface_hub takes one; the 0.x
    line's single-file downloads take none, so the CLI, which owns the process, sets
    ``HF_HUB_DISABLE_PROGRESS_BARS`` (read when huggingface_hub is imported: this imports
    nothing) or, when it is imported already, calls its ``disable_progress_bars()``.
    """
    if "HF_HUB_DISABLE_PROGRESS_BARS" in os.environ:
        return
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    utils: Any = sys.modules.get("huggingface_hub.utils")
    if utils is not None:
        utils.disable_progress_bars()
