"""File SHA-256, tensor and weights digests, and verification against the Hub emulator."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import blake3
import numpy as np
import pytest
from safetensors import safe_open

from layouts import make_checkpoint, tiny_model
from paramtool.errors import HubError
from paramtool.sources.local import open_local
from paramtool.values import hashing
from paramtool.values.hashing import (
    digest_prefix,
    file_sha256,
    git_blob_sha1,
    hash_checkpoint,
    weights_digest,
)
from paramtool.values.verify import hub_file_hashes, verify_against_hub


def test_file_sha256_equals_hashlib_and_sha256sum(tmp_path, monkeypatch):
    p = make_checkpoint(tmp_path / "m", tiny_model(), shards=1) / "model.safetensors"
    expected = hashlib.sha256(p.read_bytes()).hexdigest()
    assert file_sha256(p) == expected
    monkeypatch.setattr(hashing, "BUFFER_BYTES", 1000)  # many reads, a ragged last one
    hashing._SCRATCH.raw.clear()
    assert file_sha256(p) == expected
    if shutil.which("sha256sum"):
        out = subprocess.run(["sha256sum", str(p)], capture_output=True, text=True, check=True)
        assert out.stdout.split()[0] == expected


def test_progress_counts_every_byte(tmp_path):
    p = make_checkpoint(tmp_path / "m", tiny_model(), shards=1) / "model.safetensors"
    seen = []
    file_sha256(p, progress=seen.append)
    assert sum(seen) == p.stat().st_size


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_hash_progress_counts_each_file_byte_once(tmp_path, workers):
    from paramtool import api

    folder = make_checkpoint(tmp_path / "m", tiny_model(), shards=2)
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    seen: list[tuple[int, int]] = []
    report = api.digest(str(folder), workers=workers, progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, size) and seen[-1] == (size, size)  # not 2x: one read per file
    assert all(t == size and d <= size for d, t in seen)
    assert [f.sha256 for f in report.files] == [
        hashlib.sha256(Path(f.path).read_bytes()).hexdigest() for f in report.files
    ]


def _blake3_digest(dtype: str, shape, data: bytes) -> str:
    """The tensor digest as the docs define it, with the blake3 package."""
    prefix = dtype.encode() + b"\0" + json.dumps(list(shape), separators=(",", ":")).encode()
    return blake3.blake3(prefix + b"\0" + data).hexdigest()


def _safetensors_digests(path: Path) -> dict[str, str]:
    """Each tensor's digest over its bytes as the safetensors library reads them."""
    want = {}
    with safe_open(str(path), framework="numpy") as f:
        for name in f.keys():
            sl = f.get_slice(name)
            data = np.ascontiguousarray(f.get_tensor(name)).tobytes()
            want[name] = _blake3_digest(sl.get_dtype(), sl.get_shape(), data)
    return want


def test_tensor_digests_from_the_one_pass_equal_blake3_over_each_tensor(tmp_path, monkeypatch):
    p = make_checkpoint(tmp_path / "m", tiny_model(), shards=1) / "model.safetensors"
    raw = p.read_bytes()
    want = _safetensors_digests(p)
    for workers in (1, 2, 3):
        got = hash_checkpoint(open_local([str(p)]), workers=workers)
        assert {t.name: t.digest for t in got.tensors} == want
        assert got.files[0].sha256 == hashlib.sha256(raw).hexdigest()
    monkeypatch.setattr(hashing, "BUFFER_BYTES", 1000)  # chunks that cut tensors anywhere
    got = hash_checkpoint(open_local([str(p)]), workers=2)
    assert {t.name: t.digest for t in got.tensors} == want
    assert got.files[0].sha256 == hashlib.sha256(raw).hexdigest()


def test_git_blob_sha1(tmp_path):
    p = tmp_path / "config.json"
    p.write_text('{"model_type": "llama"}\n')
    data = p.read_bytes()
    assert git_blob_sha1(p) == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    if shutil.which("git"):
        out = subprocess.run(["git", "hash-object", str(p)], capture_output=True, text=True)
        if out.returncode == 0:
            assert out.stdout.strip() == git_blob_sha1(p)


def test_tensor_digest_is_dtype_shape_and_bytes(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "s": np.array(7, np.int64)}
    make_checkpoint(tmp_path / "m", arrays, shards=1)
    r = hash_checkpoint(open_local([str(tmp_path / "m")]))
    got = {t.name: t.digest for t in r.tensors}
    assert digest_prefix("F32", (2, 3)) == b"F32\x00[2,3]\x00"
    assert got["a"] == blake3.blake3(b"F32\x00[2,3]\x00" + arrays["a"].tobytes()).hexdigest()
    assert got["s"] == blake3.blake3(b"I64\x00[]\x00" + arrays["s"].tobytes()).hexdigest()
    pairs = json.dumps([["a", got["a"]], ["s", got["s"]]], separators=(",", ":"))
    assert r.weights_digest == hashlib.sha256(pairs.encode()).hexdigest()
    doc = r.to_dict()
    assert doc["digest_scheme"] == "blake3(dtype NUL json(shape) NUL bytes)"
    assert doc["weights_digest_scheme"] == "sha256(json(sorted [name, digest] pairs))"
    assert doc["schema_version"] == 2
    assert weights_digest(reversed(list(got.items()))) == r.weights_digest


