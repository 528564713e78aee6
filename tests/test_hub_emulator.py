"""The Hub emulator, driven only through huggingface_hub's public API."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import (
    HfApi,
    errors,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import get_session, hf_raise_for_status
from safetensors.numpy import save_file

from hub_emulator import HubEmulator

pytest_plugins = ["hub_fixtures"]

TOKEN = "hf_emulator_test_token"
# 1.0 split a missing remote file (RemoteEntryNotFoundError) from a missing cached one.
RemoteEntryNotFoundError = getattr(errors, "RemoteEntryNotFoundError", EntryNotFoundError)


def no_redirects(session: object) -> dict[str, bool]:
    """The keyword that stops huggingface_hub's session following a redirect: httpx's, or
    requests' (the 0.x line)."""
    return {"follow_redirects": False} if hasattr(session, "follow_redirects") else {
        "allow_redirects": False
    }


def make_safetensors(
    path: Path,
    tensors: dict[str, tuple[str, tuple[int, ...]]],
    metadata: dict[str, str] | None = None,
) -> Path:
    """A tiny real safetensors file: {name: (numpy dtype, shape)}, filled with a ramp."""
    arrays = {
        name: np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
        for name, (dtype, shape) in tensors.items()
    }
    save_file(arrays, str(path), metadata=metadata)
    return path


def header_size(path: Path) -> int:
    return struct.unpack("<Q", path.read_bytes()[:8])[0]


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@pytest.fixture
def tiny(hub: HubEmulator, tmp_path: Path) -> dict[str, str]:
    """org/tiny: commit v1 (tag "v1"), then a second commit on main."""
    st1 = make_safetensors(tmp_path / "v1.safetensors", {"w": ("float32", (4, 4))})
    st2 = make_safetensors(
        tmp_path / "v2.safetensors",
        {"w": ("float32", (4, 8)), "b": ("float16", (8,))},
        {"format": "pt"},
    )
    v1 = hub.add_repo(
        "org/tiny",
        {"model.safetensors": st1, "config.json": b'{"v": 1}'},
        tags=["v1"],
        card_data={"license": "mit"},
    )
    v2 = hub.add_repo(
        "org/tiny",
        {"model.safetensors": st2, "config.json": b'{"v": 2}', "sub/notes.txt": b"hello"},
        card_data={"license": "apache-2.0", "tags": ["tiny"]},
    )
    return {"v1": v1, "v2": v2, "st1": str(st1), "st2": str(st2)}


def test_model_info_on_branch_tag_and_sha(hub: HubEmulator, tiny: dict[str, str]) -> None:
    api = HfApi()
    for revision, expected in [
        (None, tiny["v2"]),
        ("main", tiny["v2"]),
        ("v1", tiny["v1"]),
        (tiny["v1"], tiny["v1"]),
    ]:
        info = api.model_info("org/tiny", revision=revision)
        assert info.sha == expected
        assert all(s.size is None and s.lfs is None for s in info.siblings)
    assert info.card_data.license == "mit"
    assert info.safetensors.parameters == {"F32": 16} and info.safetensors.total == 16

    info = api.model_info("org/tiny", files_metadata=True)
    assert info.id == "org/tiny" and info.gated is False and info.private is False
    assert info.card_data.license == "apache-2.0"
    assert {"safetensors", "tiny", "license:apache-2.0"} <= set(info.tags)
    assert info.safetensors.parameters == {"F32": 32, "F16": 8} and info.safetensors.total == 40
    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == {"model.safetensors", "config.json", "sub/notes.txt"}
    content = Path(tiny["st2"]).read_bytes()
    weights = siblings["model.safetensors"]
    assert weights.size == len(content)
    assert weights.lfs.sha256 == hashlib.sha256(content).hexdigest()
    assert weights.lfs.size == len(content) and weights.lfs.pointer_size > 100
    config = siblings["config.json"]
    assert config.lfs is None and config.size == 8 and config.blob_id == git_blob_sha1(b'{"v": 2}')

    only = api.model_info("org/tiny", expand=["sha", "safetensors"])
    assert only.sha == tiny["v2"] and only.safetensors.total == 40 and only.siblings is None
    assert hub.requests[-1].query == "expand=sha&expand=safetensors"


