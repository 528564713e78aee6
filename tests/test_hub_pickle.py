"""Pickled checkpoints on the Hub, read header-only by range requests, never unpickled.

Through the real CLI and an unmodified huggingface_hub talking HTTP to the Hub emulator
(tests/hub_emulator.py). The torch-written fixtures (tests/fixtures/torch/) must read on the
Hub exactly as they read locally, with torch's truth; a Llama-3.1-8B-layout zip ``.bin``
(written here by Python's own pickle and a zip writer laid out as torch lays it out, its
storages left as holes of a sparse file) must read in a few requests and kilobytes.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import constants, snapshot_download

from helpers import cli, cli_json, error_line
from hub_emulator import HubEmulator, RequestRecord
from layouts import BITS, llama31_8b
from paramtool.formats.torch_pickle import LEGACY_MAGIC, LEGACY_PROTOCOL
from paramtool.formats.torch_zip import data_offset, predicted_data_offset, read_directory

pytest_plugins = ["hub_fixtures"]

FIXTURES = Path(__file__).parent / "fixtures" / "torch"
LLAMA = FIXTURES / "tiny_llama_bin"
SINGLES = ["state_zip.pt", "state_legacy.pt", "lightning.ckpt"]


def _truth(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(f"{path}.truth.json").read_text())
    return data


def normalised(doc: dict[str, Any], root: Path | None = None) -> dict[str, Any]:
    """A JSON document less what says where it came from; local paths made repo-relative."""
    text = json.dumps({k: v for k, v in doc.items() if k not in ("source", "revision", "hub")})
    if root is not None:
        text = text.replace(json.dumps(str(root) + os.sep)[1:-1], "")
    out: dict[str, Any] = json.loads(text)
    return out


def weight_requests(hub: HubEmulator, name: str) -> list[RequestRecord]:
    """The requests for one weight file: its GET on the Hub (a redirect) and the CDN's."""
    return [
        r
        for r in hub.requests
        if r.server == "cdn" or ("/resolve/" in r.path and r.path.endswith("/" + name))
    ]


# --- torch's layout rule, checked on torch's own files ----------------------------------------


def _torch_zips() -> list[Path]:
    found = [*FIXTURES.glob("*.pt"), *FIXTURES.glob("*.ckpt"), *LLAMA.glob("*.bin")]
    return sorted(p for p in found if p.read_bytes()[:2] == b"PK")


@pytest.mark.parametrize("path", _torch_zips(), ids=lambda p: p.name)
def test_predicted_offsets_are_where_torch_put_the_data(path: Path) -> None:
    raw = path.read_bytes()

    def read_at(offset: int, n: int) -> bytes:
        return raw[offset : offset + n]

    directory = read_directory(read_at, len(raw), path.name)
    assert len(directory.entries) > 4
    for e in directory.entries:
        actual = data_offset(read_at, e, path.name, directory.offset)
        assert predicted_data_offset(e) == actual, e.name


# --- the same answer as a local read -----------------------------------------------------


@pytest.mark.parametrize("name", [*SINGLES, "tiny_llama_bin"])
def test_hub_json_equals_local_json(hub: HubEmulator, tmp_path: Path, name: str) -> None:
    if name == "tiny_llama_bin":
        folder = tmp_path / name
        shutil.copytree(LLAMA, folder, ignore=shutil.ignore_patterns("*.truth.json"))
        truth = sum(_truth(p)["parameters"] for p in sorted(LLAMA.glob("*.bin")))
    else:
        folder = tmp_path / "repo"
        folder.mkdir()
        shutil.copy(FIXTURES / name, folder / name)
        truth = _truth(FIXTURES / name)["parameters"]
        if name == "lightning.ckpt":  # the model's tensors only: optimizer state is not counted
            rows = _truth(FIXTURES / name)["tensors"].items()
            truth = sum(_numel(r["shape"]) for n, r in rows if n.startswith("state_dict."))
    hub.add_repo(f"org/{name.replace('.', '-')}", folder)
    local = cli_json("inspect", str(folder), "--tensors")
    hub.reset_counters()
    remote = cli_json("inspect", f"org/{name.replace('.', '-')}", "--tensors")
    assert normalised(remote) == normalised(local, folder)
    assert remote["total_parameters"] == truth
    assert all(f["pickle"]["verdict"] == "plain state dict" for f in remote["files"])
    cdn = [r for r in hub.requests if r.server == "cdn"]
    assert cdn and all(r.range is not None for r in cdn)  # never a whole file


