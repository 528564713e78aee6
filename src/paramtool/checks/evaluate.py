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
:mod:`paramtool.values` only when asked for.

Command-line flags and config files give rules in the same raw form (strings, lists
of ``KEY=VALUE`` strings, booleans); :func:`parse_rules` turns one source of them
into a :class:`RuleSet`, and :func:`finalize` merges the sets, later ones winning
rule by rule (``max_share:other`` from the command line replaces the config's).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from paramtool import dtypes
from paramtool.analysis.breakdown import Breakdown, build

# Imported for its effect: it registers the value and hash rules' evaluators.
from paramtool.checks import value_rules  # noqa: F401
from paramtool.checks.findings import (
    EVALUATORS,
    Context,
    Finding,
    Report,
    _bytes_text,
    _count_text,
    _evaluates,
    _finding,
    _listing,
    _plural,
    _ratio_text,
)
from paramtool.checks.rules import STATUSES, UNAVAILABLE, Rule
from paramtool.records import Checkpoint
from paramtool.units import human_bytes, percent_text


def evaluate(
    checkpoint: Checkpoint,
    rules: Sequence[Rule],
    *,
    breakdown: Breakdown | None = None,
    config: str | None = None,
) -> Report:
    """Measure ``checkpoint`` against every rule (headers only, unless an evaluator needs more)."""
    ctx = Context(checkpoint, breakdown if breakdown is not None else build(checkpoint))
    findings = tuple(_evaluate_one(r, ctx) for r in rules)
    for f in findings:
        assert f.status in STATUSES, f.status
    revision = checkpoint.hub.revision if checkpoint.hub is not None else None
    return Report(checkpoint.source, revision, findings, config, checkpoint.warnings)


# Rules that read tensor values: on pickles, only those whose storages can be read.
_VALUE_KINDS = ("no_nan", "no_inf")


def _evaluate_one(rule: Rule, ctx: Context) -> Finding:
    if rule.kind in _VALUE_KINDS and any(f.format == "pickle" for f in ctx.checkpoint.files):
        from paramtool.errors import ParamtoolError
        from paramtool.values.pickles import check_pickles

        try:
            ctx.once("pickle values", lambda: check_pickles(ctx.checkpoint))
        except ParamtoolError as e:  # unsafe, big-endian, a distributed checkpoint...
            return Finding(
                rule,
                UNAVAILABLE,
                None,
                0,
                f"not available ({e.why}), so the gate fails",
                "-",
                "0 NaN values" if rule.kind == "no_nan" else "0 infinite values",
            )
    return EVALUATORS[rule.kind](rule, ctx)


def _bound(rule: Rule, measured: int, limit: int) -> tuple[bool, int, str]:
    """A ``max_*`` or ``min_*`` rule: passed, the gap, and which side of the limit it is."""
    gap = abs(measured - limit)
    if rule.kind.startswith("max_"):
        ok = measured <= limit
        side = "under the limit" if ok else f"({_ratio_text(gap, limit)}) over the limit"
    else:
        ok = measured >= limit
        side = "over the minimum" if ok else f"({_ratio_text(gap, limit)}) under the minimum"
    return ok, gap, side


@_evaluates("max_size", "min_size")
def _size(rule: Rule, ctx: Context) -> Finding:
    ck = ctx.checkpoint
    measured, limit = ck.file_bytes, rule.value
    binary = "ib" in rule.text.lower()
    files = _plural(len(ck.files), "file")
    ok, gap, side = _bound(rule, measured, limit)
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
    ok, gap, side = _bound(rule, measured, limit)
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
    misnamed = list(ctx.checkpoint.misnamed_files)  # a name that lies about the bytes fails
    if misnamed:
        message = (
            f"{_plural(len(misnamed), 'weight file')} named for one format but holding "
            f"another ({_listing(misnamed, 5)}); a file's format is decided by its bytes"
        )
        mtext = _plural(len(misnamed), "misnamed file")
        return _finding(rule, False, misnamed, [], message, mtext, "no pickle files")
    weights = [f.path for f in ctx.checkpoint.files if f.format == "pickle"]
    if weights:  # read symbolically, never unpickled, but still not safetensors
        message = (
            f"the weights are pickles, not safetensors ({_listing(weights, 5)}); pickles can "
            "run code when loaded (paramtool read them without unpickling)"
        )
        mtext = _plural(len(weights), "pickle weight file")
        return _finding(rule, False, weights, [], message, mtext, "no pickle files")
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


@_evaluates("no_unsafe_pickle")
def _no_unsafe_pickle(rule: Rule, ctx: Context) -> Finding:
    """Every pickled weight file's verdict: only allowlisted globals, or the others named."""
    pickled = [f for f in ctx.checkpoint.files if f.pickle is not None]
    limit_text = "plain state dicts only"
    if not pickled:
        return _finding(rule, True, [], [], "no pickled weights", "none", limit_text)
    unsafe = [
        {"file": f.path, "global": g.qualname, "offset": g.offset}
        for f in pickled
        if f.pickle is not None
        for g in f.pickle.unsafe_globals
    ]
    files = _plural(len(pickled), "pickle file")
    if not unsafe:
        message = f"{files}, each a plain state dict (only allowlisted globals)"
        return _finding(rule, True, [], [], message, "none", limit_text)
    bad = len({u["file"] for u in unsafe})
    named = [f"{u['global']} at byte {u['offset']:,}" for u in unsafe]
    message = (
        f"{bad} of {files} unsafe: {_plural(len(unsafe), 'global')} outside the allowlist "
        f"({_listing(named, 8)}); loading would import and call them (paramtool never did)"
    )
    mtext = _plural(len(unsafe), "unsafe global")
    return _finding(rule, False, unsafe, [], message, mtext, limit_text)


@_evaluates("no_remote_code")
def _no_remote_code(rule: Rule, ctx: Context) -> Finding:
    rc = ctx.breakdown.remote_code
    declared = rc.declared if rc is not None else ()
    limit_text = "no custom code declared"
    if rc is None or not declared:
        if ctx.checkpoint.config is None:
            message = "no config.json, so no custom code declared"
        else:
            message = "config.json declares no custom code (auto_map, custom_pipelines)"
        if rc is not None and rc.code_files:
            files = list(rc.code_files)
            message += (
                f"; {_plural(len(files), 'Python file')} in the folder ({_listing(files, 5)})"
            )
        return _finding(rule, True, [], [], message, "none", limit_text)
    refs = [f"{r.key} → {r.reference}" for r in declared]
    message = (
        f"config.json declares {_plural(len(declared), 'class reference')} ({_listing(refs, 5)})"
    )
    if rc.modules:
        message += (
            f"; a trust_remote_code load would import and run {_listing(list(rc.modules), 5)}"
        )
    if rc.missing:
        message += f" ({_listing(list(rc.missing), 5)} not in the folder)"
    if rc.other_repos:
        message += f"; code from {_listing(list(rc.other_repos), 5)}"
    measured = [
        {"declared_in": r.declared_in, "key": r.key, "reference": r.reference} for r in declared
    ]
    mtext = _plural(len(declared), "class reference")
    return _finding(rule, False, measured, [], message, mtext, limit_text)
