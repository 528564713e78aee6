"""Every command's tables fit the console: no line wider than it, no number or name cut.

Each report is printed through the CLI with ``COLUMNS`` set (or on a ``Console`` of that
width), then read back: every line must fit, every exact integer the data holds and every
tensor or rule name must stand whole on one line (names longer than the whole width
excepted: those are folded). Expected numbers are literals.
"""

from __future__ import annotations

import json
import re
import struct
from math import prod
from pathlib import Path

import numpy as np
import pytest
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table

from helpers import cli
from layouts import llama31_8b, make_checkpoint, write_sparse_checkpoint
from paramtool.render.fit import FitTable
from paramtool.render.values_tables import verify_report
from paramtool.values.verify import FileCheck, HubFiles, VerifyReport
from quant_layouts import gpt_oss

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tiny-llama"
WIDTHS = (80, 100, 160)

LONG = "model.language_model.layers.10.mlp.experts.gate_up_proj_blocks"  # 62 cells
LONGER = "model." + ".".join(["very_long_module_name"] * 4) + ".weight"  # 101 cells: folds


def printed(width: int, *args: str, code: int = 0) -> str:
    r = cli(*args, env={"COLUMNS": str(width)}, catch_exceptions=True)
    assert r.exit_code == code, r.stdout + r.stderr
    return r.stdout


def tokens(text: str) -> set[str]:
    """The words of every line, table rules and borders taken out."""
    return set(re.sub(r"[│┃║|┏┓┗┛┡┩┢┪└┘┌┐├┤┼╇╈┿━─═╸╺]", " ", text).split())


def assert_fits(text: str, width: int, *whole: str) -> None:
    """Lines fit; each of ``whole`` stands unbroken on a line; nothing is cut short."""
    wide = [line for line in text.splitlines() if cell_len(line) > width]
    assert not wide, f"{len(wide)} lines wider than {width}: {wide[:3]}"
    assert "…" not in text, "a cell was cut short"
    words = tokens(text)
    broken = [w for w in whole if w not in words]
    assert not broken, f"cut or split at {width} columns: {broken[:5]}"


