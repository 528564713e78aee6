"""The rules of ``paramtool check``: their options, and parsing them exactly from flags or a config file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

from paramtool import dtypes
from paramtool.analysis.anatomy import CATEGORIES
from paramtool.errors import ParamtoolError, UsageError
from paramtool.units import parse_count, parse_percent, parse_size

PASS = "pass"
FAIL = "fail"
UNAVAILABLE = "unavailable"
STATUSES = (PASS, FAIL, UNAVAILABLE)

# How an option's value is written.
SIZE = "size"  # "16GB", "15GiB", "500MB"
COUNT = "count"  # "8.1B", "8030261248"
PERCENT = "percent"  # "0.1%", or a fraction "0.001"
DTYPE = "dtype"  # "bf16"
DTYPES = "dtypes"  # ["bf16", "f32"], each may hold a comma list
PAIRS = "pairs"  # ["other=5%"], ["model.safetensors=<hex>"]
KEYS = "keys"  # ["format=pt", "format"]
INT = "int"  # "32"
FLAG = "flag"  # True
TEXT = "text"  # "org/name@rev"


@dataclass(frozen=True, slots=True)
class Option:
    """One rule option: its config key (also the JSON rule name), its flag, its value form."""

    key: str
    flag: str
    form: str
    metavar: str


# In the order the rules are reported. `tolerance` is not a rule: it belongs to expect_params.
OPTIONS: tuple[Option, ...] = (
    Option("max_size", "--max-size", SIZE, "SIZE"),
    Option("min_size", "--min-size", SIZE, "SIZE"),
    Option("max_params", "--max-params", COUNT, "N"),
    Option("min_params", "--min-params", COUNT, "N"),
    Option("expect_params", "--expect-params", COUNT, "N"),
    Option("tolerance", "--tolerance", PERCENT, "PERCENT"),
    Option("dtype", "--dtype", DTYPE, "DTYPE"),
    Option("allow_dtypes", "--allow-dtypes", DTYPES, "LIST"),
    Option("max_share", "--max-share", PAIRS, "CATEGORY=PERCENT"),
    Option("expect_layers", "--expect-layers", INT, "N"),
    Option("require_metadata", "--require-metadata", KEYS, "KEY[=VALUE]"),
    Option("safetensors_only", "--safetensors-only", FLAG, ""),
    Option("no_nan", "--no-nan", FLAG, ""),
    Option("no_inf", "--no-inf", FLAG, ""),
    Option("sha256", "--sha256", PAIRS, "FILE=HEX"),
    Option("against_hub", "--against-hub", TEXT, "ORG/NAME[@REV]"),
)
BY_KEY: Mapping[str, Option] = {o.key: o for o in OPTIONS}
_ORDER = {o.key: i for i, o in enumerate(OPTIONS)}

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_INT = re.compile(r"^\s*([0-9][0-9_]*)\s*$")
_REPO = re.compile(r"^(?:hf://)?[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+(?:@[^\s@]+)?$")
MAX_LAYERS = 1_000_000


@dataclass(frozen=True, slots=True)
class Rule:
    """One parsed rule.

    ``name`` is the stable identifier reported in JSON (``max_size``, ``max_share:other``,
    ``sha256:model.safetensors``); ``kind`` picks the evaluator; ``value`` is the exact
    parsed limit (bytes, a count, a ``Fraction``, canonical dtype names...); ``text`` is
    the limit as the user wrote it.
    """

    name: str
    kind: str
    value: Any
    text: str


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules of one source (the command line, or one config file), by rule name."""

    rules: Mapping[str, Rule]
    tolerance: Fraction | None = None
    tolerance_text: str = ""




Where = Callable[[str, str], str]  # (key, text as written) -> the "what" of an error


def cli_where(key: str, text: str) -> str:
    """Name a command-line value in an error: ``--max-size '16XB'``."""
    return f"{BY_KEY[key].flag} {text!r}"


