"""The config file of ``paramtool check``: found, read strictly, turned into rules.

Search: from the current directory up to the filesystem root, the first folder that
holds ``paramtool.toml`` (rules in its ``[check]`` table) or a ``pyproject.toml`` with a
``[tool.paramtool]`` table (rules in ``[tool.paramtool.check]``); ``paramtool.toml`` wins
in the same folder. Keys are the long option names without the dashes, written with
underscores or dashes (``max_size``, ``allow-dtypes``). Unknown keys, wrong types and
values that do not parse are errors naming the file and key, never ignored. Files a config
file names (``signature``, ``public_key``...) are relative to the folder holding it.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paramtool.checks.rules import (
    BY_KEY,
    COUNT,
    DTYPE,
    DTYPES,
    FILE,
    FILES,
    FLAG,
    INT,
    KEYS,
    PAIRS,
    PERCENT,
    SIZE,
    TEXT,
    RuleSet,
    parse_rules,
)
from paramtool.errors import ConfigError, ParamtoolError
from paramtool.files import open_binary, read_at_most, read_capped

CONFIG_NAME = "paramtool.toml"
PYPROJECT = "pyproject.toml"
MAX_CONFIG_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """Rules from one config file: where they came from, the raw values and the parsed set."""

    path: str
    table: str  # "[check]" or "[tool.paramtool.check]"
    options: Mapping[str, Any]  # normalized key -> value in command-line form
    rules: RuleSet

    @property
    def label(self) -> str:
        return f"{self.path} {self.table}"


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib  # type: ignore[import-not-found]
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(str(path), f"larger than {MAX_CONFIG_BYTES:,} bytes")
        raw = read_capped(path, MAX_CONFIG_BYTES, too_large=ConfigError)  # a regular file only
    except OSError as e:
        raise ConfigError(str(path), e.strerror or str(e)) from None
    try:
        doc: dict[str, Any] = tomllib.loads(raw.decode("utf-8"))
        return doc
    except UnicodeDecodeError:
        raise ConfigError(str(path), "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(path), f"not valid TOML: {e}") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigError(str(path), "not valid TOML: arrays or tables nested too deeply") from None


def _is_pyproject(path: Path) -> bool:
    return path.name == PYPROJECT


def _mentions_paramtool(path: Path) -> bool:
    """Cheap pre-check, so an unrelated (even broken) pyproject.toml is never parsed."""
    try:
        with open_binary(path) as f:
            return b"paramtool" in read_at_most(f, MAX_CONFIG_BYTES + 1)
    except (OSError, ParamtoolError):
        return False


def find_config(start: Path | None = None) -> Path | None:
    """The config file for ``start`` (default: the current directory), or None."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        own = folder / CONFIG_NAME
        if own.is_file():
            return own
        pyproject = folder / PYPROJECT
        if pyproject.is_file() and _mentions_paramtool(pyproject):
            doc = _load_toml(pyproject)
            tool = doc.get("tool")
            if isinstance(tool, dict) and "paramtool" in tool:
                return pyproject
    return None


def discover(start: Path | None = None) -> CheckConfig | None:
    """Find and load the config file, or None when there is none."""
    path = find_config(start)
    return None if path is None else load_config(path)


def load_config(path: Path, *, explicit: bool = False) -> CheckConfig:
    """Read the check rules of a config file.

    A file named ``pyproject.toml`` holds them in ``[tool.paramtool.check]``, any other
    in ``[check]``. ``explicit`` (named with ``--config``): the table must be there.
    """
    if not path.is_file():
        raise ConfigError(str(path), "no such config file")
    doc = _load_toml(path)
    if _is_pyproject(path):
        table_name = "[tool.paramtool.check]"
        tool = doc.get("tool", {})
        section = tool.get("paramtool", {}) if isinstance(tool, dict) else {}
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: tool.paramtool", "must be a table")
        scope, top = "tool.paramtool", section
    else:
        table_name = "[check]"
        scope, top = "", doc
    for key in top:
        if key != "check":
            hint = f" (rules go in the {table_name} table)" if _normalize(key) in BY_KEY else ""
            name = f"{scope}.{key}" if scope else key
            raise ConfigError(f"{path}: {name}", f"unknown key{hint}")
    table = top.get("check")
    if table is None:
        if explicit:
            raise ConfigError(str(path), f"no {table_name} table")
        table = {}
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {table_name}", "must be a table")
    options = _options(path, table)
    return CheckConfig(str(path), table_name, options, _parse(options, str(path)))


