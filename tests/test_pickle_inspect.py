"""Pickled PyTorch checkpoints through every command that takes a checkpoint, never unpickled.

Expected values come from torch's own truth beside each fixture (tests/fixtures/torch/,
written by torch 2.13 and transformers 4.57); malicious pickles are built here.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import paramtool
from helpers import cli, cli_json, error_line
from paramtool import dtypes

FIXTURES = Path(__file__).parent / "fixtures" / "torch"
LLAMA = FIXTURES / "tiny_llama_bin"
SCHEMAS = Path(__file__).parent.parent / "docs" / "schemas"


def _truth(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_name(path.name + ".truth.json").read_text())
    return data


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _valid(command: str, doc: Any) -> None:
    schema = json.loads((SCHEMAS / f"{command}.schema.json").read_text())
    errs = [e.message for e in Draft202012Validator(schema).iter_errors(doc)]
    assert not errs, errs[:3]


@pytest.mark.parametrize("name", ["state_zip.pt", "state_legacy.pt"])
def test_names_dtypes_shapes_and_parameters_are_torchs(name: str) -> None:
    truth = _truth(FIXTURES / name)
    ck = paramtool.open_checkpoint(str(FIXTURES / name))
    got = {t.name: (t.dtype, list(t.shape)) for t in ck.tensors}
    want = {n: (t["dtype"], t["shape"]) for n, t in truth["tensors"].items()}
    assert got == want
    assert ck.total_parameters == truth["parameters"]
    assert ck.format == "pickle"


@pytest.mark.parametrize("name", ["state_zip.pt", "state_legacy.pt"])
def test_tied_storages_count_their_bytes_once(name: str) -> None:
    truth = _truth(FIXTURES / name)
    ins = paramtool.inspect(str(FIXTURES / name))
    assert ins.total_bytes == truth["storage_bytes"]  # each storage once
    assert ins.total_parameters == truth["parameters"]  # each tensor its own
    doc = ins.to_dict(tensors=True)
    rows = {r["name"]: r for r in doc["tensors"]}
    for group in truth["shared"]:
        counted = [n for n in group if rows[n]["bytes"]]
        assert len(counted) == 1, group
    assert sum(r["bytes"] for r in doc["tensors"]) == truth["storage_bytes"]


def test_byte_spans_are_the_storages_bytes_in_the_file() -> None:
    # An untied, contiguous tensor: its span is its storage's zip entry.
    path = FIXTURES / "state_zip.pt"
    truth = _truth(path)["tensors"]
    ck = paramtool.open_checkpoint(str(path))
    t = next(t for t in ck.tensors if t.name == "layer.weight")
    with zipfile.ZipFile(path) as z:
        (info,) = [i for i in z.infolist() if i.filename.endswith("/data/0")] or [None]
        raw = path.read_bytes()
        esize = dtypes.lookup(t.dtype).nbytes(1)
        assert t.end - t.start == _numel(truth["layer.weight"]["shape"]) * esize
        if info is not None and info.file_size == t.end - t.start:
            assert raw[t.start : t.end] == z.read(info)


def test_lightning_prefix_is_taken_off_and_training_state_is_listed_not_counted() -> None:
    path = FIXTURES / "lightning.ckpt"
    truth = _truth(path)
    model = {n: t for n, t in truth["tensors"].items() if n.startswith("state_dict.")}
    doc = cli_json("inspect", str(path), "--tensors")
    _valid("inspect", doc)
    assert {r["name"] for r in doc["tensors"]} == {n.removeprefix("state_dict.") for n in model}
    assert doc["total_parameters"] == sum(_numel(t["shape"]) for t in model.values())
    p = doc["files"][0]["pickle"]
    assert p["verdict"] == "plain state dict" and p["format"] == "zip"
    assert p["prefix"] == "state_dict."
    aside = [n for n in truth["tensors"] if n not in model]
    assert p["other_entries"]["kinds"]["tensor"] == len(aside)
    assert set(aside) <= set(p["other_entries"]["names"])
    assert {"epoch", "global_step"} <= set(p["other_entries"]["names"])
    r = cli("inspect", str(path))
    assert "plain state dict" in r.stdout and "not counted as parameters" in r.stdout


# --- the sharded transformers checkpoint ------------------------------------------------


def _shard_truths() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in sorted(LLAMA.glob("*.bin")):
        out.update(_truth(p)["tensors"])
    return out


def test_sharded_bin_inspect_anatomy_and_index() -> None:
    truth = _shard_truths()
    doc = cli_json("inspect", str(LLAMA), "--tensors")
    _valid("inspect", doc)
    assert {r["name"]: r["shape"] for r in doc["tensors"]} == {
        n: t["shape"] for n, t in truth.items()
    }
    assert doc["total_parameters"] == sum(_numel(t["shape"]) for t in truth.values())
    storage = sum(_truth(p)["storage_bytes"] for p in LLAMA.glob("*.bin"))
    assert doc["total_bytes"] == storage
    index = json.loads((LLAMA / "pytorch_model.bin.index.json").read_text())
    assert doc["total_bytes"] == index["metadata"]["total_size"]
    assert doc["warnings"] == []
    cats = {r["name"]: r["category"] for r in doc["tensors"]}
    assert cats["model.embed_tokens.weight"] == "embedding"
    assert cats["model.layers.0.self_attn.q_proj.weight"] == "attention"
    assert cats["model.layers.1.mlp.down_proj.weight"] == "feed_forward"
    assert cats["model.norm.weight"] == "norm"
    assert doc["format"] == "pickle" and len(doc["files"]) == 4
    assert doc["index"]["path"].endswith("pytorch_model.bin.index.json")


def test_sharded_bin_footprint_fit_and_check() -> None:
    truth = _shard_truths()
    params = sum(_numel(t["shape"]) for t in truth.values())
    fp = cli_json("footprint", str(LLAMA))
    _valid("footprint", fp)
    assert fp["parameters"] == params
    fit = cli_json("fit", str(LLAMA), "--gpu", "H100")
    _valid("fit", fit)
    r = cli("check", str(LLAMA), "--no-unsafe-pickle", "--max-params", str(params))
    assert r.exit_code == 0, r.stdout
    doc = cli_json("check", str(LLAMA), "--safetensors-only", "--max-params", "1", code=1)
    _valid("check", doc)
    status = {f["name"]: f["status"] for f in doc["rules"]}
    assert status == {"max_params": "fail", "safetensors_only": "fail"}


def test_a_mixed_folder_prefers_safetensors_and_says_so(tmp_path: Path) -> None:
    from layouts import make_checkpoint

    folder = tmp_path / "m"
    folder.mkdir()
    make_checkpoint(folder / "model.safetensors", {"w": ("F32", (2, 2))})
    shutil.copy(FIXTURES / "state_zip.pt", folder / "pytorch_model.bin")
    doc = cli_json("inspect", str(folder))
    assert doc["format"] == "safetensors" and doc["total_parameters"] == 4
    assert any("pytorch_model.bin" in w and "safetensors" in w for w in doc["warnings"])
    only = tmp_path / "p"
    only.mkdir()
    shutil.copy(FIXTURES / "state_zip.pt", only / "model.pt")
    doc = cli_json("inspect", str(only))
    assert doc["total_parameters"] == _truth(FIXTURES / "state_zip.pt")["parameters"]


# --- malicious pickles: reported, never executed ----------------------------------------


class _System:
    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.cmd,))


def _evil_zip(tmp_path: Path, marker: Path) -> Path:
    """state_zip.pt with its data.pkl replaced: a tensor beside an os.system call."""
    src = FIXTURES / "state_zip.pt"
    out = tmp_path / "evil.pt"
    plain = pickle.dumps({"extra": _System(f"touch {marker}")}, protocol=2)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = plain if info.filename.endswith("/data.pkl") else zin.read(info)
            zout.writestr(info.filename, data)
    return out


def test_an_unsafe_pickle_is_inventoried_and_named(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.bin"
    path.write_bytes(pickle.dumps({"w": _System(f"touch {marker}"), "epoch": 3}, protocol=4))
    doc = cli_json("inspect", str(path))
    _valid("inspect", doc)
    p = doc["files"][0]["pickle"]
    system = f"{os.system.__module__}.system"  # posix.system
    assert p["verdict"] == "unsafe"
    assert [g["name"] for g in p["unsafe_globals"]] == [system]
    assert path.read_bytes()[p["unsafe_globals"][0]["offset"]] in b"c\x93"  # GLOBAL opcodes
    r = cli("inspect", str(path))
    assert f"UNSAFE: {system} at byte" in r.stdout
    zipped = _evil_zip(tmp_path, marker)
    p = cli_json("inspect", str(zipped))["files"][0]["pickle"]
    assert p["verdict"] == "unsafe" and [g["name"] for g in p["unsafe_globals"]] == [system]
    assert not marker.exists()


def test_no_unsafe_pickle_fails_naming_the_globals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "pwned"
    path = _evil_zip(tmp_path, marker)
    r = cli("check", str(path), "--no-unsafe-pickle")
    assert r.exit_code == 1, r.stdout
    assert f"{os.system.__module__}.system at byte" in r.stdout
    doc = cli_json("check", str(path), "--no-unsafe-pickle", code=1)
    _valid("check", doc)
    (f,) = doc["rules"]
    assert f["status"] == "fail" and f["measured"][0]["global"].endswith(".system")
    clean = FIXTURES / "state_zip.pt"
    assert cli("check", str(clean), "--no-unsafe-pickle").exit_code == 0
    (tmp_path / "paramtool.toml").write_text("[check]\nno_unsafe_pickle = true\n")
    monkeypatch.chdir(tmp_path)
    r = cli("check", str(path))
    assert r.exit_code == 1 and "no_unsafe_pickle" in r.stdout, r.stdout
    assert not marker.exists()


@pytest.mark.parametrize(
    "data",
    [
        b"PK\x03\x04" + b"\x00" * 40,  # a zip without a directory
        b"\x80\x04\x95",  # a truncated pickle
        b"\x80\x02}q\x00(X\x01\x00\x00\x00a",  # a truncated dict
        b"\x80\x02" + b"(" * 500 + b".",  # MARKs too deep
    ],
)
@pytest.mark.parametrize("command", ["inspect", "footprint", "check"])
def test_hostile_bytes_are_one_error_line(tmp_path: Path, data: bytes, command: str) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    rules = ["--max-params", "1"] if command == "check" else []
    error_line(cli(command, str(path), *rules), "model.pt")


def test_values_of_pickles_are_read() -> None:  # against torch's truth: test_pickle_values.py
    r = cli("stats", str(FIXTURES / "state_zip.pt"))
    assert r.exit_code == 0 and r.stderr == ""
