"""What the cog blocks in docs/ call: real transcripts, JSON excerpts and the CLI reference.

Every command shown in the docs is run, and its output is pasted in by cog, so the
pages show what paramtool prints today and ``cog --check`` fails once they do not::

    cog -r -I tools docs/*.md         # regenerate after changing a command or its help
    cog --check -I tools docs/*.md    # CI: exit 1 when a page is stale

Commands run as ``python -m paramtool`` in a clean environment: 100 columns, no colour,
no Hub access, and no terminal (so no progress bar).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 100


def _env(width: int = WIDTH, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "COLUMNS": str(width),
        "NO_COLOR": "1",
        "PYTHONIOENCODING": "utf-8",
        "HF_HUB_OFFLINE": "1",
    }
    return {**env, **extra}


def _out(text: str) -> None:
    import cog  # the module cogapp provides to the code it runs

    cog.out(text)


def run(command: str, cwd: Path = ROOT, code: int = 0, width: int = WIDTH, **env: str) -> str:
    """The output of ``paramtool ...`` (stdout and stderr, as a terminal shows them)."""
    args = shlex.split(command)
    if not args or args[0] != "paramtool":
        raise ValueError(f"not a paramtool command: {command!r}")
    p = subprocess.run(
        [sys.executable, "-m", "paramtool", *args[1:]],
        cwd=cwd,
        env=_env(width, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        check=False,
    )
    if p.returncode != code:
        raise RuntimeError(f"{command}: exit {p.returncode}, expected {code}\n{p.stdout}")
    return "\n".join(line.rstrip() for line in p.stdout.splitlines())


def transcript(
    command: str,
    cwd: Path = ROOT,
    code: int = 0,
    shown: str | None = None,
    exit: bool = False,
    width: int = WIDTH,
) -> None:
    """A ```text block: ``$ command``, what it prints, and ``$ echo $?`` when ``exit``.

    ``shown`` is the command as the page writes it (continuation lines, say); it must
    split into the same words as ``command``.
    """
    if shown is not None and shlex.split(shown.replace("\\\n", " ")) != shlex.split(command):
        raise ValueError(f"shown {shown!r} is not the command {command!r}")
    lines = ["```text", f"$ {shown or command}", run(command, cwd, code, width)]
    if exit:
        lines += ["$ echo $?", str(code)]
    _out("\n".join(lines) + "\n```\n")


def json_of(command: str, cwd: Path = ROOT, code: int = 0) -> Any:
    """The document ``command --json`` prints."""
    return json.loads(run(command + " --json", cwd, code))


def show_json(doc: Any) -> None:
    """A ```json block: two-space indent, objects of plain values wrapped at 96 columns."""
    _out("```json\n" + _dumps(doc, 0, 0) + "\n```\n")


def _flat(value: Any) -> bool:
    return not isinstance(value, dict | list) or len(json.dumps(value, ensure_ascii=False)) <= 40


