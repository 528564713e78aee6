"""The house: data flows one way through the sub-packages, and no module imports itself back.

Every import counts, those inside functions too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import paramtool

SRC = Path(__file__).resolve().parents[1] / "src" / "paramtool"

# Who may import whom: a module imports its own sub-package and lower ranks only.
# Rank 0 is the foundation every layer shares (records, errors, the dtype table, parsers).
RANK: dict[str, float] = {
    "records": 0, "errors": 0, "dtypes": 0, "units": 0, "safe_text": 0, "jsonable": 0,
    "patterns": 0, "fields": 0, "files": 0, "frozen": 0,
    "formats": 1,   # bytes -> records
    "sources": 2,   # what the user typed -> a Checkpoint
    "analysis": 3,  # the model description, anatomy, quantization, adapters, MoE
    "memory": 4,    # precisions, KV cache, training, GPU fit
    "values": 4,    # tensor reader, stats, hashing, diff
    "checks": 5,    # rules and their evaluation
    "api": 6,       # the public functions
    "__init__": 6.5,  # the package re-exports the API
    "render": 7,    # the only place below the CLI that imports rich
    "cli": 8,
    "__main__": 9,
}  # fmt: skip


def _module(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(("paramtool", *parts))


def _group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _edges() -> set[tuple[str, str]]:
    edges = set()
    for path in SRC.rglob("*.py"):
        mod = _module(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "paramtool":
                    edges |= {(mod, f"paramtool.{a.name}") for a in node.names}
                elif node.module.startswith("paramtool."):
                    edges.add((mod, node.module))
            elif isinstance(node, ast.Import):
                edges |= {(mod, a.name) for a in node.names if a.name.startswith("paramtool.")}
    return edges


def test_every_group_has_a_rank() -> None:
    groups = {_group(_module(p)) for p in SRC.rglob("*.py")}
    assert groups <= set(RANK), groups - set(RANK)


def test_imports_flow_one_way() -> None:
    wrong = []
    for a, b in sorted(_edges()):
        ga, gb = _group(a), _group(b)
        if gb == "__version__" or ga == gb:
            continue
        if RANK[gb] > RANK[ga] or (RANK[gb] == RANK[ga] and RANK[ga] > 0):
            wrong.append(f"{a} imports {b}")
    assert not wrong, "\n".join(wrong)


def test_no_import_circle() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in _edges():
        graph[a].add(b)
    state: dict[str, int] = {}
    path: list[str] = []
    circles: list[str] = []

    def visit(u: str) -> None:
        state[u] = 1
        path.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                circles.append(" -> ".join([*path[path.index(v) :], v]))
            elif v not in state:
                visit(v)
        path.pop()
        state[u] = 2

    for u in sorted(graph):
        if u not in state:
            visit(u)
    assert not circles, "\n".join(circles)


def test_no_sub_package_shadows_an_api_function() -> None:
    packages = {p.parent.name for p in SRC.rglob("__init__.py")}
    modules = {p.stem for p in SRC.glob("*.py")}
    functions = {n for n in paramtool.__all__ if n[0].islower() and not n.startswith("_")}
    assert not (packages | modules) & functions
