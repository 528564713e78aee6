"""The config file of ``paramtool check``: found upward, strict, overridden by flags."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest

from helpers import cli, error_line
from paramtool import errors
from paramtool.checks.config import discover, find_config, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tiny-llama"
SIZE = (EXAMPLE / "model.safetensors").stat().st_size


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Every test runs in a fresh folder, so no config of the repo or the machine is found."""
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---------------------------------------------------------------- finding the file


def test_found_in_the_current_folder_and_its_parents(tmp_path):
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_config(deep) is None
    top = write(tmp_path / "pyproject.toml", '[tool.paramtool.check]\nmax_size = "16GB"\n')
    assert find_config(deep) == top
    nearer = write(tmp_path / "a" / "paramtool.toml", '[check]\nmax_size = "1GB"\n')
    assert find_config(deep) == nearer  # the first folder that has one wins
    cfg = discover(deep)
    assert cfg is not None and cfg.path == str(nearer) and cfg.table == "[check]"
    assert cfg.rules.rules["max_size"].value == 10**9


def test_paramtool_toml_wins_over_pyproject_in_the_same_folder(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.paramtool.check]\nmax_size = "16GB"\n')
    own = write(tmp_path / "paramtool.toml", "[check]\ndtype = 'bf16'\n")
    assert find_config(tmp_path) == own


def test_a_pyproject_without_tool_paramtool_is_passed_over(tmp_path):
    top = write(tmp_path / "paramtool.toml", "[check]\ndtype = 'bf16'\n")
    write(tmp_path / "a" / "pyproject.toml", '[project]\nname = "x"\n')
    write(
        tmp_path / "a" / "b" / "pyproject.toml", "this is [not toml"
    )  # never parsed: no 'paramtool'
    write(tmp_path / "a" / "b" / "c" / "pyproject.toml", '[project]\nname = "paramtool-user"\n')
    assert find_config(tmp_path / "a" / "b" / "c") == top


def test_a_pyproject_with_tool_paramtool_but_no_check_table_stops_the_search(tmp_path):
    write(tmp_path / "paramtool.toml", "[check]\ndtype = 'bf16'\n")
    mid = write(tmp_path / "a" / "pyproject.toml", "[tool.paramtool]\n")
    cfg = discover(tmp_path / "a")
    assert cfg is not None and cfg.path == str(mid) and cfg.rules.rules == {}


# ---------------------------------------------------------------- reading it


def test_every_value_form(tmp_path):
    p = write(
        tmp_path / "paramtool.toml",
        """
[check]
max-size = "16GB"
min_size = 1000
max_params = "8.1B"
expect_params = 8030261248
tolerance = 0.001
dtype = "bf16"
allow_dtypes = ["bf16", "F32"]
max_share = {other = "5%", adapter = 0.01}
expect_layers = 32
require_metadata = {format = "pt", license = true}
safetensors_only = true
no_nan = false
sha256 = {"model.safetensors" = "ZEROS"}
against_hub = "org/name@main"
""".replace("ZEROS", "0" * 64),
    )
    cfg = load_config(p)
    assert cfg.options["max_size"] == "16GB" and cfg.options["min_size"] == "1000"
    assert cfg.options["max_share"] == ["other=5%", "adapter=0.01"]
    assert cfg.options["require_metadata"] == ["format=pt", "license"]
    r = cfg.rules.rules
    assert r["max_size"].value == 16 * 10**9 and r["min_size"].value == 1000
    assert r["expect_params"].value == (
        8_030_261_248,
        Fraction(0),
    ) and cfg.rules.tolerance == Fraction(1, 1000)
    assert r["allow_dtypes"].value == ("BF16", "F32")
    assert r["max_share:adapter"].value == ("adapter", Fraction(1, 100))
    assert r["require_metadata:license"].value == ("license", None)
    assert (
        r["expect_layers"].value == 32 and "no_nan" not in r and r["safetensors_only"].value is True
    )
    assert r["sha256:model.safetensors"].value == ("model.safetensors", "0" * 64)


def test_lists_and_single_strings(tmp_path):
    p = write(
        tmp_path / "pyproject.toml",
        '[tool.paramtool.check]\nallow-dtypes = "bf16,f32"\nmax_share = ["other=5%"]\n'
        'require_metadata = "format=pt"\n',
    )
    r = load_config(p).rules.rules
    assert r["allow_dtypes"].value == ("BF16", "F32")
    assert set(r) == {"allow_dtypes", "max_share:other", "require_metadata:format"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[check]\nmax_sise = "16GB"\n',
            "paramtool.toml: max_sise: unknown key (did you mean 'max_size'?)",
        ),
        ("[check]\nfrobnicate = 1\n", "paramtool.toml: frobnicate: unknown key"),
        (
            '[check]\nsource = "models/x"\n',
            "unknown key (the checkpoint is named on the command line)",
        ),
        (
            'max_size = "16GB"\n',
            "paramtool.toml: max_size: unknown key (rules go in the [check] table)",
        ),
        ('[chek]\nmax_size = "16GB"\n', "paramtool.toml: chek: unknown key"),
        ('[check]\nmax_size = "16XB"\n', "paramtool.toml: max_size = '16XB': unknown suffix 'XB'"),
        (
            "[check]\nmax_size = 1.5e10\n",
            'max_size: expected a size such as "16GB" or a whole number of bytes, got a float',
        ),
        ('[check]\nexpect_params = "eight"\n', "expect_params = 'eight': not a number"),
        (
            '[check]\nsafetensors_only = "yes"\n',
            "safetensors_only: expected true or false, got a string",
        ),
        ('[check]\nallow_dtypes = ["bf16", 16]\n', "allow_dtypes: expected a list of dtypes"),
        ('[check]\nmax_share = {other = "lots"}\n', "max_share = 'lots': write it like 5% or 0.05"),
        (
            "[check]\nrequire_metadata = {format = 1}\n",
            "require_metadata.format: expected a string, or true",
        ),
        ('[check]\nmax_size = "1GB"\nmax-size = "2GB"\n', "max-size: given twice"),
        ('[check]\nexpect_layers = "many"\n', "expect_layers = 'many': write it as a whole number"),
        ('[check]\nmax_size = "16GB"\n[check\n', "paramtool.toml: not valid TOML"),
        ("check = 3\n", "paramtool.toml: [check]: must be a table"),
    ],
)
def test_bad_config_is_an_error_naming_file_and_key(tmp_path, text, message):
    write(tmp_path / "paramtool.toml", text)
    with pytest.raises(errors.ConfigError) as e:
        discover(tmp_path)
    assert message in str(e.value)
    line = error_line(cli("check", str(EXAMPLE)))  # the same through the CLI: exit 2, one line
    assert message in line