def _dumps(value: Any, indent: int, used: int) -> str:
    """``value`` as JSON; ``used`` columns of the first line are taken already."""
    flat = json.dumps(value, ensure_ascii=False)
    if used + len(flat) <= 96 or not isinstance(value, dict | list) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict) and all(_flat(v) for v in value.values()):
        items = [f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in value.items()]
        lines, line, width = [], "{", used
        for i, item in enumerate(items):
            piece = item + ("," if i < len(items) - 1 else "}")
            if line != "{" and width + 1 + len(piece) > 96:
                lines.append(line)
                line, width = pad + piece, len(pad) + len(piece)
            else:
                sep = "" if line == "{" else " "
                line, width = line + sep + piece, width + len(sep) + len(piece)
        return "\n".join([*lines, line])
    if isinstance(value, list):
        items = [pad + _dumps(v, indent + 2, len(pad)) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    items = []
    for k, v in value.items():
        head = f"{pad}{json.dumps(k)}: "
        items.append(head + _dumps(v, indent + 2, len(head)))
    return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"


# ---------------------------------------------------------------- a fine-tuned copy


def _read_safetensors(path: Path) -> tuple[dict[str, Any], bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _write_safetensors(path: Path, tensors: Mapping[str, tuple[str, list[int], bytes]]) -> None:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    data = bytearray()
    for name, (dtype, shape, raw) in tensors.items():
        offsets = [len(data), len(data) + len(raw)]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": offsets}
        data += raw
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    path.write_bytes(struct.pack("<Q", len(head)) + head + bytes(data))


@contextmanager
def finetuned() -> Iterator[Path]:
    """A folder holding ``examples/tiny-llama`` and ``finetuned/``, a changed copy of it.

    ``finetuned`` nudges every q_proj and v_proj (seeded noise, about 1% of the weights'
    norm), drops ``lm_head.weight`` and cuts layer 3's ``up_proj`` to 100 rows: what
    ``paramtool diff`` shows is real output on real files.
    """
    import ml_dtypes
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        shutil.copytree(ROOT / "examples" / "tiny-llama", base / "examples" / "tiny-llama")
        header, data = _read_safetensors(base / "examples" / "tiny-llama" / "model.safetensors")
        rng = np.random.default_rng(0)
        out: dict[str, tuple[str, list[int], bytes]] = {}
        for name, t in header.items():
            if name == "__metadata__" or name == "lm_head.weight":
                continue
            start, end = t["data_offsets"]
            a = np.frombuffer(data[start:end], ml_dtypes.bfloat16).reshape(t["shape"])
            if name.endswith(("q_proj.weight", "v_proj.weight")):
                noise = rng.normal(0.0, 2e-4, a.shape)
                a = (a.astype(np.float32) + noise).astype(ml_dtypes.bfloat16)
            if name == "model.layers.3.mlp.up_proj.weight":
                a = a[:100]
            out[name] = (t["dtype"], list(a.shape), a.tobytes())
        (base / "finetuned").mkdir()
        _write_safetensors(base / "finetuned" / "model.safetensors", out)
        yield base


# ---------------------------------------------------------------- the CLI reference


def help_text(*command: str) -> str:
    """``paramtool [COMMAND] --help`` as plain text: Typer's formatter without Rich boxes."""
    return run(" ".join(["paramtool", *command, "--help"]), TYPER_USE_RICH="0")


def command_names() -> list[str]:
    """The commands, in the order ``paramtool --help`` lists them."""
    import typer

    from paramtool.cli import app

    return list(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def reference() -> str:
    """The body of docs/cli-reference.md: every command's ``--help``, in order."""
    parts = ["## paramtool\n\n```text\n" + help_text() + "\n```\n"]
    for name in command_names():
        parts.append(f"## paramtool {name}\n\n```text\n" + help_text(name) + "\n```\n")
    return "\n".join(parts)


# ---------------------------------------------------------------- tables from the code


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def gpu_table() -> None:
    """The GPU table of ``footprint --list-gpus``, with the source of every figure."""
    doc = json_of("paramtool footprint --list-gpus")
    rows = [
        "| `--gpu` | GPU | marketed | usable bytes | usable | marketed figure | usable figure |",
        "| --- | --- | --- | ---: | --- | --- | --- |",
    ]
    for g in doc["gpus"]:
        n = g["usable_bytes"]
        usable = f"{n / 10**9:.2f} GB / {n / 2**30:.2f} GiB"
        rows.append(
            f"| `{g['key']}` | {_cell(g['name'])} | {_cell(g['marketed'])} | {n:,} | {usable} "
            f"| {_cell(g['marketed_source'])} | {_cell(g['usable_source'])} |"
        )
    _out("\n".join(rows) + "\n")


def dtype_table() -> None:
    """The dtype table of ``footprint --list-dtypes``: bits, block, bytes per block, note."""
    doc = json_of("paramtool footprint --list-dtypes")
    rows = [
        "| dtype | name | aliases | kind | bits | block | bytes/block | note |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    for d in doc["dtypes"]:
        aliases = ", ".join(f"`{a}`" for a in d["aliases"] if a != d["dtype"])
        rows.append(
            f"| `{d['dtype']}` | {d['name']} | {aliases} | {d['kind']} "
            f"| {d['bits_per_parameter']:g} | {d['block_size']} | {d['bytes_per_block']} "
            f"| {_cell(d['note'])} |"
        )
    _out("\n".join(rows) + "\n")
