"""Shell completion, one spelling for units, and the CI files that users copy.

The completion tests run paramtool from bash, as a user would: Typer finds the shell to
write a script for by looking at the processes above it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import cli, error_line
from paramtool.cli import load

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tiny-llama"
BASH = shutil.which("bash")
WIDE = {"COLUMNS": "160"}  # tables at full width


# ---------------------------------------------------------------- completion


def from_bash(command: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHELL": "/bin/bash", "HOME": str(home)}
    exe = f"{sys.executable} -m paramtool"
    return subprocess.run(
        # not bash's last command, so that bash stays paramtool's parent instead of exec'ing
        [BASH or "bash", "-c", command.replace("paramtool", exe, 1) + "; exit $?"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_show_completion_prints_a_bash_script(tmp_path: Path) -> None:
    r = from_bash("paramtool --show-completion bash", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "_paramtool_completion()" in r.stdout
    assert "_PARAMTOOL_COMPLETE=complete_bash" in r.stdout
    assert "complete -o default -F _paramtool_completion paramtool" in r.stdout


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_install_completion_writes_the_script_for_bash(tmp_path: Path) -> None:
    (tmp_path / ".bashrc").write_text("# the user's own\n")
    r = from_bash("paramtool --install-completion", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "bash completion installed" in r.stdout
    script = tmp_path / ".bash_completions" / "paramtool.sh"
    assert "_paramtool_completion()" in script.read_text()
    bashrc = (tmp_path / ".bashrc").read_text()
    assert bashrc.startswith("# the user's own\n") and "paramtool.sh" in bashrc


def test_the_script_completes_commands_and_options() -> None:
    def complete(words: str) -> list[str]:
        env = {
            **os.environ,
            "_PARAMTOOL_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
        }
        r = subprocess.run(
            [sys.executable, "-m", "paramtool"], env=env, capture_output=True, text=True
        )
        return r.stdout.split()

    assert complete("paramtool ins") == ["inspect"]
    assert complete("paramtool footprint --uni") == ["--units"]
    assert complete("paramtool stats --uni") == ["--units"]


def test_root_help_lists_the_completion_options() -> None:
    out = cli("--help", env=WIDE, catch_exceptions=True).stdout
    assert "--install-completion" in out and "--show-completion" in out


# ---------------------------------------------------------------- units


def sizes(*args: str) -> str:
    r = cli(*args, env=WIDE)
    assert r.exit_code == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("spelling", [["--units", "gib"], ["--units", "GiB"], ["--gib"]])
def test_inspect_binary_units_both_spellings(spelling: list[str]) -> None:
    out = sizes("inspect", str(EXAMPLE), *spelling)
    assert "2,435,328 (2.32 MiB)" in out and "2.44 MB" not in out


def test_inspect_decimal_by_default_and_with_units_gb() -> None:
    for args in ([], ["--units", "gb"]):
        out = sizes("inspect", str(EXAMPLE), *args)
        assert "2,435,328 (2.44 MB)" in out and "MiB" not in out


def test_the_old_spelling_is_hidden_but_said_once_in_the_docs() -> None:
    help_ = cli("inspect", "--help", env=WIDE, catch_exceptions=True).stdout
    assert "--units" in help_ and "--gib" not in help_
    page = (ROOT / "docs" / "inspect.md").read_text(encoding="utf-8")
    assert "--units gb\\|gib" in page and "`--gib`" in page


@pytest.mark.parametrize("command", ["inspect", "footprint", "stats"])
def test_every_command_that_prints_sizes_takes_units(command: str) -> None:
    source = ["--params", "8B"] if command == "footprint" else [str(EXAMPLE)]
    binary = sizes(command, *source, "--units", "gib")
    decimal = sizes(command, *source, "--units", "gb")
    assert "GiB" in binary or "MiB" in binary
    unit = re.compile(r"\d (kB|MB|GB)\b")
    assert unit.search(decimal)
    if command != "footprint":  # footprint's table shows GB and GiB side by side
        assert not unit.search(binary)


def test_one_option_declaration_serves_every_command() -> None:
    import typer

    commands = typer.main.get_command(load()).commands  # type: ignore[attr-defined]
    seen = set()
    for name, cmd in commands.items():
        for p in cmd.params:
            if "--units" in p.opts:
                seen.add(name)
                assert (p.opts, p.metavar, p.help, p.default) == (
                    ["--units"],
                    "gb|gib",
                    "Human units: decimal GB or binary GiB.",
                    "gb",
                ), name
    assert seen == {"inspect", "footprint", "fit", "stats"}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["inspect", str(EXAMPLE), "--units", "kb"], ["--units 'kb'", "gb or gib"]),
        (["stats", str(EXAMPLE), "--units", "tib"], ["--units 'tib'"]),
        (["footprint", "--params", "8B", "--units", "kb"], ["--units"]),
        (["inspect", str(EXAMPLE), "--gib", "--units", "gb"], ["--gib", "--units gb"]),
    ],
)
def test_bad_units_are_one_line_exit_2(args: list[str], words: list[str]) -> None:
    line = error_line(cli(*args, env=WIDE))
    for w in words:
        assert w in line


def test_footprint_json_names_the_unit() -> None:
    import json

    assert (
        json.loads(sizes("footprint", "--params", "8B", "--units", "GIB", "--json"))["units"]
        == "gib"
    )


# ---------------------------------------------------------------- CI files


def check_flags() -> set[str]:
    """Every long option of ``paramtool check``."""
    import typer

    cmd = typer.main.get_command(load(["check"])).commands["check"]  # type: ignore[attr-defined]
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}


def flags_of(command_line: str) -> list[str]:
    return re.findall(r"(?<![\w-])--[a-z][a-z-]*", command_line)


def test_github_actions_example_installs_from_the_repository() -> None:
    doc = yaml.safe_load((ROOT / "examples" / "github-actions.yml").read_text())
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(on) == {"pull_request", "push"}
    assert doc["permissions"] == {"contents": "read"}
    for name, job in doc["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), name
        assert 0 < job["timeout-minutes"] <= 60
        assert "permissions" not in job or job["permissions"] == {"contents": "read"}
    steps = doc["jobs"]["gate"]["steps"]
    runs = [s["run"] for s in steps if "run" in s]
    install = [r for r in runs if "pip install" in r]
    assert len(install) == 1
    spec = doc["jobs"]["gate"]["env"]["PARAMTOOL"]
    assert install[0].strip() == 'python -m pip install "$PARAMTOOL"'
    assert re.fullmatch(r"git\+https://github\.com/[\w.-]+/paramtool@[\w.-]+", spec)
    gate = next(r for r in runs if "paramtool check" in r)
    assert set(flags_of(gate)) <= check_flags()
    assert all(s["uses"].split("@")[1].startswith("v") for s in steps if "uses" in s)


def test_pre_commit_hooks_install_paramtool_from_this_repository() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert [h["id"] for h in hooks] == ["paramtool-check", "paramtool-check-folder"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'paramtool = "paramtool.cli:run"' in pyproject  # what `pip install .` puts on PATH
    for h in hooks:
        # language python: pre-commit pip-installs this repository at the rev it is given
        assert h["language"] == "python" and "additional_dependencies" not in h
        assert h["entry"] == "paramtool check"
        assert h["files"].startswith("(?i)") and h["require_serial"] is True
    assert [h["pass_filenames"] for h in hooks] == [True, False]


def test_the_pre_commit_snippet_in_the_docs_uses_these_hooks() -> None:
    page = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(repos:\n.*?)```", page, re.S)
    assert block, "docs/ci.md has no .pre-commit-config.yaml snippet"
    config = yaml.safe_load(block.group(1))
    (repo,) = config["repos"]
    assert repo["repo"].startswith("https://github.com/") and repo["repo"].endswith("/paramtool")
    ids = {h["id"] for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    flags = check_flags()
    for hook in repo["hooks"]:
        assert hook["id"] in ids
        assert {a for a in hook.get("args", []) if a.startswith("--")} <= flags
