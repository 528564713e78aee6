"""Ctrl-C: whatever a command is doing, it ends within a second, exit 130, one line.

Installed first thing by the console script (:func:`install`), before typer, rich or
numpy are imported, so this module imports nothing heavy. Inside a command
(``handle_errors``), SIGINT raises KeyboardInterrupt, so that what is being written is
cleaned up as the stack unwinds; ``handle_errors`` reports it and ``main()`` then ends the
process without waiting for worker threads stuck in a read. Should the unwinding take
longer than :data:`GRACE_S`, a second Ctrl-C come, or the signal arrive outside a command
(start-up, option parsing), the process reports and ends at once. In-process runs (tests
through Typer's runner) never install the handler: there, KeyboardInterrupt is reported
by ``handle_errors`` alone.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

INTERRUPTED = 130
GRACE_S = 0.5
"""Seconds the stack may take to unwind after Ctrl-C before the process ends regardless."""

LINE = "paramtool: error: interrupted\n"


class CtrlC:
    """This process's Ctrl-C state: inside a command or not, interrupted already or not."""

    def __init__(self) -> None:
        self.depth = 0  # how many handle_errors bodies are running (0: not in a command)
        self.seen = False
        self._reported = threading.Lock()  # taken by whoever writes the one line

    def report(self) -> None:
        """The one ``interrupted`` line on stderr, written once however many paths get here."""
        if self._reported.acquire(blocking=False):
            try:
                sys.stderr.write(LINE)
                sys.stderr.flush()
            except (OSError, ValueError):
                pass

    def exit(self) -> None:
        """Report (once) and end the process now: no waiting for worker threads, no second
        traceback. For the console-script process only."""
        if self._reported.acquire(blocking=False):
            try:
                os.write(2, LINE.encode())  # not sys.stderr: its lock may be held mid-write
            except OSError:
                pass
        os._exit(INTERRUPTED)

    def reset(self) -> None:
        """A new command run in this process (tests run many)."""
        self.seen = False
        if self._reported.locked():
            self._reported.release()


ctrl_c = CtrlC()


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if ctrl_c.seen or not ctrl_c.depth:
        ctrl_c.exit()  # start-up, parsing, or a second Ctrl-C: nothing to unwind
    ctrl_c.seen = True
    watchdog = threading.Timer(GRACE_S, ctrl_c.exit)
    watchdog.daemon = True
    watchdog.start()
    raise KeyboardInterrupt


def install() -> None:
    """Handle SIGINT as above (the console script's first act)."""
    try:
        signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # not the main thread: leave Python's default alone
        pass
