"""The rules of ``paramtool check``: their options, parsed exactly from flags or a config file.

Each option parses its own value: an entry of :data:`OPTIONS` names the option, how its
value is written (its ``form``, by which the config file checks a TOML value's type) and
the parser that turns the value into rules, so a new rule is one entry there and one
evaluator in :mod:`paramtool.checks.evaluate`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any, TypeVar

from paramtool import dtypes
from paramtool.analysis.anatomy import CATEGORIES
from paramtool.errors import ParamtoolError, UsageError
from paramtool.units import parse_count, parse_percent, parse_size, percent_text

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
FILE = "file"  # "model.sig": a file that must exist (a config file's are relative to it)
FILES = "files"  # ["ca.pem"], each a file

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_INT = re.compile(r"^\s*([0-9][0-9_]*)\s*$")
_REPO = re.compile(r"^(?:hf://)?[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9._-]+(?:@[^\s@]+)?$")
MAX_LAYERS = 1_000_000
T = TypeVar("T")


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
    # How the signature rule verifies (public_key, certificate, ...), by key: no rules of
    # their own, :func:`finalize` joins them to ``signature``.
    signature_how: Mapping[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """No rule and nothing that joins one."""
        return not self.rules and self.tolerance is None and not self.signature_how


@dataclass(frozen=True, slots=True)
class Option:
    """One rule option: its key (the parameter, the config key, the JSON rule name), its
    value's form, the metavar its errors show, and its parser."""

    key: str
    form: str
    metavar: str
    parse: Parse


Where = Callable[[str, str], str]  # (key, text as written) -> the "what" of an error


class Field:
    """One option's value being parsed: it makes the option's rules and names it in errors.

    Errors name the option as a parameter (``max_size '16XB'``; the CLI shows its flag),
    or as ``where`` says (a config file names its file and key).
    """

    __slots__ = ("option", "where", "error")

    def __init__(self, option: Option, where: Where | None, error: type[ParamtoolError]) -> None:
        self.option = option
        self.where = where
        self.error = error

    def rule(self, value: Any, text: str, name: str | None = None) -> Rule:
        return Rule(name or self.option.key, self.option.key, value, text)

    def fail(self, text: str, why: str) -> ParamtoolError:
        if self.where is None:
            return self.error(repr(text), why, param=self.option.key)
        return self.error(self.where(self.option.key, text), why)

    def call(self, text: str, fn: Callable[[str], T]) -> T:
        """``fn(text)``, its UsageError renamed after this option."""
        try:
            return fn(text)
        except UsageError as e:
            raise self.fail(text, e.why) from None

    def dtype(self, text: str) -> dtypes.DType:
        d = self.call(text, dtypes.lookup)
        if not d.safetensors:
            raise self.fail(text, f"{d.name} is not a dtype a safetensors header can hold")
        return d

    def percent(self, text: str) -> Fraction:
        return self.call(text, parse_percent)

    def split(self, text: str, example: str) -> tuple[str, str]:
        head, eq, tail = text.partition("=")
        if not eq or not head.strip() or not tail.strip():
            raise self.fail(text, f"write it as {self.option.metavar}, e.g. {example}")
        return head.strip(), tail.strip()


Parse = Callable[[Field, Any], list[Rule]]  # a value given (never None, False or []) -> rules


def _items(value: Any) -> list[str]:
    """A list option's values; a single string is one item."""
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _flag(f: Field, value: Any) -> list[Rule]:
    return [f.rule(True, "required")]


def _size(f: Field, value: Any) -> list[Rule]:
    text = str(value)
    return [f.rule(f.call(text, parse_size), text.strip())]


def _count(f: Field, value: Any) -> list[Rule]:
    text = str(value)
    return [f.rule(f.call(text, parse_count), text.strip())]


def _expected_count(f: Field, value: Any) -> list[Rule]:
    """The count and its tolerance, exact until a ``tolerance`` joins it (:func:`finalize`)."""
    text = str(value)
    return [f.rule((f.call(text, parse_count), Fraction(0)), text.strip())]


