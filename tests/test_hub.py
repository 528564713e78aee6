"""``paramtool inspect`` on Hub repos, against the Hub emulator (tests/hub_emulator.py).

Everything goes through the real CLI and an unmodified huggingface_hub talking HTTP to
the emulator on 127.0.0.1 (the ``hub`` fixture points HF_ENDPOINT at it); nothing is mocked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import constants, snapshot_download

from helpers import cli, cli_json, error_line
from hub_emulator import HubEmulator, RequestRecord
from hub_fixtures import set_constant
from layouts import (
    llama31_8b,
    lora_llama31_8b,
    make_checkpoint,
    tiny_llama,
    write_sparse_checkpoint,
    write_sparse_file,
)
from paramtool.formats.safetensors import read_local_header
from paramtool.sources import hub_http, open_source
from paramtool.sources.hub_files import HubRanges

TOKEN = "hf_paramtool_test_token_5f2c"
SHARDS = [f"model-0000{k}-of-00003.safetensors" for k in (1, 2, 3)]


def write_tiny(folder: Path, layers: int = 4, shards: int = 3, **kw: Any) -> Path:
    write_sparse_checkpoint(folder, tiny_llama(layers), shards=shards, **kw)
    return folder


def normalised(doc: dict[str, Any], root: Path | None = None) -> dict[str, Any]:
    """A JSON document less what says where it came from; local paths made repo-relative."""
    text = json.dumps({k: v for k, v in doc.items() if k not in ("source", "revision", "hub")})
    if root is not None:
        text = text.replace(json.dumps(str(root) + os.sep)[1:-1], "")
    return json.loads(text)


def header_bytes(path: Path) -> int:
    """The 8-byte length plus the JSON header: what must be read of a shard."""
    with open(path, "rb") as f:
        return 8 + struct.unpack("<Q", f.read(8))[0]


def file_gets(hub: HubEmulator, name: str) -> list[RequestRecord]:
    return [
        r
        for r in hub.requests
        if r.server == "hub"
        and r.method == "GET"
        and "/resolve/" in r.path
        and r.path.endswith("/" + name)
    ]


@pytest.fixture
def tiny(hub: HubEmulator, tmp_path: Path) -> dict[str, Any]:
    """org/tiny: v1 (tag "v1", 2 layers), then main (4 layers, 3 shards), licence llama3.1."""
    v1 = hub.add_repo("org/tiny", write_tiny(tmp_path / "v1", layers=2, shards=2), tags=["v1"])
    folder = write_tiny(tmp_path / "main")
    main = hub.add_repo("org/tiny", folder, card_data={"license": "llama3.1"})
    return {"v1": v1, "main": main, "folder": folder, "v1_folder": tmp_path / "v1"}


# ---------------------------------------------------------------- same answer as local


@pytest.mark.parametrize("kind", ["sharded", "single", "adapter"])
def test_hub_json_equals_local_json(hub: HubEmulator, tmp_path: Path, kind: str) -> None:
    folder = tmp_path / kind
    if kind == "sharded":
        write_tiny(folder)
    elif kind == "single":
        folder.mkdir()
        tensors = {
            "embed.weight": ("BF16", (64, 32)),
            "layers.0.w": ("F32", (32, 32)),
            "layers.0.b": ("F16", (32,)),
        }
        make_checkpoint(folder, tensors, metadata={"format": "pt"})
        (folder / "config.json").write_text('{"model_type": "toy", "num_hidden_layers": 1}')
    else:
        write_sparse_checkpoint(folder, lora_llama31_8b())
    sha = hub.add_repo(f"org/{kind}", folder, card_data={"license": "mit"})
    local = cli_json("inspect", str(folder), "--tensors")
    remote = cli_json("inspect", f"org/{kind}", "--tensors")
    assert normalised(remote) == normalised(local, folder)
    assert remote["source"] == f"org/{kind}" and remote["revision"] == sha
    assert remote["hub"] == {
        "repo_id": f"org/{kind}",
        "revision": sha,
        "requested_revision": None,
        "subfolder": "",
        "license": "mit",
        "gated": False,
        "private": False,
        "stated_parameters": local["total_parameters"],
        "stated_parameters_agree": True,
    }
    assert remote["warnings"] == [] and remote["files"][0]["path"] in remote["tensors"][0]["file"]


@pytest.mark.parametrize("kind", ["sharded", "pickle"])
def test_huggingface_hubs_own_client_gives_the_same_answer(
    hub: HubEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """PARAMTOOL_HUB_CLIENT=huggingface_hub (as a proxy does): every request through
    huggingface_hub's session, the same files asked for, the same answer."""
    folder = tmp_path / kind
    if kind == "sharded":
        write_tiny(folder)
    else:
        shutil.copytree(Path(__file__).parent / "fixtures" / "torch" / "tiny_llama_bin", folder)
    hub.add_repo(f"org/{kind}", folder)
    direct = cli_json("inspect", f"org/{kind}", "--tensors")
    asked = sorted(r.path for r in hub.requests)
    hub.reset_counters()
    monkeypatch.setenv("PARAMTOOL_HUB_CLIENT", "huggingface_hub")
    assert not hub_http.direct()
    shutil.rmtree(constants.HF_HUB_CACHE, ignore_errors=True)  # a first inspection again
    via_library = cli_json("inspect", f"org/{kind}", "--tensors")
    assert via_library == direct
    assert sorted(r.path for r in hub.requests) == asked


