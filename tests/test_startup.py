"""Start-up cost: what a command imports, and the records' cheap frozen dataclasses.

A whole ``inspect --json`` of a 191-shard folder costs about as much again as the Python
floor; much of the difference is import time. So a local run imports no module that only
another format, the Hub or another command needs (checked by name, which does not flake),
and the records' ``@dataclass(frozen=True, slots=True)`` is :mod:`paramtool.frozen`'s,
checked here against the standard decorator as the truth.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from paramtool.frozen import dataclass as fast_dataclass

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "tiny-llama"

# Modules a local safetensors inspection has no use for.
NOT_FOR_LOCAL_INSPECT = (
    "paramtool.formats.gguf",
    "paramtool.sources.gguf",
    "paramtool.sources.hub",
    "paramtool.sources.hub_source",
    "paramtool.sources.hub_http",
    "paramtool.formats.torch_pickle",
    "paramtool.memory",
    "paramtool.checks",
    "paramtool.values",
    "paramtool.render.inspect_tables",
    "rich",
)


def _loaded_after(argv: list[str]) -> list[str]:
    code = (
        "import json, sys\n"
        f"sys.argv = ['paramtool', *{argv!r}]\n"
        "from paramtool.cli import main\n"
        "try:\n    main()\n"
        "except SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return list(json.loads(p.stderr.strip().splitlines()[-1]))


def test_local_inspect_json_imports_only_what_it_uses() -> None:
    loaded = _loaded_after(["inspect", str(EXAMPLE), "--json"])
    extra = [m for m in loaded if m.startswith(NOT_FOR_LOCAL_INSPECT)]
    assert extra == [], extra
    assert "paramtool.analysis.breakdown" in loaded  # it did inspect


def test_version_imports_no_command() -> None:
    loaded = _loaded_after(["--version"])
    assert [m for m in loaded if m.startswith("paramtool.") and m.endswith("_cmd")] == []
    assert "paramtool.records" not in loaded and "paramtool.api" not in loaded


@pytest.mark.parametrize("argv", [["inspect", str(EXAMPLE), "--json"], ["--help"]])
def test_collection_resumes_after_start_up(argv: list[str]) -> None:
    # paused while start-up builds the process's lasting objects, which are then frozen
    code = (
        "import gc, sys\n"
        f"sys.argv = ['paramtool', *{argv!r}]\n"
        "from paramtool.cli import main\n"
        "try:\n    main()\n"
        "except SystemExit:\n    pass\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 10_000, file=sys.stderr)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stderr.strip().splitlines()[-1] == "True True", p.stderr


def test_the_library_and_the_test_runner_leave_collection_alone() -> None:
    import gc

    from typer.testing import CliRunner

    from paramtool.cli import load

    frozen = gc.get_freeze_count()
    result = CliRunner().invoke(load(["inspect"]), ["inspect", str(EXAMPLE), "--json"])
    assert result.exit_code == 0 and gc.isenabled() and gc.get_freeze_count() == frozen


def _classes(decorate: Any) -> tuple[Any, Any, Any]:
    @decorate(frozen=True, slots=True)
    class Record:
        """A record."""

        a: int
        b: str
        c: tuple[int, ...] = ()
        d: Any = dataclasses.field(default_factory=tuple)
        e: int = dataclasses.field(default=3, repr=False, compare=False)

        @property
        def twice(self) -> int:
            return self.a * 2

    @decorate(frozen=True, slots=True)
    class Undocumented:
        x: Any = None

    @decorate(frozen=True, slots=True)
    class Empty:
        """No fields."""

    return Record, Undocumented, Empty


STANDARD = _classes(dataclasses.dataclass)
FAST = _classes(fast_dataclass)


@pytest.mark.parametrize("i", range(3))
def test_fast_dataclass_is_the_standard_class(i: int) -> None:
    std, fast = STANDARD[i], FAST[i]
    assert fast.__repr__.__code__.co_filename.endswith("frozen.py")  # the cheap path was taken
    for attr in ("__doc__", "__match_args__", "__slots__"):
        assert getattr(fast, attr) == getattr(std, attr), attr
    assert str(inspect.signature(fast)) == str(inspect.signature(std))
    assert fast.__init__.__annotations__ == std.__init__.__annotations__
    assert repr(fast.__dataclass_params__) == repr(std.__dataclass_params__)
    assert [f.name for f in dataclasses.fields(fast)] == [f.name for f in dataclasses.fields(std)]
    for method in ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__"):
        assert getattr(fast, method).__qualname__ == getattr(std, method).__qualname__


def _outcome(op: Any) -> str:
    try:
        op()
    except Exception as e:  # the error, as the standard class raises it
        return f"{type(e).__name__}: {e}"
    return "ok"


def test_fast_dataclass_instances_behave_as_the_standard_ones() -> None:
    (s_rec, s_und, s_empty), (f_rec, f_und, f_empty) = STANDARD, FAST
    s, f = s_rec(1, "x", (1, 2)), f_rec(1, "x", (1, 2))
    assert repr(f) == repr(s) == "_classes.<locals>.Record(a=1, b='x', c=(1, 2), d=())"
    assert hash(f) == hash(s) and f.twice == 2
    assert f == f_rec(1, "x", (1, 2), (), 9)  # e is not compared
    assert f != f_rec(2, "x") and f.__eq__(s) is NotImplemented and (f == 1) is False
    assert repr(f_und(f)) == repr(s_und(s)) and hash(f_und()) == hash(s_und())
    assert repr(f_empty()) == repr(s_empty()) and hash(f_empty()) == hash(s_empty())
    assert f_empty() == f_empty()
    for name in ("a", "zz"):
        assert _outcome(lambda n=name: setattr(f, n, 2)) == _outcome(
            lambda n=name: setattr(s, n, 2)
        )
        assert _outcome(lambda n=name: delattr(f, n)) == _outcome(lambda n=name: delattr(s, n))
    assert _outcome(lambda: f_rec(1)) == _outcome(lambda: s_rec(1))
    g = dataclasses.replace(f, a=5, d=("k",))
    assert dataclasses.asdict(g) == {"a": 5, "b": "x", "c": (1, 2), "d": ("k",), "e": 3}
    assert copy.deepcopy(g) == g and copy.copy(g) == g
    rec = f_und([1])  # a recursive repr stops as the standard one does
    rec.x.append(rec)
    s_rec_ = s_und([1])
    s_rec_.x.append(s_rec_)
    assert repr(rec) == repr(s_rec_) == "_classes.<locals>.Undocumented(x=[1, ...])"


def test_a_default_before_a_required_field_is_refused_alike() -> None:
    def define(decorate: Any) -> str:
        def make() -> None:
            @decorate(frozen=True, slots=True)
            class Bad:
                a: int = 0
                b: int  # type: ignore[misc]

        return _outcome(make)

    assert define(fast_dataclass) == define(dataclasses.dataclass)
    assert "non-default argument 'b'" in define(fast_dataclass)


def test_records_stay_frozen_slotted_dataclasses_and_pickle() -> None:
    import paramtool
    from paramtool.records import TensorInfo

    t = TensorInfo("w", "BF16", (2, 3), 0, 12)
    assert dataclasses.is_dataclass(t) and TensorInfo.__dataclass_params__.frozen
    assert not hasattr(t, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.name = "v"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(t)) == t
    r = paramtool.inspect(str(EXAMPLE))
    for value in (r.breakdown.description, r.breakdown.by_layer, r.breakdown.total):
        assert pickle.loads(pickle.dumps(value)) == value


@pytest.mark.parametrize(
    ("code", "status", "stderr"),
    [("None", 0, ""), ("0", 0, ""), ("1", 1, ""), ("2", 2, ""), ("130", 130, ""),
     ("300", 44, ""), ("-1", 255, ""), ("'gone'", 1, "gone\n")],
)
def test_the_console_script_ends_as_the_interpreter_would(
    code: str, status: int, stderr: str
) -> None:
    """paramtool.cli.end: the exit status and message ``sys.exit(code)`` gives (as Python's
    own handling of SystemExit: an int modulo 256, a string on stderr with status 1), what
    was written but not flushed still written, and no teardown."""
    script = (
        "import sys\nfrom paramtool.cli import end\n"
        "sys.stdout.write('kept')\n"
        f"end({code})\n"
    )
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout, p.stderr) == (status, "kept", stderr)
    q = subprocess.run(
        [sys.executable, "-c", f"import sys\nsys.stdout.write('kept')\nsys.exit({code})\n"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (q.returncode, q.stdout, q.stderr) == (status, "kept", stderr)  # the reference
