"""PyTorch distributed checkpoints (``.metadata`` + ``.distcp``), read without unpickling.

The fixtures were written by ``torch.distributed.checkpoint.save`` (one process, and two
gloo processes for ``dcp_sharded``); their ``truth.json`` is what torch says of them
(``tests/fixtures/torch/make_dcp_fixtures.py``). Hostile variants are built here from their
bytes, and each is checked to be reported, never executed.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import paramtool
from helpers import cli, cli_json, error_line
from paramtool.sources.weights import WeightPick, pick_weights

FIXTURES = Path(__file__).parent / "fixtures" / "torch"
SCHEMAS = Path(__file__).parent.parent / "docs" / "schemas"
NAMES = ["dcp_state", "dcp_llama", "dcp_sharded"]


def _truth(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name / "truth.json").read_text())
    return data


def _valid(command: str, doc: Any) -> None:
    schema = json.loads((SCHEMAS / f"{command}.schema.json").read_text())
    errs = [e.message for e in Draft202012Validator(schema).iter_errors(doc)]
    assert not errs, errs[:3]


def _copy(tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    shutil.copytree(FIXTURES / name, out)
    (out / "truth.json").unlink()
    return out


@pytest.mark.parametrize("name", NAMES)
def test_names_dtypes_shapes_and_parameters_are_torchs(name: str) -> None:
    truth = _truth(name)
    ck = paramtool.open_checkpoint(str(FIXTURES / name))
    got = {t.name: (t.dtype, list(t.shape), t.parameters) for t in ck.tensors}
    want = {n: (t["dtype"], t["shape"], t["numel"]) for n, t in truth["tensors"].items()}
    assert got == want
    assert ck.total_parameters == truth["parameters"]
    assert ck.format == "pickle"
    (f,) = ck.files
    assert f.pickle is not None and f.pickle.container == "dcp"
    assert f.pickle.verdict == "plain state dict"


@pytest.mark.parametrize("name", NAMES)
def test_spans_and_bytes_are_the_chunks_torch_recorded(name: str) -> None:
    truth = _truth(name)
    folder = FIXTURES / name
    ck = paramtool.open_checkpoint(str(folder))
    stored = 0
    for t in ck.tensors:
        chunks = truth["tensors"][t.name]["chunks"]
        first = chunks[0]
        assert (t.file, t.start, t.end) == (
            str(folder / first["file"]),
            first["offset"],
            first["offset"] + first["length"],
        )
        assert t.stored_bytes == sum(c["length"] for c in chunks)
        stored += t.stored_bytes
    assert ck.tensor_bytes == stored
    on_disk = sum(p.stat().st_size for p in folder.iterdir() if p.name != "truth.json")
    on_disk -= (folder / "config.json").stat().st_size if (folder / "config.json").exists() else 0
    assert ck.file_bytes == on_disk


def test_a_sharded_tensor_spans_both_ranks_files() -> None:
    truth = _truth("dcp_sharded")
    files = {c["file"] for c in truth["tensors"]["embed.weight"]["chunks"]}
    assert files == {"__0_0.distcp", "__1_0.distcp"}
    ck = paramtool.open_checkpoint(str(FIXTURES / "dcp_sharded"))
    embed = next(t for t in ck.tensors if t.name == "embed.weight")
    assert embed.shape == (6, 4)  # the full tensor, not one rank's rows


@pytest.mark.parametrize("name", ["dcp_state", "dcp_sharded"])
def test_non_tensor_entries_are_listed_with_their_kinds(name: str) -> None:
    truth = _truth(name)
    doc = cli_json("inspect", str(FIXTURES / name))
    _valid("inspect", doc)
    p = doc["files"][0]["pickle"]
    assert p["format"] == "dcp" and p["verdict"] == "plain state dict"
    assert sorted(p["other_entries"]["names"]) == sorted(truth["others"])
    kinds: dict[str, int] = {}
    for kind in truth["others"].values():  # Python type names: int, float, str, list
        kinds[kind] = kinds.get(kind, 0) + 1
    assert p["other_entries"]["kinds"] == kinds
    assert doc["total_parameters"] == truth["parameters"]


def test_the_metadata_file_itself_reads_as_its_folder() -> None:
    folder = FIXTURES / "dcp_llama"
    a = cli_json("inspect", str(folder))
    b = cli_json("inspect", str(folder / ".metadata"))
    for doc in (a, b):
        doc.pop("source")
    assert a == b
    assert a["model"]["model_type"] == "llama" and a["model"]["layers"] == 2  # its config.json


def test_footprint_fit_and_check() -> None:
    folder = str(FIXTURES / "dcp_llama")
    params = _truth("dcp_llama")["parameters"]
    fp = cli_json("footprint", folder)
    _valid("footprint", fp)
    assert fp["parameters"] == params
    _valid("fit", cli_json("fit", folder, "--gpu", "H100"))
    r = cli("check", folder, "--no-unsafe-pickle", "--max-params", str(params))
    assert r.exit_code == 0, r.stdout
    doc = cli_json("check", folder, "--safetensors-only", code=1)
    _valid("check", doc)
    assert [f["status"] for f in doc["rules"]] == ["fail"]


def test_data_files_are_only_looked_at(tmp_path: Path) -> None:
    """Tensor bytes are never read: zeroing the data file changes nothing."""
    folder = _copy(tmp_path, "dcp_llama")
    before = cli_json("inspect", str(folder))
    data = folder / "__0_0.distcp"
    data.write_bytes(b"\0" * data.stat().st_size)
    assert cli_json("inspect", str(folder)) == before


@pytest.mark.parametrize("command", ["stats", "hash"])
def test_values_are_refused_in_one_line(command: str) -> None:
    error_line(cli(command, str(FIXTURES / "dcp_state")), "distributed checkpoint")


def test_the_folder_rule() -> None:
    assert pick_weights([".metadata", "__0_0.distcp"]) == WeightPick("pickle", (".metadata",))
    assert pick_weights([".metadata", "__0_0.distcp", "model.safetensors"]).kind == "safetensors"
    assert pick_weights([".metadata", "pytorch_model.bin"]).files == ("pytorch_model.bin",)


# --- hostile folders: reported, never executed -------------------------------------------


def _refit_frame(data: bytes) -> bytes:
    """A protocol-4 pickle of one frame, its FRAME length set to what follows it."""
    assert data[2] == 0x95
    return data[:3] + struct.pack("<Q", len(data) - 11) + data[11:]


def _sbu(s: str) -> bytes:
    raw = s.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def test_os_system_in_metadata_is_named_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    folder = _copy(tmp_path, "dcp_state")
    meta = folder / ".metadata"
    data = meta.read_bytes()
    version = _sbu("1.0.0") + b"\x94"
    assert data.count(version) == 1
    evil = _sbu("posix") + _sbu("system") + b"\x93" + _sbu(f"touch {marker}") + b"\x85R\x94"
    data = _refit_frame(data.replace(version, evil))
    meta.write_bytes(data)
    doc = cli_json("inspect", str(folder))
    _valid("inspect", doc)
    p = doc["files"][0]["pickle"]
    assert p["verdict"] == "unsafe"
    assert [g["name"] for g in p["unsafe_globals"]] == ["posix.system"]
    assert data[p["unsafe_globals"][0]["offset"]] == 0x93  # the STACK_GLOBAL opcode
    assert doc["total_parameters"] == _truth("dcp_state")["parameters"]  # still inventoried
    r = cli("check", str(folder), "--no-unsafe-pickle")
    assert r.exit_code == 1 and "posix.system at byte" in r.stdout, r.stdout
    assert not marker.exists()


def test_a_whole_metadata_reduce_is_unsafe(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "__0_0.distcp").write_bytes(b"")
    data = b"\x80\x04" + _sbu("os") + _sbu("system") + b"\x93" + _sbu(f"touch {marker}") + b"\x85R."
    (folder / ".metadata").write_bytes(data)
    doc = cli_json("inspect", str(folder))
    p = doc["files"][0]["pickle"]
    assert p["verdict"] == "unsafe" and [g["name"] for g in p["unsafe_globals"]] == ["os.system"]
    assert doc["total_parameters"] == 0
    assert cli("check", str(folder), "--no-unsafe-pickle").exit_code == 1
    assert not marker.exists()


def test_os_system_in_a_non_tensor_entry_is_named(tmp_path: Path) -> None:
    """DCP's loader torch.load()s each non-tensor entry: those pickles are judged too."""
    from paramtool.sources.distcp import _read_metadata

    marker = tmp_path / "pwned"
    folder = _copy(tmp_path, "dcp_state")
    md, _ = _read_metadata(folder / ".metadata", "x")
    step = next(e for e in md.entries if e.name == "step")
    evil = b"\x80\x04" + _sbu("posix") + _sbu("system") + b"\x93" + _sbu(f"touch {marker}")
    evil += b"\x85R."
    assert len(evil) <= step.length
    data = bytearray((folder / step.file).read_bytes())
    data[step.offset : step.offset + len(evil)] = evil
    (folder / step.file).write_bytes(bytes(data))
    p = cli_json("inspect", str(folder))["files"][0]["pickle"]
    assert p["verdict"] == "unsafe"
    (g,) = p["unsafe_globals"]
    assert g["name"] == "posix.system" and data[g["offset"]] == 0x93  # in the data file
    assert cli("check", str(folder), "--no-unsafe-pickle").exit_code == 1
    assert not marker.exists()