def test_tree_paths_info_and_refs(hub: HubEmulator, tiny: dict[str, str]) -> None:
    api = HfApi()
    top = {e.path: type(e).__name__ for e in api.list_repo_tree("org/tiny")}
    assert top == {"config.json": "RepoFile", "model.safetensors": "RepoFile", "sub": "RepoFolder"}

    hub.tree_page_size = 2
    hub.reset_counters()
    everything = [e.path for e in api.list_repo_tree("org/tiny", recursive=True)]
    assert everything == ["config.json", "model.safetensors", "sub", "sub/notes.txt"]
    assert [r.query.endswith("cursor=2") for r in hub.requests] == [False, True]

    (notes,) = api.list_repo_tree("org/tiny", path_in_repo="sub", expand=True)
    assert notes.path == "sub/notes.txt" and notes.last_commit.oid == tiny["v2"]
    assert api.list_repo_files("org/tiny", revision="v1") == ["config.json", "model.safetensors"]

    infos = api.get_paths_info("org/tiny", ["model.safetensors", "sub", "nope.bin"], revision="v1")
    assert [i.path for i in infos] == ["model.safetensors"]
    weights = api.get_paths_info("org/tiny", "model.safetensors")[0]
    assert weights.lfs.sha256 == hashlib.sha256(Path(tiny["st2"]).read_bytes()).hexdigest()

    refs = api.list_repo_refs("org/tiny")
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", tiny["v2"])]
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1", tiny["v1"])]
    with pytest.raises(RevisionNotFoundError):
        list(api.list_repo_tree("org/tiny", revision="nope"))


def test_safetensors_metadata_single_file(hub: HubEmulator, tiny: dict[str, str]) -> None:
    hub.reset_counters()
    meta = HfApi().get_safetensors_metadata("org/tiny", revision="v1")
    assert not meta.sharded and meta.weight_map == {"w": "model.safetensors"}
    tensor = meta.files_metadata["model.safetensors"].tensors["w"]
    assert tensor.dtype == "F32" and tensor.shape == [4, 4] and tensor.parameter_count == 16
    # file_exists (HEAD, answered by a redirect it does not follow), then one ranged GET that
    # follows the redirect to the CDN, without the Authorization header.
    calls = [(r.method, r.server, r.status, r.range) for r in hub.requests]
    assert calls == [
        ("HEAD", "hub", 302, None),
        ("GET", "hub", 302, "bytes=0-100000"),
        ("GET", "cdn", 206, "bytes=0-100000"),
    ]
    assert hub.bytes_sent == os.path.getsize(tiny["st1"])


def test_safetensors_metadata_sharded(hub: HubEmulator, tmp_path: Path) -> None:
    shards = {
        "model-00001-of-00002.safetensors": {"a": ("float32", (3, 5)), "b": ("int64", (2,))},
        "model-00002-of-00002.safetensors": {"c": ("float16", (7,))},
    }
    files: dict[str, Path | bytes] = {}
    weight_map = {}
    for name, tensors in shards.items():
        files[name] = make_safetensors(tmp_path / name, tensors)
        weight_map.update(dict.fromkeys(tensors, name))
    index = {"metadata": {"total_size": 15 * 4 + 2 * 8 + 7 * 2}, "weight_map": weight_map}
    files["model.safetensors.index.json"] = json.dumps(index).encode()
    hub.add_repo("org/sharded", files)

    hub.reset_counters()
    meta = HfApi().get_safetensors_metadata("org/sharded")
    assert meta.sharded and meta.metadata == index["metadata"] and meta.weight_map == weight_map
    assert meta.parameter_count == {"F32": 15, "I64": 2, "F16": 7}
    ranged = sorted(
        (r.path.rsplit("/", 1)[-1], r.range) for r in hub.requests if r.server == "hub" and r.range
    )
    assert ranged == [(name, "bytes=0-100000") for name in sorted(shards)]
    assert [r.status for r in hub.requests if r.path.endswith("model.safetensors")] == [404]

    if hasattr(HfApi, "get_sharded_safetensors_metadata"):  # since 2.0
        one_call = HfApi().get_sharded_safetensors_metadata("org/sharded")
        assert one_call.files_metadata == meta.files_metadata and one_call.weight_map == weight_map


def test_large_header_takes_a_second_range(hub: HubEmulator, tmp_path: Path) -> None:
    path = make_safetensors(
        tmp_path / "big.safetensors", {"w": ("float32", (2,))}, {"padding": "x" * 150_000}
    )
    n = header_size(path)
    hub.add_repo("org/bigheader", {"model.safetensors": path}, lfs=False)
    hub.reset_counters()
    meta = HfApi().parse_safetensors_file_metadata("org/bigheader", "model.safetensors")
    assert meta.metadata["padding"] == "x" * 150_000
    assert [(r.status, r.range) for r in hub.requests] == [
        (206, "bytes=0-100000"),
        (206, f"bytes=8-{n + 7}"),
    ]


