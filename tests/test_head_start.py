"""The console script's head start on a Hub ``inspect`` (paramtool.cli.head_start).

Its first requests leave before the command line is built; the command's own reading then
takes the reading under way when it asks for exactly the same thing. What is held here:
the arguments are read as click reads them or not at all, a started reading gives the same
answer, errors and progress as one not started, and no request is made twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import cli, cli_json, error_line
from hub_emulator import HubEmulator
from layouts import tiny_llama, write_sparse_checkpoint
from paramtool import sources
from paramtool.cli.head_start import parse
from paramtool.errors import HubError
from paramtool.sources import hub_http

SHARDS = 3


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["org/m"], ("org/m", None, None, None)),
        (["org/m", "--json"], ("org/m", None, None, None)),
        (["--json", "org/m@v1", "--tensors", "--layers", "--gib"], ("org/m@v1", None, None, None)),
        (["org/m", "--revision", "v2"], ("org/m", "v2", None, None)),
        (["org/m", "--revision=v2", "--token=hf_x"], ("org/m", "v2", "hf_x", None)),
        (["--subfolder", "bf16", "hf://org/m"], ("hf://org/m", None, None, "bf16")),
        (["org/m", "--filter", "mlp", "--units", "gib", "--export", "x.svg"],
         ("org/m", None, None, None)),
        (["org/m", "--revision", ""], ("org/m", "", None, None)),
        (["org/m", "--revision="], ("org/m", "", None, None)),
    ],
)
def test_plain_arguments_are_read_as_click_reads_them(
    args: list[str], expected: tuple[Any, ...]
) -> None:
    assert parse(args) == expected


@pytest.mark.parametrize(
    "args",
    [
        [],  # no source: the command's usage error
        ["org/a", "org/b"],  # several sources
        ["org/m", "--base", "org/b"],  # a second reading, of the base
        ["org/m", "--help"],
        ["org/m", "-h"],
        ["org/m", "--"],
        ["--", "org/m"],
        ["org/m", "--revision"],  # a missing value
        ["org/m", "--revision", "--json"],  # click may take it as the value or the option
        ["org/m", "--revision", "a", "--revision", "b"],  # repeated
        ["org/m", "--json=1"],  # a flag given a value
        ["org/m", "--rev", "v1"],  # click takes no abbreviations
        ["org/m", "--workers", "4"],  # not inspect's
    ],
)
def test_anything_else_is_left_to_the_command(args: list[str]) -> None:
    assert parse(args) is None


def write_tiny(folder: Path, layers: int = 4) -> Path:
    write_sparse_checkpoint(folder, tiny_llama(layers), shards=SHARDS)
    return folder


@pytest.fixture
def tiny(hub: HubEmulator, tmp_path: Path) -> dict[str, str]:
    v1 = hub.add_repo("org/tiny", write_tiny(tmp_path / "v1", layers=2), tags=["v1"])
    main = hub.add_repo("org/tiny", write_tiny(tmp_path / "main"), card_data={"license": "mit"})
    hub.reset_counters()
    return {"v1": v1, "main": main}


def start(source: str) -> None:
    """start_hub, which starts nothing where requests go through huggingface_hub's client
    (huggingface_hub 0.x, the floor .ci/min-versions tests at): these tests then skip."""
    started = sources.start_hub(source, revision=None, token=None, subfolder=None)
    if not hub_http.direct():
        assert not started
        pytest.skip("requests go through huggingface_hub's own client: no head start")
    assert started


def _wait_for_abandoned() -> None:
    """A started reading nobody takes runs on; end it before the emulator goes away."""
    for s in sources._started:
        s._done.wait(30)
    sources._started.clear()


def test_a_started_reading_is_taken_and_asks_nothing_twice(
    hub: HubEmulator, tiny: dict[str, str]
) -> None:
    reports: list[tuple[int, int]] = []
    start("org/tiny")
    ck = sources.open_source(["org/tiny"], progress=lambda d, t: reports.append((d, t)))
    assert not sources._started  # taken
    assert ck.hub is not None and ck.hub.revision == tiny["main"]
    # model info, the index and config.json guessed at main, one range per shard and its CDN hop
    assert len(hub.requests) == 1 + 2 + 2 * SHARDS
    assert reports and reports[-1] == (SHARDS, SHARDS)
    hub.reset_counters()  # and the answer is the one a reading not started gives
    again = sources.open_source(["org/tiny"])
    assert again == ck and len(hub.requests) == 1 + 2 * SHARDS  # index and config cached


def test_a_started_reading_of_other_arguments_is_not_taken(
    hub: HubEmulator, tiny: dict[str, str]
) -> None:
    start("org/tiny")
    try:
        ck = sources.open_source(["org/tiny"], revision="v1")
    finally:
        _wait_for_abandoned()
    assert ck.hub is not None and ck.hub.revision == tiny["v1"]
    assert ck.total_parameters < sources.open_source(["org/tiny"]).total_parameters


def test_a_started_reading_raises_the_same_error(hub: HubEmulator) -> None:
    with pytest.raises(HubError) as plain:
        sources.open_source(["org/nothing-here"])
    hub.reset_counters()
    start("org/nothing-here")
    with pytest.raises(HubError) as started:
        sources.open_source(["org/nothing-here"])
    assert str(started.value) == str(plain.value) and "repository not found" in str(plain.value)
    assert len([r for r in hub.requests if r.path.startswith("/api/")]) == 1  # not asked again


def test_no_start_offline_or_for_a_local_path(
    hub: HubEmulator, tiny: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_tiny(tmp_path / "org" / "local")
    monkeypatch.chdir(tmp_path)
    assert not sources.start_hub("org/local", revision=None, token=None, subfolder=None)
    assert not sources.start_hub(str(folder), revision=None, token=None, subfolder=None)
    assert not sources.start_hub("org/tiny@v1", revision="main", token=None, subfolder=None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert not sources.start_hub("org/tiny", revision=None, token=None, subfolder=None)
    assert not sources._started and hub.requests == []


@pytest.mark.parametrize(
    "args",
    [
        ["org/tiny", "--json"],
        ["org/tiny@v1", "--json", "--tensors"],
        ["--revision", "v1", "org/tiny", "--json"],
        ["hf://org/tiny", "--json", "--revision=v1"],
    ],
)
def test_the_console_script_asks_as_many_requests_as_one_reading(
    hub: HubEmulator, tiny: dict[str, str], args: list[str]
) -> None:
    """A whole process (which starts early) against the in-process command (which cannot:
    ``CliRunner`` never runs the console script's start): same output, same requests."""
    expected = cli_json("inspect", *[a for a in args if a != "--json"])
    asked = len(hub.requests)
    assert asked == 1 + 2 + 2 * SHARDS  # a first run, nothing cached
    hub.reset_counters()
    env = {**os.environ, "HF_HUB_CACHE": str(Path(os.environ["HF_HUB_CACHE"]) / "child")}
    p = subprocess.run(
        [sys.executable, "-m", "paramtool", "inspect", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == expected
    assert len(hub.requests) == asked, [(r.method, r.path) for r in hub.requests]


def test_the_console_script_reports_a_started_readings_error(hub: HubEmulator) -> None:
    line = error_line(cli("inspect", "org/nothing-here"))
    p = subprocess.run(
        [sys.executable, "-m", "paramtool", "inspect", "org/nothing-here"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.splitlines() == [line]
