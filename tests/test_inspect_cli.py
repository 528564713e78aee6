"""``paramtool inspect`` through the CLI: exact JSON, tables, exports and the error line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from helpers import cli, cli_json

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tiny-llama"


def test_example_json_is_exact():
    doc = cli_json("inspect", str(EXAMPLE))
    # 2 x 2048 x 128 embeddings/head, 4 layers of (2 x 128^2 + 2 x 32 x 128) attention,
    # 3 x 128 x 344 MLP and 2 x 128 norms, plus the final norm.
    emb = 2 * 2048 * 128
    attn = 4 * (2 * 128 * 128 + 2 * 32 * 128)
    ffn = 4 * 3 * 128 * 344
    norm = 4 * 2 * 128 + 128
    assert doc["total_parameters"] == emb + attn + ffn + norm == 1_217_664
    assert doc["total_bytes"] == 2 * doc["total_parameters"]
    assert doc["by_dtype"] == {
        "BF16": {"parameters": 1_217_664, "bytes": 2_435_328, "tensors": 39, "share": 1.0}
    }
    cats = doc["by_category"]
    assert list(cats) == [
        "embedding",
        "attention",
        "feed_forward",
        "norm",
        "adapter",
        "quantization",
        "other",
    ]
    assert (
        cats["embedding"]["parameters"],
        cats["attention"]["parameters"],
        cats["feed_forward"]["parameters"],
        cats["norm"]["parameters"],
        cats["other"]["parameters"],
    ) == (emb, attn, ffn, norm, 0)
    assert doc["other_share"] == 0.0
    assert doc["layers"]["count"] == 4
    assert [layer["parameters"] for layer in doc["layers"]["per_layer"]] == [
        (attn + ffn + norm - 128) // 4
    ] * 4
    (f,) = doc["files"]
    size = (EXAMPLE / "model.safetensors").stat().st_size
    assert f["bytes"] == size == doc["file_bytes"] and f["tensors"] == 39
    assert f["header_bytes"] == size - 8 - doc["total_bytes"]
    assert doc["metadata"] == {"format": "pt"}
    assert doc["config"]["architecture"] == "LlamaForCausalLM" and doc["config"]["kv_heads"] == 2
    assert doc["tied_embeddings"] is False
    assert doc["memory"][0] == {"dtype": "fp32", "bits": 32.0, "bytes": 4 * 1_217_664}
    assert doc["memory"][-1] == {"dtype": "int4", "bits": 4.0, "bytes": 1_217_664 // 2}
    assert doc["revision"] is None and doc["warnings"] == [] and "tensors" not in doc


def test_tensors_and_filter():
    doc = cli_json("inspect", str(EXAMPLE), "--filter", r"layers\.1\..*proj")
    names = [t["name"] for t in doc["tensors"]]
    assert len(names) == 7 and all(".layers.1." in n for n in names)
    q = next(t for t in doc["tensors"] if t["name"].endswith("q_proj.weight"))
    assert q == {
        "name": "model.layers.1.self_attn.q_proj.weight",
        "dtype": "BF16",
        "shape": [128, 128],
        "parameters": 16384,
        "bytes": 32768,
        "category": "attention",
        "layer": 1,
        "component": "q",
        "file": str(EXAMPLE / "model.safetensors"),
    }


def test_tables_show_summary_anatomy_memory_and_layers():
    r = cli("inspect", str(EXAMPLE), "--layers", "--tensors")
    assert r.exit_code == 0
    out = r.stdout
    for needle in (
        "1,217,664 (1.22M)",
        "Anatomy",
        "feed_forward",
        "Memory for these parameters",
        "int4",
        "Parameters per layer",
        "model.layers.3.mlp.down_proj.weight",
        "not tied",
    ):
        assert needle in out, needle


def test_gib_units():
    assert "MiB" in cli("inspect", str(EXAMPLE), "--gib").stdout


@pytest.mark.parametrize("suffix", [".svg", ".html", ".txt"])
def test_export(tmp_path, suffix):
    out = tmp_path / f"report{suffix}"
    r = cli("inspect", str(EXAMPLE), "--export", str(out))
    assert r.exit_code == 0 and out.stat().st_size > 1000
    text = out.read_text()
    assert "Anatomy" in text or "Anatomy" in text.replace("&#160;", " ")
    if suffix == ".svg":
        ET.fromstring(text)  # well-formed SVG


def test_export_bad_suffix():
    r = cli("inspect", str(EXAMPLE), "--export", "report.pdf")
    assert r.exit_code == 2 and r.stderr.startswith("paramtool: error: --export")


def test_hostile_names_are_not_markup(tmp_path):
    p = tmp_path / "evil.safetensors"
    save_file({"[bold red]x[/]\x1b[2J.weight": np.zeros(2, np.float32)}, p)
    r = cli("inspect", str(p), "--tensors")
    assert r.exit_code == 0
    assert "[bold red]x[/]?[2J.weight" in r.stdout and "\x1b[2J" not in r.stdout


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        (lambda d: d / "missing.safetensors", "no such file"),
        (lambda d: d, "no safetensors checkpoint"),
        (
            lambda d: _write(d / "pytorch_model.bin", b"\x80\x02}q"),  # cut short
            "not a valid pickle",
        ),
        (lambda d: _write(d / "x.safetensors", b""), "8-byte header length"),
        (lambda d: _write(d / "x.safetensors", b"GGUF" + b"\0" * 60), "GGUF"),
        (lambda d: _write(d / "x.safetensors", b"PK\x03\x04" + b"\0" * 60), "zip"),
        (lambda d: _write(d / "x.safetensors", os.urandom(64)), ""),
        (
            lambda d: _write(
                d / "x.safetensors", (10**6).to_bytes(8, "little") + b'{"a":' + b"[" * 10**5
            ),
            "",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, setup, fragment):
    target = setup(tmp_path)
    r = cli("inspect", str(target))
    assert r.exit_code == 2, r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("paramtool: error: "), r.stderr
    assert fragment in lines[0]
    assert r.stdout == ""


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


def test_bad_regex():
    r = cli("inspect", str(EXAMPLE), "--filter", "(")
    assert r.exit_code == 2 and "not a regular expression" in r.stderr


def test_warnings_go_to_stderr(tmp_path):
    save_file({"w": np.zeros(2, np.float32)}, tmp_path / "a.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 5}, "weight_map": {"w": "a.safetensors"}})
    )
    r = cli("inspect", str(tmp_path), "--json")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["warnings"] and "paramtool: warning:" in r.stderr


def test_debug_env_shows_traceback(tmp_path):
    env = {**os.environ, "PARAMTOOL_DEBUG": "1"}
    p = subprocess.run(
        [sys.executable, "-m", "paramtool", "inspect", str(tmp_path / "nope.safetensors")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert p.returncode != 0 and "Traceback" in p.stderr


def test_subprocess_entry_point_and_exit_code(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "paramtool", "inspect", str(EXAMPLE), "--json"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0 and json.loads(p.stdout)["total_parameters"] == 1_217_664
    p = subprocess.run(
        [sys.executable, "-m", "paramtool", "inspect", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_main_builds_only_the_command_it_runs():
    code = (
        "import sys\n"
        "sys.argv = ['paramtool', 'inspect', sys.argv[1], '--json']\n"
        "from paramtool.cli import main\n"
        "try:\n    main()\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.endswith('_cmd')), file=sys.stderr)\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(EXAMPLE)], capture_output=True, text=True)
    assert p.stderr.strip() == "['paramtool.cli.inspect_cmd']", p.stderr
    assert json.loads(p.stdout)["total_parameters"] == 1_217_664


@pytest.mark.parametrize(
    ("preset", "shards", "parameters", "layers"),
    [
        ("llama31_8b", 4, 8_030_261_248, 32),
        ("llama31_70b", 30, 70_553_706_496, 80),
        ("llama31_405b", 191, 405_853_388_800, 126),
        ("mixtral_8x7b", 19, 46_702_792_704, 32),
        ("gpt2", 1, 124_439_808 + 12 * 1024 * 1024, 12),  # the file also stores 12 mask buffers
    ],
)
def test_exact_counts_of_real_layouts_from_sparse_files(
    tmp_path, preset, shards, parameters, layers
):
    import layouts

    layout = getattr(layouts, preset)()
    layouts.write_sparse_checkpoint(tmp_path, layout, shards=shards)
    doc = cli_json("inspect", str(tmp_path))
    assert doc["total_parameters"] == parameters
    assert doc["layers"]["count"] == layers and len(doc["files"]) == shards
    assert sum(f["bytes"] for f in doc["files"]) == doc["file_bytes"]
    if preset.startswith("llama"):
        assert doc["other_share"] == 0.0 and doc["tied_embeddings"] is False
        assert doc["by_dtype"]["BF16"]["parameters"] == parameters
