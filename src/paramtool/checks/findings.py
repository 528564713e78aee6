"""What a rule found (:class:`Finding`), the whole :class:`Report`, and the registry of evaluators.

A finding is ``pass``, ``fail`` or ``unavailable``; an unavailable rule fails the gate like a
failed one: a check that could not run must never look green.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from paramtool.analysis.breakdown import Breakdown
from paramtool.checks.rules import BY_KEY, FAIL, PASS, SIGNATURE_PARTS, UNAVAILABLE, Rule
from paramtool.records import Checkpoint
from paramtool.units import human_bytes, human_count

T = TypeVar("T")

SCHEMA_VERSION = 1  # of the check --json document


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "passed": self.passed,
            "measured": self.measured,
            "limit": self.limit,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """Every finding for one checkpoint; it passes only when every rule passed."""

    source: str
    revision: str | None
    findings: tuple[Finding, ...]
    config: str | None = None  # the config file the rules came from, if any
    warnings: tuple[str, ...] = ()  # what looked wrong in the checkpoint itself

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.findings)

    def count(self, status: str) -> int:
        return sum(1 for f in self.findings if f.status == status)

    @property
    def exit_code(self) -> int:
        """0 when every rule passed, 1 when any failed or could not be evaluated."""
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        """The document ``paramtool check --json`` prints: the verdict, a count per status,
        and every rule's finding in report order."""
        return {
            "schema_version": SCHEMA_VERSION,
            "source": self.source,
            "revision": self.revision,
            "config": self.config,
            "passed": self.passed,
            "summary": {
                "passed": self.count(PASS),
                "failed": self.count(FAIL),
                "unavailable": self.count(UNAVAILABLE),
            },
            "rules": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True, slots=True)
class Context:
    """What evaluators measure: the checkpoint (headers only) and its breakdown.

    One :func:`~paramtool.checks.evaluate.evaluate` call makes one context, so what its
    evaluators share (:meth:`once`) lives exactly as long as that evaluation.
    """

    checkpoint: Checkpoint
    breakdown: Breakdown
    _shared: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def once(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()`` the first time ``key`` is asked for in this evaluation, then kept:
        one NaN/Inf scan serves ``no_nan`` and ``no_inf``."""
        if key not in self._shared:
            self._shared[key] = compute()
        return self._shared[key]  # type: ignore[no-any-return]


Evaluator = Callable[[Rule, Context], Finding]
EVALUATORS: dict[str, Evaluator] = {}


def register(kind: str, evaluator: Evaluator) -> None:
    """Install the evaluator of a rule kind (e.g. a real ``no_nan`` once values can be read)."""
    if kind not in BY_KEY or kind == "tolerance" or kind in SIGNATURE_PARTS:
        raise ValueError(f"unknown rule kind {kind!r}")
    EVALUATORS[kind] = evaluator


def _evaluates(*kinds: str) -> Callable[[Evaluator], Evaluator]:
    def deco(fn: Evaluator) -> Evaluator:
        for kind in kinds:
            register(kind, fn)
        return fn

    return deco


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


def unavailable(
    why: str, limit: Callable[[Rule], Any], limit_text: Callable[[Rule], str]
) -> Evaluator:
    """An evaluator for a rule that cannot be checked here: it reports why, and fails the gate."""

    def evaluate_unavailable(rule: Rule, ctx: Context) -> Finding:
        message = f"not available ({why}), so the gate fails"
        return Finding(rule, UNAVAILABLE, None, limit(rule), message, "-", limit_text(rule))

    return evaluate_unavailable
