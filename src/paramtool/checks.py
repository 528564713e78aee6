"""Rules a checkpoint must pass in CI, and their evaluation: the core of ``paramtool check``.

A :class:`Rule` is one limit as the user wrote it (``--max-size 16GB``), parsed
exactly; :func:`evaluate` measures a checkpoint against every rule and returns a
:class:`Report` of :class:`Finding` objects, from which the table, Markdown, JSON and
JUnit renderers all work. Each rule kind has one evaluator in :data:`EVALUATORS`.

A finding is ``pass``, ``fail`` or ``unavailable``. A rule that cannot be evaluated
for this source (the value and hash rules on a Hub repo, which would mean downloading
the weights; ``safetensors_only`` where nobody listed the files) answers
``unavailable``, and an unavailable rule fails the gate like a failed one: a check that
could not run must never look green. The value and hash rules import
:mod:`paramtool.values` and :mod:`paramtool.hashing` only when asked for.

Command-line flags and config files give rules in the same raw form (strings, lists
of ``KEY=VALUE`` strings, booleans); :func:`parse_rules` turns one source of them
into a :class:`RuleSet`, and :func:`finalize` merges the sets, later ones winning
rule by rule (``max_share:other`` from the command line replaces the config's).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

from paramtool import dtypes
from paramtool.anatomy import CATEGORIES
from paramtool.breakdown import Breakdown, build
from paramtool.checkpoint import Checkpoint
from paramtool.errors import ParamtoolError, UsageError
from paramtool.units import human_bytes, human_count, parse_count, parse_percent, parse_size

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


@dataclass(frozen=True, slots=True)
class Finding:
    """The outcome of one rule: its status, what was measured, and the limit.

    ``measured`` and ``limit`` are JSON values with exact integers; the ``*_text``
    forms are for people (tables, Markdown, JUnit).
    """

    rule: Rule
    status: str
    measured: Any
    limit: Any
    message: str
    measured_text: str
    limit_text: str

    @property
    def name(self) -> str:
        return self.rule.name

    @property
    def passed(self) -> bool:
        return self.status == PASS


@dataclass(frozen=True, slots=True)
class Report:
    """Every finding for one checkpoint; it passes only when every rule passed."""

    source: str
    revision: str | None
    findings: tuple[Finding, ...]
    config: str | None = None  # the config file the rules came from, if any

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.findings)

    def count(self, status: str) -> int:
        return sum(1 for f in self.findings if f.status == status)

    @property
    def exit_code(self) -> int:
        """0 when every rule passed, 1 when any failed or could not be evaluated."""
        return 0 if self.passed else 1


@dataclass(frozen=True, slots=True)
class Context:
    """What evaluators measure: the checkpoint (headers only) and its breakdown."""

    checkpoint: Checkpoint
    breakdown: Breakdown


Evaluator = Callable[[Rule, Context], Finding]
EVALUATORS: dict[str, Evaluator] = {}


def register(kind: str, evaluator: Evaluator) -> None:
    """Install the evaluator of a rule kind (e.g. a real ``no_nan`` once values can be read)."""
    if kind not in BY_KEY or kind == "tolerance":
        raise ValueError(f"unknown rule kind {kind!r}")
    EVALUATORS[kind] = evaluator


def _evaluates(*kinds: str) -> Callable[[Evaluator], Evaluator]:
    def deco(fn: Evaluator) -> Evaluator:
        for kind in kinds:
            register(kind, fn)
        return fn

    return deco


# ---------------------------------------------------------------- parsing


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


# ---------------------------------------------------------------- evaluation


def evaluate(
    checkpoint: Checkpoint,
    rules: Sequence[Rule],
    *,
    breakdown: Breakdown | None = None,
    config: str | None = None,
) -> Report:
    """Measure ``checkpoint`` against every rule (headers only, unless an evaluator needs more)."""
    ctx = Context(checkpoint, breakdown if breakdown is not None else build(checkpoint))
    findings = tuple(EVALUATORS[r.kind](r, ctx) for r in rules)
    for f in findings:
        assert f.status in STATUSES, f.status
    revision = checkpoint.hub.revision if checkpoint.hub is not None else None
    return Report(checkpoint.source, revision, findings, config)


def _bytes_text(n: int, binary: bool = False) -> str:
    return f"{n:,} B ({human_bytes(n, binary)})" if n >= 1000 else f"{n:,} B"


def _count_text(n: int) -> str:
    return f"{n:,} ({human_count(n)})" if n >= 1000 else f"{n:,}"


def _ratio_text(num: int, den: int) -> str:
    """num/den as a percentage, three significant digits: 21.9%, 1.47%, 0.377%."""
    pct = num * 100 / den if den else 0.0
    if not pct:
        return "0%"
    if pct < 0.001:
        return "<0.001%"
    return f"{pct:.3g}%"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _listing(items: Sequence[str], most: int = 3) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


def _finding(
    rule: Rule, ok: bool, measured: Any, limit: Any, message: str, mtext: str, ltext: str
) -> Finding:
    return Finding(rule, PASS if ok else FAIL, measured, limit, message, mtext, ltext)


@_evaluates("max_size", "min_size")
def _size(rule: Rule, ctx: Context) -> Finding:
    ck = ctx.checkpoint
    measured, limit = ck.file_bytes, rule.value
    binary = "ib" in rule.text.lower()
    files = _plural(len(ck.files), "file")
    gap = abs(measured - limit)
    if rule.kind == "max_size":
        ok = measured <= limit
        side = "under the limit" if ok else f"({_ratio_text(gap, limit)}) over the limit"
    else:
        ok = measured >= limit
        side = "over the minimum" if ok else f"({_ratio_text(gap, limit)}) under the minimum"
    message = f"{human_bytes(measured, binary)} in {files} (headers included), " + (
        "exactly at the limit" if not gap else f"{human_bytes(gap, binary)} {side}"
    )
    return _finding(
        rule,
        ok,
        measured,
        limit,
        message,
        _bytes_text(measured, binary),
        _bytes_text(limit, binary),
    )


@_evaluates("max_params", "min_params")
def _params(rule: Rule, ctx: Context) -> Finding:
    measured, limit = ctx.breakdown.total.parameters, rule.value
    gap = abs(measured - limit)
    if rule.kind == "max_params":
        ok = measured <= limit
        side = "under the limit" if ok else f"({_ratio_text(gap, limit)}) over the limit"
    else:
        ok = measured >= limit
        side = "over the minimum" if ok else f"({_ratio_text(gap, limit)}) under the minimum"
    message = f"{_plural(measured, 'parameter')}, " + (
        "exactly at the limit" if not gap else f"{gap:,} {side}"
    )
    return _finding(rule, ok, measured, limit, message, _count_text(measured), _count_text(limit))


@_evaluates("expect_params")
def _expect_params(rule: Rule, ctx: Context) -> Finding:
    measured = ctx.breakdown.total.parameters
    expected, tolerance = rule.value
    lo, hi = math.ceil(expected * (1 - tolerance)), math.floor(expected * (1 + tolerance))
    ok = lo <= measured <= hi
    diff = measured - expected
    limit = {"expected": expected, "tolerance": float(tolerance), "min": lo, "max": hi}
    band = f"±{percent_text(tolerance)}" if tolerance else "exactly"
    if not diff:
        message = "matches exactly"
    else:
        sign = "+" if diff > 0 else "-"
        ratio = _ratio_text(abs(diff), expected)
        off = f"off by {sign}{abs(diff):,} ({ratio if ratio[0] == '<' else sign + ratio})"
        message = f"{off}, within {band}" if ok else f"{off}, outside {band} ({lo:,} to {hi:,})"
    ltext = f"{_count_text(expected)} {band}" if tolerance else f"exactly {_count_text(expected)}"
    return _finding(rule, ok, measured, limit, message, _count_text(measured), ltext)


def _kind(dtype_name: str) -> str:
    d = dtypes.SAFETENSORS.get(dtype_name)
    return d.kind if d is not None else ""


def _tally(tensors: Iterable[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in tensors:
        counts[t.dtype] = counts.get(t.dtype, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _tally_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{d} ×{n:,}" for d, n in counts.items()) or "no tensors"


@_evaluates("dtype")
def _dtype(rule: Rule, ctx: Context) -> Finding:
    floats = [t for t in ctx.checkpoint.tensors if _kind(t.dtype) == dtypes.FLOAT]
    counts = _tally(floats)
    bad = [t for t in floats if t.dtype != rule.value]
    if not floats:
        message = "no floating-point tensors"
    elif not bad:
        message = f"all {_plural(len(floats), 'floating-point tensor')} are {rule.value}"
    else:
        offenders = _tally_text({d: n for d, n in counts.items() if d != rule.value})
        message = (
            f"{len(bad):,} of {_plural(len(floats), 'floating-point tensor')} are not "
            f"{rule.value}: {offenders} (e.g. {bad[0].name})"
        )
    mtext = _tally_text(counts) if floats else "no floating-point tensors"
    return _finding(
        rule, not bad, counts, rule.value, message, mtext, f"all floating-point {rule.value}"
    )


@_evaluates("allow_dtypes")
def _allow_dtypes(rule: Rule, ctx: Context) -> Finding:
    tensors = ctx.checkpoint.tensors
    allowed = set(rule.value)
    counts = _tally(tensors)
    bad = [t for t in tensors if t.dtype not in allowed]
    if not bad:
        message = f"all {_plural(len(tensors), 'tensor')} have allowed dtypes"
    else:
        offenders = _tally_text({d: n for d, n in counts.items() if d not in allowed})
        message = (
            f"{len(bad):,} of {_plural(len(tensors), 'tensor')} have dtypes not allowed: "
            f"{offenders} (e.g. {bad[0].name})"
        )
    return _finding(
        rule, not bad, counts, list(rule.value), message, _tally_text(counts), ", ".join(rule.value)
    )


@_evaluates("max_share")
def _max_share(rule: Rule, ctx: Context) -> Finding:
    category, limit = rule.value
    b = ctx.breakdown
    part, total = b.by_category[category].parameters, b.total.parameters
    share = Fraction(part, total) if total else Fraction(0)
    ok = share <= limit
    verdict = "within" if ok else "over"
    holds = f"{category} holds {part:,} of {_plural(total, 'parameter')}"
    message = f"{holds}, {verdict} {percent_text(limit)}"
    mtext = f"{_ratio_text(part, total)} ({part:,} of {total:,})"
    return _finding(
        rule, ok, round(float(share), 6), float(limit), message, mtext, f"≤ {percent_text(limit)}"
    )


@_evaluates("expect_layers")
def _expect_layers(rule: Rule, ctx: Context) -> Finding:
    b = ctx.breakdown
    expected, measured = rule.value, b.layer_count
    found = {lt.layer for lt in b.by_layer}
    ok = measured == expected and found == set(range(expected))
    notes = []
    missing = sorted(set(range(expected)) - found)
    extra = sorted(found - set(range(expected)))
    if missing:
        notes.append(f"missing {_layers(missing)}")
    if extra:
        notes.append(f"unexpected {_layers(extra)}")
    if b.config is not None and b.config.layers is not None and b.config.layers != measured:
        notes.append(f"config.json says {b.config.layers}")
    message = f"{_plural(measured, 'layer')} in the tensor names" + (
        f" ({'; '.join(notes)})" if notes else ""
    )
    return _finding(rule, ok, measured, expected, message, str(measured), str(expected))


def _layers(indices: Sequence[int]) -> str:
    return f"layer{'s' if len(indices) > 1 else ''} {_listing([str(i) for i in indices], 8)}"


@_evaluates("require_metadata")
def _require_metadata(rule: Rule, ctx: Context) -> Finding:
    key, want = rule.value
    files = ctx.checkpoint.files
    missing = [f.path for f in files if key not in f.metadata]
    wrong = [f for f in files if key in f.metadata and want is not None and f.metadata[key] != want]
    ok = not missing and not wrong
    n = len(files)
    if wrong:
        measured: str | None = wrong[0].metadata[key]
    elif missing:
        measured = None
    else:
        measured = files[0].metadata[key] if files else None
    parts = []
    if missing:
        parts.append(
            f"{key!r} missing from {len(missing)} of {_plural(n, 'file')} ({_listing(missing)})"
        )
    if wrong:
        parts.append(
            f"{key!r} is {measured!r}, not {want!r}, in {len(wrong)} of {_plural(n, 'file')} "
            f"({_listing([f.path for f in wrong])})"
        )
    if ok:
        parts.append(f"{key}={measured!r} in " + ("the file" if n == 1 else f"all {n} files"))
    mtext = "missing" if measured is None else f"{key}={measured}"
    ltext = f"{key}={want}" if want is not None else f"{key} present"
    return _finding(rule, ok, measured, want, "; ".join(parts), mtext, ltext)


@_evaluates("safetensors_only")
def _safetensors_only(rule: Rule, ctx: Context) -> Finding:
    pickles = ctx.checkpoint.pickle_files
    if pickles is None:
        return Finding(
            rule,
            UNAVAILABLE,
            None,
            [],
            "this source does not list the files beside the weights, so "
            "pickles cannot be ruled out",
            "-",
            "no pickle files",
        )
    ok = not pickles
    message = (
        "no pickle files beside the safetensors"
        if ok
        else f"{_plural(len(pickles), 'pickle file')} beside the safetensors "
        f"({_listing(list(pickles), 5)}); pickles can run code when loaded"
    )
    mtext = "none" if ok else _plural(len(pickles), "pickle file")
    return _finding(rule, ok, list(pickles), [], message, mtext, "no pickle files")


def unavailable(
    why: str, limit: Callable[[Rule], Any], limit_text: Callable[[Rule], str]
) -> Evaluator:
    """An evaluator for a rule that cannot be checked here: it reports why, and fails the gate."""

    def evaluate_unavailable(rule: Rule, ctx: Context) -> Finding:
        message = f"not available ({why}), so the gate fails"
        return Finding(rule, UNAVAILABLE, None, limit(rule), message, "-", limit_text(rule))

    return evaluate_unavailable


# ---------------------------------------------------------------- rules that read values
# These read tensor data or whole files (streaming, bounded memory); their modules are
# imported only when such a rule is asked for.

_SCANS: dict[int, tuple[Checkpoint, Any]] = {}  # one NaN/Inf scan serves --no-nan and --no-inf


def _nonfinite_scan(ck: Checkpoint) -> Any:
    held = _SCANS.get(id(ck))
    if held is None or held[0] is not ck:
        from paramtool.values import scan_nonfinite

        held = (ck, scan_nonfinite(ck))
        _SCANS.clear()
        _SCANS[id(ck)] = held
    return held[1]


def _needs_local(rule: Rule, ctx: Context, what: str) -> Finding | None:
    if ctx.checkpoint.hub is not None:
        return unavailable(
            f"{what} of a Hub source would download it; check a local copy",
            lambda r: None,
            lambda r: r.text,
        )(rule, ctx)
    return None


@_evaluates("no_nan", "no_inf")
def _nonfinite(rule: Rule, ctx: Context) -> Finding:
    refused = _needs_local(rule, ctx, "reading the values")
    if refused:
        return refused
    report = _nonfinite_scan(ctx.checkpoint)
    nan = rule.kind == "no_nan"
    count = report.nan if nan else report.inf
    word = "NaN value" if nan else "infinite value"
    hit = [t.name for t in report.tensors if (t.nan if nan else t.posinf + t.neginf)]
    message = f"{_plural(count, word)} in {_plural(report.scanned, 'floating-point tensor')}"
    if hit:
        message += f" ({_listing(hit)})"
    if report.skipped:
        message += f"; {_plural(len(report.skipped), 'tensor')} of undecodable dtypes not scanned"
    ok = count == 0 and not report.skipped
    return _finding(rule, ok, count, 0, message, f"{count:,}", f"0 {word}s")


def _local_file(ck: Checkpoint, name: str) -> str | None:
    for f in ck.files:
        if f.path == name or os.path.basename(f.path) == name or f.path.endswith("/" + name):
            return f.path
    return None


@_evaluates("sha256")
def _sha256(rule: Rule, ctx: Context) -> Finding:
    refused = _needs_local(rule, ctx, "hashing a file")
    if refused:
        return refused
    name, want = rule.value
    path = _local_file(ctx.checkpoint, name)
    if path is None:
        files = [os.path.basename(f.path) for f in ctx.checkpoint.files]
        return _finding(
            rule,
            False,
            None,
            want,
            f"no file {name!r} in the checkpoint ({_listing(files)})",
            "missing",
            want[:12] + "…",
        )
    from paramtool.hashing import file_sha256

    got = file_sha256(path)
    ok = got == want
    message = f"{name}: sha256 {'matches' if ok else 'is ' + got}"
    return _finding(rule, ok, got, want, message, got[:12] + "…", want[:12] + "…")


@_evaluates("against_hub")
def _against_hub(rule: Rule, ctx: Context) -> Finding:
    refused = _needs_local(rule, ctx, "comparing with the Hub")
    if refused:
        return refused
    from paramtool.hashing import verify_against_hub
    from paramtool.hub import parse_hub_source

    src = parse_hub_source(rule.value)
    if src is None:
        raise UsageError(f"--against-hub {rule.value!r}", "not a Hub repo id (org/name[@revision])")
    folder = os.path.dirname(ctx.checkpoint.files[0].path) or "."
    report = verify_against_hub(folder, src.repo_id, src.revision)
    bad = [f"{f.path} {f.status}" for f in report.files if f.status != "ok"]
    checked = _plural(len(report.files), "file")
    message = (
        f"{checked} match {src.repo_id}@{report.hub.revision[:12]}"
        if report.ok
        else f"{_listing(bad)} (of {checked}, against {src.repo_id}@{report.hub.revision[:12]})"
    )
    measured = {"revision": report.hub.revision, "ok": report.count("ok"), "not_ok": len(bad)}
    return _finding(
        rule,
        report.ok,
        measured,
        rule.value,
        message,
        f"{report.count('ok')}/{len(report.files)} match",
        f"same files as {rule.value}",
    )
