"""``paramtool check --junit-xml FILE``: one JUnit test case per rule, for CI test reports.

A failed rule is a ``<failure>``; an unavailable one an ``<error type="unavailable">``
(it could not run, and the gate fails). Stdlib ``xml.etree`` only; characters XML 1.0
cannot hold, and control, bidi and format characters, are replaced by ``?``, so hostile
tensor names can neither break the file nor disguise what it says.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from paramtool.checks.findings import Report
from paramtool.checks.rules import FAIL, UNAVAILABLE
from paramtool.safe_text import FORMAT_CHARS

SUITE = "paramtool check"
CLASSNAME = "paramtool.check"
# What XML 1.0 cannot hold, and the controls, bidi and format characters no report should
# show raw (tab, newline and carriage return stay: the details are several lines).
_NOT_XML = re.compile(f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{FORMAT_CHARS}\ufffe\uffff]")


def _x(text: object) -> str:
    return _NOT_XML.sub("?", str(text))


def to_element(report: Report) -> ET.Element:
    n, failures, errors = len(report.findings), report.count(FAIL), report.count(UNAVAILABLE)
    counts = {"tests": str(n), "failures": str(failures), "errors": str(errors), "skipped": "0"}
    root = ET.Element("testsuites", {"name": SUITE, **counts})
    suite = ET.SubElement(root, "testsuite", {"name": _x(f"{SUITE} {report.source}"), **counts})
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("source", report.source),
        ("revision", report.revision),
        ("config", report.config),
    ):
        if value is not None:
            ET.SubElement(props, "property", {"name": name, "value": _x(value)})
    for f in report.findings:
        case = ET.SubElement(suite, "testcase", {"classname": CLASSNAME, "name": _x(f.name)})
        detail = _x(f"measured: {f.measured_text}\nlimit: {f.limit_text}\n{f.message}")
        if f.status == FAIL:
            el = ET.SubElement(case, "failure", {"type": "fail", "message": _x(f.message)})
            el.text = detail
        elif f.status == UNAVAILABLE:
            el = ET.SubElement(case, "error", {"type": "unavailable", "message": _x(f.message)})
            el.text = detail
        else:
            ET.SubElement(case, "system-out").text = detail
    ET.indent(root)
    return root


def to_bytes(report: Report) -> bytes:
    data: bytes = ET.tostring(to_element(report), encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def write(report: Report, path: Path) -> None:
    """Write the JUnit XML file (OSError passes through to the caller)."""
    path.write_bytes(to_bytes(report))
