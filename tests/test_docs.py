"""The docs cover every command and option, and show what the code does.

Every command has a page in docs/ that names each of its options; the README keeps its
set-up commands on the first screen, its transcript real and its links working; every page
is in the site's navigation; the CLI reference is what ``--help`` prints today.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import typer

from helpers import cli
from paramtool.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ROOT / "docs"
PAGES = {p.name: p.read_text(encoding="utf-8") for p in sorted(DOCS.glob("*.md"))}
GENERATED = "cli-reference.md"  # every --help, pasted in by cog: mentions every option by itself
WRITTEN = "\n".join(text for name, text in PAGES.items() if name != GENERATED)


def command_group() -> typer.core.TyperGroup:
    return typer.main.get_command(app)  # type: ignore[return-value]


def long_options(params: list) -> list[tuple[object, str]]:
    """(parameter, --flag) for every long flag, a boolean's --no-flag included; not --help."""
    out = []
    for param in params:
        for opt in [*param.opts, *getattr(param, "secondary_opts", [])]:
            if opt.startswith("--") and opt != "--help":
                out.append((param, opt))
    return out


def mentions(text: str, flag: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def test_every_command_has_help_and_a_page():
    commands = command_group().commands
    assert {"inspect", "footprint", "check", "stats", "hash", "verify", "diff"} <= set(commands)
    for name, cmd in commands.items():
        assert (cmd.help or "").strip(), f"{name} has no help"
        page = PAGES.get(f"{name}.md")
        assert page is not None, f"docs/{name}.md is missing"
        assert page.startswith(f"# paramtool {name}\n"), f"docs/{name}.md has another title"
        assert f"](docs/{name}.md)" in README, f"the README does not link docs/{name}.md"


def test_every_option_has_help_and_is_on_its_command_page():
    for name, cmd in command_group().commands.items():
        page = PAGES[f"{name}.md"]
        for param, opt in long_options(cmd.params):
            assert getattr(param, "help", None), f"{name} {opt} has no help"
            assert mentions(page, opt), f"docs/{name}.md does not mention {opt}"


def test_every_option_of_paramtool_itself_is_documented():
    for param, opt in long_options(command_group().params):
        assert getattr(param, "help", None), f"paramtool {opt} has no help"
        assert mentions(WRITTEN, opt), f"no page of docs/ (but the reference) mentions {opt}"


def test_every_page_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").split("\nnav:", 1)[1]
    for name in PAGES:
        assert re.search(rf":\s*{re.escape(name)}\s*$", nav, re.M), f"{name} is not in the nav"


def test_cli_reference_is_what_help_prints():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import docs_cog
    finally:
        sys.path.remove(str(ROOT / "tools"))
    text = PAGES[GENERATED]
    body = text.split("]]] -->\n", 1)[1].split("<!-- [[[end]]] -->", 1)[0]
    assert body.strip() == docs_cog.reference().strip(), (
        "docs/cli-reference.md is stale: run cog -r -I tools docs/*.md"
    )


def test_readme_is_short_and_its_links_lead_somewhere():
    assert len(README.splitlines()) <= 250
    for target in re.findall(r"\]\(((?!https?:)[^)#]+)[^)]*\)", README):
        assert (ROOT / target).exists(), f"the README links {target}, which does not exist"


def test_first_screen_holds_the_two_setup_commands_and_ci_runs_the_second():
    first_screen = "\n".join(README.splitlines()[:12])
    block = re.search(r"```bash\n(.*?)```", first_screen, re.S)
    assert block, "no bash block on the README's first screen"
    lines = [ln for ln in block.group(1).splitlines() if ln.strip()]
    assert len(lines) == 2
    assert "pip install ." in lines[0] and "paramtool inspect examples/tiny-llama" in lines[0]
    assert lines[1] in (ROOT / ".ci" / "run").read_text()
    for line in lines:  # PEP 668 systems refuse pip outside a virtual environment
        assert line.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install ")


def test_example_checkpoint_is_small_and_committed():
    f = ROOT / "examples" / "tiny-llama" / "model.safetensors"
    assert f.is_file() and f.stat().st_size < 5_000_000
    assert (ROOT / "examples" / "make_tiny_llama.py").is_file()


def test_readme_transcript_is_what_inspect_prints(monkeypatch):
    monkeypatch.chdir(ROOT)  # the transcript names the example by its relative path
    start = README.index("$ paramtool inspect examples/tiny-llama\n")
    block = README[start:].split("\n", 1)[1].split("```", 1)[0]
    r = cli("inspect", "examples/tiny-llama", env={"COLUMNS": "100"})
    assert r.exit_code == 0
    printed = "\n".join(line.rstrip() for line in r.stdout.splitlines())
    assert printed.strip() == block.strip()
