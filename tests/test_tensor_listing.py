"""``inspect --tensors`` past a few thousand rows: a plain listing streamed line by line."""

from __future__ import annotations

from pathlib import Path

from helpers import cli
from layouts import write_sparse_checkpoint
from paramtool.render.inspect_tables import TABLE_ROWS


def _many(tmp_path: Path, count: int) -> Path:
    tensors = [(f"model.layers.{i}.mlp.up_proj.weight", "BF16", [4, 8]) for i in range(count)]
    tensors.append(("odd\u202ename\x1b[31m", "F32", [3]))
    write_sparse_checkpoint(tmp_path, tensors)
    return tmp_path


def test_past_the_table_limit_each_tensor_is_one_aligned_line(tmp_path: Path) -> None:
    folder = _many(tmp_path, TABLE_ROWS + 500)
    r = cli("inspect", str(folder), "--tensors")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    start = lines.index(f"Tensors ({TABLE_ROWS + 501:,} shown)")
    header, rule, *rows = lines[start + 1 :]
    assert header.split() == ["name", "dtype", "shape", "parameters", "bytes", "category", "layer"]
    assert set(rule) <= {"-", " "}
    assert len(rows) == TABLE_ROWS + 501
    first = next(row for row in rows if row.startswith("model.layers.0.")).split()
    assert first == ["model.layers.0.mlp.up_proj.weight", "BF16", "4×8", "32", "64", "B",
                     "feed_forward", "0"]  # fmt: skip
    # Columns line up: every row's dtype starts where the header's does.
    col = header.index("dtype")
    assert all(row[col : col + 4] in ("BF16", "F32 ") for row in rows)
    # Hostile names are made inert, as in the table.
    odd = next(row for row in rows if row.startswith("odd"))
    assert "\x1b" not in odd and "\u202e" not in odd


def test_filter_below_the_limit_keeps_the_table(tmp_path: Path) -> None:
    folder = _many(tmp_path, TABLE_ROWS + 10)
    r = cli("inspect", str(folder), "--filter", r"layers\.1\d\.")
    assert r.exit_code == 0, r.stderr
    assert "Tensors (10 shown)" in r.stdout
    assert "┃ name" in r.stdout  # the Rich table


def test_export_keeps_the_listing(tmp_path: Path) -> None:
    folder = _many(tmp_path / "ck", TABLE_ROWS + 1)
    out = tmp_path / "report.txt"
    r = cli("inspect", str(folder), "--tensors", "--export", str(out))
    assert r.exit_code == 0, r.stderr
    text = out.read_text()
    assert f"Tensors ({TABLE_ROWS + 2:,} shown)" in text
    assert "model.layers.2000.mlp.up_proj.weight" in text