def test_subprocess_reads_only_headers_index_and_config(hub: HubEmulator, tmp_path: Path) -> None:
    """Llama-3.1-8B as published (4 shards, header-exact): a whole process, bytes counted."""
    folder = tmp_path / "l8"
    shards = write_sparse_checkpoint(folder, llama31_8b())
    sha = hub.add_repo("meta-llama/Llama-3.1-8B", folder, card_data={"license": "llama3.1"})
    cmd = [sys.executable, "-m", "paramtool", "inspect", "meta-llama/Llama-3.1-8B", "--json"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""  # no progress bar, no warning: stderr is not a TTY and --json is set
    doc = json.loads(p.stdout)
    assert doc["total_parameters"] == 8_030_261_248 and doc["revision"] == sha
    assert doc["hub"]["license"] == "llama3.1" and doc["hub"]["stated_parameters_agree"] is True

    info = [r for r in hub.requests if r.path.startswith("/api/")]
    small = [r for r in hub.requests if r.path.endswith(".json")]
    cdn = [r for r in hub.requests if r.server == "cdn"]
    assert len(info) == 1 and len(small) == 2  # model info; one GET of the index and config
    # Every file comes from the commit the model info pinned: the shards are asked for at that
    # sha; the index and config at `main` at the same time as the model info, answered (the
    # Hub's X-Repo-Commit) from that same commit, so neither is asked for again.
    resolved = [r for r in hub.requests if "/resolve/" in r.path]
    assert all(r.commit == sha for r in resolved), [(r.path, r.commit) for r in resolved]
    assert sorted(r.path for r in small) == [
        f"/meta-llama/Llama-3.1-8B/resolve/main/{n}"
        for n in ("config.json", "model.safetensors.index.json")
    ]
    assert all(f"/resolve/{sha}/" in r.path for r in resolved if r not in small)
    assert len(hub.requests) == 1 + 2 + 2 * len(shards)  # one range per shard (+ its CDN hop)
    headers = sum(header_bytes(s) for s in shards)
    for r in cdn:  # one range from byte 0 per shard, each sent in full
        first, last = map(int, r.range.removeprefix("bytes=").split("-"))
        assert first == 0 and r.bytes_sent == last + 1
    needed = headers + sum(p.stat().st_size for p in folder.glob("*.json"))
    over_read = sum(r.bytes_sent for r in cdn) - headers
    assert 0 <= over_read <= 0.06 * headers
    assert hub.bytes_sent <= needed + info[0].bytes_sent + over_read

    hub.reset_counters()  # again: index and config now come from the cache
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert json.loads(p.stdout) == doc
    assert len(hub.requests) == 1 + 2 * len(shards)


def _stderr_on_a_tty(cmd: list[str]) -> tuple[int, bytes]:
    """Run ``cmd`` with stderr on a pseudo-terminal (stdout piped); return (exit code, stderr)."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    try:
        env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
        p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=slave, timeout=60)
    finally:
        os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # Linux: EIO once the other end is closed and drained
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.returncode, out


def test_progress_bar_only_for_a_person(hub: HubEmulator, tmp_path: Path) -> None:
    hub.add_repo("org/many", write_tiny(tmp_path / "many", shards=10))
    cmd = [sys.executable, "-m", "paramtool", "inspect", "org/many"]
    code, err = _stderr_on_a_tty([*cmd, "--json"])  # first: index and config are downloaded
    assert code == 0 and err == b""  # no bar of ours, nor huggingface_hub's own
    code, err = _stderr_on_a_tty(cmd)
    assert code == 0 and b"Reading shard headers" in err


# ---------------------------------------------------------------- revisions and sources


def test_revisions(hub: HubEmulator, tiny: dict[str, Any]) -> None:
    two_layers = cli_json("inspect", str(tiny["v1_folder"]))["total_parameters"]
    head = cli_json("inspect", "org/tiny")
    assert head["revision"] == tiny["main"] and head["total_parameters"] > two_layers
    for args, requested in [
        (["org/tiny@v1"], "v1"),
        ([f"org/tiny@{tiny['v1']}"], tiny["v1"]),
        (["org/tiny", "--revision", "v1"], "v1"),
        (["hf://org/tiny@v1"], "v1"),
    ]:
        doc = cli_json("inspect", *args)
        assert doc["revision"] == tiny["v1"] and doc["total_parameters"] == two_layers, args
        assert doc["hub"]["requested_revision"] == requested
    assert cli_json("inspect", "org/tiny@main")["revision"] == tiny["main"]


@pytest.mark.parametrize("args", [["org/tiny@nope"], ["org/tiny", "--revision", "nope"]])
def test_unknown_revision(hub: HubEmulator, tiny: dict[str, Any], args: list[str]) -> None:
    line = error_line(cli("inspect", *args))
    assert "org/tiny@nope" in line and "revision not found" in line


def test_two_revisions_is_a_usage_error(hub: HubEmulator, tiny: dict[str, Any]) -> None:
    assert "two revisions" in error_line(cli("inspect", "org/tiny@v1", "--revision", "main"))


def test_missing_repo(hub: HubEmulator) -> None:
    line = error_line(cli("inspect", "org/nothing-here"))
    assert "org/nothing-here" in line and "repository not found" in line and hub.url in line


def test_hf_scheme_forces_the_hub_over_a_local_folder(
    hub: HubEmulator, tiny: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "cwd"
    write_tiny(workdir / "org" / "tiny", layers=1, shards=1)
    monkeypatch.chdir(workdir)
    hub.reset_counters()
    local = cli_json("inspect", "org/tiny")
    assert local["revision"] is None and "hub" not in local
    assert hub.requests == []  # the local folder won, the Hub was not asked
    remote = cli_json("inspect", "hf://org/tiny")
    assert remote["revision"] == tiny["main"]
    assert remote["total_parameters"] > local["total_parameters"]


# ---------------------------------------------------------------- access


@pytest.mark.parametrize("how", ["env", "option", "stored login"])
def test_gated_repo_needs_a_token(
    hub: HubEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    sha = hub.add_repo(
        "org/gated", write_tiny(tmp_path / "g"), gated="manual", card_data={"license": "llama3.1"}
    )
    hub.valid_tokens.add(TOKEN)
    line = error_line(cli("inspect", "org/gated"))
    assert "gated" in line and "HF_TOKEN" in line and "licence" in line

    hub.reset_counters()
    if how == "env":
        r = cli("inspect", "org/gated", "--json", env={"HF_TOKEN": TOKEN})
    elif how == "option":
        r = cli("inspect", "org/gated", "--json", "--token", TOKEN)
    else:
        Path(constants.HF_TOKEN_PATH).write_text(TOKEN)
        r = cli("inspect", "org/gated", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["revision"] == sha and doc["hub"]["gated"] == "manual"
    assert TOKEN not in r.stdout + r.stderr
    assert {rec.token for rec in hub.requests if rec.server == "hub"} == {TOKEN}
    assert {rec.token for rec in hub.requests if rec.server == "cdn"} == {None}  # not to the CDN


def test_private_repo_and_bad_token_never_echo_the_token(hub: HubEmulator, tmp_path: Path) -> None:
    hub.add_repo("org/private", write_tiny(tmp_path / "p"), private=True)
    hub.valid_tokens.add(TOKEN)
    line = error_line(cli("inspect", "org/private"))
    assert "not found" in line and "HF_TOKEN" in line
    bad = "hf_not_a_valid_token_9d1e"
    r = cli("inspect", "org/private", "--token", bad)
    assert "HF_TOKEN" in error_line(r) and bad not in r.stderr
    r = cli("inspect", "org/private", "--json", "--token", TOKEN)
    assert r.exit_code == 0 and TOKEN not in r.stdout + r.stderr
    assert json.loads(r.stdout)["hub"]["private"] is True


# ---------------------------------------------------------------- repo shapes


def test_subfolder_variants(hub: HubEmulator, tmp_path: Path) -> None:
    root = tmp_path / "variants"
    (root / "fp16").mkdir(parents=True)
    make_checkpoint(root / "fp16", {"w": ("F16", (8, 8)), "b": ("F16", (8,))})
    write_tiny(root / "bf16")
    (root / "README.md").write_text("two variants\n")
    hub.add_repo("org/variants", root)
    line = error_line(cli("inspect", "org/variants"))
    assert "--subfolder bf16" in line and "fp16" in line
    for sub in ("fp16", "bf16"):
        doc = cli_json("inspect", "org/variants", "--subfolder", sub, "--tensors")
        assert normalised(doc) == normalised(
            cli_json("inspect", str(root / sub), "--tensors"), root
        )
        assert doc["hub"]["subfolder"] == sub and doc["hub"]["stated_parameters"] is None
        assert all(f["path"].startswith(sub + "/") for f in doc["files"])
    assert "under 'nope'" in error_line(cli("inspect", "org/variants", "--subfolder", "nope"))


def test_pickle_only_repo_is_read_by_ranges(hub: HubEmulator) -> None:
    """Read symbolically, never unpickled (tests/test_hub_pickle.py has the rest)."""
    hub.add_repo("org/pickled", {"pytorch_model.bin": b"\x80\x02}q\x00.", "config.json": b"{}"})
    doc = cli_json("inspect", "org/pickled")
    assert doc["format"] == "pickle" and doc["total_parameters"] == 0
    assert doc["files"][0]["pickle"]["verdict"] == "plain state dict"
    assert all(r.range is not None for r in hub.requests if r.path.endswith(".bin"))


def test_pickles_beside_the_weights_are_listed_unread(hub: HubEmulator, tmp_path: Path) -> None:
    """What ``check``'s safetensors_only rule needs: the pickles next to the weights, by name."""
    folder = write_tiny(tmp_path / "mixed", shards=1)
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")
    (folder / "training_args.bin").write_bytes(b"\x80\x02}q\x00.")
    hub.add_repo("org/mixed", folder)
    ck = open_source(["org/mixed"])
    assert ck.pickle_files == ("pytorch_model.bin", "training_args.bin")
    local = open_source([str(folder)])
    assert local.pickle_files == tuple(str(folder / n) for n in ck.pickle_files)
    assert not [r for r in hub.requests if r.path.endswith(".bin")]


def test_header_larger_than_the_first_range(hub: HubEmulator, tmp_path: Path) -> None:
    """Big ``__metadata__`` the index cannot foresee: a second range, straight from the CDN."""
    folder = write_tiny(tmp_path / "meta", shards=2, metadata={"format": "pt", "notes": "x" * 3000})
    hub.add_repo("org/meta", folder)
    hub.valid_tokens.add(TOKEN)
    doc = cli_json("inspect", "org/meta", "--tensors", "--token", TOKEN)
    assert normalised(doc) == normalised(cli_json("inspect", str(folder), "--tensors"), folder)
    for shard in sorted(folder.glob("*.safetensors")):
        (resolve,) = file_gets(hub, shard.name)
        assert resolve.status == 302 and resolve.token == TOKEN
        key = hashlib.sha256(shard.read_bytes()).hexdigest()
        first, second = [r for r in hub.requests if r.server == "cdn" and r.path.endswith(key)]
        split = int(first.range.split("-")[1]) + 1
        assert second.range == f"bytes={split}-{header_bytes(shard) - 1}"
        assert first.token is None and second.token is None


@pytest.mark.parametrize("first", [16, 4096])
def test_a_server_that_ignores_range_costs_a_dropped_connection(
    hub: HubEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: int
) -> None:
    """A mirror that answers 200 with the whole 256 MB file: the header is read, then hung up."""
    sha = "0" * 40
    folder = tmp_path / "org" / "big" / "resolve" / sha
    folder.mkdir(parents=True)
    shard = write_sparse_file(folder / "model.safetensors", [("w", "BF16", (8192, 16384))])

    class Plain(SimpleHTTPRequestHandler):  # no Range support
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Plain, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        set_constant(
            monkeypatch,
            "HUGGINGFACE_CO_URL_TEMPLATE",
            base + "/{repo_id}/resolve/{revision}/{filename}",
        )
        header = HubRanges("org/big", sha, None, None).header("model.safetensors", first)
    finally:
        server.shutdown()
        server.server_close()
    assert header == read_local_header(shard, "model.safetensors")


def test_malformed_shard_header_names_the_shard(hub: HubEmulator, tmp_path: Path) -> None:
    folder = write_tiny(tmp_path / "bad")
    shard = folder / SHARDS[1]
    with open(shard, "r+b") as f:
        head = f.read(header_bytes(shard))
        f.seek(0)
        f.write(head.replace(b'"dtype":"BF16"', b'"dtype":"BX16"', 1))
    hub.add_repo("org/bad", folder)
    line = error_line(cli("inspect", "org/bad"))
    assert SHARDS[1] in line and "unknown dtype 'BX16'" in line


def test_index_naming_a_shard_the_repo_lacks(hub: HubEmulator, tmp_path: Path) -> None:
    folder = write_tiny(tmp_path / "gap")
    (folder / SHARDS[2]).unlink()
    hub.add_repo("org/gap", folder)
    assert SHARDS[2] in error_line(cli("inspect", "org/gap"))


def test_stated_parameter_disagreements_are_flagged(hub: HubEmulator, tmp_path: Path) -> None:
    folder = write_tiny(tmp_path / "stated")
    index = folder / "model.safetensors.index.json"
    obj = json.loads(index.read_text())
    obj["metadata"]["total_parameters"] = 1234
    index.write_text(json.dumps(obj))
    sha = hub.add_repo("org/stated", folder, safetensors_total=999, card_data={"license": "mit"})
    doc = cli_json("inspect", "org/stated")
    ours = doc["total_parameters"]
    assert doc["hub"]["stated_parameters"] == 999 and doc["hub"]["stated_parameters_agree"] is False
    assert doc["index"]["metadata"]["total_parameters"] == 1234
    assert any("Hub states 999" in w for w in doc["warnings"])
    assert any("total_parameters says 1,234" in w for w in doc["warnings"])
    local = cli_json("inspect", str(folder))
    assert any("total_parameters says 1,234" in w for w in local["warnings"])

    r = cli("inspect", "org/stated")
    assert r.exit_code == 0 and "paramtool: warning:" in r.stderr
    for needle in (sha, "mit", "999 (DISAGREES)", "1,234 (DISAGREES)", f"{ours:,}"):
        assert needle in r.stdout, needle


# ---------------------------------------------------------------- offline and failures


def test_offline(hub: HubEmulator, tiny: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    online = cli_json("inspect", "org/tiny", "--tensors")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.reset_counters()
    line = error_line(cli("inspect", "org/tiny"))  # the index and config are cached, not the shards
    assert "HF_HUB_OFFLINE" in line and "lacks 3 of the files needed" in line and SHARDS[0] in line
    assert "not in the local cache" in error_line(cli("inspect", "org/tiny@v1"))
    assert hub.requests == []

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    snapshot_download("org/tiny")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    hub.reset_counters()
    r = cli("inspect", "org/tiny", "--json", "--tensors")
    assert r.exit_code == 0, r.stderr
    offline = json.loads(r.stdout)
    assert hub.requests == []
    assert offline["revision"] == tiny["main"] and offline["warnings"][0].startswith("offline:")
    assert normalised({**offline, "warnings": []}) == normalised(online)


def test_network_failure_names_the_endpoint_quickly(hub: HubEmulator) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = {**os.environ, "HF_ENDPOINT": dead}
    start = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "paramtool", "inspect", "org/tiny"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - start < 10
    assert p.returncode == 2 and p.stdout == ""
    (line,) = p.stderr.splitlines()
    assert line.startswith(f"paramtool: error: {dead}: cannot reach the Hub: connection refused")
    assert "offline?" in line


def guessed(r: Any) -> bool:
    """A small file asked for at `main` beside the model info, before the commit is known."""
    name = r.path.rsplit("/", 1)[-1]
    return "/resolve/main/" in r.path and name in ("config.json", "model.safetensors.index.json")


def test_gguf_only_repo_is_refused_with_a_hint(hub: HubEmulator) -> None:
    hub.add_repo(
        "org/gguf-only", {"model-Q4_K_M.gguf": b"GGUF\x03\x00\x00\x00", "README.md": b"hi"}
    )
    line = error_line(cli("inspect", "org/gguf-only"))
    assert "model-Q4_K_M.gguf" in line and "GGUF" in line and "download" in line
    # refused from the model info: nothing read but the small files guessed beside it
    assert [r.path for r in hub.requests if not guessed(r)] == ["/api/models/org/gguf-only"]
    # (the guesses run beside the model info: a refusal may come before they are asked)
    assert {r.path for r in hub.requests if guessed(r)} <= {
        f"/org/gguf-only/resolve/main/{n}" for n in ("config.json", "model.safetensors.index.json")
    }


def test_a_missing_path_under_a_local_folder_is_not_a_hub_repo(
    hub: HubEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    line = error_line(cli("inspect", "models/llama-8b"))
    assert "models/llama-8b" in line and "no such file" in line
    assert hub.request_count == 0


def test_footprint_and_check_take_a_hub_repo(tiny: dict[str, Any], hub: HubEmulator) -> None:
    local = cli_json("inspect", str(tiny["folder"]))
    hub.reset_counters()
    r = cli("footprint", "org/tiny", "--dtype", "bf16", "--context", "1024", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["parameters"] == local["total_parameters"]
    assert doc["precisions"][0]["weights_bytes"] == 2 * local["total_parameters"]
    assert doc["kv_cache_bytes"] > 0  # layers and KV heads came from the repo's config.json
    assert not any(q.range is None and q.path.endswith(".safetensors") and q.method == "GET"
                   for q in hub.requests)  # fmt: skip
    r = cli("check", "org/tiny@v1", "--expect-layers", "2", "--max-params", "1B", "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["passed"] is True and report["revision"] == tiny["v1"]
    r = cli("check", "org/tiny", "--expect-layers", "2")
    assert r.exit_code == 1  # main has 4 layers


def test_distributed_checkpoint_repo_is_one_line(hub: HubEmulator) -> None:
    hub.add_repo(
        "org/dcp-only",
        {".metadata": b"\x80\x02}q\x00.", "__0_0.distcp": b"\0" * 64, "README.md": b"hi"},
    )
    line = error_line(cli("inspect", "org/dcp-only"))
    assert "distributed checkpoint" in line and "download the repo" in line, line
    # refused from the model info: nothing read but the small files guessed beside it
    assert [r.path for r in hub.requests if not guessed(r)] == ["/api/models/org/dcp-only"]
    # (the guesses run beside the model info: a refusal may come before they are asked)
    assert {r.path for r in hub.requests if guessed(r)} <= {
        f"/org/dcp-only/resolve/main/{n}" for n in ("config.json", "model.safetensors.index.json")
    }


def test_token_headers_match_huggingface_hubs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token paramtool sends is build_hf_headers' in each way one is found."""
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers

    from paramtool.sources.hub_http import hub_headers

    stored = tmp_path / "token"
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(stored))
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    cases: list[tuple[dict[str, str], str | None, str | None]] = [
        ({}, None, None),  # no login: no token
        ({}, "hf_given", None),  # --token
        ({"HF_TOKEN": " hf_env\n"}, None, None),
        ({"HUGGING_FACE_HUB_TOKEN": "hf_old"}, None, None),
        ({"HF_TOKEN": "hf_env"}, "hf_given", None),
        ({}, None, "hf_stored\n"),  # a stored login
        ({"HF_TOKEN": "hf_env"}, None, "hf_stored"),
    ]
    for env, token, file in cases:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        if file is not None:
            stored.write_text(file)
        ours = hub_headers(token).get("authorization")
        assert ours == build_hf_headers(token=token).get("authorization"), (env, token, file)
        for k in env:
            monkeypatch.delenv(k)
        stored.unlink(missing_ok=True)