def test_offline_reads_the_cached_pickles(
    hub: HubEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "llama"
    shutil.copytree(LLAMA, folder, ignore=shutil.ignore_patterns("*.truth.json"))
    hub.add_repo("org/llama-bin", folder)
    online = cli_json("inspect", "org/llama-bin", "--tensors")
    snapshot_download("org/llama-bin")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.reset_counters()
    offline = cli_json("inspect", "org/llama-bin", "--tensors")
    assert hub.requests == []
    assert offline["warnings"][0].startswith("offline:")
    assert normalised({**offline, "warnings": []}) == normalised(online)


def test_safetensors_preferred_with_a_note(hub: HubEmulator, tmp_path: Path) -> None:
    folder = tmp_path / "both"
    folder.mkdir()
    shutil.copy(FIXTURES / "state_zip.pt", folder / "pytorch_model.bin")
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    hub.add_repo("org/both", folder)
    doc = cli_json("inspect", "org/both")
    assert doc["format"] == "safetensors" and doc["total_parameters"] == 2
    assert any("pytorch_model.bin" in w and "safetensors were read" in w for w in doc["warnings"])


# --- stand-ins for torch's classes: Python's pickle writes what torch.save writes -----------


class _Global:
    """A global named as torch names it; pickled as GLOBAL by name, never imported."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __call__(self) -> None:  # pickle wants a reduce function to be callable
        raise AssertionError("a stand-in is never called")


_REBUILD = _Global("torch._utils", "_rebuild_tensor_v2")
_STORAGE = {
    d: _Global("torch", f"{n}Storage") for d, n in {"BF16": "BFloat16", "F32": "Float"}.items()
}


class _Storage:
    def __init__(self, key: str, dtype: str, numel: int, legacy: bool) -> None:
        self.key, self.dtype, self.numel, self.legacy = key, dtype, numel, legacy


class _Tensor:
    def __init__(self, storage: _Storage, shape: Sequence[int]) -> None:
        self.storage, self.shape = storage, tuple(shape)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        stride = []
        step = 1
        for d in reversed(self.shape):
            stride.insert(0, step)
            step *= d
        return (_REBUILD, (self.storage, 0, self.shape, tuple(stride), False, OrderedDict()))


class _TorchPickler(pickle._Pickler):  # the pure-Python pickler: its save() can be extended
    def persistent_id(self, obj: object) -> object:
        if isinstance(obj, _Storage):
            pid = ("storage", _STORAGE[obj.dtype], obj.key, "cpu", obj.numel)
            return (*pid, None) if obj.legacy else pid
        return None

    def save(self, obj: object, save_persistent_id: bool = True) -> None:
        if isinstance(obj, _Global):
            x = self.memo.get(id(obj))
            if x is not None:
                self.write(self.get(x[0]))
                return
            self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
            self.memoize(obj)
            return
        super().save(obj, save_persistent_id)


def _dumps(obj: object) -> bytes:
    import io

    buf = io.BytesIO()
    _TorchPickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _element(dtype: str) -> int:
    return BITS[dtype] // 8


def _state(rows: Sequence[tuple[str, str, tuple[int, ...]]], legacy: bool) -> OrderedDict[str, Any]:
    out: OrderedDict[str, Any] = OrderedDict()
    for i, (name, dtype, shape) in enumerate(rows):
        numel = 1
        for d in shape:
            numel *= d
        out[name] = _Tensor(_Storage(str(i), dtype, numel, legacy), shape)
    return out


# --- a zip laid out as torch's PyTorchStreamWriter lays it out -------------------------------

_MAX32 = 0xFFFFFFFF


def write_torch_zip(path: Path, root: str, records: list[tuple[str, bytes | int]]) -> None:
    """Entries (name, bytes, or a size left as a hole) at 64-byte-aligned data offsets, with
    miniz's zip64 extra fields past 4 GB; CRCs of holes are left 0 (nothing here checks)."""
    central: list[bytes] = []
    with open(path, "wb") as f:
        for name, body in records:
            full = f"{root}/{name}".encode()
            size = body if isinstance(body, int) else len(body)
            crc = 0 if isinstance(body, int) else zlib.crc32(body)
            at = f.tell()
            z64 = b""
            if size >= _MAX32 or at >= _MAX32:
                fields = (struct.pack("<QQ", size, size) if size >= _MAX32 else b"") + (
                    struct.pack("<Q", at) if at >= _MAX32 else b""
                )
                z64 = struct.pack("<HH", 1, len(fields)) + fields
            start = at + 30 + len(full) + len(z64) + 4
            pad = -start % 64
            extra = z64 + b"FB" + struct.pack("<H", pad) + b"Z" * pad
            s32 = _MAX32 if size >= _MAX32 else size
            f.write(
                struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 45, 0x800, 0, 0, 0, crc, s32, s32,
                            len(full), len(extra))
                + full + extra
            )  # fmt: skip
            if isinstance(body, int):
                f.seek(size, os.SEEK_CUR)
            else:
                f.write(body)
            cz = (struct.pack("<QQ", size, size) if size >= _MAX32 else b"") + (
                struct.pack("<Q", at) if at >= _MAX32 else b""
            )
            cextra = struct.pack("<HH", 1, len(cz)) + cz if cz else b""
            central.append(
                struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45, 0x800, 0, 0, 0, crc,
                            s32, s32, len(full), len(cextra), 0, 0, 0, 0, min(at, _MAX32))
                + full + cextra
            )  # fmt: skip
        cd_at = f.tell()
        cd = b"".join(central)
        f.write(cd)
        n = len(central)
        if cd_at >= _MAX32:
            eocd64_at = f.tell()
            f.write(struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(cd),
                                cd_at))  # fmt: skip
            f.write(struct.pack("<4sIQI", b"PK\x06\x07", 0, eocd64_at, 1))
        f.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n, len(cd),
                            min(cd_at, _MAX32), 0))  # fmt: skip