def rules_from_table(table: Mapping[str, Any], label: str = "rules") -> RuleSet:
    """Rules given as a mapping in the config file's vocabulary (``{"max_size": "16GB"}``).

    What :func:`paramtool.check` takes from Python callers; errors name ``label`` and the key.
    """
    if not isinstance(table, Mapping):
        raise ConfigError(
            label, f"expected a mapping of rule names to values, got {_type_name(table)}"
        )
    return _parse(_options(label, table), label)


def _parse(options: Mapping[str, Any], label: str) -> RuleSet:
    def where(key: str, text: str) -> str:
        return f"{label}: {key} = {text!r}"

    return parse_rules(options, where, ConfigError)


def _normalize(key: str) -> str:
    return key.strip().replace("-", "_").lower()


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def _options(path: Path | str, table: Mapping[str, Any]) -> dict[str, Any]:
    """Check every key and value's type; return the values in command-line form."""
    out: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = _normalize(raw_key)
        if key not in BY_KEY:
            if key in ("source", "sources", "checkpoint"):
                why = "unknown key (the checkpoint is named on the command line)"
            else:
                close = difflib.get_close_matches(key, list(BY_KEY), n=1)
                why = f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"
            raise ConfigError(f"{path}: {raw_key}", why)
        if key in out:
            raise ConfigError(
                f"{path}: {raw_key}", f"given twice (as {key!r} with dashes and underscores)"
            )
        out[key] = _value(f"{path}: {raw_key}", key, value)
        if isinstance(path, Path) and BY_KEY[key].form in (FILE, FILES):
            out[key] = _relative_to(path.parent, out[key])
    return out


def _relative_to(folder: Path, value: str | list[str]) -> str | list[str]:
    """File names in a config file, relative to its folder (absolute ones stay)."""
    if isinstance(value, list):
        return [str(folder / v) for v in value]
    return str(folder / value)


def _scalar(what: str, value: Any, *, ints: bool, floats: bool, example: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        pass
    elif isinstance(value, int) and ints:
        return str(value)
    elif isinstance(value, float) and floats:
        return repr(value)
    raise ConfigError(what, f"expected {example}, got {_type_name(value)}")


def _strings(what: str, value: Any, example: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(what, f"expected {example}, got {_type_name(value)}")


def _value(what: str, key: str, value: Any) -> Any:
    form = BY_KEY[key].form
    if form == FLAG:
        if not isinstance(value, bool):
            raise ConfigError(what, f"expected true or false, got {_type_name(value)}")
        return value
    if form == SIZE:
        return _scalar(
            what,
            value,
            ints=True,
            floats=False,
            example='a size such as "16GB" or a whole number of bytes',
        )
    if form == COUNT:
        return _scalar(
            what, value, ints=True, floats=False, example='a count such as "8.1B" or 8030261248'
        )
    if form == PERCENT:
        return _scalar(
            what, value, ints=True, floats=True, example='a percentage such as "0.1%" or a fraction'
        )
    if form == INT:
        return _scalar(what, value, ints=True, floats=False, example="a whole number such as 32")
    if form in (DTYPE, TEXT):
        return _scalar(what, value, ints=False, floats=False, example="a string")
    if form == FILE:
        return _scalar(what, value, ints=False, floats=False, example="a file name (a string)")
    if form == FILES:
        return _strings(what, value, 'a list of file names such as ["ca.pem"]')
    if form == DTYPES:
        return _strings(what, value, 'a list of dtypes such as ["bf16", "f32"]')
    if form == PAIRS:
        example = '{other = "5%"}' if key == "max_share" else '{"model.safetensors" = "<sha256>"}'
        if isinstance(value, dict):
            items = []
            for k, v in value.items():
                text = _scalar(
                    f"{what}.{k}", v, ints=False, floats=key == "max_share", example="a string"
                )
                items.append(f"{k}={text}")
            return items
        return _strings(what, value, f"a table such as {example}")
    if form == KEYS:
        if isinstance(value, dict):
            items = []
            for k, v in value.items():
                if v is True:
                    items.append(k)
                elif isinstance(v, str):
                    items.append(f"{k}={v}")
                else:
                    raise ConfigError(
                        f"{what}.{k}",
                        f"expected a string, or true for any value, got {_type_name(v)}",
                    )
            return items
        return _strings(
            what, value, 'a list such as ["format=pt"] or a table such as {format = "pt"}'
        )
    raise AssertionError(form)  # pragma: no cover
