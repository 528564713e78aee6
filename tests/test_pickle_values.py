"""``stats``, ``hash`` and ``diff`` of pickled PyTorch checkpoints, read without torch.

Expected values come from torch itself: the truth beside each fixture
(tests/fixtures/torch/*.truth.json, make_torch_fixtures.py) holds, per tensor, the SHA-256
of its bytes as ``t.contiguous()`` holds them, its tensor digest (BLAKE3 over the same bytes,
by the blake3 package) and torch's own statistics. Strided views are
also checked against numpy's ``ascontiguousarray``; hostile files are built here, and never
executed (a marker file that must not appear).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import pytest

import paramtool
from helpers import cli, error_line, strict_json
from paramtool.errors import MetadataIncompleteBuffer, ParamtoolError
from paramtool.records import Checkpoint
from paramtool.sources.pickled import read_pickle_header
from paramtool.values import views
from paramtool.values.reader import Files, tensor_spans
from paramtool.values.stats import compute_stats

FIXTURES = Path(__file__).parent / "fixtures" / "torch"
SINGLE = ["state_zip.pt", "state_legacy.pt", "lightning.ckpt"]
SHARDED = FIXTURES / "tiny_llama_bin"
ALL = [*SINGLE, "tiny_llama_bin"]
TIES = {  # names convert does not write again: the same view of one storage
    "state_zip.pt": {"lm_head.weight": "embed.weight"},
    "state_legacy.pt": {"lm_head.weight": "embed.weight"},
    "lightning.ckpt": {},
    "tiny_llama_bin": {"lm_head.weight": "model.embed_tokens.weight"},
}


def _truth(name: str) -> dict[str, dict[str, Any]]:
    """torch's rows by the names paramtool gives (Lightning's ``state_dict.`` taken off)."""
    paths = sorted(SHARDED.glob("*.bin")) if name == "tiny_llama_bin" else [FIXTURES / name]
    rows: dict[str, dict[str, Any]] = {}
    for p in paths:
        doc = json.loads(Path(f"{p}.truth.json").read_text())
        for n, row in doc["tensors"].items():
            if name == "lightning.ckpt":
                if not n.startswith("state_dict."):
                    continue  # optimizer state: an entry, not a model tensor
                n = n[len("state_dict.") :]
            rows[n] = row
    return rows


def _digest(dtype: str, shape: list[int], data: bytes) -> str:
    """The documented tensor digest: blake3(dtype NUL json(shape) NUL bytes)."""
    prefix = dtype.encode() + b"\0" + json.dumps(shape, separators=(",", ":")).encode() + b"\0"
    return blake3.blake3(prefix + data).hexdigest()


def _weights(pairs: dict[str, str]) -> str:
    """The documented weights digest: sha256 of the sorted [name, digest] pairs as JSON."""
    doc = json.dumps(sorted([n, d] for n, d in pairs.items()), separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


def _values(ck: Checkpoint, chunk: int = 1 << 18) -> dict[str, bytes]:
    """Each tensor's bytes, in C order, as the streaming reader hands them out."""
    out: dict[str, bytes] = {}
    with Files() as files:
        for f in ck.files:
            for t in f.tensors:
                parts = [
                    bytes(files.read(s, bytearray(s.nbytes))) for s in tensor_spans(0, f, t, chunk)
                ]
                out[t.name] = b"".join(parts)
    return out


def _source(name: str) -> Path:
    return SHARDED if name == "tiny_llama_bin" else FIXTURES / name


# ---------------------------------------------------------------- against torch's truth


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("chunk", [1 << 18, 3])
def test_reader_gives_torch_bytes(name: str, chunk: int) -> None:
    truth = _truth(name)
    values = _values(paramtool.open_checkpoint(_source(name)), chunk)
    assert sorted(values) == sorted(truth)
    for n, data in values.items():
        assert hashlib.sha256(data).hexdigest() == truth[n]["sha256"], n


@pytest.mark.parametrize("name", ALL)
def test_hash_digests_are_torch_bytes(name: str) -> None:
    truth = _truth(name)
    report = paramtool.digest(_source(name))
    values = _values(report.checkpoint)
    got = {t.name: t.digest for t in report.tensors}
    assert sorted(got) == sorted(truth)
    for n, row in truth.items():
        assert hashlib.sha256(values[n]).hexdigest() == row["sha256"]
        assert got[n] == _digest(row["dtype"], row["shape"], values[n]) == row["blake3"], n
    assert report.weights_digest == _weights(got)
    for f in report.files:  # the whole file, as sha256sum and the Hub's LFS record
        assert f.sha256 == hashlib.sha256(Path(f.path).read_bytes()).hexdigest()
        assert f.size == os.path.getsize(f.path)


