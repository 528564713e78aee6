"""The PyTorch checkpoint reader: symbolic pickles, zip and legacy containers, verdicts.

Fixtures under tests/fixtures/torch/ were written by torch itself (make_torch_fixtures.py),
with torch's own truth beside each; the malicious pickles are built here, no torch needed.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paramtool.errors import ParamtoolError
from paramtool.formats import torch_pickle as tp
from paramtool.formats.torch_pickle import (
    PickleLimit,
    TorchCheckpoint,
    TorchFormatError,
    read_state_dict,
    read_torch_file,
)
from paramtool.formats.torch_zip import read_directory

FIXTURES = Path(__file__).parent / "fixtures" / "torch"
FILES = [
    FIXTURES / "state_zip.pt",
    FIXTURES / "state_legacy.pt",
    FIXTURES / "lightning.ckpt",
    *sorted((FIXTURES / "tiny_llama_bin").glob("*.bin")),
]


def _truth(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(Path(f"{path}.truth.json").read_text())
    return data


# --- torch's own files ------------------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_fixture_matches_torch_truth(path: Path) -> None:
    truth = _truth(path)
    ck = read_torch_file(path)
    assert ck.verdict == "plain state dict" and ck.unsafe_globals == ()
    rows = truth["tensors"]
    assert isinstance(rows, dict)
    got = {t.name: t for t in ck.tensors}
    assert sorted(got) == sorted(rows)
    for name, row in rows.items():
        t = got[name]
        assert (t.dtype, list(t.shape), t.storage_offset, list(t.strides)) == (
            row["dtype"], row["shape"], row["storage_offset"], row["strides"],
        ), name  # fmt: skip
        nbytes = {s.key: s.nbytes for s in ck.storages}[t.storage]
        assert nbytes == row["storage_nbytes"], name
    by_storage: dict[str, list[str]] = {}
    for t in ck.tensors:
        by_storage.setdefault(t.storage, []).append(t.name)
    shared = sorted(sorted(v) for v in by_storage.values() if len(v) > 1)
    assert shared == truth["shared"]
    assert ck.parameters == truth["parameters"]
    assert ck.nbytes == truth["storage_bytes"]
    others = {o.name: o.kind for o in ck.others}
    truth_others = truth["others"]
    assert isinstance(truth_others, dict)
    for name, kind in truth_others.items():  # a tensor-less dict or list is one entry here
        prefixes = [name[:i] for i in range(len(name) + 1) if i == len(name) or name[i] == "."]
        hit = [p for p in prefixes if p in others]
        assert hit, name
        if hit[-1] == name:
            assert others[name] == kind, name


def test_zip_offsets_agree_with_zipfile() -> None:
    path = FIXTURES / "state_zip.pt"
    ck = read_torch_file(path)
    assert ck.format == "zip" and ck.byteorder == "little"
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as z:
        root = z.namelist()[0].split("/")[0]
        for s in ck.storages:
            assert s.data_offset is not None
            assert raw[s.data_offset : s.data_offset + s.nbytes] == z.read(f"{root}/data/{s.key}")


def test_legacy_offsets_are_the_raw_storages() -> None:
    path = FIXTURES / "state_legacy.pt"
    ck = read_torch_file(path)
    assert ck.format == "legacy"
    raw = path.read_bytes()
    base = next(t for t in ck.tensors if t.name == "base")
    s = {s.key: s for s in ck.storages}[base.storage]
    assert s.data_offset is not None
    values = struct.unpack("<12f", raw[s.data_offset : s.data_offset + 48])
    assert values == tuple(float(i) for i in range(12))  # torch.arange(12)
    assert struct.unpack("<Q", raw[s.data_offset - 8 : s.data_offset])[0] == 12


def test_tied_and_views_count_parameters_each_bytes_once() -> None:
    ck = read_torch_file(FIXTURES / "state_zip.pt")
    t = {t.name: t for t in ck.tensors}
    assert t["embed.weight"].storage == t["lm_head.weight"].storage
    assert t["row"].storage == t["col"].storage == t["base"].storage
    assert (t["row"].storage_offset, t["col"].storage_offset, t["col"].strides) == (4, 2, (4,))
    assert t["scale"].shape == () and t["scale"].numel == 1
    assert t["fp8"].dtype == "F8_E4M3" and t["layer.weight"].dtype == "BF16"
    assert ck.parameters == sum(x.numel for x in ck.tensors)
    assert ck.nbytes < sum(x.nbytes for x in ck.tensors)


def test_lightning_nested_names_and_others() -> None:
    ck = read_torch_file(FIXTURES / "lightning.ckpt")
    names = {t.name for t in ck.tensors}
    assert {"state_dict.model.weight", "optimizer.state.0.exp_avg"} <= names
    others = {o.name: o for o in ck.others}
    assert (others["epoch"].kind, others["epoch"].value) == ("int", 3)
    assert others["hyper_parameters"].kind == "dict"
    assert others["best"].kind == "None"


def test_transformers_shards_cover_the_index() -> None:
    index = json.loads((FIXTURES / "tiny_llama_bin" / "pytorch_model.bin.index.json").read_text())
    wanted: dict[str, str] = index["weight_map"]
    seen: dict[str, str] = {}
    for shard in FILES[3:]:
        for t in read_torch_file(shard).tensors:
            seen.setdefault(t.name, shard.name)
    assert len(FILES[3:]) > 1
    for name, shard_name in wanted.items():
        assert seen.get(name) == shard_name, name


# --- malicious pickles: reported, never executed ------------------------------------------


def _marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


class _System:
    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.cmd,))


def _names(sd: tp.StateDict | TorchCheckpoint) -> set[str]:
    return {g.qualname for g in sd.unsafe_globals}


def _check_offsets(data: bytes, sd: tp.StateDict | TorchCheckpoint, base: int = 0) -> None:
    for g in sd.unsafe_globals:
        assert data[g.offset - base : g.offset - base + 1] in (b"c", b"\x93", b"i"), g


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_os_system_reduce(tmp_path: Path, protocol: int) -> None:
    marker = _marker(tmp_path)
    data = pickle.dumps({"w": _System(f"touch {marker}")}, protocol=protocol)
    sd = read_state_dict(data, "evil.pkl")
    assert sd.verdict == "unsafe"
    assert _names(sd) == {f"{os.system.__module__}.system"}  # posix.system
    _check_offsets(data, sd)
    path = tmp_path / "evil.pt"
    path.write_bytes(data)
    ck = read_torch_file(path)
    assert ck.format == "pickle" and ck.verdict == "unsafe"
    assert not marker.exists()


def _raw(*ops: bytes) -> bytes:
    return b"\x80\x04" + b"".join(ops) + b"."


def _sbu(s: str) -> bytes:  # SHORT_BINUNICODE
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"cbuiltins\neval\n(V__import__('os').system('touch M')\ntR", {"builtins.eval"}),
        (b"cbuiltins\nexec\n(Vprint(1)\ntR", {"builtins.exec"}),
        (b"cbz2\nopen\n(VM\nVw\ntR", {"bz2.open"}),
        (b"catexit\nregister\n(cposix\nsystem\nVtouch M\ntR", {"atexit.register", "posix.system"}),
        (b"(Vtouch M\nios\nsystem\n", {"os.system"}),  # INST
        (
            b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR(Vtouch M\ntR",
            {"builtins.getattr", "builtins.__import__"},
        ),
        (b"cdistutils.spawn\nspawn\n((Vtouch\nVM\nltR", {"distutils.spawn.spawn"}),
    ],
)
def test_protocol0_payloads(payload: bytes, expected: set[str], tmp_path: Path) -> None:
    marker = _marker(tmp_path)
    data = payload.replace(b"M", str(marker).encode()) + b"."
    sd = read_state_dict(data, "evil")
    assert sd.verdict == "unsafe" and _names(sd) == expected
    _check_offsets(data, sd)
    assert not marker.exists()


def test_stack_global_names_from_memo(tmp_path: Path) -> None:
    marker = _marker(tmp_path)
    # put "os" and "system" in the memo under a harmless-looking dict, fetch them with BINGET
    data = _raw(
        b"}", _sbu("os"), b"\x94", _sbu("system"), b"\x94", b"\x86", b"0",
        b"h\x00h\x01\x93", _sbu(f"touch {marker}"), b"\x85R", b"0",
    )  # fmt: skip
    sd = read_state_dict(data, "evil")
    assert _names(sd) == {"os.system"}
    _check_offsets(data, sd)
    assert not marker.exists()


def test_stack_global_with_computed_names_is_unsafe() -> None:
    data = _raw(b"K\x01K\x02\x93", b")R")
    sd = read_state_dict(data, "evil")
    assert _names(sd) == {"<computed>.<computed>"}


def test_torch_lookalike_outside_allowlist_is_unsafe() -> None:
    data = _raw(b"ctorch._utils\n_rebuild_from_type_v2\n", b")R")
    assert _names(read_state_dict(data, "x")) == {"torch._utils._rebuild_from_type_v2"}


def test_malicious_data_pkl_in_a_normal_zip(tmp_path: Path) -> None:
    marker = _marker(tmp_path)
    src = FIXTURES / "state_zip.pt"
    evil = pickle.dumps({"embed.weight": _System(f"touch {marker}")}, protocol=2)
    out = tmp_path / "evil.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            body = evil if info.filename.endswith("/data.pkl") else zin.read(info)
            zout.writestr(info.filename, body)
    ck = read_torch_file(out)
    assert ck.verdict == "unsafe" and _names(ck) == {f"{os.system.__module__}.system"}
    raw = out.read_bytes()
    _check_offsets(raw, ck)  # offsets are file offsets
    assert ck.tensors == ()
    assert not marker.exists()


# --- hostile structure: one clean error, within limits ------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x02",
        b"\x80\x02h\x05.",  # BINGET of a key never stored
        b"\x80\x020.",  # POP on an empty stack
        b"\x80\x02(K\x01.",  # MARK open at STOP
        b"\x80\x02K\x01K\x02s.",  # SETITEM on an int
        b"\x80\x02\xff.",  # unknown opcode
        b"\x80\x02X\xff\xff\xff\x7fabc.",  # a string longer than the pickle
        b"I" + b"9" * 5000 + b"\n.",  # a decimal int too long to convert
    ],
)
def test_malformed_pickles_are_one_error(data: bytes) -> None:
    with pytest.raises(TorchFormatError):
        read_state_dict(data, "bad")


def test_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PickleLimit, match="MARK"):
        read_state_dict(b"\x80\x02" + b"(" * (tp.MAX_MARK_DEPTH + 1) + b".", "x")
    deep = b"\x80\x02" + b"]" * 300 + b"a" * 299 + b"."
    with pytest.raises(PickleLimit, match="nested"):
        read_state_dict(deep, "x")
    monkeypatch.setattr(tp, "MAX_OPCODES", 100)
    with pytest.raises(PickleLimit, match="opcodes"):
        read_state_dict(b"\x80\x02" + b"N0" * 100 + b"N.", "x")
    monkeypatch.setattr(tp, "MAX_MEMO", 10)
    with pytest.raises(PickleLimit, match="memo"):
        read_state_dict(b"\x80\x04N" + b"\x94" * 11 + b".", "x")
    monkeypatch.setattr(tp, "MAX_STRING", 4)
    with pytest.raises(PickleLimit, match="string"):
        read_state_dict(b"\x80\x04" + _sbu("hello") + b".", "x")


def test_billion_laughs_is_linear() -> None:
    # each list holds the previous one twice: 2**45 paths through 90 containers
    ops = [b"\x80\x04]\x94"]
    for i in range(45):
        ops.append(b"]\x94" + b"h" + bytes([i]) + b"h" + bytes([i]) + b"\x86a")
    t0 = time.monotonic()
    sd = read_state_dict(b"".join(ops) + b".", "x")
    assert time.monotonic() - t0 < 1 and sd.tensors == ()


def test_storage_size_mismatch_is_caught(tmp_path: Path) -> None:
    src = FIXTURES / "state_zip.pt"
    out = tmp_path / "short.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            body = zin.read(info)
            zout.writestr(info.filename, body[:-1] if info.filename.endswith("/data/0") else body)
    with pytest.raises(tp.StorageMismatch, match="storage '0'"):
        read_torch_file(out)


def test_view_past_its_storage_is_caught() -> None:
    data = bytearray((FIXTURES / "state_zip.pt").read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        pkl = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    # 'row' is base[1]: offset 4; make it 40, past the 12-element storage
    i = pkl.index(b"X\x03\x00\x00\x00row")
    j = pkl.index(b"QK\x04", i)
    bad = pkl[: j + 1] + b"K\x28" + pkl[j + 3 :]
    with pytest.raises(tp.StorageMismatch, match="reaches element"):
        read_state_dict(bad, "x")


def _force_zip64(raw: bytes) -> bytes:
    """Torch writes zip64 end records beside the classic one; max the classic one out, as a
    writer of a > 4 GiB checkpoint does, so that only the zip64 record tells the sizes."""
    e = raw.rindex(b"PK\x05\x06")
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                      0xFFFFFFFF, 0)  # fmt: skip
    return raw[:e] + end


def test_torch_zip64_end_records(tmp_path: Path) -> None:
    raw = (FIXTURES / "state_zip.pt").read_bytes()
    out = tmp_path / "z64.pt"
    out.write_bytes(_force_zip64(raw))
    assert read_torch_file(out).storages == read_torch_file(FIXTURES / "state_zip.pt").storages


def test_zip64_directory() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        z.writestr("a/data.pkl", b"x")
    raw = buf.getvalue()
    # rewrite the classic end record to point at the zip64 one (as a >4 GiB writer would)
    eocd = raw.rindex(b"PK\x05\x06")
    cd_size, cd_off = struct.unpack_from("<II", raw, eocd + 12)
    z64 = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, 1, 1, cd_size, cd_off)
    loc = struct.pack("<4sIQI", b"PK\x06\x07", 0, eocd, 1)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF,
                      0xFFFFFFFF, 0)  # fmt: skip
    raw64 = raw[:eocd] + z64 + loc + end
    d = read_directory(lambda o, n: raw64[o : o + n], len(raw64), "z64")
    assert [e.name for e in d.entries] == ["a/data.pkl"] and d.offset == cd_off


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b[:-10],  # truncated end record
        lambda b: b[:-22] + b"PK\x05\x06" + b"\x00" * 4 + b"\x01\x00" * 2 + b"\xfe" * 4 + b"\0" * 6,
        lambda b: _force_zip64(b).replace(b"PK\x06\x07", b"PK\x06\x08"),
        lambda b: _force_zip64(b).replace(b"PK\x06\x06", b"PK\x06\x05"),
        lambda b: b.replace(b"PK\x01\x02", b"PK\x01\x03", 1),
        lambda b: b.replace(b"PK\x03\x04", b"PK\x03\x05"),
    ],
)
def test_broken_zip_is_one_error(mutate: object, tmp_path: Path) -> None:
    raw = (FIXTURES / "state_zip.pt").read_bytes()
    out = tmp_path / "broken.pt"
    out.write_bytes(mutate(raw))  # type: ignore[operator]
    with pytest.raises(ParamtoolError):
        read_torch_file(out)


def test_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(ParamtoolError, match="directory"):
        read_torch_file(tmp_path)


_SEEDS = [p.read_bytes() for p in FILES[:3]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.integers(0, len(_SEEDS) - 1),
    edits=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 4000)),
)
def test_mutated_fixtures_fail_cleanly(
    which: int, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(_SEEDS[which])
    for pos, byte in edits:
        data[pos % len(data)] = byte
    blob = bytes(data if cut is None else data[:cut])
    t0 = time.monotonic()
    try:
        tp.read_torch_source(lambda o, n: blob[o : o + n] if o >= 0 else b"", len(blob), "m")
    except ParamtoolError:
        pass
    assert time.monotonic() - t0 < 2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_pickles_fail_cleanly(data: bytes) -> None:
    try:
        read_state_dict(b"\x80\x04" + data, "r")
    except ParamtoolError:
        pass