def test_llama_8b_zip_reads_in_kilobytes(hub: HubEmulator, tmp_path: Path) -> None:
    layout = llama31_8b()
    rows = list(layout)
    data_pkl = _dumps(_state(rows, legacy=False))
    records: list[tuple[str, bytes | int]] = [
        ("data.pkl", data_pkl),
        (".format_version", b"1"),
        (".storage_alignment", b"64"),
        ("byteorder", b"little"),
        *((f"data/{i}", _element(d) * _numel(s)) for i, (_, d, s) in enumerate(rows)),
        ("version", b"3\n"),
    ]
    folder = tmp_path / "llama8b"
    folder.mkdir()
    path = folder / "pytorch_model.bin"
    write_torch_zip(path, "pytorch_model", records)
    assert path.stat().st_size > 16 * 10**9 and path.stat().st_size > _MAX32  # zip64 offsets
    (folder / "config.json").write_text(json.dumps(layout.config))
    hub.add_repo("org/llama8b-bin", folder)
    hub.reset_counters()
    doc = cli_json("inspect", "org/llama8b-bin")
    assert doc["total_parameters"] == 8_030_261_248  # Meta's published figure
    assert doc["files"][0]["pickle"]["verdict"] == "plain state dict"
    assert doc["tensor_count"] == len(rows)
    mine = weight_requests(hub, "pytorch_model.bin")
    served = sum(r.bytes_sent for r in mine)
    assert len(mine) <= 4 and served <= 150_000, (len(mine), served, len(data_pkl))
    # the predicted offsets are the written ones: the local read of the same file agrees
    local = cli_json("inspect", str(folder), "--tensors")
    remote = cli_json("inspect", "org/llama8b-bin", "--tensors")
    assert normalised(remote) == normalised(local, folder)


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# --- legacy files, unsafe and hostile ones ----------------------------------------------


