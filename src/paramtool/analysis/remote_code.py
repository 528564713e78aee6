"""Custom code a checkpoint declares: what a ``trust_remote_code`` load would import and run.

transformers, loading with ``trust_remote_code=True``, imports the Python modules that
``config.json`` names in its ``auto_map`` (``"AutoModelForCausalLM":
"modeling_deepseek.DeepseekV3ForCausalLM"``: ``modeling_deepseek.py`` of the repo) and in
its ``custom_pipelines`` (each task's ``impl``), and runs them. A reference written
``"org/name--module.Class"`` takes the module from another repo. Tokenizers are listed as a
pair, ``[slow, fast]``, either of which may be null.

This module only reads those strings: it never imports, opens or reads a ``.py`` file. The
sources list the Python files beside the weights by name (``Checkpoint.code_files``), so
the record says which declared modules are there and which are missing.

>>> rc = find_remote_code(
...     {"auto_map": {"AutoModelForCausalLM": "modeling_deepseek.DeepseekV3ForCausalLM"}},
...     ("modeling_deepseek.py",),
... )
>>> rc.modules, rc.present, rc.missing
(('modeling_deepseek.py',), ('modeling_deepseek.py',), ())
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from paramtool.frozen import dataclass

DeclaredIn = Literal["auto_map", "custom_pipelines"]
MAX_REFERENCES = 256  # a config is hostile text: list this many, count the rest


@dataclass(frozen=True, slots=True)
class CodeReference:
    """One class a config names for a ``trust_remote_code`` load, as written.

    ``key`` is the auto class (``AutoModelForCausalLM``, ``AutoTokenizer``) or, for a
    custom pipeline, its task. ``repo`` is set for ``"org/name--module.Class"`` (the code
    of another repo); ``module`` and ``class_name`` are None when the reference is not of
    the ``module.Class`` form transformers accepts.
    """

    declared_in: DeclaredIn
    key: str
    reference: str
    repo: str | None
    module: str | None
    class_name: str | None

    @property
    def file(self) -> str | None:
        """The file the module is imported from (``modeling_deepseek.py``)."""
        return None if self.module is None else self.module + ".py"

    def to_dict(self) -> dict[str, Any]:
        return {
            "declared_in": self.declared_in,
            "key": self.key,
            "reference": self.reference,
            "repo": self.repo,
            "module": self.module,
            "class": self.class_name,
            "file": self.file,
        }


@dataclass(frozen=True, slots=True)
class RemoteCode:
    """The custom code of a checkpoint: what its config declares, and the ``.py`` files there.

    ``code_files`` are the Python files beside the weights, by name (None: this source did
    not list the folder). ``notes`` say what could not be read (a malformed ``auto_map``).
    """

    declared: tuple[CodeReference, ...]
    code_files: tuple[str, ...] | None
    notes: tuple[str, ...] = ()

    @property
    def modules(self) -> tuple[str, ...]:
        """The files of this checkpoint the declared classes are imported from, in order."""
        return tuple(
            dict.fromkeys(r.file for r in self.declared if r.file is not None and r.repo is None)
        )

    @property
    def present(self) -> tuple[str, ...] | None:
        """Declared modules that sit beside the weights; None when nobody listed the folder."""
        if self.code_files is None:
            return None
        have = set(self.code_files)
        return tuple(m for m in self.modules if m in have)

    @property
    def missing(self) -> tuple[str, ...] | None:
        """Declared modules the folder lacks (a load would fail, or fetch them)."""
        if self.code_files is None:
            return None
        have = set(self.code_files)
        return tuple(m for m in self.modules if m not in have)

    @property
    def other_repos(self) -> tuple[str, ...]:
        """Repos whose code the references take (``org/name--module.Class``)."""
        return tuple(dict.fromkeys(r.repo for r in self.declared if r.repo is not None))

    @property
    def declares_code(self) -> bool:
        return bool(self.declared)

    def to_dict(self) -> dict[str, Any]:
        return {
            "declared": [r.to_dict() for r in self.declared],
            "modules": list(self.modules),
            "present": None if self.present is None else list(self.present),
            "missing": None if self.missing is None else list(self.missing),
            "other_repos": list(self.other_repos),
            "code_files": None if self.code_files is None else list(self.code_files),
            "notes": list(self.notes),
        }


def parse_reference(declared_in: DeclaredIn, key: str, reference: str) -> CodeReference:
    """Split ``[repo--]module.Class`` as transformers does (exactly one ``--``, one dot)."""
    repo: str | None = None
    rest = reference
    if "--" in reference:
        head, sep, tail = reference.partition("--")
        if "--" in tail or not head:
            return CodeReference(declared_in, key, reference, None, None, None)
        repo, rest = head, tail
    module, dot, cls = rest.partition(".")
    if not dot or "." in cls or not module or not cls or "/" in module or "\\" in module:
        return CodeReference(declared_in, key, reference, repo, None, None)
    return CodeReference(declared_in, key, reference, repo, module, cls)


def find_remote_code(
    config: Mapping[str, Any] | None, code_files: Sequence[str] | None = None
) -> RemoteCode | None:
    """What ``config`` declares for a ``trust_remote_code`` load, and the ``.py`` files there.

    None when the config declares nothing and no Python file sits beside the weights.
    """
    declared: list[tuple[DeclaredIn, str, str]] = []
    notes: list[str] = []
    if config is not None:
        auto_map = config.get("auto_map")
        if isinstance(auto_map, Mapping):
            for key, value in auto_map.items():
                values = value if isinstance(value, list) else [value]
                for v in values:
                    if isinstance(v, str):
                        declared.append(("auto_map", str(key), v))
                    elif v is not None:
                        notes.append(f"auto_map {str(key)!r}: not a class reference, ignored")
        elif auto_map is not None:
            notes.append("auto_map is not an object, ignored")
        pipelines = config.get("custom_pipelines")
        if isinstance(pipelines, Mapping):
            for task, spec in pipelines.items():
                impl = spec.get("impl") if isinstance(spec, Mapping) else None
                if isinstance(impl, str):
                    declared.append(("custom_pipelines", str(task), impl))
                else:
                    notes.append(f"custom_pipelines {str(task)!r}: no impl, ignored")
        elif pipelines is not None:
            notes.append("custom_pipelines is not an object, ignored")
    if len(declared) > MAX_REFERENCES:
        notes.append(
            f"{len(declared):,} class references declared; the first {MAX_REFERENCES} are listed"
        )
        declared = declared[:MAX_REFERENCES]
    files = None if code_files is None else tuple(sorted(code_files))
    if not declared and not notes and not files:
        return None
    refs = tuple(parse_reference(*d) for d in declared)
    notes.extend(
        f"{r.declared_in} {r.key!r}: {r.reference!r} is not of the form [org/name--]module.Class"
        for r in refs
        if r.module is None
    )
    return RemoteCode(refs, files, tuple(notes[:MAX_REFERENCES]))