def _tolerance(f: Field, value: Any) -> list[Rule]:
    """Not a rule of its own: :func:`parse_rules` keeps it beside the rules."""
    text = str(value)
    return [f.rule(f.percent(text), text.strip())]


def _float_dtype(f: Field, value: Any) -> list[Rule]:
    text = str(value)
    d = f.dtype(text)
    if d.kind != dtypes.FLOAT:
        raise f.fail(text, f"{d.name} is not a floating-point dtype (bf16, f16, f32, fp8...)")
    return [f.rule(d.name, d.name)]


def _dtypes(f: Field, value: Any) -> list[Rule]:
    items = _items(value)
    names = [n.strip() for item in items for n in item.split(",") if n.strip()]
    if not names:
        raise f.fail(",".join(items), "give at least one dtype, e.g. bf16,f32")
    canon = tuple(dict.fromkeys(f.dtype(n).name for n in names))
    return [f.rule(canon, ",".join(canon))]


def _shares(f: Field, value: Any) -> list[Rule]:
    rules = []
    for item in _items(value):
        cat, pct = f.split(item, "other=5%")
        cat = cat.lower().replace("-", "_")
        if cat not in CATEGORIES:
            raise f.fail(item, f"unknown category {cat!r} (one of {', '.join(CATEGORIES)})")
        limit = f.percent(pct)
        rules.append(f.rule((cat, limit), percent_text(limit), f"max_share:{cat}"))
    return rules


def _digests(f: Field, value: Any) -> list[Rule]:
    rules = []
    for item in _items(value):
        file, digest = f.split(item, "model.safetensors=<64 hex digits>")
        if not _HEX64.match(digest):
            raise f.fail(item, "the digest must be 64 hexadecimal digits (a SHA-256)")
        rules.append(f.rule((file, digest.lower()), digest.lower(), f"sha256:{file}"))
    return rules


def _metadata_keys(f: Field, value: Any) -> list[Rule]:
    rules = []
    for item in _items(value):
        mkey, eq, mvalue = item.partition("=")
        mkey = mkey.strip()
        if not mkey:
            raise f.fail(item, "write it as KEY or KEY=VALUE, e.g. format=pt")
        want = mvalue.strip() if eq else None
        text = f"{mkey}={want}" if eq else f"{mkey} present"
        rules.append(f.rule((mkey, want), text, f"require_metadata:{mkey}"))
    return rules


def _layers(f: Field, value: Any) -> list[Rule]:
    text = str(value)
    m = _INT.match(text)
    if not m:
        raise f.fail(text, "write it as a whole number, e.g. 32")
    n = int(m.group(1).replace("_", ""))
    if n > MAX_LAYERS:
        raise f.fail(text, "too large")
    return [f.rule(n, str(n))]


def _hub_repo(f: Field, value: Any) -> list[Rule]:
    text = str(value)
    repo = text.strip()
    if not _REPO.match(repo):
        raise f.fail(text, "not a Hub repo (expected org/name or org/name@revision)")
    return [f.rule(repo.removeprefix("hf://"), repo.removeprefix("hf://"))]


def _file(f: Field, value: Any) -> list[Rule]:
    text = str(value)
    name = text.strip()
    if not name:
        raise f.fail(text, "give a file name")
    if not os.path.isfile(name):
        why = "not a file" if os.path.exists(name) else "no such file"
        raise f.fail(text, why)
    return [f.rule(name, name)]


def _files(f: Field, value: Any) -> list[Rule]:
    names = tuple(_file(f, item)[0].value for item in _items(value))
    return [f.rule(names, ", ".join(names))]


def _text(f: Field, value: Any) -> list[Rule]:
    text = str(value).strip()
    if not text:
        raise f.fail(str(value), "must not be empty")
    return [f.rule(text, text)]


