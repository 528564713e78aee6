"""Ctrl-C, by a real SIGINT to a real ``paramtool`` process: whatever the command is doing
(reading gigabytes, importing, drawing a table, already stopping), it ends within a
second with exit 130 and exactly one line, ``paramtool: error: interrupted``."""

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

LINE = b"paramtool: error: interrupted\n"
pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


def _sparse(path: Path, header: dict[str, object], data_bytes: int) -> Path:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + data_bytes)  # a hole: costs no disk
    return path


@pytest.fixture(scope="module")
def huge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 8 GiB F32 tensor of zeros, sparse: seconds of reading for any value command."""
    n = 2 << 30
    header = {"w": {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}
    return _sparse(tmp_path_factory.mktemp("huge") / "model.safetensors", header, 4 * n)


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 tensors: their listing (megabytes) more than fills a pipe."""
    n = 20_000
    header = {
        f"t{i}.weight": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]}
        for i in range(n)
    }
    return _sparse(tmp_path_factory.mktemp("many") / "model.safetensors", header, 4 * n)


def _interrupt(
    args: list[str], after: float, times: int = 1, piped: bool = False
) -> tuple[int, bytes, float]:
    """Run ``paramtool ARGS``, send SIGINT ``after`` seconds (``times`` times, 50 ms apart);
    return the exit status, stderr and the seconds from the first signal to the exit.

    ``piped``: stdout is a pipe nobody reads until the end, as ``paramtool ... | less`` is
    before the pager reads: the command blocks once the pipe is full, so it is still
    writing when the signal comes, however fast it draws."""
    p = subprocess.Popen(
        [sys.executable, "-m", "paramtool", *args],
        stdout=subprocess.PIPE if piped else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(after)
    assert p.poll() is None, "the command ended before it could be interrupted"
    sent = time.monotonic()
    for i in range(times):
        if i:
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
    try:
        _, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError("still running 10 s after Ctrl-C") from None
    return p.returncode, err, time.monotonic() - sent


@pytest.mark.parametrize(
    "command",
    [["stats"], ["hash"], ["check", "--no-nan", "--no-config"]],
    ids=["stats", "hash", "check --no-nan"],
)
def test_ctrl_c_while_reading_values(huge, command) -> None:
    code, err, took = _interrupt([command[0], str(huge), *command[1:]], after=0.7)
    assert (code, err) == (130, LINE)
    assert took < 1.5, took


def test_ctrl_c_while_diffing(huge) -> None:
    code, err, took = _interrupt(["diff", str(huge), str(huge)], after=0.7)
    assert (code, err) == (130, LINE)
    assert took < 1.5, took


def test_a_second_ctrl_c_still_gives_one_line(huge) -> None:
    code, err, took = _interrupt(["stats", str(huge)], after=0.7, times=3)
    assert (code, err) == (130, LINE)
    assert took < 1.5, took


def test_ctrl_c_while_drawing_a_table(many) -> None:
    code, err, took = _interrupt(["inspect", str(many), "--tensors"], after=1.2, piped=True)
    assert (code, err) == (130, LINE)
    assert took < 1.5, took


# The signal at a known moment of start-up: when the command's module imports typer
# (the process sends it to itself from an import hook, so the moment is exact).
_AT_IMPORT = """
import os, signal, sys

MODULE = sys.argv[1]

class SignalOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == MODULE:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, SignalOnImport())
sys.argv = ["paramtool", *sys.argv[2:]]
from paramtool.cli import main
main()
"""


@pytest.mark.parametrize(
    ("module", "command"),
    [("typer", "stats"), ("numpy", "stats"), ("rich.console", "inspect")],
)
def test_ctrl_c_during_start_up(huge, module, command) -> None:
    """typer: before any command runs; numpy, rich: imported inside the command."""
    t = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-c", _AT_IMPORT, module, command, str(huge)],
        capture_output=True,
        timeout=30,
    )
    assert (r.returncode, r.stderr) == (130, LINE)
    assert time.monotonic() - t < 5