def _fraction(text: str) -> Fraction:
    """A percentage or fraction, exactly: "0.1%" -> 1/1000 (validated by parse_percent first)."""
    t = text.strip()
    return Fraction(t[:-1].strip()) / 100 if t.endswith("%") else Fraction(t)


def percent_text(f: Fraction) -> str:
    """1/20 -> "5%", 1/1000 -> "0.1%"."""
    pct = f * 100
    if pct.denominator == 1:
        return f"{pct.numerator}%"
    with localcontext() as ctx:
        ctx.prec = 40
        return format((Decimal(pct.numerator) / pct.denominator).normalize(), "f") + "%"


class _Parser:
    def __init__(self, where: Where, error: type[ParamtoolError]) -> None:
        self.where = where
        self.error = error

    def fail(self, key: str, text: str, why: str) -> ParamtoolError:
        return self.error(self.where(key, text), why)

    def call(self, key: str, text: str, fn: Callable[[str], Any]) -> Any:
        try:
            return fn(text)
        except UsageError as e:
            raise self.fail(key, text, e.why) from None

    def dtype(self, key: str, text: str) -> dtypes.DType:
        d = self.call(key, text, dtypes.lookup)
        if not d.safetensors:
            raise self.fail(key, text, f"{d.name} is not a dtype a safetensors header can hold")
        return d

    def percent(self, key: str, text: str) -> Fraction:
        self.call(key, text, parse_percent)
        try:
            return _fraction(text)
        except ValueError:
            raise self.fail(key, text, "write it like 5% or 0.05") from None

    def split(self, key: str, text: str, example: str) -> tuple[str, str]:
        head, eq, tail = text.partition("=")
        if not eq or not head.strip() or not tail.strip():
            raise self.fail(key, text, f"write it as {BY_KEY[key].metavar}, e.g. {example}")
        return head.strip(), tail.strip()