def test_head_and_ranges_through_the_session(hub: HubEmulator, tiny: dict[str, str]) -> None:
    session = get_session()
    content = Path(tiny["st2"]).read_bytes()
    url = hf_hub_url("org/tiny", "model.safetensors")
    assert url == f"{hub.url}/org/tiny/resolve/main/model.safetensors"

    head = session.head(url, **no_redirects(session))
    assert head.status_code == 302 and head.headers["Location"].startswith(hub.cdn_url)
    assert head.headers["X-Repo-Commit"] == tiny["v2"]
    assert head.headers["X-Linked-Size"] == str(len(content))
    assert head.headers["X-Linked-Etag"] == f'"{hashlib.sha256(content).hexdigest()}"'

    meta = get_hf_file_metadata(url)
    assert meta.commit_hash == tiny["v2"] and meta.size == len(content)
    assert meta.etag == hashlib.sha256(content).hexdigest()
    assert meta.location.startswith(hub.cdn_url)

    r = session.get(url, headers={"Range": "bytes=0-7"})
    assert r.status_code == 206 and r.content == content[:8]
    assert r.headers["Content-Range"] == f"bytes 0-7/{len(content)}"
    r = session.get(url, headers={"Range": "bytes=-4"})
    assert r.status_code == 206 and r.content == content[-4:]
    r = session.get(url, headers={"Range": "bytes=10-"})
    assert r.status_code == 206 and r.content == content[10:]
    r = session.get(url, headers={"Range": f"bytes={len(content)}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(content)}"
    with pytest.raises(HfHubHTTPError):
        hf_raise_for_status(r)

    small = hf_hub_url("org/tiny", "config.json", revision="v1")
    head = session.head(small)
    etag = git_blob_sha1(b'{"v": 1}')
    assert head.status_code == 200 and head.headers["ETag"] == f'"{etag}"'
    assert head.headers["Content-Length"] == "8" and "X-Linked-Etag" not in head.headers
    assert session.get(small).content == b'{"v": 1}'


def test_download_then_offline_from_the_cache(hub: HubEmulator, tiny: dict[str, str]) -> None:
    path = hf_hub_download("org/tiny", "model.safetensors")
    assert Path(path).read_bytes() == Path(tiny["st2"]).read_bytes()
    assert Path(path).is_relative_to(os.environ["HF_HUB_CACHE"])
    assert tiny["v2"] in path
    old = hf_hub_download("org/tiny", "config.json", revision="v1")
    assert Path(old).read_bytes() == b'{"v": 1}'
    cdn_gets = [r for r in hub.requests if r.server == "cdn"]
    assert len(cdn_gets) == 1 and cdn_gets[0].token is None

    hub.reset_counters()
    script = (
        "from huggingface_hub import hf_hub_download, constants\n"
        "assert constants.HF_HUB_OFFLINE\n"
        "print(hf_hub_download('org/tiny', 'model.safetensors'))\n"
        "print(hf_hub_download('org/tiny', 'config.json', revision='v1'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.splitlines() == [path, old]
    assert hub.request_count == 0


def test_subprocess_reaches_the_emulator_through_the_environment(
    hub: HubEmulator, tiny: dict[str, str]
) -> None:
    script = "from huggingface_hub import model_info; print(model_info('org/tiny').sha)"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == tiny["v2"]
    assert [r.path for r in hub.requests] == ["/api/models/org/tiny"]


def test_not_found_errors(hub: HubEmulator, tiny: dict[str, str]) -> None:
    api = HfApi()
    with pytest.raises(RepositoryNotFoundError) as e:
        api.model_info("org/missing")
    assert e.value.response.status_code == 401  # anonymous, as the Hub
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("org/missing", "config.json")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("org/tiny", revision="nope")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("org/tiny", "config.json", revision="0" * 40)
    with pytest.raises(RemoteEntryNotFoundError) as missing:
        hf_hub_download("org/tiny", "missing.bin")
    assert isinstance(missing.value, EntryNotFoundError)
    assert missing.value.response.headers["X-Error-Code"] == "EntryNotFound"
    assert not api.file_exists("org/tiny", "missing.bin")
    assert api.file_exists("org/tiny", "sub/notes.txt")


def test_private_and_gated_repos(hub: HubEmulator, tiny: dict[str, str], tmp_path: Path) -> None:
    hub.valid_tokens.add(TOKEN)
    hub.add_repo("org/secret", {"config.json": b"{}"}, private=True)
    hub.add_repo("org/gated", {"model.safetensors": Path(tiny["st1"])}, gated="manual")
    api = HfApi()

    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/secret")
    assert api.model_info("org/secret", token=TOKEN).private is True
    with pytest.raises(RepositoryNotFoundError) as e:
        api.model_info("org/missing", token=TOKEN)
    assert e.value.response.status_code == 404  # authenticated, as the Hub

    info = api.model_info("org/gated")  # a gated repo's info is public
    assert info.gated == "manual" and [s.rfilename for s in info.siblings] == ["model.safetensors"]
    with pytest.raises(GatedRepoError) as gated:
        hf_hub_download("org/gated", "model.safetensors")
    assert gated.value.response.status_code == 401
    assert "Access to model org/gated is restricted" in str(gated.value)
    with pytest.raises(GatedRepoError):
        api.get_safetensors_metadata("org/gated")

    path = hf_hub_download("org/gated", "model.safetensors", token=TOKEN)
    assert Path(path).read_bytes() == Path(tiny["st1"]).read_bytes()
    assert api.get_safetensors_metadata("org/gated", token=TOKEN).parameter_count == {"F32": 16}
    assert {r.token for r in hub.requests if r.server == "cdn"} == {None}

    with pytest.raises(HfHubHTTPError) as bad:
        api.model_info("org/tiny", token="hf_not_a_real_token")
    assert bad.value.response.status_code == 401
    assert not isinstance(bad.value, RepositoryNotFoundError)


def test_latency_overlaps_concurrent_requests(hub: HubEmulator, tiny: dict[str, str]) -> None:
    latency = 0.3
    api = HfApi()
    api.model_info("org/tiny")  # warm: imports, first connection
    hub.latency = latency
    start = time.perf_counter()
    with ThreadPoolExecutor(10) as pool:
        shas = list(pool.map(lambda _: api.model_info("org/tiny").sha, range(10)))
    elapsed = time.perf_counter() - start
    assert shas == [tiny["v2"]] * 10
    assert latency <= elapsed < 3 * latency, elapsed  # 10 in a row would take 10x


def test_sparse_20gb_file_is_served_by_range(hub: HubEmulator, tmp_path: Path) -> None:
    rows = cols = 100_000  # BF16: 2e10 bytes of data
    header = json.dumps(
        {
            "__metadata__": {"format": "pt"},
            "w": {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [0, rows * cols * 2]},
        }
    ).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "huge.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + rows * cols * 2)
    size = path.stat().st_size
    assert size > 20e9 and path.stat().st_blocks * 512 < 1 << 20  # really sparse
    hub.add_repo("org/huge", {"model.safetensors": path})

    hub.reset_counters()
    start = time.perf_counter()
    info = HfApi().model_info("org/huge", files_metadata=True)
    assert info.siblings[0].size == size and len(info.siblings[0].lfs.sha256) == 64  # the fake
    assert info.safetensors.total == rows * cols
    meta = HfApi().parse_safetensors_file_metadata("org/huge", "model.safetensors")
    assert meta.tensors["w"].shape == [rows, cols]
    tail = get_session().get(
        hf_hub_url("org/huge", "model.safetensors"), headers={"Range": "bytes=-16"}
    )
    assert tail.status_code == 206 and tail.content == b"\0" * 16
    assert tail.headers["Content-Range"] == f"bytes {size - 16}-{size - 1}/{size}"
    assert time.perf_counter() - start < 2
    ranged = [r for r in hub.requests if r.server == "cdn"]
    assert [r.bytes_sent for r in ranged] == [100_001, 16]
    assert hub.bytes_sent < 110_000


def test_context_manager_and_plain_http(tmp_path: Path) -> None:
    """Without the fixture: explicit endpoints, LFS served in place, the server really stops."""
    with HubEmulator(tmp_path, lfs_redirect=False) as emulator:
        zeros = b"\x00" * 10
        emulator.add_repo("solo", {"model.safetensors": zeros})
        url = hf_hub_url("solo", "model.safetensors", endpoint=emulator.url)
        assert url == f"{emulator.url}/solo/resolve/main/model.safetensors"
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD")) as r:
            assert r.status == 200 and r.headers["X-Linked-Size"] == "10"
            assert r.headers["X-Linked-Etag"] == f'"{hashlib.sha256(zeros).hexdigest()}"'
        assert HfApi(endpoint=emulator.url).model_info("solo").id == "solo"
        endpoint = emulator.url
    assert emulator.request_count == 2
    with pytest.raises(urllib.error.URLError) as refused:
        urllib.request.urlopen(endpoint + "/api/models/solo", timeout=10)
    assert isinstance(refused.value.reason, ConnectionRefusedError)