@dataclass(frozen=True, slots=True)
class SignatureSpec:
    """What the ``signature`` rule verifies: the bundle, and the one way its signer is trusted
    (the parameters of :func:`paramtool.values.signatures.verify_signature`)."""

    signature: str
    method: str  # "key", "certificate" or "sigstore"
    public_key: str | None = None
    certificate: str | None = None
    certificate_chain: tuple[str, ...] = ()
    identity: str | None = None
    identity_provider: str | None = None
    trust_config: str | None = None
    allow_uncovered: bool = False

    def verify_kwargs(self) -> dict[str, Any]:
        return {
            "public_key": self.public_key,
            "certificate": self.certificate,
            "certificate_chain": self.certificate_chain,
            "identity": self.identity,
            "identity_provider": self.identity_provider,
            "trust_config": self.trust_config,
            "allow_uncovered": self.allow_uncovered,
        }

    def to_dict(self) -> dict[str, Any]:
        """The rule's ``limit`` in JSON."""
        return {
            "signature": self.signature,
            "method": self.method,
            "allow_uncovered": self.allow_uncovered,
        }


# The options that say how the signature rule verifies; not rules of their own.
SIGNATURE_HOW = (
    "public_key",
    "certificate",
    "certificate_chain",
    "sigstore",
    "identity",
    "identity_provider",
    "trust_config",
)
SIGNATURE_PARTS = (*SIGNATURE_HOW, "allow_uncovered")

# In the order the rules are reported. `tolerance` is not a rule: it belongs to expect_params.
OPTIONS: tuple[Option, ...] = (
    Option("max_size", SIZE, "SIZE", _size),
    Option("min_size", SIZE, "SIZE", _size),
    Option("max_params", COUNT, "N", _count),
    Option("min_params", COUNT, "N", _count),
    Option("expect_params", COUNT, "N", _expected_count),
    Option("tolerance", PERCENT, "PERCENT", _tolerance),
    Option("dtype", DTYPE, "DTYPE", _float_dtype),
    Option("allow_dtypes", DTYPES, "LIST", _dtypes),
    Option("max_share", PAIRS, "CATEGORY=PERCENT", _shares),
    Option("expect_layers", INT, "N", _layers),
    Option("require_metadata", KEYS, "KEY[=VALUE]", _metadata_keys),
    Option("safetensors_only", FLAG, "", _flag),
    Option("no_unsafe_pickle", FLAG, "", _flag),
    Option("no_remote_code", FLAG, "", _flag),
    Option("no_nan", FLAG, "", _flag),
    Option("no_inf", FLAG, "", _flag),
    Option("sha256", PAIRS, "FILE=HEX", _digests),
    Option("against_hub", TEXT, "ORG/NAME[@REV]", _hub_repo),
    Option("signature", FILE, "FILE", _file),
    Option("public_key", FILE, "FILE", _file),
    Option("certificate", FILE, "FILE", _file),
    Option("certificate_chain", FILES, "FILE", _files),
    Option("sigstore", FLAG, "", _flag),
    Option("identity", TEXT, "ID", _text),
    Option("identity_provider", TEXT, "URL", _text),
    Option("trust_config", FILE, "FILE", _file),
    Option("allow_uncovered", FLAG, "", _flag),
)
BY_KEY: Mapping[str, Option] = {o.key: o for o in OPTIONS}
_ORDER = {o.key: i for i, o in enumerate(OPTIONS)}


def parse_rules(
    options: Mapping[str, Any], where: Where | None = None, error: type[ParamtoolError] = UsageError
) -> RuleSet:
    """Parse one source's raw option values (``None`` = not given) into rules.

    ``options`` maps keys of :data:`OPTIONS` to strings (sizes, counts...), lists of
    strings (``allow_dtypes``, ``max_share``, ``require_metadata``, ``sha256``) or
    booleans (flags). Errors are raised as ``error`` and name the option as a parameter
    (``max_size '16XB'``), or, given ``where``, as it says.
    """
    rules: dict[str, Rule] = {}
    for key, value in options.items():
        opt = BY_KEY.get(key)
        if opt is None:
            raise error(key, "not a check option")
        if value is None or value is False or value == []:
            continue
        for rule in opt.parse(Field(opt, where, error), value):
            rules[rule.name] = rule
    how = {k: rules.pop(k).value for k in SIGNATURE_PARTS if k in rules}
    tolerance = rules.pop("tolerance", None)
    if tolerance is None:
        return RuleSet(rules, signature_how=how)
    return RuleSet(rules, tolerance.value, tolerance.text, how)


