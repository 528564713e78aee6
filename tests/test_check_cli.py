"""``paramtool check`` through the CLI: exit codes, JSON, Markdown, JUnit XML, tables, CI files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from rich.console import Console

from helpers import cli, cli_json, error_line
from hub_emulator import HubEmulator
from layouts import make_checkpoint, write_sparse_checkpoint
from paramtool.checks.evaluate import evaluate
from paramtool.checks.rules import finalize, parse_rules
from paramtool.render.check_markdown import escape
from paramtool.render.check_tables import print_report
from paramtool.sources.local import open_local

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tiny-llama"
WEIGHTS = EXAMPLE / "model.safetensors"
SIZE = WEIGHTS.stat().st_size  # 2,439,496 bytes
PARAMS = 1_217_664


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Run in a fresh folder: no config file of the repo or the machine is found."""
    monkeypatch.chdir(tmp_path)


ALL_PASSING = [
    "--max-size", "2.5MB", "--min-size", "2MB", "--max-params", "1.3M", "--min-params", "1M",
    "--expect-params", "1217664", "--dtype", "bf16", "--allow-dtypes", "bf16,f32",
    "--max-share", "other=5%", "--expect-layers", "4", "--require-metadata", "format=pt",
    "--safetensors-only",
]  # fmt: skip


def passed(name, measured, limit, message):
    return {"name": name, "status": "pass", "passed": True, "measured": measured, "limit": limit,
            "message": message}  # fmt: skip


def test_every_rule_passing_exact_json():
    doc = cli_json("check", str(EXAMPLE), *ALL_PASSING)
    exact = {"expected": PARAMS, "tolerance": 0.0, "min": PARAMS, "max": PARAMS}
    in_file = "2.44 MB in 1 file (headers included)"
    assert doc == {
        "schema_version": 1,
        "source": str(EXAMPLE),
        "revision": None,
        "config": None,
        "passed": True,
        "summary": {"passed": 11, "failed": 0, "unavailable": 0},
        "rules": [
            passed("max_size", SIZE, 2_500_000, f"{in_file}, 60.5 kB under the limit"),
            passed("min_size", SIZE, 2_000_000, f"{in_file}, 439 kB over the minimum"),
            passed("max_params", PARAMS, 1_300_000, "1,217,664 parameters, 82,336 under the limit"),
            passed(
                "min_params", PARAMS, 1_000_000, "1,217,664 parameters, 217,664 over the minimum"
            ),
            passed("expect_params", PARAMS, exact, "matches exactly"),
            passed("dtype", {"BF16": 39}, "BF16", "all 39 floating-point tensors are BF16"),
            passed(
                "allow_dtypes", {"BF16": 39}, ["BF16", "F32"], "all 39 tensors have allowed dtypes"
            ),
            passed(
                "max_share:other", 0.0, 0.05, "other holds 0 of 1,217,664 parameters, within 5%"
            ),
            passed("expect_layers", 4, 4, "4 layers in the tensor names"),
            passed("require_metadata:format", "pt", "pt", "format='pt' in the file"),
            passed("safetensors_only", [], [], "no pickle files beside the safetensors"),
        ],
    }


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["--max-size", "2MB"], "max_size"),
        (["--min-size", "3MB"], "min_size"),
        (["--max-params", "1.2M"], "max_params"),
        (["--min-params", "1.3M"], "min_params"),
        (["--expect-params", "1.2M", "--tolerance", "1%"], "expect_params"),
        (["--dtype", "f16"], "dtype"),
        (["--allow-dtypes", "f32", "--allow-dtypes", "f16"], "allow_dtypes"),
        (["--max-share", "embedding=40%"], "max_share:embedding"),
        (["--expect-layers", "5"], "expect_layers"),
        (["--require-metadata", "format=safetensors"], "require_metadata:format"),
        (["--require-metadata", "license"], "require_metadata:license"),
    ],
)
def test_each_rule_failing_exits_1(args, name):
    doc = cli_json("check", str(EXAMPLE), *args, "--safetensors-only", code=1)
    assert doc["passed"] is False and doc["summary"] == {"passed": 1, "failed": 1, "unavailable": 0}
    failed = [r for r in doc["rules"] if r["status"] == "fail"]
    assert [r["name"] for r in failed] == [name] and failed[0]["passed"] is False