def test_unknown_keys_in_tool_paramtool(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.paramtool]\nchecks = {max_size = "1GB"}\n')
    with pytest.raises(
        errors.ConfigError, match=r"pyproject.toml: tool.paramtool.checks: unknown key"
    ):
        discover(tmp_path)


def test_an_explicit_file_must_hold_the_table(tmp_path):
    p = write(tmp_path / "ci" / "pyproject.toml", "[tool.paramtool]\n")
    with pytest.raises(errors.ConfigError, match=r"no \[tool.paramtool.check\] table"):
        load_config(p, explicit=True)
    with pytest.raises(errors.ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml", explicit=True)


# ---------------------------------------------------------------- through the CLI


def test_config_is_used_and_named_on_stderr(tmp_path):
    p = write(
        tmp_path / "pyproject.toml",
        f'[tool.paramtool.check]\nmax_size = {SIZE - 1}\ndtype = "bf16"\n',
    )
    r = cli("check", str(EXAMPLE), "--json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["config"] == f"{p} [tool.paramtool.check]"
    assert [(x["name"], x["status"]) for x in doc["rules"]] == [
        ("max_size", "fail"),
        ("dtype", "pass"),
    ]
    assert r.stderr == f"paramtool: note: rules from {p} [tool.paramtool.check]\n"


def test_flags_override_the_config_rule_by_rule(tmp_path):
    write(
        tmp_path / "paramtool.toml",
        f'[check]\nmax_size = {SIZE - 1}\nmax_share = {{other = "0%", embedding = "1%"}}\n',
    )
    r = cli(
        "check", str(EXAMPLE), "--json", "--max-size", str(SIZE), "--max-share", "embedding=50%"
    )
    assert r.exit_code == 0, r.stdout
    rules = {x["name"]: x for x in json.loads(r.stdout)["rules"]}
    assert rules["max_size"]["limit"] == SIZE
    assert rules["max_share:embedding"]["limit"] == 0.5 and rules["max_share:other"]["limit"] == 0.0
    assert "and the command line (which wins)" in r.stderr


def test_tolerance_in_the_config_applies_to_expect_params_from_the_command_line(tmp_path):
    write(tmp_path / "paramtool.toml", '[check]\ntolerance = "2%"\n')
    r = cli("check", str(EXAMPLE), "--json", "--expect-params", "1.2M")
    assert r.exit_code == 0
    (rule,) = json.loads(r.stdout)["rules"]
    assert rule["limit"] == {
        "expected": 1_200_000,
        "tolerance": 0.02,
        "min": 1_176_000,
        "max": 1_224_000,
    }


def test_no_config_and_explicit_config(tmp_path):
    write(tmp_path / "paramtool.toml", '[check]\nmax_size = "1B"\n')
    r = cli("check", str(EXAMPLE), "--no-config", "--dtype", "bf16")
    assert r.exit_code == 0 and r.stderr == ""
    other = write(tmp_path / "gate" / "release.toml", '[check]\nmax_size = "1GB"\n')
    r = cli("check", str(EXAMPLE), "--config", str(other), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["config"] == f"{other} [check]"
    assert "paramtool: error: --config/--no-config: give one or the other" in error_line(
        cli("check", str(EXAMPLE), "--config", str(other), "--no-config")
    )
    assert "no such config file" in error_line(cli("check", str(EXAMPLE), "--config", "nope.toml"))


def test_an_empty_config_and_no_flags_is_no_rules(tmp_path):
    p = write(tmp_path / "paramtool.toml", "[check]\n")
    line = error_line(cli("check", str(EXAMPLE)))
    why = f"no rules given (none on the command line, none in {p} [check])"
    assert line == f"paramtool: error: check: {why}"


@pytest.mark.parametrize("nested", ["[" * 50_000 + "]" * 50_000, "{a = " * 50_000 + "}" * 50_000])
def test_a_config_nested_too_deeply_is_a_config_error(tmp_path: Path, nested: str) -> None:
    path = tmp_path / "paramtool.toml"
    path.write_text(f"[check]\nmax_size = {nested}\n")
    with pytest.raises(errors.ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: not valid TOML: arrays or tables nested too deeply"