def finalize(sets: Iterable[RuleSet]) -> tuple[Rule, ...]:
    """Merge rule sets (later ones win, rule by rule) into the rules to check, in report order."""
    rules: dict[str, Rule] = {}
    tolerance: tuple[Fraction, str] | None = None
    how: dict[str, Any] = {}
    for s in sets:
        rules.update(s.rules)
        if s.tolerance is not None:
            tolerance = (s.tolerance, s.tolerance_text)
        given = {k: v for k, v in s.signature_how.items() if k in SIGNATURE_HOW}
        if given:  # a later source's way of trusting the signer replaces the earlier one
            how = {k: v for k, v in how.items() if k not in SIGNATURE_HOW}
        how.update(given)
        if s.signature_how.get("allow_uncovered"):
            how["allow_uncovered"] = True
    if "signature" in rules:
        sig = rules["signature"]
        rules["signature"] = replace(sig, value=_signature_spec(sig.value, how))
    elif how:
        raise UsageError(
            "",
            lambda p: f"only applies together with {p('signature')}",
            param=tuple(k for k in SIGNATURE_PARTS if k in how),
        )
    if tolerance is not None:
        r = rules.get("expect_params")
        if r is None:
            raise UsageError(
                repr(tolerance[1]),
                lambda p: f"only applies together with {p('expect_params')}",
                param="tolerance",
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
                repr(rules[lo].text),
                f"the minimum {what} is above the maximum ({rules[hi].text}): nothing can pass",
                param=lo,
            )
    if not rules:
        raise UsageError(
            "check",
            lambda p: (
                f"no rules given; name at least one (e.g. {p('max_size')} 16GB or "
                f"{p('dtype')} bf16) on the command line, or in paramtool.toml [check] or "
                "pyproject.toml [tool.paramtool.check]"
            ),
        )
    return tuple(sorted(rules.values(), key=lambda r: _ORDER[r.kind]))


def _signature_spec(signature: str, how: Mapping[str, Any]) -> SignatureSpec:
    """The signature rule's value: exactly one way of trusting the signer, as verify takes it."""
    sigstore = bool(how.get("sigstore"))
    identity, provider = how.get("identity"), how.get("identity_provider")
    if sigstore and (identity is None or provider is None):
        raise UsageError(
            "", lambda p: f"needs {p('identity')} and {p('identity_provider')}", param="sigstore"
        )
    if not sigstore and (identity is not None or provider is not None):
        raise UsageError(
            "",
            lambda p: f"needs {p('sigstore')}",
            param=tuple(k for k in ("identity", "identity_provider") if how.get(k) is not None),
        )
    if "trust_config" in how and not sigstore:
        raise UsageError("", lambda p: f"needs {p('sigstore')}", param="trust_config")
    chain = tuple(how.get("certificate_chain", ()))
    ways = [
        "key" if "public_key" in how else None,
        "certificate" if "certificate" in how or chain else None,
        "sigstore" if sigstore else None,
    ]
    chosen = [w for w in ways if w is not None]
    if len(chosen) != 1:
        raise UsageError(
            repr(signature),
            lambda p: (
                f"give exactly one way of trusting the signer: {p('public_key')}, "
                f"{p('certificate')} (or {p('certificate_chain')}) or {p('sigstore')}"
            ),
            param="signature",
        )
    return SignatureSpec(
        signature=signature,
        method=chosen[0],
        public_key=how.get("public_key"),
        certificate=how.get("certificate"),
        certificate_chain=chain,
        identity=identity,
        identity_provider=provider,
        trust_config=how.get("trust_config"),
        allow_uncovered=bool(how.get("allow_uncovered")),
    )


def _scalar(rule: Rule) -> int:
    return int(rule.value)