def header_names(path: Path) -> list[str]:
    """Tensor names straight from a safetensors header (json, not paramtool)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return [k for k in header if k != "__metadata__"]


@pytest.fixture(scope="module")
def llama8b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("llama8b")
    write_sparse_checkpoint(folder, llama31_8b())
    return folder


@pytest.fixture(scope="module")
def mxfp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gpt-oss-20b")
    write_sparse_checkpoint(folder, gpt_oss("20b"))
    return folder


def long_names(nan: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = {
        LONG: rng.standard_normal((64, 32)).astype(np.float32),
        "model.language_model.layers.10.self_attn.q_proj.weight": rng.standard_normal(
            (32, 32)
        ).astype(np.float16),
        "model.embed_tokens.weight": rng.standard_normal((100, 16)).astype(np.float32),
    }
    if nan:
        t[LONG][3, 5] = np.nan
        t["model.embed_tokens.weight"][0, 0] = np.inf
    return t


@pytest.fixture(scope="module")
def long_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("long")
    a, b = base / "a", base / "b"
    a.mkdir()
    b.mkdir()
    make_checkpoint(a, long_names())
    make_checkpoint(b, long_names(nan=True))
    return a, b


# ---------------------------------------------------------------- inspect


@pytest.mark.parametrize("width", WIDTHS)
def test_inspect_example(width: int) -> None:
    out = printed(width, "inspect", str(EXAMPLE), "--tensors", "--layers")
    names = header_names(EXAMPLE / "model.safetensors")
    assert len(names) == 39
    counts = ["1,217,664", "2,435,328", "524,288", "163,840", "528,384", "1,152", "4,870,656"]
    assert_fits(out, width, *names, *counts, "608,832", "262,144", "44,032")


@pytest.mark.parametrize("width", WIDTHS)
def test_inspect_llama31_8b_every_tensor(width: int, llama8b: Path) -> None:
    out = printed(width, "inspect", str(llama8b), "--tensors")
    layout = llama31_8b()
    per_tensor = {f"{prod(shape):,}" for _, _, shape in layout.tensors}
    assert {"525,336,576", "58,720,256", "16,777,216", "4,194,304", "4,096"} <= per_tensor
    assert_fits(out, width, "8,030,261,248", *per_tensor, *(n for n, _, _ in layout.tensors))


@pytest.mark.parametrize("width", WIDTHS)
def test_inspect_quantized_moe(width: int, mxfp4: Path) -> None:
    out = printed(width, "inspect", str(mxfp4), "--tensors", "--layers")
    names = [n for n, _, _ in gpt_oss("20b").tensors]
    assert "model.layers.10.mlp.experts.gate_up_proj_blocks" in names
    assert_fits(out, width, "20,914,757,184", *names)


def test_anatomy_with_stored_elements_keeps_every_column_at_80(mxfp4: Path) -> None:
    out = printed(80, "inspect", str(mxfp4))
    anatomy = out.split("Anatomy", 1)[1].split("Quantization", 1)[0]
    head = {"category", "parameters", "share", "stored", "elements", "bytes", "tensors"}
    assert head <= tokens(anatomy)
    assert "█" not in anatomy  # the bar went first
    # stored: the sum of every stored tensor's elements (packed blocks and scales as bytes)
    assert_fits(anatomy, 80, "20,914,757,184", "11,956,805,184", "1,158,266,880")


@pytest.mark.parametrize("width", WIDTHS)
def test_inspect_long_names(width: int, long_pair: tuple[Path, Path]) -> None:
    out = printed(width, "inspect", str(long_pair[0]), "--tensors")
    assert_fits(out, width, *long_names(), "2,048", "1,024", "1,600")


def test_a_name_longer_than_the_console_folds(tmp_path: Path) -> None:
    make_checkpoint(tmp_path, {LONGER: ("F32", (4, 4)), LONG: ("F32", (2, 3))})
    out = printed(80, "inspect", str(tmp_path), "--tensors")
    assert_fits(out, 80, LONG, "16", "6")
    assert LONGER not in tokens(out)
    assert LONGER[:80] in out and LONGER[80:] in out  # folded at the width, nothing lost


# ---------------------------------------------------------------- footprint


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("units", ["gb", "gib"])
def test_footprint_precisions_and_fit(width: int, units: str) -> None:
    out = printed(width, "footprint", "--params", "70B", "--gpu", "h100-80gb", "--units", units,
                  "--dtype", "all")  # fmt: skip
    exact = ["70,000,000,000", "280,000,000,000", "140,000,000,000", "35,000,000,000"]
    exact += ["39,375,000,000", "36,110,839,844", "40,468,750,000", "37,734,375,000"]
    assert_fits(out, width, *exact, "int4-g128-zp", "fp8-e4m3", "nf4-dq")
    if width == 80:  # the bar goes first, then the unit not asked for
        assert "█" not in out
        assert ("GiB" in out.split("Weights", 1)[1].splitlines()[1]) == (units == "gib")
    if width == 160:
        assert "█" in out


@pytest.mark.parametrize("width", WIDTHS)
def test_footprint_kv_cache_and_serving(width: int) -> None:
    out = printed(
        width, "footprint", "--params", "405B", "--layers", "126", "--kv-heads", "8",
        "--head-dim", "128", "--context", "128k", "--batch", "8", "--gpu", "h100-80gb",
    )  # fmt: skip
    # 2 (K and V) x 126 layers x 8 heads x 128 dims x 131,072 tokens x 8 sequences x 2 bytes
    assert_fits(out, width, "541,165,879,296", "1,620,000,000,000", "810,000,000,000")


@pytest.mark.parametrize("width", WIDTHS)
def test_footprint_training(width: int) -> None:
    out = printed(
        width, "footprint", "--params", "8030261248", "--train", "full", "--gpus", "8",
        "--zero", "3", "--gpu", "h100-80gb",
    )  # fmt: skip
    exact = ["16,060,522,496", "32,121,044,992", "64,242,089,984", "128,484,179,968"]
    assert_fits(out, width, *exact, "8,030,261,248")


@pytest.mark.parametrize("width", WIDTHS)
def test_footprint_lists(width: int) -> None:
    out = printed(width, "footprint", "--list-gpus", "--list-dtypes")
    exact = ["16,106,127,360", "85,520,809,984", "150,754,820,096", "206,141,652,992"]
    names = ["h100-80gb", "a100-40gb", "mi300x", "float8_e4m3fnuz", "F8_E4M3FNUZ", "INT4-G128-ZP"]
    assert_fits(out, width, *exact, *names)


# ---------------------------------------------------------------- check

RULES = (
    "--max-size", "2MB", "--dtype", "bf16", "--expect-params", "1217664",
    "--max-share", "embedding=1%", "--expect-layers", "4", "--require-metadata", "format=pt",
    "--safetensors-only",
)  # fmt: skip
RULE_NAMES = (
    "max_size", "dtype", "expect_params", "max_share:embedding", "expect_layers",
    "require_metadata:format", "safetensors_only",
)  # fmt: skip


@pytest.mark.parametrize("width", WIDTHS)
def test_check(width: int) -> None:
    out = printed(width, "check", str(EXAMPLE), "--no-config", *RULES, code=1)
    assert_fits(out, width, *RULE_NAMES, "2,439,496", "2,000,000", "1,217,664", "524,288")


@pytest.mark.parametrize("width", WIDTHS)
def test_check_with_a_long_rule_name(width: int) -> None:
    key = "some_very_long_metadata_key_name"
    out = printed(
        width, "check", str(EXAMPLE), "--no-config", *RULES, "--require-metadata", key, code=1
    )
    assert_fits(out, width, *RULE_NAMES, f"require_metadata:{key}", "2,439,496", "2,000,000")


# ---------------------------------------------------------------- stats, diff, verify


@pytest.mark.parametrize("width", WIDTHS)
def test_stats(width: int, long_pair: tuple[Path, Path]) -> None:
    out = printed(width, "stats", str(long_pair[1]), "--tensors")
    # 2,048 + 1,024 + 1,600 elements; one NaN in LONG, one +Inf in the embedding
    assert_fits(out, width, *long_names(), "4,672")
    assert re.search(r"1 NaN, 1 \+Inf, 0 -Inf", out)


@pytest.mark.parametrize("width", WIDTHS)
def test_stats_example(width: int) -> None:
    out = printed(width, "stats", str(EXAMPLE), "--tensors")
    assert_fits(out, width, *header_names(EXAMPLE / "model.safetensors"), "1,217,664")


@pytest.mark.parametrize("width", WIDTHS)
def test_diff(width: int, long_pair: tuple[Path, Path]) -> None:
    out = printed(width, "diff", str(long_pair[0]), str(long_pair[1]), "--tensors", code=1)
    assert_fits(out, width, *long_names())


@pytest.mark.parametrize("width", WIDTHS)
def test_diff_structure(width: int, long_pair: tuple[Path, Path]) -> None:
    out = printed(width, "diff", str(EXAMPLE), str(long_pair[0]), code=1)
    names = [*header_names(EXAMPLE / "model.safetensors"), *long_names()]
    assert_fits(out, width, *names)


def verify_fixture() -> VerifyReport:
    names = [f"model-{k:05d}-of-00004.safetensors" for k in range(1, 5)]
    names.append("original/consolidated.00.pth.which-is-a-rather-long-file-name")
    files = tuple(
        FileCheck(n, f"/data/{n}", "ok", True, "sha256", "ab" * 32, "ab" * 32, s, s)
        for n, s in zip(
            names,
            [4_976_698_672, 4_999_802_720, 4_915_916_176, 1_168_138_808, 16_060_556_376],
            strict=True,
        )  # fmt: skip
    )
    hub = HubFiles("meta-llama/Llama-3.1-8B", "d04e592bb4f6aa9cfee91e2e20afa771667e1d4b", None, {})
    return VerifyReport("/data", hub, "", files, ())


@pytest.mark.parametrize("width", WIDTHS)
def test_verify(width: int) -> None:
    console = Console(width=width, record=True, color_system=None)
    console.print(verify_report(verify_fixture()))
    out = console.export_text()
    exact = ["4,976,698,672", "4,999,802,720", "4,915,916,176", "1,168,138,808", "16,060,556,376"]
    assert_fits(out, width, *exact, *(f.path for f in verify_fixture().files))


# ---------------------------------------------------------------- the fitting itself


def render(table: object, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def sample() -> FitTable:
    t = FitTable(title="T", title_justify="left")
    t.add_column("name", name=True)
    t.add_column("n", justify="right")
    t.add_column("", decoration=True, width=20)
    t.add_column("note", wrap=True)
    t.add_column("extra", drop=1)
    t.add_row("model.layers.0.self_attn.q_proj.weight", "16,777,216", "█" * 20, "a b c d", "x")
    t.add_row("lm_head.weight", "525,336,576", "█" * 5, "words that wrap", "yy")
    return t


def test_a_table_that_fits_is_rich_s_own() -> None:
    plain = Table(title="T", title_justify="left")
    for header, justify in (("name", "left"), ("n", "right"), ("", "left")):
        plain.add_column(header, justify=justify)  # type: ignore[arg-type]
    plain.add_row("lm_head.weight", "525,336,576", "█")
    fit = FitTable(title="T", title_justify="left")
    fit.add_column("name", name=True)
    fit.add_column("n", justify="right")
    fit.add_column("", decoration=True)
    fit.add_row("lm_head.weight", "525,336,576", "█")
    assert render(fit, 160) == render(plain, 160)


def test_decoration_goes_first_then_the_box_then_optional_columns_then_names_stack() -> None:
    wide = render(sample(), 160)
    assert "█" in wide and "┃" in wide and "extra" in wide
    no_bar = render(sample(), 90)
    assert "█" not in no_bar and "┃" in no_bar and "extra" in no_bar
    compact = render(sample(), 75)
    assert "┃" not in compact and "extra" in compact
    assert_fits(compact, 75, "16,777,216", "model.layers.0.self_attn.q_proj.weight")
    narrow = render(sample(), 62)
    assert "extra" not in narrow and "words that wrap" not in narrow  # dropped, then wrapped
    assert_fits(narrow, 62, "16,777,216", "525,336,576", "model.layers.0.self_attn.q_proj.weight")
    stacked = render(sample(), 45)
    lines = stacked.splitlines()
    assert "model.layers.0.self_attn.q_proj.weight" in [ln.strip() for ln in lines]
    assert_fits(stacked, 45, "16,777,216", "525,336,576", "lm_head.weight")
