"""footprint's as-stored row: the checkpoint's own tensor bytes, beside the estimates.

A GPTQ or FP8 checkpoint is smaller or larger than any precision row says (scales, zero
points, g_idx, the fp16 embeddings and head): the as-stored row is what its files hold.
The layouts are written as their quantizers write them (``tests/quant_layouts.py``) into
sparse safetensors files; the expected bytes are read back from the files themselves
(size minus the 8-byte length and the JSON header), never from paramtool.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import cli, cli_json
from layouts import Layout, write_sparse_checkpoint
from quant_layouts import LLAMA31_8B, fp8_llama31_8b, gptq_llama31_8b


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Callable[[], Layout]], Path]:
    cache: dict[str, Path] = {}

    def get(builder: Callable[[], Layout]) -> Path:
        if builder.__name__ not in cache:
            folder = tmp_path_factory.mktemp(builder.__name__)
            write_sparse_checkpoint(folder, builder())
            cache[builder.__name__] = folder
        return cache[builder.__name__]

    return get


def file_tensor_bytes(folder: Path) -> int:
    """Bytes after the header in every .safetensors file: the tensors as stored."""
    total = 0
    for f in sorted(folder.glob("*.safetensors")):
        with f.open("rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
        assert f.stat().st_size == 8 + n + max(ends)  # no trailing bytes
        total += max(ends)
    return total


def stored_row(doc: dict) -> dict:
    rows = [r for r in doc["precisions"] if r["as_stored"]]
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize(
    ("builder", "gb"),
    [
        (gptq_llama31_8b, 5.73),  # hugging-quants/Meta-Llama-3.1-8B-Instruct-GPTQ-INT4: 5.73 GB
        (fp8_llama31_8b, 9.08),  # neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8: 9.08 GB
    ],
    ids=["gptq", "fp8"],
)
def test_the_as_stored_row_is_the_file_bytes(
    written: Callable[[Callable[[], Layout]], Path], builder: Callable[[], Layout], gb: float
) -> None:
    folder = written(builder)
    doc = cli_json("footprint", str(folder))
    row = stored_row(doc)
    assert doc["parameters"] == LLAMA31_8B  # logical: the unquantized model's count
    assert row["weights_bytes"] == file_tensor_bytes(folder)
    assert round(row["weights_bytes"] / 1e9, 2) == gb
    assert row["dtype"] == "as-stored" and row["kind"] == "stored"
    assert row["bits_per_parameter"] == pytest.approx(8 * row["weights_bytes"] / LLAMA31_8B)
    assert doc["precisions"][0] is not None and doc["precisions"][0]["as_stored"]  # first
    assert sum(r["as_stored"] for r in doc["precisions"]) == 1


def test_gptq_as_stored_beats_the_nearest_estimate(
    written: Callable[[Callable[[], Layout]], Path],
) -> None:
    doc = cli_json("footprint", str(written(gptq_llama31_8b)), "--dtype", "all")
    rows = {r["dtype"]: r["weights_bytes"] for r in doc["precisions"]}
    # the figures: int4 with zero points says 4.17 GB; the files hold 5.73
    assert round(rows["int4-g128-zp"] / 1e9, 2) == 4.17
    assert round(rows["as-stored"] / 1e9, 2) == 5.73


def test_dtype_stored_alone_gives_the_serving_table(
    written: Callable[[Callable[[], Layout]], Path],
) -> None:
    folder = written(fp8_llama31_8b)
    doc = cli_json("footprint", str(folder), "--dtype", "stored", "--context", "8192")
    (row,) = doc["precisions"]
    assert row["as_stored"] and row["weights_bytes"] == file_tensor_bytes(folder)
    # 2 x 8 KV heads x 128 x 32 layers x 8192 tokens x 2 bytes = 1 GiB
    assert doc["kv_cache_bytes"] == 1_073_741_824
    assert row["serving_bytes"] > row["weights_bytes"] + doc["kv_cache_bytes"]


def test_an_explicit_dtype_drops_the_stored_row(
    written: Callable[[Callable[[], Layout]], Path],
) -> None:
    doc = cli_json("footprint", str(written(fp8_llama31_8b)), "--dtype", "bf16")
    assert [r["dtype"] for r in doc["precisions"]] == ["bf16"]
    assert not doc["precisions"][0]["as_stored"]


def test_dtype_stored_needs_a_checkpoint() -> None:
    r = cli("footprint", "--params", "8B", "--dtype", "stored")
    assert r.exit_code == 2
    assert "needs a checkpoint" in r.stderr


def test_the_table_shows_the_stored_row(written: Callable[[Callable[[], Layout]], Path]) -> None:
    r = cli("footprint", str(written(gptq_llama31_8b)), env={"COLUMNS": "100"})
    assert r.exit_code == 0
    weights = r.stdout.split("Weights", 1)[1]
    first = [line for line in weights.splitlines() if "│" in line][0]
    assert "as-stored" in first and "5.73 GB" in first