def test_safetensors_only_fails_on_pickles_beside(tmp_path):
    folder = tmp_path / "model"
    make_checkpoint(folder.mkdir() or folder, {"w": ("BF16", (4, 4))})
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04 never opened")
    doc = cli_json("check", str(folder), "--safetensors-only", code=1)
    (rule,) = doc["rules"]
    assert rule["status"] == "fail" and rule["measured"] == [str(folder / "pytorch_model.bin")]


def test_a_folder_of_pickles_only_fails_safetensors_only_and_passes_the_other_rules(tmp_path):
    fixture = Path(__file__).parent / "fixtures" / "torch" / "state_zip.pt"
    (tmp_path / "pytorch_model.bin").write_bytes(fixture.read_bytes())
    doc = cli_json("check", str(tmp_path), "--safetensors-only", "--no-config", code=1)
    (rule,) = doc["rules"]
    assert rule["name"] == "safetensors_only" and rule["status"] == "fail"
    assert rule["measured"] == [str(tmp_path / "pytorch_model.bin")]
    doc = cli_json("check", str(tmp_path), "--max-size", "1GB", "--no-config")
    assert [r["status"] for r in doc["rules"]] == ["pass"]
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")  # truncated: one error line
    error_line(cli("check", str(tmp_path), "--max-size", "1GB", "--no-config"), "pytorch_model")


def test_value_rules_on_a_hub_source_are_unavailable_and_fail(hub):
    hub.add_repo("org/tiny", EXAMPLE)
    digest = f"model.safetensors={'0' * 64}"
    r = cli("check", "org/tiny", "--max-size", "1TB", "--no-nan", "--no-inf", "--sha256", digest,
            "--against-hub", "org/tiny@main")  # fmt: skip
    assert r.exit_code == 1
    assert r.stdout.count("UNAVAILABLE") == 4 and "would download it" in r.stdout
    assert "FAILED  5 rules: 1 passed, 0 failed, 4 unavailable" in r.stdout
    assert not any("/resolve/" in q.path and q.path.endswith("/model.safetensors") and not q.range
                   for q in hub.requests)  # fmt: skip


def test_value_rules_read_the_values(tmp_path, hub):
    import hashlib

    import numpy as np
    from safetensors.numpy import save_file

    folder = tmp_path / "ck"
    folder.mkdir()
    bad = np.ones((4, 4), np.float32)
    bad[1, 2] = np.nan
    bad[3, 3] = -np.inf
    save_file({"model.layers.0.mlp.up_proj.weight": bad, "ok": np.zeros(3, np.float32)},
              folder / "model.safetensors")  # fmt: skip
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    r = cli(
        "check",
        str(folder),
        "--no-nan",
        "--no-inf",
        "--sha256",
        f"model.safetensors={digest}",
        "--json",
    )
    rules = {x["name"]: x for x in json.loads(r.stdout)["rules"]}
    assert r.exit_code == 1
    assert (rules["no_nan"]["status"], rules["no_nan"]["measured"]) == ("fail", 1)
    assert (rules["no_inf"]["status"], rules["no_inf"]["measured"]) == ("fail", 1)
    assert "model.layers.0.mlp.up_proj.weight" in rules["no_nan"]["message"]
    assert rules["sha256:model.safetensors"]["status"] == "pass"
    r = cli("check", str(folder), "--sha256", f"model.safetensors={'0' * 64}")
    assert r.exit_code == 1 and "FAIL" in r.stdout
    r = cli("check", str(EXAMPLE), "--no-nan", "--no-inf")
    assert r.exit_code == 0
    # --against-hub: the local files against the hashes the Hub records, nothing downloaded.
    hub.add_repo("org/tiny", EXAMPLE)
    r = cli("check", str(EXAMPLE), "--against-hub", "org/tiny", "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    hub.add_repo("org/other", folder)
    r = cli("check", str(EXAMPLE), "--against-hub", "org/other", "--json")
    assert r.exit_code == 1 and json.loads(r.stdout)["rules"][0]["status"] == "fail"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "paramtool: error: check: no rules given"),
        (["--max-size", "16XB"], "paramtool: error: --max-size '16XB': unknown suffix 'XB'"),
        (
            ["--max-params", "-1B"],
            "paramtool: error: --max-params '-1B': must be greater than zero",
        ),
        (["--tolerance", "1%"], "--tolerance '1%': only applies together with --expect-params"),
        (
            ["--max-size", "1GB", "--json", "--markdown"],
            "--json/--markdown: choose one output format",
        ),
        (["--dtype", "int4"], "--dtype 'int4': INT4 is not a dtype a safetensors header can hold"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args, message):
    assert message in error_line(cli("check", str(EXAMPLE), *args))


