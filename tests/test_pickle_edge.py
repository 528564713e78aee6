"""What torch.save writes beyond a float state dict, read symbolically (tests/fixtures/torch/
edge_types.pt, written by torch 2.13; its truth file holds torch's own figures)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import paramtool
from paramtool.formats.torch_pickle import ALLOWLIST, read_torch_file

FIXTURE = Path(__file__).parent / "fixtures" / "torch" / "edge_types.pt"
TRUTH = json.loads(FIXTURE.with_name(FIXTURE.name + ".truth.json").read_text())
# torch's dtype names -> paramtool's (the safetensors spelling where one exists)
NAMES = {
    "torch.float32": "F32",
    "torch.bfloat16": "BF16",
    "torch.complex128": "C128",
    "torch.complex32": "C32",
    "torch.float4_e2m1fn_x2": "F4_E2M1_X2",
}


def test_every_global_torch_wrote_is_allowlisted() -> None:
    named = {tuple(g.rsplit(".", 1)) for g in TRUTH["globals"]}
    assert named <= ALLOWLIST


def test_dense_tensors_match_torch() -> None:
    ck = read_torch_file(FIXTURE)
    assert ck.verdict == "plain state dict"
    got = {t.name.removeprefix("state_dict."): t for t in ck.tensors}
    assert sorted(got) == sorted(TRUTH["dense"])
    for name, want in TRUTH["dense"].items():
        t = got[name]
        assert t.dtype == NAMES[want["dtype"]]
        assert list(t.shape) == want["shape"]
        assert t.nbytes == want["nbytes"]


def test_unreadable_tensors_and_numpy_are_listed_not_counted() -> None:
    info = paramtool.inspect(FIXTURE).to_dict()
    want_params = sum(math.prod(d["shape"]) for d in TRUTH["dense"].values())
    assert info["total_parameters"] == want_params == 54
    entries = info["files"][0]["pickle"]["other_entries"]
    assert entries["kinds"] == {"int": 1, "numpy": 2, "unread tensor": 2}
    assert {"state_dict.q", "state_dict.sparse", "np_scalar"} <= set(entries["names"])


def test_cli_reads_it(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "paramtool", "inspect", str(FIXTURE), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["files"][0]["pickle"]["verdict"] == "plain state dict"
