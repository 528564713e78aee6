"""Ctrl-C while reading values: every command stops within a second, exit 130, one line.

A real ``paramtool`` subprocess reads a 664 GiB sparse safetensors file (a header, then
``truncate``: no disk used); SIGINT is sent once it has the file open, after a moment
of reading. Before the fix ``hash`` went on hashing its whole 4 GiB job (4 to 25 s):
the worker pool waited for the job, not the read.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

SIZE = 64 << 30  # bytes of tensor data: sparse, and far more than any run reads in a second
STOP_WITHIN = 1.0  # seconds from SIGINT to exit

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a subprocess")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("interrupt") / "model.safetensors"
    n = SIZE // 2
    header = json.dumps({"w": {"dtype": "F16", "shape": [n], "data_offsets": [0, SIZE]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + SIZE)
    return path


def _has_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` holds ``path`` open (Linux: /proc; elsewhere: assume so)."""
    fds = Path(f"/proc/{pid}/fd")
    if not fds.is_dir():
        return True
    try:
        return any(os.path.realpath(fd) == str(path.resolve()) for fd in fds.iterdir())
    except OSError:  # the process went away, or an fd closed while listing
        return False


def _interrupt(args: list[str], path: Path) -> tuple[int, str, str, float]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "paramtool", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not _has_open(proc.pid, path):  # the command is past its imports, reading
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "never opened the file"
            time.sleep(0.01)
        time.sleep(0.3)  # well into the data
        assert proc.poll() is None, "finished before the signal: make SIZE larger"
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        return proc.returncode, out, err, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    "command",
    [
        ["hash"],
        ["hash", "--tensors"],
        ["stats"],
        ["check", "--no-nan"],
        ["diff", "{path}"],
    ],
    ids=["hash", "hash-tensors", "stats", "check-no-nan", "diff"],
)
def test_sigint_stops_within_a_second_with_exit_130(big, command):
    args = [command[0], str(big), *(a.format(path=big) for a in command[1:])]
    code, out, err, took = _interrupt(args, big)
    assert (code, out, err) == (130, "", "paramtool: error: interrupted\n")
    assert took < STOP_WITHIN, f"{took:.2f} s from SIGINT to exit"


_LIBRARY_RUN = """
import signal
import sys
# Python keeps SIGINT ignored when the parent ignored it (a CI job started in the
# background does): Ctrl-C must raise KeyboardInterrupt here whatever started the tests.
signal.signal(signal.SIGINT, signal.default_int_handler)
from paramtool import api
started = False
def progress(done, total):
    global started
    if done and not started:
        started = True
        print("reading", flush=True)
try:
    api.{fn}(sys.argv[1], workers=4, progress=progress)
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.parametrize("fn", ["digest", "stats"])
def test_library_call_with_a_worker_pool_stops_within_a_second(big, fn):
    # Four workers whatever the machine: the pool, not the main thread, is doing the reading.
    proc = subprocess.Popen(
        [sys.executable, "-c", _LIBRARY_RUN.format(fn=fn), str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "reading\n", proc.communicate()
        time.sleep(0.3)
        assert proc.poll() is None
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, err) == (130, "")
    assert took < STOP_WITHIN, f"{took:.2f} s from SIGINT to exit"
