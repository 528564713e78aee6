"""Hub calls on daemon threads, waited for in slices: Ctrl-C and deadlines are never stuck.

A thread blocked in a socket read cannot be stopped, only left behind. So every Hub call
runs on a daemon thread (nothing waits for it at exit) and the calling thread waits for
results a tenth of a second at a time: an interrupt is delivered at once, and a call that
runs past its deadline (a server that drips its headers, a day-long ``Retry-After`` inside
huggingface_hub) is abandoned with one line, as is the rest of the work on the first error.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from paramtool.errors import HubError
from paramtool.sources.hub_errors import quiet_hub

T = TypeVar("T")

_SLICE = 0.1  # seconds between looks at the clock (and chances for Ctrl-C)
_SETTLE = 1.0  # seconds the calls in flight get to end after another failed
_GRACE = 0.5  # seconds past a job's deadline before it is abandoned: its own check comes first


@dataclass(frozen=True, slots=True)
class Job(Generic[T]):
    """One call: what it fetches (for an error line), the call, and its deadline in seconds."""

    label: str
    call: Callable[[], T]
    deadline: float | None = None
    why: str = "no answer"  # what the abandoned call was waiting for


def run_one(job: Job[T]) -> T:
    """``job.call()`` on a daemon thread; see :func:`run_all`."""
    return run_all([job], workers=1)[0]


def run_all(jobs: Sequence[Job[T]], *, workers: int) -> list[T]:
    """Every job's result, in order, ``workers`` at a time on daemon threads.

    The first error (a job's own, or a deadline passed) is raised here; the jobs not yet
    started are dropped, and the running ones get a second to end (they mostly fail alike
    at once) and are otherwise left behind. Ctrl-C is raised at once.
    """
    n = len(jobs)
    if n == 0:
        return []
    results: list[T | None] = [None] * n
    answers: queue.SimpleQueue[tuple[int, bool, object]] = queue.SimpleQueue()
    lock = threading.Lock()
    started: dict[int, float] = {}
    stop = threading.Event()
    following = iter(range(n))

    def work() -> None:
        with quiet_hub():
            while not stop.is_set():
                with lock:
                    i = next(following, None)
                    if i is None:
                        return
                    started[i] = time.monotonic()
                try:
                    answers.put((i, True, jobs[i].call()))
                except BaseException as e:  # handed to the waiting thread, raised there
                    answers.put((i, False, e))
                    return
                finally:
                    with lock:
                        started.pop(i, None)

    for k in range(min(workers, n)):
        threading.Thread(target=work, name=f"paramtool-hub-{k}", daemon=True).start()
    done = 0
    try:
        while done < n:
            try:
                i, ok, value = answers.get(timeout=_SLICE)
            except queue.Empty:
                _check_deadlines(jobs, started, lock)
                continue
            if not ok:
                assert isinstance(value, BaseException)
                stop.set()
                _settle(started, lock)
                raise value
            results[i] = value  # type: ignore[assignment]
            done += 1
    finally:
        stop.set()
    return results  # type: ignore[return-value]


def _settle(started: dict[int, float], lock: threading.Lock) -> None:
    """After an error, let the calls in flight end (most do at once), for :data:`_SETTLE` s."""
    until = time.monotonic() + _SETTLE
    while time.monotonic() < until:
        with lock:
            if not started:
                return
        time.sleep(0.01)


def _check_deadlines(
    jobs: Sequence[Job[T]], started: dict[int, float], lock: threading.Lock
) -> None:
    now = time.monotonic()
    with lock:
        running = list(started.items())
    for i, since in running:
        limit = jobs[i].deadline
        if limit is not None and now - since > limit + _GRACE:
            from paramtool.sources.hub_http import TIMEOUT_ENV

            raise HubError(
                jobs[i].label,
                f"timed out: {jobs[i].why} within {limit:g} s ({TIMEOUT_ENV} sets the limit "
                "per request)",
            )


def counter(total: int, progress: Callable[[int, int], None] | None) -> Callable[[], None]:
    """``advance()`` for work done on several threads: reports (done, total) to ``progress``."""
    if progress is None:
        return lambda: None
    lock = threading.Lock()
    done = 0
    progress(0, total)

    def advance() -> None:
        nonlocal done
        with lock:
            done += 1
            progress(done, total)

    return advance
