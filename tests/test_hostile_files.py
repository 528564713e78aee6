"""Hostile local files: FIFOs, devices, sockets and names that lie about the bytes.

Every command runs in a real subprocess (``python -m paramtool``) under a wall-clock
limit, and its peak memory is measured: a FIFO or ``/dev/zero`` must end in one error
line within a couple of seconds, never a hang or an unbounded read.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from paramtool import errors
from paramtool.files import open_fd, read_capped, read_fd

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev/zero")

LIMIT_S = 10.0  # a hang is cut here; a pass must come much sooner (FAST_S)
FAST_S = 3.0
MAX_RSS_KB = 400_000  # an unbounded read of /dev/zero passes this in well under a second


# The command runs as a grandchild of a small launcher, which reports its peak RSS: Linux
# counts into a process's peak the memory of the one that started it (recorded at exec), and
# pytest's own process grows past MAX_RSS_KB over a whole run.
_LAUNCHER = """
import os, signal, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "paramtool", *sys.argv[2:]])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def run(*args: str, cwd: Path | None = None) -> tuple[int, str, str, float, int]:
    """``python -m paramtool ARGS``: (exit status, stdout, stderr, seconds, peak RSS in KB)."""
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"paramtool-{os.getpid()}-{time.time_ns()}"
    env = {**os.environ, "NO_COLOR": "1", "PARAMTOOL_DEBUG": "", "HF_HUB_OFFLINE": "1"}
    with open(f"{out_path}.out", "w+b") as out, open(f"{out_path}.err", "w+b") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, f"{out_path}.rss", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=cwd,
            env=env,
            start_new_session=True,  # the launcher and the command: one group to kill
        )
        try:
            proc.wait(timeout=LIMIT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"paramtool {' '.join(args)} still running after {LIMIT_S} s")
        elapsed = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    rss = int(Path(f"{out_path}.rss").read_text())
    for suffix in (".out", ".err", ".rss"):
        os.unlink(f"{out_path}{suffix}")
    return proc.returncode, stdout, stderr, elapsed, rss


def one_error(*args: str, words: tuple[str, ...] = (), cwd: Path | None = None) -> str:
    """Run, and check: exit 2, nothing on stdout, one error line, fast, small."""
    code, stdout, stderr, elapsed, rss = run(*args, cwd=cwd)
    assert code == 2, (code, stdout, stderr)
    assert stdout == "", stdout
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("paramtool: error: "), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert elapsed < FAST_S, elapsed
    assert rss < MAX_RSS_KB, rss
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def tiny(path: Path, names: tuple[str, ...] = ("a", "b")) -> Path:
    save_file({n: np.zeros(4, np.float32) for n in names}, str(path), metadata={"format": "pt"})
    return path


def sharded(folder: Path) -> Path:
    """A two-shard checkpoint with its index; returns the folder."""
    folder.mkdir()
    tiny(folder / "model-00001-of-00002.safetensors", ("a",))
    tiny(folder / "model-00002-of-00002.safetensors", ("b",))
    index = {
        "metadata": {"total_size": 32},
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        },
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


# ----------------------------------------------------------------- not regular files


COMMANDS = {
    "inspect": ("inspect",),
    "inspect --json": ("inspect", "--json"),
    "stats": ("stats",),
    "hash": ("hash",),
    "check": ("check", "--max-size", "1GB"),
    "footprint": ("footprint",),
}


CASES = [(c, "model.safetensors") for c in COMMANDS] + [
    ("inspect", "model.gguf"),
    ("inspect", "weights"),
]
DEVICES = [(c, "/dev/zero") for c in ("inspect", "stats", "hash", "check")] + [
    ("inspect", "/dev/urandom"),
    ("check", "/dev/urandom"),
]


@pytest.mark.parametrize(("command", "name"), CASES)
def test_fifo_named_on_the_command_line(tmp_path, command, name):
    p = fifo(tmp_path / name)
    one_error(*COMMANDS[command], str(p), words=(name, "is a FIFO (named pipe)"))


@pytest.mark.parametrize(("command", "device"), DEVICES)
def test_device_symlink_as_a_safetensors_file(tmp_path, device, command):
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    p = tmp_path / "model.safetensors"
    p.symlink_to(device)
    one_error(*COMMANDS[command], str(p), words=("model.safetensors", "character device"))


@pytest.mark.parametrize(("command", "device"), DEVICES)
def test_device_symlink_as_the_index(tmp_path, device, command):
    folder = sharded(tmp_path / "ck")
    index = folder / "model.safetensors.index.json"
    index.unlink()
    index.symlink_to(device)
    # named as a folder (picked by the folder rule) and by its own name
    one_error(*COMMANDS[command], str(folder), words=("index.json", "character device"))
    one_error(*COMMANDS[command], str(index), words=("index.json", "character device"))