def _mutate(folder: Path, old: bytes, new: bytes) -> None:
    meta = folder / ".metadata"
    data = meta.read_bytes()
    assert data.count(old) == 1 and len(old) == len(new)
    meta.write_bytes(data.replace(old, new))


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("size", ["layer.weight", "elements"]),  # chunks no longer tile the tensor
        ("no-length", ["storage length"]),
        ("path", ["not a file name"]),
        ("missing", ["__0_0.distcp", "missing"]),
        ("short", ["run past the end"]),
        ("plain-dict", ["Metadata"]),
    ],
)
@pytest.mark.parametrize("command", ["inspect", "footprint"])
def test_broken_folders_are_one_error_line(
    tmp_path: Path, case: str, words: list[str], command: str
) -> None:
    folder = _copy(tmp_path, "dcp_state")
    data = folder / "__0_0.distcp"
    if case == "size":  # layer.weight's size (4, 6) -> (4, 7); its one chunk stays (4, 6)
        meta = (folder / ".metadata").read_bytes()
        at = meta.index(_sbu("size"))
        size = meta.index(b"K\x04K\x06\x86", at)
        (folder / ".metadata").write_bytes(meta[:size] + b"K\x04K\x07\x86" + meta[size + 5 :])
    elif case == "no-length":
        _mutate(folder, _sbu("length"), _sbu("lengtX"))
    elif case == "path":
        _mutate(folder, _sbu("__0_0.distcp"), _sbu("/etc//passwd"))
    elif case == "missing":
        data.unlink()
    elif case == "short":
        data.write_bytes(data.read_bytes()[:-10])
    else:
        (folder / ".metadata").write_bytes(b"\x80\x04}\x94(\x8c\x01a\x94K\x01u.")  # {"a": 1}
    target = folder / ".metadata" if case == "missing" else folder  # the rule needs a .distcp
    error_line(cli(command, str(target)), ".metadata", *words)


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999])
def test_truncated_metadata_is_one_error_line(tmp_path: Path, fraction: float) -> None:
    folder = _copy(tmp_path, "dcp_state")
    meta = folder / ".metadata"
    data = meta.read_bytes()
    meta.write_bytes(data[: int(len(data) * fraction)])
    error_line(cli("inspect", str(folder)), ".metadata")


def test_an_oversized_metadata_is_refused_unread(tmp_path: Path) -> None:
    from paramtool.formats.torch_pickle import MAX_PICKLE_BYTES

    folder = _copy(tmp_path, "dcp_state")
    with open(folder / ".metadata", "r+b") as f:
        f.truncate(MAX_PICKLE_BYTES + 1)  # sparse: nothing is written
    error_line(cli("inspect", str(folder)), ".metadata", "larger than")
    assert os.path.getsize(folder / ".metadata") == MAX_PICKLE_BYTES + 1
