"""paramtool: what is inside a model's weights, and what they cost to hold.

The Python API is what the commands answer, as typed frozen records; each record's
``to_dict()`` is the document the command's ``--json`` prints::

    >>> import paramtool
    >>> r = paramtool.inspect("examples/tiny-llama")
    >>> r.total_parameters
    1217664

Nothing here prints or draws. Functions: :func:`inspect`, :func:`footprint`,
:func:`fit`, :func:`check`, :func:`stats`, :func:`digest`, :func:`verify`, :func:`diff`,
:func:`convert` and :func:`open_checkpoint`; errors derive from :class:`ParamtoolError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paramtool.errors import ParamtoolError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from paramtool.analysis.inspection import Inspection
    from paramtool.api import (
        check,
        convert,
        diff,
        digest,
        fit,
        footprint,
        inspect,
        open_checkpoint,
        stats,
        verify,
    )
    from paramtool.checks.findings import Report
    from paramtool.memory.estimate import Footprint
    from paramtool.memory.fit import Fit
    from paramtool.records import Checkpoint
    from paramtool.values.convert import ConvertReport
    from paramtool.values.diff import DiffReport
    from paramtool.values.hashing import HashReport
    from paramtool.values.stats import StatsReport
    from paramtool.values.verify import VerifyReport

# Loaded on first use, so that `import paramtool` (and the CLI's start-up) stays cheap.
_LAZY = {
    "inspect": "paramtool.api",
    "footprint": "paramtool.api",
    "fit": "paramtool.api",
    "check": "paramtool.api",
    "stats": "paramtool.api",
    "digest": "paramtool.api",
    "verify": "paramtool.api",
    "diff": "paramtool.api",
    "open_checkpoint": "paramtool.api",
    "convert": "paramtool.api",
    "ConvertReport": "paramtool.values.convert",
    "Inspection": "paramtool.analysis.inspection",
    "Footprint": "paramtool.memory.estimate",
    "Fit": "paramtool.memory.fit",
    "Report": "paramtool.checks.findings",
    "StatsReport": "paramtool.values.stats",
    "HashReport": "paramtool.values.hashing",
    "VerifyReport": "paramtool.values.verify",
    "DiffReport": "paramtool.values.diff",
    "Checkpoint": "paramtool.records",
}

__all__ = [
    "Checkpoint",
    "ConvertReport",
    "DiffReport",
    "Fit",
    "Footprint",
    "HashReport",
    "Inspection",
    "ParamtoolError",
    "Report",
    "StatsReport",
    "VerifyReport",
    "__version__",
    "check",
    "convert",
    "diff",
    "digest",
    "fit",
    "footprint",
    "inspect",
    "open_checkpoint",
    "stats",
    "verify",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'paramtool' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