@pytest.mark.parametrize("command", ["inspect", "stats", "hash", "check"])
def test_fifo_as_the_index_in_a_folder(tmp_path, command):
    folder = sharded(tmp_path / "ck")
    index = folder / "model.safetensors.index.json"
    index.unlink()
    fifo(index)
    # never passed over for the shards beside it: the index is what the folder names
    one_error(*COMMANDS[command], str(folder), words=("index.json", "FIFO"))


@pytest.mark.parametrize("command", ["inspect", "stats", "hash", "check"])
def test_fifo_as_a_shard_in_a_folder(tmp_path, command):
    folder = sharded(tmp_path / "ck")
    shard = folder / "model-00002-of-00002.safetensors"
    shard.unlink()
    fifo(shard)
    one_error(*COMMANDS[command], str(folder), words=("model-00002-of-00002", "FIFO"))


def test_fifo_as_the_only_safetensors_of_a_folder(tmp_path):
    folder = tmp_path / "ck"
    folder.mkdir()
    fifo(folder / "model.safetensors")
    one_error("inspect", str(folder), words=("model.safetensors", "FIFO"))


def test_fifo_as_a_gguf_part_in_a_folder(tmp_path):
    folder = tmp_path / "ck"
    folder.mkdir()
    fifo(folder / "model-Q4_K_M.gguf")
    one_error("inspect", str(folder), words=("model-Q4_K_M.gguf", "FIFO"))


def test_device_as_config_json_is_skipped_with_a_note(tmp_path):
    # config.json is not needed to read the weights: skipped with a warning, never read.
    folder = tmp_path / "ck"
    folder.mkdir()
    tiny(folder / "model.safetensors")
    (folder / "config.json").symlink_to("/dev/zero")
    fifo(folder / "adapter_config.json")
    code, stdout, stderr, elapsed, rss = run("inspect", "--json", str(folder))
    assert code == 0, stderr
    assert elapsed < FAST_S and rss < MAX_RSS_KB
    warnings = json.loads(stdout)["warnings"]
    assert f"{folder}/config.json: is a character device, not a regular file, ignored" in warnings
    assert (
        f"{folder}/adapter_config.json: is a FIFO (named pipe), not a regular file, ignored"
        in warnings
    )


def test_device_as_the_check_config(tmp_path):
    p = tmp_path / "model.safetensors"
    tiny(p)
    cfg = tmp_path / "paramtool.toml"
    cfg.symlink_to("/dev/zero")
    one_error("check", str(p), "--config", str(cfg), words=("paramtool.toml",))


def test_directory_and_socket_named_as_weights(tmp_path):
    d = tmp_path / "dir.safetensors"
    d.mkdir()
    tiny(d / "model.safetensors")  # a folder is a folder: read as one
    code, _, stderr, _, _ = run("inspect", str(d))
    assert code == 0, stderr
    sock_dir = Path("/tmp") / f"pt-sock-{os.getpid()}"  # AF_UNIX paths are short
    sock_dir.mkdir(exist_ok=True)
    path = sock_dir / "model.safetensors"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(str(path))
        one_error("inspect", str(path), words=("model.safetensors", "is a socket"))
    finally:
        s.close()
        path.unlink(missing_ok=True)
        sock_dir.rmdir()


def test_open_fd_checks_the_descriptor_and_never_blocks(tmp_path):
    p = fifo(tmp_path / "f")
    t0 = time.monotonic()
    with pytest.raises(errors.SourceNotFound, match="is a FIFO"):
        open_fd(p)
    assert time.monotonic() - t0 < 1.0
    with pytest.raises(errors.SourceNotFound, match="is a directory"):
        open_fd(tmp_path)
    with pytest.raises(errors.SourceNotFound, match="no such file"):
        open_fd(tmp_path / "missing")
    fd = open_fd(tiny(tmp_path / "m.safetensors"))
    try:
        assert os.get_blocking(fd)  # O_NONBLOCK cleared once the file is known regular
    finally:
        os.close(fd)


def test_read_fd_gathers_short_reads_and_stops_at_the_end():
    # A pipe hands over what was written so far: a read of 10 bytes finds 4, then the rest.
    r, w = os.pipe()
    try:
        os.write(w, b"abcd")
        threading.Timer(0.05, lambda: (os.write(w, b"efghij-tail"), os.close(w))).start()
        assert read_fd(r, 10) == b"abcdefghij"
        assert read_fd(r, 100) == b"-tail"  # fewer only at the end
        assert read_fd(r, 5) == b""
    finally:
        os.close(r)


