"""``paramtool stats``, ``hash``, ``verify`` and ``diff`` through the CLI: JSON, tables, exits."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from helpers import cli, error_line, strict_json
from layouts import make_checkpoint, tiny_model


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    arrays = tiny_model()
    w = arrays["model.layers.0.mlp.down_proj.weight"].astype(np.float32)
    w[0, :3] = [np.nan, np.inf, -np.inf]
    arrays["model.layers.0.mlp.down_proj.weight"] = w.astype(ml_dtypes.bfloat16)
    return make_checkpoint(tmp_path / "ckpt", arrays, shards=2)


# ---------------------------------------------------------------- stats


def test_stats_json(ckpt):
    r = cli("stats", str(ckpt), "--json", "--top", "2")
    assert r.exit_code == 0 and r.stderr == ""
    doc = strict_json(r.stdout)
    assert doc["schema_version"] == 1 and doc["source"] == str(ckpt) and doc["revision"] is None
    assert doc["tensor_count"] == len(tiny_model()) == len(doc["tensors"])
    assert set(doc["by_category"]) == {
        "embedding",
        "attention",
        "feed_forward",
        "norm",
        "adapter",
        "quantization",
        "other",
    }
    assert (doc["total"]["nan"], doc["total"]["posinf"], doc["total"]["neginf"]) == (1, 1, 1)
    assert doc["total"]["count"] == sum(a.size for a in tiny_model().values())
    assert doc["by_category"]["feed_forward"]["nan"] == 1
    assert [x["layer"] for x in doc["by_layer"]] == [0, 1] and doc["by_layer"][0]["nan"] == 1
    down = next(t for t in doc["tensors"] if t["name"] == "model.layers.0.mlp.down_proj.weight")
    assert down["dtype"] == "BF16" and down["shape"] == [16, 40] and down["layer"] == 0
    assert down["finite"] == 16 * 40 - 3 and isinstance(down["std"], float)
    norm = next(t for t in doc["tensors"] if t["name"] == "model.norm.weight")
    assert (norm["min"], norm["max"], norm["mean"], norm["std"], norm["zeros"]) == (
        1.0,
        1.0,
        1.0,
        0.0,
        0,
    )
    ids = next(t for t in doc["tensors"] if t["name"] == "model.rotary.inv_freq")
    assert (ids["min"], ids["max"], ids["zeros"], ids["zero_fraction"]) == (0, 7, 1, 0.125)
    assert doc["top"] == {
        "n": 2,
        "max_abs": doc["top"]["max_abs"],
        "nonfinite": ["model.layers.0.mlp.down_proj.weight"],
    }
    assert len(doc["top"]["max_abs"]) == 2 and doc["unsupported"] == [] and doc["warnings"] == []
    assert set(down) == {
        "name",
        "dtype",
        "shape",
        "category",
        "layer",
        "file",
        "count",
        "finite",
        "zeros",
        "nan",
        "posinf",
        "neginf",
        "zero_fraction",
        "min",
        "max",
        "mean",
        "std",
        "mean_abs",
        "max_abs",
    }


def test_stats_tables_and_filter(ckpt):
    r = cli("stats", str(ckpt), "--tensors")
    assert r.exit_code == 0
    for title in (
        "Values",
        "By category",
        "By layer",
        "Largest |x|",
        "Most NaN / Inf",
        "Tensors (",
    ):
        assert title in r.stdout
    assert "model.layers.0.mlp.down_proj.weight" in r.stdout
    r = cli("stats", str(ckpt), "--filter", r"norm\.weight$", "--json", "--top", "0")
    doc = strict_json(r.stdout)
    assert doc["filter"] == r"norm\.weight$" and doc["tensor_count"] == 5
    assert doc["top"] == {"n": 0, "max_abs": [], "nonfinite": []}


def test_stats_hostile_names_are_plain_text(tmp_path):
    p = make_checkpoint(
        tmp_path / "m", {"[bold red]x[/]\x1b[31m": np.ones(3, np.float32)}, shards=1
    )
    r = cli("stats", str(p), "--tensors")
    assert r.exit_code == 0 and "[bold red]x[/]?[31m" in r.stdout and "\x1b[31m" not in r.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--top", "-1"], "--top -1: must be 0 or more"),
        (["--filter", "("], "not a regular expression"),
    ],
)
def test_stats_bad_options(ckpt, args, fragment):
    assert fragment in error_line(cli("stats", str(ckpt), *args), stdout=None)


@pytest.mark.parametrize("command", ["stats", "hash", "diff"])
def test_workers_is_one_meaning_and_checked(ckpt, command):
    sides = [str(ckpt), str(ckpt)] if command == "diff" else [str(ckpt)]
    for bad in ("0", "-2"):
        line = error_line(cli(command, *sides, "--workers", bad), stdout=None)
        assert f"--workers {bad}: must be 1 or more" in line
    one = strict_json(cli(command, *sides, "--json", "--workers", "1").stdout)
    assert strict_json(cli(command, *sides, "--json", "--workers", "3").stdout) == one


def test_stats_missing_path(tmp_path):
    error_line(cli("stats", str(tmp_path / "nothing.safetensors")), stdout=None)


# ---------------------------------------------------------------- hash


def test_hash_text_is_sha256sum_format(ckpt, tmp_path):
    r = cli("hash", str(ckpt))
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    shards = sorted(ckpt.glob("*.safetensors"))
    assert lines[:2] == [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p}" for p in shards]
    assert lines[2].startswith("# weights digest ") and len(lines) == 3
    if shutil.which("sha256sum"):
        (tmp_path / "sums").write_text(r.stdout)
        p = subprocess.run(
            ["sha256sum", "-c", str(tmp_path / "sums")], capture_output=True, text=True
        )
        assert p.returncode == 0 and p.stdout.count(": OK") == 2
    r = cli("hash", str(ckpt), "--tensors")
    assert len(r.stdout.splitlines()) == 3 + len(tiny_model())


def test_hash_json_and_resharding(ckpt, tmp_path):
    doc = strict_json(cli("hash", str(ckpt), "--json").stdout)
    assert doc["digest_scheme"] == "blake3(dtype NUL json(shape) NUL bytes)"
    assert doc["weights_digest_scheme"] == "sha256(json(sorted [name, digest] pairs))"
    assert strict_json(cli("hash", str(ckpt), "--json", "--workers", "1").stdout) == doc
    assert [f["sha256"] for f in doc["files"]] == [
        hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest() for f in doc["files"]
    ]
    assert doc["tensor_count"] == len(doc["tensors"]) == len(tiny_model())
    assert set(doc["tensors"][0]) == {"name", "dtype", "shape", "file", "digest"}
    one = make_checkpoint(tmp_path / "one", dict(_load(ckpt)), shards=1)
    other = strict_json(cli("hash", str(one), "--json").stdout)
    assert other["weights_digest"] == doc["weights_digest"] and other["files"] != doc["files"]


def _load(folder: Path):
    from safetensors.numpy import load_file

    for p in sorted(folder.glob("*.safetensors")):
        yield from load_file(p).items()


# ---------------------------------------------------------------- Hub sources


def test_hub_source_is_refused_without_download_before_any_request(hub, ckpt):
    hub.add_repo("org/tiny", ckpt)
    hub.reset_counters()
    for cmd in ("stats", "hash"):
        err = error_line(cli(cmd, "org/tiny"), stdout=None)
        assert "--download" in err
    assert "--download" in error_line(cli("diff", str(ckpt), "org/tiny"), stdout=None)
    assert hub.requests == []


def test_hub_source_with_download_reads_the_cached_files(hub, ckpt):
    sha = hub.add_repo("org/tiny", ckpt)
    local = strict_json(cli("stats", str(ckpt), "--json").stdout)
    remote = strict_json(cli("stats", "org/tiny", "--download", "--json").stdout)
    assert remote["revision"] == sha and remote["source"] == "org/tiny"
    assert [dict(t, file=None) for t in remote["tensors"]] == [
        dict(t, file=None) for t in local["tensors"]
    ]
    assert remote["total"] == local["total"]
    h_local = strict_json(cli("hash", str(ckpt), "--json").stdout)
    h_remote = strict_json(cli("hash", "org/tiny@main", "--download", "--json").stdout)
    assert [f["sha256"] for f in h_remote["files"]] == [f["sha256"] for f in h_local["files"]]
    assert h_remote["weights_digest"] == h_local["weights_digest"]
    r = cli("diff", str(ckpt), "org/tiny", "--download", "--json")
    assert r.exit_code == 0 and strict_json(r.stdout)["identical"] is True


def test_hub_subfolder_download_then_offline_from_the_cache(hub, ckpt, tmp_path):
    import os

    one = make_checkpoint(tmp_path / "one", dict(_load(ckpt)), shards=1)
    sha = hub.add_repo(
        "org/multi",
        {"variant/model.safetensors": one / "model.safetensors", "README.md": b"# multi\n"},
    )
    args = ["stats", "org/multi", "--subfolder", "variant", "--download", "--json"]
    remote = strict_json(cli(*args).stdout)
    assert remote["revision"] == sha and remote["tensor_count"] == len(tiny_model())
    p = subprocess.run(
        [sys.executable, "-m", "paramtool", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert p.returncode == 0, p.stderr
    offline = strict_json(p.stdout)
    assert offline["total"] == remote["total"] and offline["revision"] == sha


def test_hub_download_of_a_missing_repo_is_one_line(hub):
    err = error_line(cli("stats", "org/missing", "--download"), stdout=None)
    assert "org/missing" in err


# ---------------------------------------------------------------- verify


def test_verify_cli(hub, ckpt, tmp_path):
    sha = hub.add_repo("org/tiny", ckpt)
    r = cli("verify", str(ckpt), "--against", "org/tiny", "--json")
    assert r.exit_code == 0, r.stderr
    doc = strict_json(r.stdout)
    assert doc["ok"] is True and doc["revision"] == sha and doc["repo_id"] == "org/tiny"
    assert doc["counts"] == {"ok": 3, "mismatch": 0, "missing": 0, "unverified": 0}
    assert set(doc["files"][0]) == {
        "path",
        "local",
        "required",
        "status",
        "algorithm",
        "expected",
        "actual",
        "expected_bytes",
        "actual_bytes",
    }
    r = cli("verify", str(ckpt), "--against", "org/tiny")
    assert r.exit_code == 0 and "all match" in r.stdout
    local = tmp_path / "copy"
    shutil.copytree(ckpt, local)
    (local / "model-00002-of-00002.safetensors").unlink()
    r = cli("verify", str(local), "--against", f"org/tiny@{sha}")
    assert r.exit_code == 1 and "missing" in r.stdout and "DIFFERS" in r.stdout
    doc = strict_json(cli("verify", str(local), "--against", "org/tiny", "--json").stdout)
    assert doc["ok"] is False and doc["counts"]["missing"] == 1


def test_verify_bad_input_is_exit_2(hub, ckpt, tmp_path):
    hub.add_repo("org/tiny", ckpt)
    assert "--against" in error_line(cli("verify", str(ckpt)), stdout=None)
    assert "not a Hub repo id" in error_line(
        cli("verify", str(ckpt), "--against", "nope"), stdout=None
    )
    error_line(cli("verify", str(tmp_path / "absent"), "--against", "org/tiny"), stdout=None)
    error_line(cli("verify", str(ckpt), "--against", "org/absent"), stdout=None)


# ---------------------------------------------------------------- diff


def test_diff_cli_exit_codes_and_json(ckpt, tmp_path):
    arrays = dict(_load(ckpt))
    same = make_checkpoint(tmp_path / "same", arrays, shards=1)  # one file: another sharding
    r = cli("diff", str(ckpt), str(same))
    assert r.exit_code == 0 and "identical" in r.stdout
    changed = dict(arrays)
    w = arrays["model.layers.1.self_attn.q_proj.weight"].astype(np.float32)
    w[0, 0] += 1.0
    changed["model.layers.1.self_attn.q_proj.weight"] = w.astype(ml_dtypes.bfloat16)
    del changed["lm_head.weight"]
    other = make_checkpoint(tmp_path / "other", changed, shards=1)
    r = cli("diff", str(ckpt), str(other), "--json")
    assert r.exit_code == 1
    doc = strict_json(r.stdout)
    assert doc["identical"] is False
    assert [t["name"] for t in doc["structure"]["removed"]] == ["lm_head.weight"]
    assert doc["by_category"]["attention"]["changed_layers"] == [1]
    assert doc["by_category"]["attention"]["changed"] == 1
    row = next(t for t in doc["tensors"] if t["name"] == "model.layers.1.self_attn.q_proj.weight")
    assert row["changed_elements"] == 1 and row["identical"] is False and row["rel_l2"] > 0
    assert set(row) == {
        "name",
        "category",
        "layer",
        "dtype_a",
        "dtype_b",
        "shape",
        "identical",
        "elements",
        "changed_elements",
        "nonfinite_changed",
        "l2",
        "rel_l2",
        "max_abs",
    }
    assert set(doc) == {
        "schema_version",
        "a",
        "b",
        "filter",
        "identical",
        "structure",
        "total",
        "by_category",
        "by_layer",
        "tensors",
        "warnings",
    }
    r = cli("diff", str(ckpt), str(other))
    assert r.exit_code == 1
    assert "attention: 1 of 8 tensors changed in layer 1, relative L2 " in r.stdout
    assert "Most changed tensors" in r.stdout and "removed" in r.stdout
    error_line(cli("diff", str(ckpt), str(tmp_path / "absent")), stdout=None)


def test_subprocess_entry_point_exit_codes(ckpt, tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "paramtool", "diff", str(ckpt), str(ckpt), "--json"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0 and strict_json(p.stdout)["identical"] is True
    p = subprocess.run(
        [sys.executable, "-m", "paramtool", "stats", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2 and p.stderr.count("\n") == 1


@pytest.mark.parametrize("command", ["stats", "hash"])
def test_download_draws_no_bar_when_stderr_is_not_a_terminal(hub, ckpt, command):
    import os

    hub.add_repo("org/tiny", ckpt)
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    r = subprocess.run(
        [sys.executable, "-m", "paramtool", command, "org/tiny", "--download"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout, r.stderr
    assert r.stderr == ""  # stderr is a pipe: no bar, neither paramtool's nor huggingface_hub's