def write_legacy(path: Path, rows: Sequence[tuple[str, str, tuple[int, ...]]]) -> None:
    """What torch's ``_legacy_save`` writes: five pickles, then each storage (count, bytes)."""
    state = _state(rows, legacy=True)
    sys_info = {"protocol_version": LEGACY_PROTOCOL, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}  # fmt: skip
    with open(path, "wb") as f:
        for obj in (LEGACY_MAGIC, LEGACY_PROTOCOL, sys_info):
            f.write(pickle.dumps(obj, protocol=2))
        f.write(_dumps(state))
        f.write(pickle.dumps([str(i) for i in range(len(rows))], protocol=2))
        for _name, dtype, shape in rows:
            f.write(struct.pack("<q", _numel(shape)) + bytes(_element(dtype) * _numel(shape)))


def test_legacy_grows_its_range_until_the_pickles_end(hub: HubEmulator, tmp_path: Path) -> None:
    rows = [(f"model.layers.{i}.block.weight_with_a_long_name", "F32", (2, 3)) for i in range(3000)]
    folder = tmp_path / "legacy"
    folder.mkdir()
    write_legacy(folder / "pytorch_model.bin", rows)
    assert (folder / "pytorch_model.bin").stat().st_size > 4 * (1 << 16)
    hub.add_repo("org/legacy", folder)
    local = cli_json("inspect", str(folder), "--tensors")
    assert (
        local["total_parameters"] == 6 * 3000 and local["files"][0]["pickle"]["format"] == "legacy"
    )
    hub.reset_counters()
    remote = cli_json("inspect", "org/legacy", "--tensors")
    assert normalised(remote) == normalised(local, folder)
    cdn = [r for r in hub.requests if r.server == "cdn"]
    assert len(cdn) >= 3 and all(r.range is not None for r in cdn)  # it grew, from byte 0 on


class _System:
    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.cmd,))


def test_unsafe_pickle_on_the_hub_is_named_never_run(hub: HubEmulator, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    folder = tmp_path / "evil"
    folder.mkdir()
    evil = {"w": _System(f"touch {marker}"), "epoch": 3}
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(evil, protocol=4))
    hub.add_repo("org/evil", folder)
    doc = cli_json("inspect", "org/evil")
    p = doc["files"][0]["pickle"]
    assert p["verdict"] == "unsafe"
    assert [g["name"] for g in p["unsafe_globals"]] == [f"{os.system.__module__}.system"]
    r = cli("check", "org/evil", "--no-unsafe-pickle", "--no-config")
    assert r.exit_code == 1, (r.stdout, r.stderr)
    assert "system" in r.stdout
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["truncated_zip", "truncated_legacy", "garbage"])
def test_hostile_pickle_on_the_hub_is_one_error(
    hub: HubEmulator, tmp_path: Path, kind: str
) -> None:
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "garbage":
        body = b"\x80\x02" + bytes(range(256)) * 1024
    else:
        raw = (
            FIXTURES / ("state_zip.pt" if kind == "truncated_zip" else "state_legacy.pt")
        ).read_bytes()
        body = raw[: len(raw) // 2]
    (folder / "pytorch_model.bin").write_bytes(body)
    hub.add_repo(f"org/{kind.replace('_', '-')}", folder)
    error_line(cli("inspect", f"org/{kind.replace('_', '-')}"), "pytorch_model.bin")
