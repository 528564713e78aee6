"""The CI gate: rules (each parses its own value), their evaluation, the config file.

A rule that cannot be evaluated is ``unavailable`` and fails the gate like a failed one.
The answer of ``check`` is :class:`~paramtool.checks.findings.Report`.
"""
