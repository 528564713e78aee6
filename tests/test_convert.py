"""``paramtool convert``: pickles to safetensors, checked against torch's own truth.

The truth beside each fixture was recorded by torch (make_torch_fixtures.py): the SHA-256
of each tensor's bytes from ``torch.load(weights_only=True)``. What convert writes is read
back by the ``safetensors`` library, and each tensor's bytes must hash to that truth.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy for safetensors.numpy)
import pytest
import safetensors.numpy

import paramtool
from helpers import cli, cli_json, error_line
from paramtool.errors import ParamtoolError
from paramtool.formats.safetensors import read_local_header
from paramtool.values import convert as cv
from paramtool.values.hashing import file_sha256

FIXTURES = Path(__file__).parent / "fixtures" / "torch"
LLAMA = FIXTURES / "tiny_llama_bin"


def _truth(path: Path) -> dict[str, dict[str, object]]:
    rows: dict[str, dict[str, object]] = json.loads(Path(f"{path}.truth.json").read_text())[
        "tensors"
    ]
    return rows


def _loaded(out: Path) -> dict[str, tuple[list[int], bytes]]:
    """(shape, bytes) of every tensor, as the safetensors library reads them."""
    tensors: dict[str, tuple[list[int], bytes]] = {}
    for f in sorted(out.glob("*.safetensors")):
        read_local_header(f)  # paramtool's strict parser takes it too
        for name, t in safetensors.deserialize(f.read_bytes()):
            tensors[name] = (list(t["shape"]), bytes(t["data"]))
        if "F8" not in f.read_bytes()[:4096].decode("latin1"):  # numpy has no float8 here
            safetensors.numpy.load_file(f)
    return tensors


def _check_against_truth(out: Path, truth: dict[str, dict[str, object]], ties: dict[str, str]):
    loaded = _loaded(out)
    assert sorted(loaded) == sorted(n for n in truth if n not in ties)
    for name, row in truth.items():
        shape, data = loaded[ties.get(name, name)]
        assert shape == row["shape"], name
        assert hashlib.sha256(data).hexdigest() == row["sha256"], name


@pytest.mark.parametrize("name", ["state_zip.pt", "state_legacy.pt"])
def test_state_dict_round_trips_to_torch_truth(tmp_path: Path, name: str) -> None:
    r = paramtool.convert(FIXTURES / name, tmp_path / "out")
    assert [t.name for t in r.ties] == ["lm_head.weight"]
    assert r.ties[0].kept == "embed.weight"  # the first name, as save_pretrained keeps
    assert {t.name for t in r.tensors if t.gathered} == {"col"}  # the strided view
    ties = {"lm_head.weight": "embed.weight"}
    _check_against_truth(tmp_path / "out", _truth(FIXTURES / name), ties)
    (f,) = r.files
    assert f.path == str(tmp_path / "out" / "model.safetensors")
    assert f.sha256 == hashlib.sha256(Path(f.path).read_bytes()).hexdigest()
    assert f.size == os.path.getsize(f.path)
    header = read_local_header(f.path)
    assert dict(header.metadata) == {"format": "pt"}
    assert r.index is None and not list((tmp_path / "out").glob(".*"))  # no temp files left


def test_same_bytes_as_the_safetensors_writer(tmp_path: Path) -> None:
    """The file is byte for byte what safetensors.numpy.save_file writes for those tensors
    (F32, BF16, F16, I64, BOOL: its dtype order, header padding and metadata)."""
    paramtool.convert(FIXTURES / "state_legacy.pt", tmp_path)
    written = tmp_path / "model.safetensors"
    tensors = safetensors.numpy.load_file(written)
    safetensors.numpy.save_file(tensors, tmp_path / "ref.safetensors", metadata={"format": "pt"})
    assert written.read_bytes() == (tmp_path / "ref.safetensors").read_bytes()


def test_digests_match_paramtool_hash(tmp_path: Path) -> None:
    r = paramtool.convert(LLAMA, tmp_path, max_shard_size="2KB")
    h = paramtool.digest(tmp_path)
    assert h.weights_digest == r.weights_digest
    assert {f.path: f.sha256 for f in h.files} == {f.path: f.sha256 for f in r.files}


def test_sharded_transformers_checkpoint(tmp_path: Path) -> None:
    truth: dict[str, dict[str, object]] = {}
    for shard in sorted(LLAMA.glob("*.bin")):
        truth.update(_truth(shard))
    r = paramtool.convert(LLAMA, tmp_path, max_shard_size="2KB")
    assert [(t.name, t.kept) for t in r.ties] == [("lm_head.weight", "model.embed_tokens.weight")]
    _check_against_truth(tmp_path, truth, {"lm_head.weight": "model.embed_tokens.weight"})
    n = len(r.files)
    assert n > 1 and [Path(f.path).name for f in r.files] == [
        f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)
    ]
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    sizes = {t.name: t for t in r.tensors}
    assert index["metadata"]["total_size"] == r.total_size
    assert set(index["weight_map"]) == set(sizes)
    for name, file in index["weight_map"].items():
        assert name in safetensors.numpy.load_file(tmp_path / file)  # type: ignore[operator]
    for f in r.files:  # each shard's tensors within the limit, or one tensor alone
        header = read_local_header(f.path)
        assert header.data_size <= 2000 or len(header.tensors) == 1


def test_unsharded_by_default_and_shard_files_listed(tmp_path: Path) -> None:
    shards = sorted(str(p) for p in LLAMA.glob("*.bin"))
    r = paramtool.convert(shards, tmp_path)
    assert [Path(f.path).name for f in r.files] == ["model.safetensors"]
    assert not (tmp_path / "model.safetensors.index.json").exists()


def test_lightning_checkpoint_prefix_and_all(tmp_path: Path) -> None:
    truth = _truth(FIXTURES / "lightning.ckpt")
    r = paramtool.convert(FIXTURES / "lightning.ckpt", tmp_path / "sd", prefix="state_dict")
    loaded = _loaded(tmp_path / "sd")
    assert sorted(loaded) == ["model.bias", "model.weight"]
    for name, (_, data) in loaded.items():
        sha = hashlib.sha256(data).hexdigest()
        assert sha == truth[f"state_dict.{name}"]["sha256"]
    assert "epoch" in r.skipped
    everything = paramtool.convert(FIXTURES / "lightning.ckpt", tmp_path / "all")
    assert {t.name for t in everything.tensors} == set(truth)  # optimizer state too


def test_run_by_run_copy_of_strided_views(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cv, "RUN_BYTES", 1)
    paramtool.convert(FIXTURES / "state_zip.pt", tmp_path)
    _check_against_truth(
        tmp_path, _truth(FIXTURES / "state_zip.pt"), {"lm_head.weight": "embed.weight"}
    )


def test_strided_view_over_the_gather_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cv, "GATHER_BYTES", 8)
    with pytest.raises(ParamtoolError, match="strided view.*contiguous"):
        paramtool.convert(FIXTURES / "state_zip.pt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


class _Boom:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _evil_zip(path: Path, marker: Path) -> None:
    """A torch-style zip whose data.pkl calls os.system."""
    payload = pickle.dumps({"w": _Boom(str(marker))}, protocol=2)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    path.write_bytes(buf.getvalue())


def test_unsafe_pickle_refused_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    _evil_zip(evil, marker)
    r = cli("convert", str(evil), str(tmp_path / "out"))
    line = error_line(r, "unsafe pickle", "system")
    assert "not converted" in line
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_existing_output_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    paramtool.convert(LLAMA, out, max_shard_size="2KB")
    r = cli("convert", str(LLAMA), str(out))
    error_line(r, "already exists", "--force")
    doc = cli_json("convert", str(LLAMA), str(out), "--force")
    assert [Path(f["path"]).name for f in doc["files"]] == ["model.safetensors"]
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]  # stale shards gone
    assert doc["files"][0]["sha256"] == file_sha256(out / "model.safetensors")
    assert doc["ties"] == [{"name": "lm_head.weight", "kept": "model.embed_tokens.weight"}]


def test_table_output(tmp_path: Path) -> None:
    r = cli("convert", str(FIXTURES / "state_zip.pt"), str(tmp_path))
    assert r.exit_code == 0, r.stderr
    sha = file_sha256(tmp_path / "model.safetensors")
    assert sha in r.stdout and "weights digest" in r.stdout and "tied: lm_head.weight" in r.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["{fx}/state_zip.pt"], ["SOURCE... OUT"]),
        (["{tmp}/missing.pt", "{tmp}/out"], ["missing.pt"]),
        (["{fx}/state_zip.pt", "{tmp}/o", "--max-shard-size", "5XB"], ["--max-shard-size"]),
        (["{fx}/state_zip.pt", "{tmp}/o", "--max-shard-size", "0"], ["--max-shard-size"]),
        (["{fx}/lightning.ckpt", "{tmp}/o", "--prefix", "nope"], ["no tensor named nope"]),
        (["{fx}/state_zip.pt", "{fx}/state_zip.pt", "{tmp}/o"], ["also in"]),
        (["{tmp}", "{tmp}/o"], ["no PyTorch checkpoint"]),
        (["{fx}/state_zip.pt", "{fx}/state_zip.pt.truth.json"], ["not a folder"]),
    ],
)
def test_one_line_errors(tmp_path: Path, args: list[str], words: list[str]) -> None:
    argv = [a.format(fx=FIXTURES, tmp=tmp_path) for a in args]
    error_line(cli("convert", *argv), *words)
    assert not (tmp_path / "o").exists()


def test_big_endian_refused(tmp_path: Path) -> None:
    src = tmp_path / "be.pt"
    with zipfile.ZipFile(FIXTURES / "state_zip.pt") as zin, zipfile.ZipFile(src, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            zout.writestr(item, b"big" if item.filename.endswith("/byteorder") else data)
    with pytest.raises(ParamtoolError, match="byte order 'big'"):
        paramtool.convert(src, tmp_path / "out")