def test_source_errors_exit_2(tmp_path):
    assert "no such file or directory" in error_line(
        cli("check", str(tmp_path / "missing.safetensors"), "--max-size", "1GB")
    )
    assert "no safetensors checkpoint" in error_line(
        cli("check", str(tmp_path), "--max-size", "1GB")
    )


def test_exit_codes_of_the_real_process(tmp_path):
    def code(*args: str) -> int:
        cmd = [sys.executable, "-m", "paramtool", "check", str(EXAMPLE), "--no-config", *args]
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
        assert "Traceback" not in p.stderr
        return p.returncode

    assert code("--dtype", "bf16") == 0
    assert code("--dtype", "f32") == 1
    assert code("--no-nan") == 0
    assert code("--max-size", "lots") == 2
    assert code() == 2


# ---------------------------------------------------------------- outputs


def test_table_for_people():
    r = cli("check", str(EXAMPLE), "--dtype", "bf16", "--max-size", "2MB")
    assert r.exit_code == 1
    out = r.stdout
    assert re.search(
        r"│ max_size\s+│ FAIL\s+│ 2,439,496 B \(2\.44 MB\)\s+│ 2,000,000 B \(2\.00 MB\)", out
    )
    assert re.search(r"│ dtype\s+│ PASS\s+│ BF16 ×39", out)
    assert "FAILED  2 rules: 1 passed, 1 failed" in out and r.stderr == ""


def test_table_renderer_fixed_width_and_hostile_names(tmp_path):
    p = make_checkpoint(
        tmp_path / "m.safetensors", {"[bold]x\x1b[2J": ("F32", (2,)), "y": ("BF16", (2,))}
    )
    report = evaluate(
        open_local([str(p)]), finalize([parse_rules({"dtype": "bf16"})])
    )
    console = Console(width=200, record=True, color_system=None)
    print_report(console, report)
    text = console.export_text()
    assert "[bold]x?[2J" in text and "\x1b" not in text  # markup stays text, control chars go
    assert "FAILED  1 rule: 0 passed, 1 failed" in text


def test_markdown_report():
    r = cli("check", str(EXAMPLE), "--dtype", "bf16", "--max-size", "2MB", "--no-nan", "--markdown")
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert lines[0] == "### paramtool check: ❌ failed"
    assert f"**Checkpoint:** {escape(str(EXAMPLE))}  " in lines
    assert "**Result:** 3 rules: 2 passed, 1 failed" in lines
    table = [ln for ln in lines if ln.startswith("|")]
    assert table[:2] == [
        "| result | rule | measured | limit | details |",
        "| --- | --- | --- | --- | --- |",
    ]
    assert table[2].startswith(
        "| ❌ FAIL | max\\_size | 2,439,496 B (2.44 MB) | 2,000,000 B (2.00 MB) | "
    )
    assert table[3].startswith("| ✅ PASS | dtype | BF16 ×39 | all floating-point BF16 | ")
    assert table[4].startswith("| ✅ PASS | no\\_nan | 0 | 0 NaN values | 0 NaN values in ")
    assert all(ln.count(" | ") == 4 for ln in table)


def test_markdown_escapes_hostile_text(tmp_path):
    evil_name = "w|@octocat <img src=x>\n# $x$ `y`"
    evil_meta = "pt | @here <script>"
    tensors = {evil_name: ("F32", (2,)), "ok": ("BF16", (2,))}
    p = make_checkpoint(tmp_path / "m.safetensors", tensors, metadata={"format": evil_meta})
    r = cli("check", str(p), "--dtype", "bf16", "--require-metadata", "format=pt", "--markdown")
    assert r.exit_code == 1
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("| ❌")]
    assert len(rows) == 2 and all(
        len(re.findall(r"(?<!\\)\|", row)) == 6 for row in rows
    )  # no extra cells
    body = r.stdout
    for raw in ("<img", "<script", "@octocat", "@here", "$x", "`y"):
        assert not re.search(r"(?<!\\)" + re.escape(raw), body), raw
    assert "\\<img src=x\\>" in body and "@\u200boctocat" in body and "\\$x\\$" in body


