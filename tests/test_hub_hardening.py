"""The Hub as an attacker or a flaky network: deadlines, Ctrl-C, noise, odd answers, sizes.

Every test talks to the Hub emulator (tests/hub_emulator.py) through its fault modes: real
HTTP on 127.0.0.1, an unmodified huggingface_hub, nothing mocked. Deadlines are short
(``PARAMTOOL_HUB_TIMEOUT``), so each test ends within a few seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from helpers import cli, cli_json, error_line
from hub_emulator import HubEmulator
from hub_fixtures import hub_cache
from layouts import make_checkpoint, tiny_llama, write_sparse_checkpoint

FAST = {"PARAMTOOL_HUB_TIMEOUT": "1"}
INDEX = "model.safetensors.index.json"


def write_tiny(folder: Path, layers: int = 2, shards: int = 2) -> Path:
    write_sparse_checkpoint(folder, tiny_llama(layers), shards=shards)
    return folder


@pytest.fixture
def repo(hub: HubEmulator, tmp_path: Path) -> str:
    """org/tiny: two shards, an index and a config.json; returns the commit sha."""
    return hub.add_repo("org/tiny", write_tiny(tmp_path / "tiny"))


@pytest.fixture
def small(hub: HubEmulator, tmp_path: Path) -> str:
    """org/small: one real (written, not sparse) safetensors file and a config; its sha."""
    folder = tmp_path / "small"
    folder.mkdir()
    make_checkpoint(folder, {"w": ("F32", (16, 16)), "b": ("F32", (16,))}, shards=2)
    (folder / "config.json").write_text('{"model_type": "toy"}')
    return hub.add_repo("org/small", folder)


def timed(*args: str, env: dict[str, str] | None = None) -> tuple[Any, float]:
    start = time.monotonic()
    r = cli(*args, env=env)
    return r, time.monotonic() - start


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paramtool", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


# ---------------------------------------------------------------- deadlines and retries


def test_a_dripping_model_info_ends_at_the_deadline(hub: HubEmulator, repo: str) -> None:
    hub.add_fault(r"^/api/models/org/tiny", "drip", size=10_000, interval=0.1)
    r, took = timed("inspect", "org/tiny", env=FAST)
    line = error_line(r, "/api/models/org/tiny", "timed out", "model info", "1 s")
    assert "PARAMTOOL_HUB_TIMEOUT" in line and "http" not in line.split("error: ", 1)[1][:8]
    assert took < 4


def test_a_dripping_shard_range_ends_at_the_deadline(hub: HubEmulator, repo: str) -> None:
    hub.add_fault(r"^/cdn-lfs/", "drip", server="cdn", size=10_000, interval=0.1)
    r, took = timed("inspect", "org/tiny", env=FAST)
    error_line(r, "/org/tiny/resolve/", ".safetensors", "timed out", "PARAMTOOL_HUB_TIMEOUT")
    assert took < 4  # 1 s; 2.5 s at most where the client reads 64 kB at a time (requests)


def test_a_stalled_answer_ends_at_the_deadline(hub: HubEmulator, repo: str) -> None:
    hub.add_fault(r"config\.json$", "stall")
    r, took = timed("inspect", "org/tiny", env=FAST)
    error_line(r, "config.json", "timed out", "1 s")
    assert took < 4


def test_a_day_long_retry_after_fails_at_once(hub: HubEmulator, repo: str) -> None:
    hub.add_fault(r"^/api/models/", "status", status=429, headers={"Retry-After": "86400"})
    r, took = timed("inspect", "org/tiny")
    error_line(r, "/api/models/org/tiny", "rate limited", "429", "retry after 86,400 s")
    assert took < 2
    assert len([q for q in hub.requests if q.path.startswith("/api/")]) == 1


def test_a_short_retry_after_is_waited_out(hub: HubEmulator, repo: str) -> None:
    hub.add_fault(r"^/api/models/", "status", status=429, headers={"Retry-After": "1"}, times=1)
    start = time.monotonic()
    doc = cli_json("inspect", "org/tiny")
    assert doc["revision"] == repo and time.monotonic() - start >= 1
    assert [q.status for q in hub.requests if q.path.startswith("/api/")] == [429, 200]


def test_one_500_on_model_info_is_retried_quietly(hub: HubEmulator, repo: str) -> None:
    hub.add_fault(r"^/api/models/", "status", status=500, times=1, body=b'{"error": "oops"}')
    p = run("inspect", "org/tiny", "--json")
    assert p.returncode == 0 and p.stderr == ""  # no library retry message, no URL
    assert json.loads(p.stdout)["revision"] == repo
    assert [q.status for q in hub.requests if q.path.startswith("/api/")] == [500, 200]


def test_a_lasting_500_is_one_line_after_three_tries(hub: HubEmulator, repo: str) -> None:
    hub.add_fault(r"^/api/models/", "status", status=500, body=b'{"error": "oops"}')
    error_line(cli("inspect", "org/tiny"), "/api/models/org/tiny", "HTTP 500", "3 tries")
    assert len([q for q in hub.requests if q.path.startswith("/api/")]) == 3


def test_a_failed_config_download_is_a_download_failure(hub: HubEmulator, repo: str) -> None:
    hub.add_fault(r"/config\.json$", "status", status=503, body=b"down")
    line = error_line(cli("inspect", "org/tiny"), "config.json", "HTTP 503")
    assert "JSON" not in line


def test_a_bad_timeout_setting_is_one_line(hub: HubEmulator, repo: str) -> None:
    error_line(
        cli("inspect", "org/tiny", env={"PARAMTOOL_HUB_TIMEOUT": "soon"}), "PARAMTOOL_HUB_TIMEOUT"
    )


# ---------------------------------------------------------------- Ctrl-C


@pytest.mark.parametrize(
    ("path", "server"), [(r"^/api/models/", "hub"), (r"^/cdn-lfs/", "cdn")], ids=["info", "shard"]
)
def test_ctrl_c_stops_a_stuck_read_at_once(
    hub: HubEmulator, repo: str, path: str, server: str
) -> None:
    stall = hub.add_fault(path, "stall", server=server)
    p = subprocess.Popen(
        [sys.executable, "-m", "paramtool", "inspect", "org/tiny"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert stall.hit.wait(30), "the request never came"
        time.sleep(0.2)
        sent = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        p.kill()
    assert p.returncode == 130 and out == ""
    assert err == "paramtool: error: interrupted\n"
    assert took < 1.5


# ---------------------------------------------------------------- odd answers


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        (b"<html><body>Welcome</body></html>", "text/html", ["not JSON", "text/html"]),
        (b'["a list"]', "application/json", ["malformed", "not a JSON object"]),
        (b'{"sha": 5, "siblings": []}', "application/json", ["which commit"]),
        (b'{"sha": "' + b"a" * 40 + b'", "siblings": "x"}', "application/json", ["'siblings'"]),
        (b'{"sha": "' + b"a" * 40 + b'", "siblings": [7]}', "application/json", ["rfilename"]),
        (b'{"sha": "' + b"a" * 40 + b'", "cardData": [1]}', "application/json", ["'cardData'"]),
        (b'{"sha": "' + b"a" * 40 + b'", "gated": 3}', "application/json", ["'gated'"]),
        (b'{"sha": "' + b"a" * 40 + b'", "private": "no"}', "application/json", ["'private'"]),
        (b'{"sha": "' + b"a" * 40 + b'", "safetensors": 1}', "application/json", ["'safetensors'"]),
    ],
    ids=["html", "list", "sha", "siblings", "entry", "card", "gated", "private", "safetensors"],
)
def test_model_info_that_is_not_the_hubs_is_one_line(
    hub: HubEmulator, repo: str, body: bytes, content_type: str, words: list[str]
) -> None:
    hub.add_fault(r"^/api/models/", "body", body=body, content_type=content_type)
    hub.add_fault(r"/resolve/", "status", status=599)  # the info must not be used
    error_line(cli("inspect", "org/tiny"), "/api/models/org/tiny", *words)


def test_download_asks_for_no_tree_listing(hub: HubEmulator, small: str) -> None:
    tree = hub.add_fault(r"/tree/", "body", body=b'{"not": "a list"}')
    paths = hub.add_fault(r"/paths-info/", "body", body=b'{"not": "a list"}')
    r = cli("stats", "org/small", "--download", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["revision"] == small
    assert tree.hits == 0 and paths.hits == 0


def test_library_retries_under_download_stay_quiet(hub: HubEmulator, small: str) -> None:
    """huggingface_hub fetches the weights itself, retrying a 500 with a message naming the URL."""
    fault = hub.add_fault(
        r"^/cdn-lfs/", "status", server="cdn", method="GET", ranged=False, status=500, times=1
    )
    p = run("stats", "org/small", "--download", "--json")
    assert fault.hits == 1
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert json.loads(p.stdout)["revision"] == small


# ---------------------------------------------------------------- sizes


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_a_huge_model_info_is_refused_while_streaming(
    hub: HubEmulator, repo: str, chunked: bool
) -> None:
    total = 300_000_000
    big = hub.add_fault(r"^/api/models/", "large", size=total, chunked=chunked)
    line = error_line(cli("inspect", "org/tiny"), "/api/models/org/tiny", "20,000,000 bytes")
    assert "larger" in line
    assert big.done.wait(10)  # the server noticed the client hang up
    assert big.sent < 60_000_000  # the 20 MB read, and what the socket buffers held


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_a_huge_remote_index_is_refused_while_streaming(
    hub: HubEmulator, repo: str, chunked: bool
) -> None:
    total = 300_000_000
    big = hub.add_fault(INDEX + "$", "large", size=total, chunked=chunked)
    error_line(cli("inspect", "org/tiny"), INDEX, "larger than 50,000,000 bytes")
    assert big.done.wait(10)
    assert big.sent < 90_000_000  # the 50 MB read, and what the socket buffers held


# ---------------------------------------------------------------- one commit per run


def test_every_file_comes_from_the_commit_model_info_named(
    hub: HubEmulator, tmp_path: Path
) -> None:
    old = hub.add_repo("org/moving", write_tiny(tmp_path / "a", layers=2, shards=2))
    new = hub.add_repo("org/moving", write_tiny(tmp_path / "b", layers=4, shards=3))
    hub.move_branch("org/moving", "main", old)
    hub.move_branch("org/moving", "main", new, after=1)  # right after the run's first request
    local = {
        old: cli_json("stats", str(tmp_path / "a")),
        new: cli_json("stats", str(tmp_path / "b")),
    }
    hub.reset_counters()

    doc = cli_json("stats", "org/moving", "--download")
    # The first request is the model info or a small file asked for beside it at `main`:
    # whichever commit the model info named, every file this run used is that commit's.
    pinned, other = (old, new) if doc["revision"] == old else (new, old)
    assert doc["revision"] == pinned and doc["tensor_count"] == local[pinned]["tensor_count"]
    assert doc["total"] == local[pinned]["total"]
    resolved = [q for q in hub.requests if "/resolve/" in q.path]
    at_sha = [q for q in resolved if f"/resolve/{pinned}/" in q.path]
    assert at_sha and all(q.commit == pinned for q in at_sha)
    for q in resolved:  # anything else was asked for at `main` beside the model info
        assert q in at_sha or ("/resolve/main/" in q.path and q.path.endswith(".json")), q.path
    for q in resolved:  # a file answered from the other commit was asked for again at the sha
        if q.commit == other:
            again = q.path.replace("/resolve/main/", f"/resolve/{pinned}/")
            assert any(r.path == again for r in at_sha), q.path
    refs = hub_cache() / "models--org--moving" / "refs" / "main"
    assert refs.read_text() == pinned  # where main pointed when this run looked
    assert not (hub_cache() / "models--org--moving" / "snapshots" / other).exists()


def test_a_small_file_answered_from_another_commit_is_asked_again(
    hub: HubEmulator, tmp_path: Path
) -> None:
    """The model info pins one commit while `main` already names the next: the index and
    config.json asked for at `main` beside it come from that next commit (X-Repo-Commit),
    so they are not used: both are asked again at the pinned sha."""
    old = hub.add_repo("org/moving", write_tiny(tmp_path / "a", layers=2, shards=2))
    new = hub.add_repo("org/moving", write_tiny(tmp_path / "b", layers=4, shards=3))
    query = "&".join(f"expand={f}" for f in ("sha", "siblings", "cardData", "gated", "private"))
    with urllib.request.urlopen(f"{hub.url}/api/models/org/moving/revision/{old}?{query}") as r:
        info_at_old = r.read()
    assert json.loads(info_at_old)["sha"] == old
    hub.add_fault(r"^/api/models/org/moving$", "body", body=info_at_old)  # as if main moved
    hub.reset_counters()

    doc = cli_json("inspect", "org/moving")
    assert doc["revision"] == old
    assert doc["total_parameters"] == cli_json("inspect", str(tmp_path / "a"))["total_parameters"]
    early = [q for q in hub.requests if "/resolve/main/" in q.path]
    assert sorted(q.path.rsplit("/", 1)[1] for q in early) == ["config.json", INDEX]
    assert all(q.commit == new and q.status == 200 for q in early)
    again = sorted(q.path for q in hub.requests if "/resolve/" in q.path and q not in early)
    assert [p for p in again if p.endswith(".json")] == [
        f"/org/moving/resolve/{old}/{n}" for n in ("config.json", INDEX)
    ]
    assert all(q.commit == old for q in hub.requests if f"/resolve/{old}/" in q.path)
    assert not (hub_cache() / "models--org--moving" / "snapshots" / new).exists()


# ---------------------------------------------------------------- local paths, offline


def test_paths_that_are_local_are_never_a_hub_lookup(
    hub: HubEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    os.symlink(tmp_path / "nowhere", tmp_path / "org")  # a broken symlink
    os.symlink("loop", tmp_path / "loop")  # a symlink to itself
    for text in ("org/model", "loop/model", "./org/model", "~/org/model", "org/model/sub"):
        line = error_line(cli("inspect", text))
        assert text.removeprefix("./") in line, line
        assert "Hub" not in line and "repository" not in line, line
    assert hub.request_count == 0


def test_unreachable_hub_says_why(hub: HubEmulator, repo: str) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    p = run("stats", "org/tiny", "--download", env={"HF_ENDPOINT": dead})
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert f"{dead}: cannot reach the Hub: connection refused (offline?" in p.stderr


def test_offline_download_of_an_uncached_repo_says_so(
    hub: HubEmulator, repo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = run("stats", "org/tiny", "--download", env={"HF_HUB_OFFLINE": "1"})
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    assert "HF_HUB_OFFLINE is set" in p.stderr and "not in the local cache" in p.stderr
    assert hub.request_count == 0
