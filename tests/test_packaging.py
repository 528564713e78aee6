"""The package as shipped: dependencies are exactly what src/ imports, one version, a licence."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "paramtool"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# import name -> distribution name, where they differ
DISTRIBUTION = {"tomli": "tomli", "re2": "google_re2", "OpenSSL": "pyopenssl"}


def _third_party_imports() -> set[str]:
    stdlib = set(sys.stdlib_module_names) | {"tomllib"}
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found |= {n.split(".")[0] for n in names}
    return {n for n in found if n not in stdlib and n != "paramtool"}


def _declared() -> set[str]:
    out = set()
    for req in PYPROJECT["project"]["dependencies"]:
        name = re.match(r"[A-Za-z0-9_.-]+", req)
        assert name is not None
        out.add(name.group(0).lower().replace("-", "_"))
    return out


def test_runtime_dependencies_are_exactly_what_src_imports() -> None:
    imported = {DISTRIBUTION.get(n, n).lower() for n in _third_party_imports()}
    assert imported == _declared()


def test_every_dependency_has_a_floor() -> None:
    for req in PYPROJECT["project"]["dependencies"]:
        assert ">=" in req, req


def test_the_version_is_written_once() -> None:
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert "version" not in PYPROJECT["project"]
    hits = [
        p for p in SRC.rglob("*.py") if re.search(r"__version__\s*=", p.read_text(encoding="utf-8"))
    ]
    assert hits == [SRC / "__init__.py"]


def test_licence_and_typing_marker_ship() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    assert "Apache License" in (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert (SRC / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["paramtool"]
    assert "Typing :: Typed" in PYPROJECT["project"]["classifiers"]