def _items(value: Any) -> list[str]:
    """A list option's values; a single string is one item."""
    if value is None or value is False:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def parse_rules(
    options: Mapping[str, Any], where: Where = cli_where, error: type[ParamtoolError] = UsageError
) -> RuleSet:
    """Parse one source's raw option values (``None`` = not given) into rules.

    ``options`` maps keys of :data:`OPTIONS` to strings (sizes, counts...), lists of
    strings (``allow_dtypes``, ``max_share``, ``require_metadata``, ``sha256``) or
    booleans (flags). Errors name the value through ``where`` and are raised as ``error``.
    """
    p = _Parser(where, error)
    rules: dict[str, Rule] = {}
    tolerance: Fraction | None = None
    tolerance_text = ""

    def add(name: str, kind: str, value: Any, text: str) -> None:
        rules[name] = Rule(name, kind, value, text)

    for key, value in options.items():
        opt = BY_KEY.get(key)
        if opt is None:
            raise error(key, "not a check option")
        if value is None or value is False or value == []:
            continue
        form = opt.form
        if form == FLAG:
            add(key, key, True, "required")
            continue
        if form in (DTYPES, PAIRS, KEYS):
            items = _items(value)
        else:
            items = [str(value)]
        if form == SIZE:
            add(key, key, p.call(key, items[0], parse_size), items[0].strip())
        elif form == COUNT:
            n = p.call(key, items[0], parse_count)
            add(key, key, (n, Fraction(0)) if key == "expect_params" else n, items[0].strip())
        elif form == PERCENT:
            tolerance, tolerance_text = p.percent(key, items[0]), items[0].strip()
        elif form == DTYPE:
            d = p.dtype(key, items[0])
            if d.kind != dtypes.FLOAT:
                raise p.fail(
                    key,
                    items[0],
                    f"{d.name} is not a floating-point dtype (bf16, f16, f32, fp8...)",
                )
            add(key, key, d.name, d.name)
        elif form == DTYPES:
            names = [n.strip() for item in items for n in item.split(",") if n.strip()]
            if not names:
                raise p.fail(key, ",".join(items), "give at least one dtype, e.g. bf16,f32")
            canon = tuple(dict.fromkeys(p.dtype(key, n).name for n in names))
            add(key, key, canon, ",".join(canon))
        elif key == "max_share":
            for item in items:
                cat, pct = p.split(key, item, "other=5%")
                cat = cat.lower().replace("-", "_")
                if cat not in CATEGORIES:
                    raise p.fail(
                        key, item, f"unknown category {cat!r} (one of {', '.join(CATEGORIES)})"
                    )
                limit = p.percent(key, pct)
                add(f"max_share:{cat}", key, (cat, limit), percent_text(limit))
        elif key == "sha256":
            for item in items:
                file, digest = p.split(key, item, "model.safetensors=<64 hex digits>")
                if not _HEX64.match(digest):
                    raise p.fail(key, item, "the digest must be 64 hexadecimal digits (a SHA-256)")
                add(f"sha256:{file}", key, (file, digest.lower()), digest.lower())
        elif form == KEYS:
            for item in items:
                mkey, eq, mvalue = item.partition("=")
                mkey = mkey.strip()
                if not mkey:
                    raise p.fail(key, item, "write it as KEY or KEY=VALUE, e.g. format=pt")
                want = mvalue.strip() if eq else None
                add(
                    f"require_metadata:{mkey}",
                    key,
                    (mkey, want),
                    f"{mkey}={want}" if eq else f"{mkey} present",
                )
        elif form == INT:
            m = _INT.match(items[0])
            if not m:
                raise p.fail(key, items[0], "write it as a whole number, e.g. 32")
            n = int(m.group(1).replace("_", ""))
            if n > MAX_LAYERS:
                raise p.fail(key, items[0], "too large")
            add(key, key, n, str(n))
        elif form == TEXT:
            repo = items[0].strip()
            if not _REPO.match(repo):
                raise p.fail(
                    key, items[0], "not a Hub repo (expected org/name or org/name@revision)"
                )
            add(key, key, repo.removeprefix("hf://"), repo.removeprefix("hf://"))
        else:  # pragma: no cover - every form is handled above
            raise AssertionError(form)
    return RuleSet(rules, tolerance, tolerance_text)


def finalize(sets: Iterable[RuleSet]) -> tuple[Rule, ...]:
    """Merge rule sets (later ones win, rule by rule) into the rules to check, in report order."""
    rules: dict[str, Rule] = {}
    tolerance: tuple[Fraction, str] | None = None
    for s in sets:
        rules.update(s.rules)
        if s.tolerance is not None:
            tolerance = (s.tolerance, s.tolerance_text)
    if tolerance is not None:
        r = rules.get("expect_params")
        if r is None:
            raise UsageError(
                f"--tolerance {tolerance[1]!r}", "only applies together with --expect-params"
            )
        rules["expect_params"] = replace(
            r, value=(r.value[0], tolerance[0]), text=f"{r.text} ±{tolerance[1]}"
        )
    for lo, hi, what in (
        ("min_size", "max_size", "size"),
        ("min_params", "max_params", "parameter count"),
    ):
        if lo in rules and hi in rules and _scalar(rules[lo]) > _scalar(rules[hi]):
            raise UsageError(
                f"--{lo.replace('_', '-')} {rules[lo].text!r}",
                f"the minimum {what} is above the maximum ({rules[hi].text}): nothing can pass",
            )
    if not rules:
        raise UsageError(
            "check",
            "no rules given; name at least one (e.g. --max-size 16GB or --dtype bf16) on the "
            "command line, or in paramtool.toml [check] or pyproject.toml [tool.paramtool.check]",
        )
    return tuple(sorted(rules.values(), key=lambda r: _ORDER[r.kind]))


def _scalar(rule: Rule) -> int:
    return int(rule.value)
