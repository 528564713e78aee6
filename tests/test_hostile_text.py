"""Hostile text and hostile input meet every renderer, the error line and the output stream.

- names with bidi controls (U+202E...), C1 controls (U+009B, an 8-bit CSI), ESC and a
  1 MB name go through every table, the Markdown and JUnit reports and ``--json``:
  nothing raw reaches a terminal, the JSON still parses to the original names, and an
  error line that repeats such a name stays a line;
- user patterns (``--filter``) run in linear time (RE2): a catastrophic pattern against a
  100,000-character name answers at once, and a pattern RE2 refuses is one error line;
- a config file nested 50,000 deep, and a full disk on stdout, are one line and exit 2.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import time
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers import cli, error_line
from paramtool.safe_text import clip, escape_json, printable

# What must never reach a terminal raw: ESC and the other C0 controls but newline, DEL,
# C1, the bidi embeddings, overrides, isolates and marks, zero-width and BOM characters.
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

EVIL = "a\u202eb\u009bc\x1b[2J.weight"  # reads backwards, an 8-bit CSI, an ANSI clear
ISOLATE = "x\u2066y\u200f\u061cz.bias"
HUGE = "n" * (1 << 20) + "\u202e.weight"  # a 1 MB name
META = {"k\u202e\x9b": "v\u009b\x1b[31m"}
ZERO2 = bytes(8)  # two f32 zeros
ONES2 = struct.pack("<2f", 1.0, 1.0)


def write_safetensors(
    path: Path, tensors: dict[str, bytes], metadata: dict[str, str] | None = None
) -> Path:
    """A raw safetensors file of F32 vectors (the safetensors writer may refuse such names)."""
    header: dict[str, object] = {}
    offset = 0
    for name, data in tensors.items():
        header[name] = {
            "dtype": "F32",
            "shape": [len(data) // 4],
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header, ensure_ascii=False).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(tensors.values()))
    return path


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two files with the same hostile names, one tensor's values changed in the second."""
    d = tmp_path_factory.mktemp("hostile")
    a = write_safetensors(d / "a.safetensors", {EVIL: ZERO2, ISOLATE: ZERO2, HUGE: ZERO2}, META)
    b = write_safetensors(d / "b.safetensors", {EVIL: ONES2, ISOLATE: ZERO2, HUGE: ZERO2}, META)
    return a, b


def assert_inert(*texts: str) -> None:
    for text in texts:
        found = sorted({f"U+{ord(c):04X}" for c in RAW.findall(text)})
        assert not found, found


RENDERERS = [
    ("inspect", "{a}"),
    ("inspect", "{a}", "--tensors"),
    ("inspect", "{a}", "--layers"),
    ("inspect", "{a}", "--json", "--tensors"),
    ("stats", "{a}", "--tensors"),
    ("stats", "{a}", "--json"),
    ("hash", "{a}", "--tensors"),
    ("hash", "{a}", "--tensors", "--json"),
    ("diff", "{a}", "{b}", "--tensors"),
    ("diff", "{a}", "{b}", "--json"),
    ("check", "{a}", "--no-config", "--dtype", "bf16", "--require-metadata", "format=pt"),
    ("check", "{a}", "--no-config", "--dtype", "bf16", "--markdown"),
    ("check", "{a}", "--no-config", "--dtype", "bf16", "--json"),
    ("footprint", "{a}"),
]


@pytest.mark.parametrize("args", RENDERERS, ids=[" ".join(a[:1] + a[2:]) for a in RENDERERS])
def test_no_raw_control_or_bidi_character_reaches_the_output(hostile, args) -> None:
    a, b = hostile
    r = cli(*(x.format(a=a, b=b) for x in args), catch_exceptions=True)
    assert r.exit_code in (0, 1), (r.exit_code, r.stderr[:500])
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert_inert(r.stdout, r.stderr)
    for line in r.stderr.splitlines():
        assert len(line) <= 420, line[:300]


def test_tables_show_each_hidden_character_as_a_question_mark(hostile) -> None:
    r = cli("inspect", str(hostile[0]), "--filter", "weight$")
    assert r.exit_code == 0
    assert "a?b?c?[2J.weight" in r.stdout
    r = cli("hash", str(hostile[0]), "--tensors")
    assert "  x?y??z.bias\n" in r.stdout


def test_json_escapes_them_and_parses_back_to_the_names(hostile) -> None:
    a, b = hostile
    r = cli("inspect", str(a), "--json", "--tensors")
    assert r.exit_code == 0
    assert "\\u202e" in r.stdout and "\\u009b" in r.stdout and "\\u001b" in r.stdout
    doc = json.loads(r.stdout)
    assert {t["name"] for t in doc["tensors"]} == {EVIL, ISOLATE, HUGE}
    assert doc["metadata"] == META
    r = cli("diff", str(a), str(b), "--json", "--tensors")
    assert r.exit_code == 1
    assert_inert(r.stdout)
    changed = [t["name"] for t in json.loads(r.stdout)["tensors"] if not t["identical"]]
    assert changed == [EVIL]


def test_junit_report_replaces_them(hostile, tmp_path) -> None:
    out = tmp_path / "j.xml"
    r = cli("check", str(hostile[0]), "--no-config", "--dtype", "bf16", "--junit-xml", str(out))
    assert r.exit_code == 1
    text = out.read_text(encoding="utf-8")
    assert_inert(text.replace("\n", ""))
    assert ET.fromstring(text.encode()).tag == "testsuites"


def test_markdown_report_replaces_them_with_spaces(hostile) -> None:
    r = cli("check", str(hostile[0]), "--no-config", "--dtype", "bf16", "--markdown")
    assert r.exit_code == 1
    assert "a b c \\[2J.weight" in r.stdout