def test_junit_xml_parsed_back(tmp_path):
    out = tmp_path / "reports" / "check.xml"
    out.parent.mkdir()
    r = cli(
        "check",
        str(EXAMPLE),
        "--dtype",
        "bf16",
        "--max-size",
        "2MB",
        "--no-nan",
        "--json",
        "--junit-xml",
        str(out),
    )
    assert (
        r.exit_code == 1 and json.loads(r.stdout)["passed"] is False
    )  # stdout as usual, plus the file
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "3", "failures": "1", "errors": "0", "skipped": "0"}  # fmt: skip
    (suite,) = root.findall("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1" and suite.get("errors") == "0"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props == {"source": str(EXAMPLE)}
    cases = suite.findall("testcase")
    assert {c.get("classname") for c in cases} == {"paramtool.check"}
    assert [c.get("name") for c in cases] == ["max_size", "dtype", "no_nan"]
    size, dtype, nan = cases
    failure = size.find("failure")
    assert failure is not None and failure.get("type") == "fail"
    assert (
        failure.get("message")
        == "2.44 MB in 1 file (headers included), 439 kB (22%) over the limit"
    )
    assert "measured: 2,439,496 B (2.44 MB)\nlimit: 2,000,000 B (2.00 MB)" in failure.text
    assert dtype.find("failure") is None and dtype.find("error") is None
    assert nan.find("error") is None and nan.find("failure") is None


def test_junit_xml_survives_control_characters(tmp_path):
    p = make_checkpoint(tmp_path / "m.safetensors", {"bad\x01\x1b\x0b name": ("F32", (2,))})
    out = tmp_path / "j.xml"
    r = cli("check", str(p), "--dtype", "bf16", "--junit-xml", str(out))
    assert r.exit_code == 1
    failure = ET.parse(out).getroot().find(".//failure")
    assert failure is not None and "bad??? name" in failure.get("message")


def test_junit_xml_unwritable_is_an_error(tmp_path):
    line = error_line(
        cli(
            "check",
            str(EXAMPLE),
            "--dtype",
            "bf16",
            "--junit-xml",
            str(tmp_path / "no" / "such" / "dir.xml"),
        )
    )
    assert "--junit-xml" in line and "No such file or directory" in line


def test_warnings_go_to_stderr(tmp_path):
    write_sparse_checkpoint(tmp_path, [("w", "F32", (4,))])
    (tmp_path / "config.json").write_text("{not json")
    r = cli("check", str(tmp_path), "--dtype", "f32", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["passed"] is True
    assert "paramtool: warning:" in r.stderr and "config.json" in r.stderr


# ---------------------------------------------------------------- Hub sources


def test_hub_source(hub: HubEmulator, tmp_path):
    folder = tmp_path / "repo"
    write_sparse_checkpoint(folder, [("model.layers.0.mlp.up_proj.weight", "BF16", (8, 4))])
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04 pickle beside")
    sha = hub.add_repo("org/gate", folder)
    doc = cli_json(
        "check", "org/gate", "--dtype", "bf16", "--expect-layers", "1", "--safetensors-only", code=1
    )
    assert doc["source"] == "org/gate" and doc["revision"] == sha
    rules = {r["name"]: r["status"] for r in doc["rules"]}
    assert rules["dtype"] == "pass" and rules["expect_layers"] == "pass"
    # the pickle beside the weights is never a pass: "fail" once the Hub reader lists the
    # repo's files, "unavailable" until then
    assert rules["safetensors_only"] in ("fail", "unavailable")


# ---------------------------------------------------------------- CI files


def test_github_actions_example():
    yaml = pytest.importorskip("yaml")
    wf = yaml.safe_load((ROOT / "examples" / "github-actions.yml").read_text())
    steps = [s for job in wf["jobs"].values() for s in job["steps"]]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "pip install" in runs and "paramtool check" in runs
    assert "--markdown" in runs and "$GITHUB_STEP_SUMMARY" in runs and "--junit-xml" in runs
    gate = next(s for s in steps if "paramtool check" in s.get("run", ""))
    assert gate.get("shell") == "bash"  # pipefail, so the tee keeps paramtool's exit code


def test_pre_commit_hooks():
    yaml = pytest.importorskip("yaml")
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    by_id = {h["id"]: h for h in hooks}
    assert set(by_id) == {"paramtool-check", "paramtool-check-folder"}
    for h in hooks:
        assert h["entry"] == "paramtool check" and h["language"] == "python" and h["name"]
        assert re.search(h["files"], "models/llama/model-00001-of-00004.safetensors")
        assert re.search(h["files"], "pytorch_model.bin")  # --safetensors-only fails it
        assert not re.search(h["files"], "config.json")
    assert by_id["paramtool-check"].get("pass_filenames", True) is True
    assert by_id["paramtool-check-folder"]["pass_filenames"] is False