def test_reads_are_capped_whatever_the_size_claims(tmp_path):
    # /proc files are regular and say they are 0 bytes long; the cap still holds.
    maps = Path("/proc/self/maps")
    if not maps.exists() or maps.stat().st_size != 0:
        pytest.skip("no /proc/self/maps of size 0")
    with pytest.raises(errors.ConfigError, match="larger than 64 bytes"):
        read_capped(maps, 64)
    p = tmp_path / "big.json"
    p.write_bytes(b" " * 65)
    with pytest.raises(errors.ShardIndexError, match="larger than 64 bytes"):
        read_capped(p, 64, too_large=errors.ShardIndexError)
    assert read_capped(p, 65) == b" " * 65


def test_index_over_the_cap_is_refused_without_reading_it(tmp_path):
    folder = sharded(tmp_path / "ck")
    index = folder / "model.safetensors.index.json"
    with open(index, "r+b") as f:
        f.truncate(50_000_001)  # sparse: 50 MB of zeros after the JSON
    line = one_error("inspect", str(folder), words=("index.json", "larger than 50,000,000 bytes"))
    assert "not valid JSON" not in line


# ----------------------------------------------------------------- names that lie


def gguf_bytes() -> bytes:
    """A minimal valid GGUF v3 file: one F32 tensor of 8 elements."""

    def s(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    kv = s("general.architecture") + struct.pack("<I", 8) + s("llama")
    info = s("token_embd.weight") + struct.pack("<IQIQ", 1, 8, 0, 0)
    body = b"GGUF" + struct.pack("<IQQ", 3, 1, 1) + kv + info
    body += b"\0" * (-len(body) % 32)
    return body + b"\0" * 32


def test_gguf_named_safetensors_is_gguf_with_a_warning(tmp_path):
    p = tmp_path / "model.safetensors"
    p.write_bytes(gguf_bytes())
    want = (
        f"{p}: named as safetensors but its bytes are GGUF; read as GGUF "
        "(a file's format is decided by its bytes)"
    )
    code, stdout, stderr, _, _ = run("inspect", "--json", str(p))
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["format"] == "gguf"
    assert want in doc["warnings"]
    assert f"paramtool: warning: {want}" in stderr.splitlines()
    code, stdout, stderr, _, _ = run("inspect", str(p))
    assert code == 0 and f"paramtool: warning: {want}" in stderr.splitlines()


def test_check_safetensors_only_fails_a_gguf_named_safetensors(tmp_path):
    p = tmp_path / "model.safetensors"
    p.write_bytes(gguf_bytes())
    code, stdout, stderr, _, _ = run("check", str(p), "--safetensors-only", "--json")
    assert code == 1, (stdout, stderr)
    (finding,) = json.loads(stdout)["rules"]
    assert finding["name"] == "safetensors_only" and finding["status"] == "fail"
    assert finding["measured"] == [str(p)]
    assert "decided by its bytes" in finding["message"]
    # the same file under its true name passes the rule
    true = tmp_path / "model.gguf"
    p.rename(true)
    code, stdout, stderr, _, _ = run("check", str(true), "--safetensors-only")
    assert code == 0, (stdout, stderr)


def test_safetensors_named_gguf_is_read_as_safetensors_and_fails_the_gate(tmp_path):
    p = tiny(tmp_path / "model.gguf")
    code, stdout, stderr, _, _ = run("inspect", "--json", str(p))
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["format"] == "safetensors" and doc["total_parameters"] == 8
    code, stdout, _, _, _ = run("check", str(p), "--safetensors-only")
    assert code == 1, stdout


def test_pickle_bytes_named_safetensors_are_read_as_a_pickle_and_fail_the_format_rule(tmp_path):
    p = tmp_path / "model.safetensors"
    p.write_bytes(b"\x80\x02}q\x00." + b"\0" * 40)  # an empty dict: read, never unpickled
    code, stdout, stderr, _, _ = run("check", str(p), "--safetensors-only")
    assert code == 1 and "Traceback" not in stderr, (code, stdout, stderr)
    assert "named for one format but holding another" in stdout
    p.write_bytes(b"\x80\x02}q" + b"\0" * 40)  # a broken pickle: one error line
    one_error("check", str(p), "--safetensors-only", words=("model.safetensors",))
    p.write_bytes(b"PK\x03\x04" + b"\0" * 60)
    one_error("inspect", str(p), words=("zip archive",))  # zip bytes: read as a torch zip


@pytest.mark.parametrize("command", ["inspect", "stats", "hash", "footprint"])
def test_a_name_too_long_for_the_os_is_one_line(tmp_path: Path, command: str) -> None:
    from helpers import cli, error_line

    long = str(tmp_path / ("x" * 300 + ".safetensors"))  # NAME_MAX is 255
    line = error_line(cli(command, long), "File name too long")
    assert len(line) < 400


def test_a_repo_id_longer_than_the_hub_allows_is_a_missing_path() -> None:
    # huggingface_hub's validate_repo_id: at most 96 characters; no Hub request is made.
    from helpers import cli, error_line

    error_line(cli("inspect", "org/" + "x" * 100), "no such file or directory")