def test_an_error_about_a_1mb_name_is_one_short_line(tmp_path) -> None:
    p = tmp_path / "bad.safetensors"
    header = json.dumps(
        {"\u202e" + "m" * (1 << 20): {"dtype": "XX", "shape": [1], "data_offsets": [0, 4]}}
    )
    raw = header.encode() + b" " * (-len(header.encode()) % 8)
    p.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(4))
    line = error_line(cli("inspect", str(p)))
    assert len(line) <= 300, len(line)
    assert "chars)…" in line and "\u202e" not in line
    line = error_line(cli("check", str(p), "--max-size", "\u009b" + "9" * 1_000_000 + "XB"))
    assert len(line) <= 300 and "\u009b" not in line and "chars)…" in line


def test_printable_replaces_every_control_format_and_separator_character() -> None:
    """Against the running Python's Unicode database: Cc, Cf, Zl, Zp and Cs, all of them."""
    hidden = [
        chr(cp)
        for cp in range(0x110000)
        if unicodedata.category(chr(cp)) in ("Cc", "Cf", "Zl", "Zp", "Cs")
    ]
    assert len(hidden) > 2000  # 2,048 surrogates alone
    assert printable("".join(hidden)) == "?" * len(hidden)
    assert printable("naïve ελληνικά 中文 emoji🙂 [bold]") == "naïve ελληνικά 中文 emoji🙂 [bold]"


def test_escape_json_keeps_the_document_equal() -> None:
    doc = {"n": "a\u202eb\x9bc\x1b\U000e0041\u2028", "m": ["\u200f", "plain é"]}
    text = escape_json(json.dumps(doc, ensure_ascii=False))
    assert text == (
        '{"n": "a\\u202eb\\u009bc\\u001b\\udb40\\udc41\\u2028", "m": ["\\u200f", "plain é"]}'
    )
    assert json.loads(text) == doc


def test_clip_keeps_start_and_end_with_a_marker() -> None:
    assert clip("short") == "short"
    cut = clip("s" * 150 + "e" * 1_000_000 + "TAIL", 200)
    assert len(cut) <= 200 and cut.startswith("s" * 120) and cut.endswith("eeeeTAIL")
    assert "s…(+999,974 chars)…e" in cut and clip(cut, 200) == cut


# User patterns: RE2, linear time.

CATASTROPHIC = "(a+)+$"  # exponential for a backtracking engine against "aaa…ab"


@pytest.fixture(scope="module")
def long_names(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("long")
    return write_safetensors(
        d / "m.safetensors", {"a" * 100_000 + "b": ZERO2, "a" * 100_000: ONES2, "w": ZERO2}
    )


def test_catastrophic_filter_in_a_subprocess_answers_at_once(long_names) -> None:
    t = time.monotonic()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "paramtool",
            "inspect",
            str(long_names),
            "--json",
            "--filter",
            CATASTROPHIC,
        ],
        capture_output=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t < 5
    assert [t["name"] for t in json.loads(r.stdout)["tensors"]] == ["a" * 100_000]


@pytest.mark.parametrize("command", ["stats", "diff"])
def test_catastrophic_filter_in_value_commands(long_names, command) -> None:
    t = time.monotonic()
    args = [str(long_names)] * (2 if command == "diff" else 1)
    r = cli(command, *args, "--filter", CATASTROPHIC, "--json")
    assert r.exit_code == 0, r.stderr
    assert time.monotonic() - t < 2
    assert json.loads(r.stdout)["filter"] == CATASTROPHIC


@pytest.mark.parametrize("pattern", [r"(a)\1", r"foo(?=bar)", r"(?<!x)y"])
def test_a_pattern_re2_refuses_is_one_line(long_names, pattern) -> None:
    line = error_line(cli("inspect", str(long_names), "--filter", pattern))
    assert line.startswith(f"paramtool: error: --filter {pattern!r}: not a regular expression RE2")
    assert "no backreferences or lookaround" in line
    assert "https://github.com/google/re2/wiki/Syntax" in line


def test_a_huge_refused_pattern_is_a_short_line(long_names) -> None:
    line = error_line(cli("stats", str(long_names), "--filter", "(" * 100_000))
    assert len(line) <= 420 and "RE2" in line


def test_filter_is_a_search_with_re2_syntax(long_names) -> None:
    r = cli("inspect", str(long_names), "--json", "--filter", r"^w\z")
    assert [t["name"] for t in json.loads(r.stdout)["tensors"]] == ["w"]


# Other internal errors: deep TOML, a full disk.


def test_a_config_nested_50000_deep_is_one_line(tmp_path, monkeypatch, long_names) -> None:
    (tmp_path / "paramtool.toml").write_text("[check]\nmax_size = " + "[" * 50_000 + "]" * 50_000)
    monkeypatch.chdir(tmp_path)
    line = error_line(cli("check", str(long_names)))
    assert line == (
        f"paramtool: error: {tmp_path / 'paramtool.toml'}: not valid TOML: arrays or tables "
        "nested too deeply"
    )


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize(
    "args",
    [("inspect", "--json"), ("inspect",), ("hash", "--tensors"), ("check", "--dtype", "bf16")],
)
def test_a_full_disk_on_stdout_is_one_line(long_names, args) -> None:
    command = [sys.executable, "-m", "paramtool", args[0], str(long_names), *args[1:]]
    if args[0] == "check":
        command.append("--no-config")
    with open("/dev/full", "w") as full:
        r = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 2
    assert r.stderr == b"paramtool: error: cannot write output: No space left on device\n"
