"""Import hygiene: the core never draws, and each path loads only what it needs.

One table-driven test per rule: the syntax-tree walk below refuses any import of a
terminal library in a core module (imports inside functions included); the table runs
each entry point in a fresh interpreter and lists the heavy modules it loaded.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from quant_layouts import write_gguf

SRC = Path(__file__).resolve().parents[1] / "src" / "paramtool"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tiny-llama"
UI = ("rich", "typer", "click")


def _core_modules() -> list[Path]:
    return sorted(
        p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] not in ("cli", "render")
    )


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
        elif (  # importlib.import_module("rich...") and __import__("rich")
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", ""))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value.split(".")[0])
    return names


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_core_module_imports_no_terminal_library(path: Path) -> None:
    found = _imported(ast.parse(path.read_text(encoding="utf-8"))) & set(UI)
    assert not found, f"{path.relative_to(SRC)} imports {sorted(found)}"


def test_the_walk_sees_imports_inside_functions() -> None:
    tree = ast.parse("def f():\n    from rich.console import Console\n    import typer.main\n")
    assert _imported(tree) >= {"rich", "typer"}


def _core_import_line() -> str:
    mods = []
    for p in _core_modules():
        rel = p.relative_to(SRC).with_suffix("")
        if rel.name == "__main__":
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods.append(".".join(("paramtool", *parts)))
    return "import " + ", ".join(mods)


def _cli(*argv: str) -> str:
    # The console script is paramtool.cli.run: main(), then an os._exit that imports nothing
    # (so this process would end before it could list its modules).
    return (
        "from paramtool.cli import main\n"
        f"sys.argv = ['paramtool', *{list(argv)!r}, *sys.argv[1:]]\n"
        "try:\n    main()\n"
        "except SystemExit:\n    pass\n"
    )


VALUE_MODULES = (
    "import paramtool.values.stats, paramtool.values.nonfinite, paramtool.values.hashing\n"
    "import paramtool.values.verify, paramtool.values.diff, paramtool.values.reader\n"
    "import paramtool.render.values_text, paramtool.api\n"
)

# (what runs, the argument it gets, modules that must stay unloaded)
CASES = {
    "every core module": (_core_import_line(), None, UI),
    "analysis": (
        "import paramtool.analysis.anatomy, paramtool.analysis.breakdown",
        None,
        (*UI, "numpy"),
    ),
    "memory and footprint JSON": (
        "import paramtool.memory.estimate, paramtool.memory.gpus, paramtool.dtypes\n"
        "import paramtool.memory.footprint_json",
        None,
        (*UI, "numpy", "huggingface_hub"),
    ),
    "checks and their renderers": (
        "import paramtool.checks.evaluate, paramtool.checks.config\n"
        "import paramtool.render.check_markdown, paramtool.render.check_junit",
        None,
        (*UI, "numpy", "huggingface_hub"),
    ),
    "GGUF reader": ("import paramtool.formats.gguf, paramtool.sources.gguf", None, (*UI, "numpy")),
    "value modules": (
        VALUE_MODULES + "import paramtool.cli.stats_cmd, paramtool.cli.hash_cmd",
        None,
        ("numpy", "rich", "huggingface_hub", "ml_dtypes"),
    ),
    "value modules without typer": (VALUE_MODULES, None, ("typer",)),
    "paramtool --version": (
        _cli("--version"),
        None,
        ("numpy", "rich", "huggingface_hub", "safetensors", "gguf"),
    ),
    "inspect --json": (
        _cli("inspect", "--json"),
        "example",
        ("numpy", "rich", "huggingface_hub", "gguf"),
    ),
    "inspect --json on a GGUF": (
        _cli("inspect", "--json"),
        "gguf",
        ("numpy", "gguf", "huggingface_hub"),
    ),
    "check --json": (
        _cli("check", "--no-config", "--dtype=bf16", "--json"),
        "example",
        ("numpy", "rich", "huggingface_hub", "gguf"),
    ),
    "footprint --json": (
        _cli("footprint", "--params", "70B", "--dtype", "bf16", "--json"),
        None,
        ("rich", "numpy", "huggingface_hub"),
    ),
    "the Python API on a local folder": (
        "import paramtool\nr = paramtool.inspect(sys.argv[1])\nassert r.total_parameters > 0",
        "example",
        ("rich", "typer", "click", "numpy", "huggingface_hub"),
    ),
}


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hygiene") / "tiny.gguf"
    write_gguf(path, "dense")
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_entry_point_loads_nothing_heavy(case: str, gguf_file: Path) -> None:
    code, arg, heavy = CASES[case]
    argv = {"example": [str(EXAMPLE)], "gguf": [str(gguf_file)], None: []}[arg]
    script = (
        "import sys\n" + code + "\n"
        f"loaded = sorted(m for m in {list(heavy)!r} if m in sys.modules)\n"
        "print(json.dumps(loaded), file=sys.stderr)"
    )
    p = subprocess.run(
        [sys.executable, "-c", "import json\n" + script, *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    loaded = json.loads(p.stderr.strip().splitlines()[-1])
    assert loaded == [], f"{case} loaded {loaded}\n{p.stderr}"