def test_strided_view_and_ties_each_read_their_own_values() -> None:
    truth = _truth("state_zip.pt")
    report = paramtool.digest(FIXTURES / "state_zip.pt")
    ck = report.checkpoint
    col = next(t for t in ck.tensors if t.name == "col")
    assert col.strides == (4,) and truth["col"]["strides"] == [4]  # base[:, 2]
    assert all(t.strides is None for t in ck.tensors if t.name != "col")
    got = {t.name: t.digest for t in report.tensors}
    assert got["embed.weight"] == got["lm_head.weight"]  # tied: the same values, each named
    assert len({got["base"], got["row"], got["col"]}) == 3  # three views of one storage


def test_run_by_run_gather_gives_torch_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views, "RUN_BYTES", 1)
    truth = _truth("state_zip.pt")
    values = _values(paramtool.open_checkpoint(FIXTURES / "state_zip.pt"), 2)
    assert hashlib.sha256(values["col"]).hexdigest() == truth["col"]["sha256"]


@pytest.mark.parametrize("name", ALL)
def test_stats_equal_torch_figures(name: str) -> None:
    truth = _truth(name)
    report = paramtool.stats(_source(name))
    assert {t.tensor.name for t in report.tensors} == set(truth)
    for t in report.tensors:
        want = truth[t.tensor.name]["stats"]
        s = t.summary
        assert s.count == int(np.prod(truth[t.tensor.name]["shape"]))
        assert (s.nan, s.posinf, s.neginf, s.zeros) == (
            want["nan"],
            want["posinf"],
            want["neginf"],
            want["zeros"],
        ), t.tensor.name
        assert (s.min, s.max) == (want["min"], want["max"]), t.tensor.name
        assert s.mean == pytest.approx(want["mean"], rel=1e-6, abs=1e-9), t.tensor.name


def test_stats_json_of_a_pickle() -> None:
    r = cli("stats", str(FIXTURES / "state_zip.pt"), "--json")
    assert r.exit_code == 0 and r.stderr == ""
    doc = strict_json(r.stdout)
    rows = {t["name"]: t for t in doc["tensors"]}
    truth = _truth("state_zip.pt")
    assert set(rows) == set(truth)
    assert rows["scale"]["shape"] == [] and rows["scale"]["min"] == 0.5  # 0-dim
    assert rows["fp8"]["dtype"] == "F8_E4M3" and rows["fp8"]["max"] == truth["fp8"]["stats"]["max"]
    assert rows["steps"]["min"] == 1 and isinstance(rows["steps"]["min"], int)
    assert doc["total"]["count"] == sum(int(np.prod(t["shape"])) for t in truth.values())


def test_nan_and_inf_in_a_tied_storage(tmp_path: Path) -> None:
    src = FIXTURES / "state_zip.pt"
    out = tmp_path / "nan.pt"
    with zipfile.ZipFile(src) as z:
        pkl = next(i for i in z.infolist() if i.filename.endswith("data.pkl"))
        assert pkl.compress_type == zipfile.ZIP_STORED
        # embed.weight (tied to lm_head.weight) is storage 0; its local header says where.
        info = z.getinfo("state_zip/data/0")
    raw = bytearray(src.read_bytes())
    name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
    at = info.header_offset + 30 + name_len + extra_len
    raw[at : at + 12] = np.array([np.nan, np.inf, -np.inf], dtype="<f4").tobytes()
    out.write_bytes(bytes(raw))  # the zip's CRC no longer matches: paramtool does not care
    report = paramtool.stats(out)
    rows = {t.tensor.name: t.summary for t in report.tensors}
    for n in ("embed.weight", "lm_head.weight"):
        s = rows[n]
        assert (s.nan, s.posinf, s.neginf, s.finite, s.count) == (1, 1, 1, 29, 32)
    assert report.total.nan == 2
    d = paramtool.diff(src, out)
    changed = {t.name: t for t in d.tensors if not t.identical}
    assert set(changed) == {"embed.weight", "lm_head.weight"}
    assert changed["embed.weight"].changed == 3 and changed["embed.weight"].nonfinite == 3


# ---------------------------------------------------------------- the same as converted


