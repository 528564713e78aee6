"""The JSON document of ``paramtool check`` (schema in the README); stdlib only."""

from __future__ import annotations

from typing import Any

from paramtool.checks.findings import Finding, Report
from paramtool.checks.rules import FAIL, PASS, UNAVAILABLE

SCHEMA_VERSION = 1


def rule_json(f: Finding) -> dict[str, Any]:
    return {
        "name": f.name,
        "status": f.status,
        "passed": f.passed,
        "measured": f.measured,
        "limit": f.limit,
        "message": f.message,
    }


def to_json(report: Report) -> dict[str, Any]:
    """One object: the verdict, a count per status, and every rule's finding in report order."""
    return {
        "schema_version": SCHEMA_VERSION,
        "source": report.source,
        "revision": report.revision,
        "config": report.config,
        "passed": report.passed,
        "summary": {
            "passed": report.count(PASS),
            "failed": report.count(FAIL),
            "unavailable": report.count(UNAVAILABLE),
        },
        "rules": [rule_json(f) for f in report.findings],
    }