def test_same_weights_resharded_reordered_and_annotated_have_one_digest(tmp_path):
    arrays = tiny_model()
    one = hash_checkpoint(open_local([str(make_checkpoint(tmp_path / "one", arrays, shards=1))]))
    three = hash_checkpoint(
        open_local(
            [
                str(
                    make_checkpoint(
                        tmp_path / "three",
                        arrays,
                        shards=3,
                        metadata={"format": "pt", "note": "resharded"},
                        reverse=True,
                    )
                )
            ]
        )
    )
    assert len(one.files) == 1 and len(three.files) == 3
    assert {f.sha256 for f in one.files}.isdisjoint({f.sha256 for f in three.files})
    assert one.weights_digest == three.weights_digest
    assert {(t.name, t.digest) for t in one.tensors} == {(t.name, t.digest) for t in three.tensors}


def test_one_changed_element_or_name_changes_the_weights_digest(tmp_path):
    arrays = tiny_model()
    base = hash_checkpoint(open_local([str(make_checkpoint(tmp_path / "a", arrays, shards=1))]))
    bumped = dict(arrays)
    w = arrays["model.layers.1.mlp.up_proj.weight"].copy()
    w.view(np.uint16)[3, 5] ^= 1  # one bit of one bf16 element
    bumped["model.layers.1.mlp.up_proj.weight"] = w
    other = hash_checkpoint(open_local([str(make_checkpoint(tmp_path / "b", bumped, shards=1))]))
    assert other.weights_digest != base.weights_digest
    changed = {
        t.name for t, u in zip(base.tensors, other.tensors, strict=True) if t.digest != u.digest
    }
    assert changed == {"model.layers.1.mlp.up_proj.weight"}
    renamed = {
        ("model.final_norm.weight" if k == "model.norm.weight" else k): v for k, v in arrays.items()
    }
    assert (
        hash_checkpoint(
            open_local([str(make_checkpoint(tmp_path / "c", renamed, shards=1))])
        ).weights_digest
        != base.weights_digest
    )
    retyped = dict(arrays)
    retyped["model.rotary.inv_freq"] = arrays["model.rotary.inv_freq"].view(np.uint64)  # same bytes
    assert (
        hash_checkpoint(
            open_local([str(make_checkpoint(tmp_path / "d", retyped, shards=1))])
        ).weights_digest
        != base.weights_digest
    )


def test_hash_workers_agree(tmp_path):
    ck = open_local([str(make_checkpoint(tmp_path / "m", tiny_model(), shards=2))])
    assert hash_checkpoint(ck, workers=1) == hash_checkpoint(ck, workers=4)


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_shards_in_parallel_with_ragged_chunks_give_each_files_digests(
    tmp_path, monkeypatch, workers
):
    folder = make_checkpoint(tmp_path / "m", tiny_model(), shards=5)
    paths = sorted(folder.glob("*.safetensors"))
    want = {}
    for p in paths:
        want.update(_safetensors_digests(p))
    monkeypatch.setattr(hashing, "BUFFER_BYTES", 777)  # each buffer handed over many times
    hashing._SCRATCH.raw.clear()
    r = hash_checkpoint(open_local([str(folder)]), workers=workers)
    assert {t.name: t.digest for t in r.tensors} == want
    assert {f.path: f.sha256 for f in r.files} == {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths
    }
    with pytest.raises(ValueError, match="workers"):
        hash_checkpoint(open_local([str(folder)]), workers=-1)


def test_a_spare_thread_joins_the_last_file_under_way(tmp_path, monkeypatch):
    # One large shard and two small ones on two threads: the small ones share the
    # threads with the large one, then its reads and tensor digests move to a helper
    # thread part-way through it; the digests are those of each tensor's bytes.
    # (big enough, in small reads, that the small ones end while it is under way)
    big = {f"w{i}": np.arange(i, i + 4096, dtype=np.float32) for i in range(32)}
    folder = tmp_path / "m"
    folder.mkdir()
    paths = [
        make_checkpoint(folder / "a.safetensors", big),
        make_checkpoint(folder / "b.safetensors", {"x": ("BF16", (64, 16))}, seed=1),
        make_checkpoint(folder / "c.safetensors", {"y": ("F16", (32,))}, seed=2),
    ]
    want = {}
    for p in paths:
        want.update(_safetensors_digests(p))
    monkeypatch.setattr(hashing, "BUFFER_BYTES", 256)
    hashing._SCRATCH.raw.clear()
    starts: list[int] = []
    pipelined = hashing._pipelined

    def recording(fd, path, done, *rest):
        starts.append(done)
        return pipelined(fd, path, done, *rest)

    monkeypatch.setattr(hashing, "_pipelined", recording)
    r = hash_checkpoint(open_local([str(p) for p in paths]), workers=2)
    assert {t.name: t.digest for t in r.tensors} == want
    assert [f.sha256 for f in r.files] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in paths
    ]
    assert starts  # a helper took over at least one file
    starts.clear()
    hash_checkpoint(open_local([str(p) for p in paths]), workers=1)
    assert starts == []  # one thread in all