@pytest.mark.parametrize("name", ALL)
def test_hash_of_pickle_equals_hash_of_its_conversion(name: str, tmp_path: Path) -> None:
    prefix = "state_dict" if name == "lightning.ckpt" else None
    conv = paramtool.convert(_source(name), tmp_path, prefix=prefix, max_shard_size="2KB")
    ties = {t.name: t.kept for t in conv.ties}
    assert ties == TIES[name]
    ours = {t.name: t.digest for t in paramtool.digest(_source(name)).tensors}
    theirs = paramtool.digest(tmp_path)
    got = {t.name: t.digest for t in theirs.tensors}
    assert got == {n: d for n, d in ours.items() if n not in ties}
    assert got == {t.name: t.digest for t in conv.tensors}
    for n, kept in ties.items():
        assert ours[n] == ours[kept]
    assert theirs.weights_digest == conv.weights_digest
    if not ties:
        assert paramtool.digest(_source(name)).weights_digest == theirs.weights_digest
    d = paramtool.diff(_source(name), tmp_path)
    assert d.identical == (not ties)
    assert {t.name for t in d.removed} == set(ties)
    assert d.added == () and d.reshaped == ()
    assert all(t.identical for t in d.tensors) and len(d.tensors) == len(got)


def test_diff_across_formats_and_containers() -> None:
    zipped, legacy = FIXTURES / "state_zip.pt", FIXTURES / "state_legacy.pt"
    d = paramtool.diff(zipped, legacy)
    assert [t.name for t in d.removed] == ["fp8"] and d.added == ()
    assert all(t.identical for t in d.tensors) and len(d.tensors) == 10
    r = cli("diff", str(legacy), str(zipped), "--json")
    assert r.exit_code in (0, 1), r.stderr
    doc = strict_json(r.stdout)
    assert doc["identical"] is False


def test_diff_a_bin_against_safetensors(tmp_path: Path) -> None:
    paramtool.convert(SHARDED, tmp_path)
    one = tmp_path / "model.safetensors"
    shard = SHARDED / "pytorch_model-00002-of-00004.bin"
    d = paramtool.diff(shard, one)
    assert d.removed == () and all(t.identical for t in d.tensors)
    assert {t.name for t in d.tensors} == set(
        json.loads(Path(f"{shard}.truth.json").read_text())["tensors"]
    )


def test_hash_cli_of_a_sharded_pickle() -> None:
    r = cli("hash", str(SHARDED), "--json")
    assert r.exit_code == 0 and r.stderr == ""
    doc = strict_json(r.stdout)
    assert len(doc["files"]) == 4 and doc["tensor_count"] == len(_truth("tiny_llama_bin"))


