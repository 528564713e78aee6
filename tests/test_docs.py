"""The README documents every command and option, and its set-up commands are the real ones."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from paramtool.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def commands():
    group = typer.main.get_command(app)
    return group.commands  # type: ignore[attr-defined]


def test_every_command_has_help_and_a_readme_section():
    cmds = commands()
    assert {"inspect", "footprint"} <= set(cmds)
    for name, cmd in cmds.items():
        assert (cmd.help or "").strip(), f"{name} has no help"
        assert f"## `paramtool {name}" in README, f"README has no section for {name}"


def test_every_option_has_help_and_is_in_the_readme():
    for name, cmd in commands().items():
        for param in cmd.params:
            for opt in param.opts:
                if not opt.startswith("--") or opt == "--help":
                    continue
                assert getattr(param, "help", None), f"{name} {opt} has no help"
                assert opt in README, f"README does not mention {name} {opt}"


def test_first_screen_holds_the_two_setup_commands_and_ci_runs_the_second():
    first_screen = "\n".join(README.splitlines()[:12])
    block = re.search(r"```bash\n(.*?)```", first_screen, re.S)
    assert block, "no bash block on the README's first screen"
    lines = [ln for ln in block.group(1).splitlines() if ln.strip()]
    assert len(lines) == 2
    assert lines[0].startswith("pip install . && paramtool inspect examples/")
    assert lines[1] in (ROOT / ".ci" / "run").read_text()


def test_example_checkpoint_is_small_and_committed():
    f = ROOT / "examples" / "tiny-llama" / "model.safetensors"
    assert f.is_file() and f.stat().st_size < 5_000_000
    assert (ROOT / "examples" / "make_tiny_llama.py").is_file()


def test_readme_transcript_is_what_inspect_prints(monkeypatch):
    from typer.testing import CliRunner

    monkeypatch.chdir(ROOT)  # the transcript names the example by its relative path
    start = README.index("$ paramtool inspect examples/tiny-llama\n")
    block = README[start:].split("\n", 1)[1].split("```", 1)[0]
    r = CliRunner().invoke(app, ["inspect", "examples/tiny-llama"], env={"COLUMNS": "100"})
    assert r.exit_code == 0
    printed = "\n".join(line.rstrip() for line in r.stdout.splitlines())
    assert printed.strip() == block.strip()
