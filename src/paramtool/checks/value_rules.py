"""The rules that read values or hashes: ``no_nan``, ``no_inf``, ``sha256``, ``against_hub``,
``signature``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from paramtool.checks.findings import (
    Context,
    Finding,
    _evaluates,
    _finding,
    _listing,
    _plural,
    unavailable,
)
from paramtool.checks.rules import UNAVAILABLE, Rule, SignatureSpec
from paramtool.errors import UsageError
from paramtool.records import Checkpoint

if TYPE_CHECKING:
    from paramtool.values.nonfinite import NonFiniteReport

# These read tensor data or whole files (streaming, bounded memory); their modules are
# imported only when such a rule is asked for.


def _nonfinite_scan(ctx: Context) -> NonFiniteReport:
    """The NaN/Inf scan of this evaluation's checkpoint, made once for no_nan and no_inf."""
    from paramtool.values.nonfinite import scan_nonfinite

    return ctx.once("nonfinite", lambda: scan_nonfinite(ctx.checkpoint))


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
    report = _nonfinite_scan(ctx)
    nan = rule.kind == "no_nan"
    count = report.nan if nan else report.inf
    word = "NaN value" if nan else "infinite value"
    hit = [t.name for t in report.tensors if (t.nan if nan else t.posinf + t.neginf)]
    message = f"{_plural(count, word)} in {_plural(report.scanned, 'floating-point tensor')}"
    if hit:
        message += f" ({_listing(hit)})"
    if report.skipped:
        names = [f"{s.tensor.name} ({s.tensor.dtype})" for s in report.skipped]
        reasons = sorted({s.reason for s in report.skipped})
        message += (
            f"; {_plural(len(report.skipped), 'tensor')} not scanned ({_listing(names)}: "
            f"{'; '.join(reasons[:2])})"
        )
    if count or not report.skipped:
        return _finding(rule, count == 0, count, 0, message, f"{count:,}", f"0 {word}s")
    # None found, but not every value was looked at: not a pass.
    message += ", so the gate fails"
    return Finding(rule, UNAVAILABLE, None, 0, message, "-", f"0 {word}s")


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
    from paramtool.values.hashing import file_sha256

    got = file_sha256(path)
    ok = got == want
    message = f"{name}: sha256 {'matches' if ok else 'is ' + got}"
    return _finding(rule, ok, got, want, message, got[:12] + "…", want[:12] + "…")


@_evaluates("against_hub")
def _against_hub(rule: Rule, ctx: Context) -> Finding:
    refused = _needs_local(rule, ctx, "comparing with the Hub")
    if refused:
        return refused
    from paramtool.sources.hub_source import parse_hub_source
    from paramtool.values.verify import verify_against_hub

    src = parse_hub_source(rule.value)
    if src is None:
        raise UsageError(
            repr(rule.value), "not a Hub repo id (org/name[@revision])", param="against_hub"
        )
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


def _signed_folder(ck: Checkpoint) -> str:
    """The folder a signature over this checkpoint covers: the one named, or the files' own."""
    if os.path.isdir(ck.source):
        return ck.source
    if not ck.files:
        return "."
    return os.path.dirname(ck.files[0].path) or "."


@_evaluates("signature")
def _signature(rule: Rule, ctx: Context) -> Finding:
    spec: SignatureSpec = rule.value
    ltext = f"{spec.method} signature" + (", uncovered allowed" if spec.allow_uncovered else "")
    if ctx.checkpoint.hub is not None:
        return unavailable(
            "a signature is verified over a local folder; check a local copy",
            lambda r: spec.to_dict(),
            lambda r: ltext,
        )(rule, ctx)
    from paramtool.values.signatures import verify_signature

    report = verify_signature(
        _signed_folder(ctx.checkpoint), spec.signature, **spec.verify_kwargs()
    )
    measured = {
        "signature_valid": report.signature_valid,
        "reason": report.reason,
        "covered": len(report.files),
        "changed": list(report.changed),
        "missing": list(report.missing),
        "uncovered": list(report.uncovered),
    }
    covered = _plural(len(report.files), "covered file")
    if not report.signature_valid or report.reason is not None:
        message = f"the {spec.method} signature does not verify: {report.reason or 'no reason'}"
        mtext = "NOT verified"
    else:
        problems = [f"{p} changed" for p in report.changed]
        problems += [f"{p} missing" for p in report.missing]
        uncovered = list(report.uncovered)
        if uncovered and not spec.allow_uncovered:
            problems += [f"{p} uncovered" for p in uncovered]
        if problems:
            message = f"{_listing(problems, 5)} (of {covered}, {spec.method} signature)"
        else:
            message = f"{spec.method} signature verified, {covered} intact"
        if uncovered and spec.allow_uncovered:
            message += f"; {_plural(len(uncovered), 'uncovered file')} allowed"
            message += f" ({_listing(uncovered)})"
        bad = len(report.changed) + len(report.missing)
        mtext = f"{len(report.files) - bad}/{len(report.files)} intact"
        if uncovered:
            mtext += f", {len(uncovered):,} uncovered"
    if report.warnings:
        message += f" (model-signing: {report.warnings[0]})"
    return _finding(rule, report.ok, measured, spec.to_dict(), message, mtext, ltext)