# ---------------------------------------------------------------- strided views, numpy's truth


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a.T,  # a transpose: runs of one element
        lambda a: a[:, 1:7:2],
        lambda a: a[::3, 2:9],
        lambda a: np.broadcast_to(a[:1], (5, a.shape[1])),  # stride 0
        lambda a: a.reshape(4, 3, 10)[:, ::2, 1:].transpose(1, 0, 2),
    ],
)
@pytest.mark.parametrize("run_bytes", [1 << 16, 1])
def test_gather_equals_numpy_contiguous_copy(make: Any, run_bytes: int) -> None:
    base = np.arange(120, dtype="<i4").reshape(12, 10)
    storage = base.tobytes()
    view = make(base)
    strides = tuple(s // 4 for s in view.strides)
    offset = (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // 4
    want = np.ascontiguousarray(view).tobytes()

    def read_into(at: int, out: memoryview) -> None:
        out[:] = storage[at : at + len(out)]

    n = view.size
    for step in (n, 7, 1):
        got = bytearray()
        for first in range(0, n, step):
            buf = bytearray(min(step, n - first) * 4)
            views.gather_into(
                read_into, offset * 4, view.shape, strides, 4, first, memoryview(buf),
                run_bytes=run_bytes,
            )  # fmt: skip
            got += buf
        assert bytes(got) == want, (step, view.shape, strides)


# ---------------------------------------------------------------- hostile files


def _rewrite(src: Path, out: Path, body: dict[str, bytes], deflate: str = "") -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = next((b for k, b in body.items() if info.filename.endswith(k)), None)
            data = zin.read(info) if data is None else data
            method = zipfile.ZIP_DEFLATED if deflate and info.filename.endswith(deflate) else 0
            zout.writestr(info.filename, data, compress_type=method)
    return out


def _refused(path: Path, *words: str) -> None:
    for args in (["stats", str(path)], ["hash", str(path)], ["diff", str(path), str(path)]):
        error_line(cli(*args), *words)
        error_line(cli(*args, "--json"), *words)


def test_deflated_storage_is_one_line(tmp_path: Path) -> None:
    bad = _rewrite(FIXTURES / "state_zip.pt", tmp_path / "deflated.pt", {}, "/data/0")
    _refused(bad, "deflated.pt", "'embed.weight'", "compressed")
    assert paramtool.inspect(bad).total_parameters > 0  # the header is still read


def test_big_endian_is_one_line(tmp_path: Path) -> None:
    bad = _rewrite(FIXTURES / "state_zip.pt", tmp_path / "big.pt", {"/byteorder": b"big"})
    _refused(bad, "big.pt", "byte order 'big'", "little-endian")


class _System:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


def test_unsafe_pickle_is_refused_naming_its_globals(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    evil = pickle.dumps(
        {"w": _System(f"touch {marker}"), "x": _System(f"touch {marker}")}, protocol=2
    )
    bad = _rewrite(FIXTURES / "state_zip.pt", tmp_path / "evil.pt", {"/data.pkl": evil})
    _refused(bad, "evil.pt", "unsafe pickle", f"{os.system.__module__}.system", "not read")
    line = error_line(cli("stats", str(bad)))
    assert "first at byte" in line
    assert not marker.exists()


def test_truncated_legacy_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "short.pt"
    bad.write_bytes((FIXTURES / "state_legacy.pt").read_bytes()[:-3])
    _refused(bad, "short.pt")


def test_span_past_the_end_is_refused_and_the_reader_stays_safe(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes((FIXTURES / "state_zip.pt").read_bytes())
    header = read_pickle_header(path)
    size = path.stat().st_size
    moved = [
        dataclasses.replace(t, start=size - 4, end=size - 4 + t.nbytes)
        if t.name == "embed.weight"
        else t
        for t in header.tensors
    ]
    bad = dataclasses.replace(header, tensors=tuple(moved))
    from paramtool.values.pickles import check_pickle

    with pytest.raises(MetadataIncompleteBuffer, match="'embed.weight'.*past the end"):
        check_pickle(bad)
    ck = Checkpoint(str(path), (bad,), format="pickle")
    with pytest.raises(MetadataIncompleteBuffer, match="file ends at byte"):
        compute_stats(ck, workers=1)


def test_too_sparse_view_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(views, "GATHER_BYTES", 8)
    monkeypatch.setattr(views, "RUN_BYTES", 1 << 16)
    with pytest.raises(ParamtoolError, match="'col' is a strided view spanning 36 bytes"):
        paramtool.stats(FIXTURES / "state_zip.pt")
    error_line(cli("hash", str(FIXTURES / "state_zip.pt")), "'col'", ".contiguous()")


def test_check_no_nan_reads_pickled_values(tmp_path: Path) -> None:
    src = FIXTURES / "state_zip.pt"
    assert cli("check", str(src), "--no-nan", "--no-inf").exit_code == 0
    with zipfile.ZipFile(src) as z:
        info = z.getinfo("state_zip/data/0")  # embed.weight, tied to lm_head.weight
    raw = bytearray(src.read_bytes())
    name_len, extra_len = struct.unpack_from("<HH", raw, info.header_offset + 26)
    at = info.header_offset + 30 + name_len + extra_len
    raw[at : at + 4] = np.array([np.nan], dtype="<f4").tobytes()
    bad = tmp_path / "nan.pt"
    bad.write_bytes(bytes(raw))
    r = cli("check", str(bad), "--no-nan", "--no-inf", "--json")
    assert r.exit_code == 1, r.stderr
    found = {f["name"]: f for f in json.loads(r.stdout)["rules"]}
    assert found["no_nan"]["status"] == "fail" and found["no_nan"]["measured"] == 2
    assert found["no_inf"]["status"] == "pass"


def test_check_no_nan_on_an_unsafe_pickle_is_unavailable(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    evil = pickle.dumps({"w": _System(f"touch {marker}")}, protocol=2)
    bad = _rewrite(FIXTURES / "state_zip.pt", tmp_path / "evil.pt", {"/data.pkl": evil})
    r = cli("check", str(bad), "--no-nan", "--json")
    assert r.exit_code == 1, r.stderr
    (finding,) = json.loads(r.stdout)["rules"]
    assert finding["status"] == "unavailable"
    assert "unsafe pickle" in finding["message"]
    assert not marker.exists()