@pytest.mark.parametrize("workers", [1, 2])
def test_a_file_cut_short_while_hashed_is_one_error_and_no_thread_stays(tmp_path, workers):
    import threading

    from paramtool.errors import MetadataIncompleteBuffer

    p = make_checkpoint(tmp_path / "m", tiny_model(), shards=1) / "model.safetensors"
    ck = open_local([str(p)])
    size = p.stat().st_size
    with open(p, "r+b") as f:
        f.truncate(size - 100)
    before = threading.active_count()
    with pytest.raises(MetadataIncompleteBuffer, match="truncated or changed"):
        hash_checkpoint(ck, workers=workers)
    assert threading.active_count() == before


def test_a_progress_callback_that_raises_stops_the_hash(tmp_path):
    p = make_checkpoint(tmp_path / "m", tiny_model(), shards=1) / "model.safetensors"
    ck = open_local([str(p)])

    def fail(n: int) -> None:
        raise RuntimeError("stop here")

    for workers in (1, 2):
        with pytest.raises(RuntimeError, match="stop here"):
            hash_checkpoint(ck, workers=workers, progress=fail)


# ---------------------------------------------------------------- the Hub


def hub_repo(hub, tmp_path: Path, shards: int = 2) -> tuple[Path, str]:
    folder = make_checkpoint(tmp_path / "repo", tiny_model(), shards=shards)
    (folder / "config.json").write_text('{"model_type": "llama", "num_hidden_layers": 2}\n')
    (folder / "README.md").write_text("# tiny\n")
    sha = hub.add_repo("org/tiny", folder)
    return folder, sha


def copy(folder: Path, dest: Path) -> Path:
    shutil.copytree(folder, dest)
    return dest


def test_file_hashes_equal_the_hubs_lfs_sha256(hub, tmp_path):
    folder, sha = hub_repo(hub, tmp_path)
    files = hub_file_hashes("org/tiny")
    assert files.revision == sha
    report = hash_checkpoint(open_local([str(folder)]))
    for f in report.files:
        entry = files.files[Path(f.path).name]
        assert entry.lfs and entry.sha256 == f.sha256 and entry.size == f.size
    config = files.files["config.json"]
    assert not config.lfs and config.sha256 is None
    assert config.blob_id == git_blob_sha1(folder / "config.json")


def test_verify_a_faithful_copy(hub, tmp_path):
    folder, sha = hub_repo(hub, tmp_path)
    local = copy(folder, tmp_path / "local")
    (local / "README.md").unlink()  # optional: not required, not reported
    r = verify_against_hub(local, "org/tiny")
    assert r.ok and r.hub.revision == sha and r.extra == ()
    by_path = {f.path: f for f in r.files}
    assert set(by_path) == {
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "config.json",
    }
    assert by_path["config.json"].algorithm == "git-sha1" and not by_path["config.json"].required
    assert by_path["model-00001-of-00002.safetensors"].algorithm == "sha256"
    assert all(f.required for p, f in by_path.items() if "model" in p)


def test_verify_finds_a_flipped_byte_a_missing_shard_and_a_size_change(hub, tmp_path):
    folder, _ = hub_repo(hub, tmp_path)
    local = copy(folder, tmp_path / "local")
    shard = local / "model-00002-of-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    (local / "config.json").write_text('{"model_type": "llama", "num_hidden_layers": 30}\n')
    r = verify_against_hub(local, "org/tiny")
    status = {f.path: f.status for f in r.files}
    assert status["model-00002-of-00002.safetensors"] == "mismatch"
    assert status["model-00001-of-00002.safetensors"] == "ok"
    assert status["config.json"] == "mismatch" and not r.ok
    (local / "model-00001-of-00002.safetensors").unlink()
    r = verify_against_hub(local, "org/tiny")
    missing = [f for f in r.files if f.status == "missing"]
    assert [f.path for f in missing] == ["model-00001-of-00002.safetensors"] and missing[
        0
    ].local is None
    sized = next(f for f in r.files if f.path == "config.json")
    assert sized.actual is None and sized.actual_size != sized.expected_size


def test_verify_one_file_and_extra_weights(hub, tmp_path):
    folder, _ = hub_repo(hub, tmp_path, shards=1)
    r = verify_against_hub(folder / "model.safetensors", "org/tiny")
    assert r.ok and [f.path for f in r.files] == ["model.safetensors"]
    local = copy(folder, tmp_path / "local")
    shutil.copy(local / "model.safetensors", local / "model-extra.safetensors")
    r = verify_against_hub(local, "org/tiny")
    assert r.ok and [Path(p).name for p in r.extra] == ["model-extra.safetensors"]


def test_verify_an_unknown_repo_is_a_hub_error(hub, tmp_path):
    hub_repo(hub, tmp_path)
    with pytest.raises(HubError, match="not found"):
        verify_against_hub(tmp_path / "repo", "org/nope")
    with pytest.raises(HubError, match="revision not found"):
        verify_against_hub(tmp_path / "repo", "org/tiny", "v9")
