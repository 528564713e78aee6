"""Local files against the Hub's own hashes: LFS SHA-256 for weights, git blob ids otherwise.

Nothing is downloaded: the Hub's listing gives the expected hashes, the local bytes are hashed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from paramtool.errors import HubError, ParamtoolError, SourceNotFound
from paramtool.files import read_capped
from paramtool.formats.index import MAX_JSON_SIDECAR, parse_index
from paramtool.values.hashing import file_sha256, git_blob_sha1
from paramtool.values.reader import (
    Progress,
    default_workers,
    locked,
    unordered_map,
)

SCHEMA_VERSION = 1  # of the --json document

OK, MISMATCH, MISSING, UNVERIFIED = "ok", "mismatch", "missing", "unverified"


@dataclass(frozen=True, slots=True)
class HubFile:
    """What the Hub records for one file: LFS sha256 (weights) or git blob id (small files)."""

    path: str
    size: int | None
    sha256: str | None  # LFS files
    blob_id: str | None  # git blob sha1 (for LFS files, the id of the pointer file)
    lfs: bool


@dataclass(frozen=True, slots=True)
class HubFiles:
    """A repo's file listing at one commit, with hashes: one model-info request."""

    repo_id: str
    revision: str  # the resolved commit sha
    requested_revision: str | None
    files: Mapping[str, HubFile]


def hub_file_hashes(
    repo_id: str, revision: str | None = None, token: str | None = None
) -> HubFiles:
    """The Hub's hashes for every file of ``repo_id`` at ``revision`` (nothing is downloaded).

    One model info request with file metadata (``?blobs=true``), under the Hub requests'
    deadline, size cap and retries; Hub failures become one-line :class:`HubError`\\ s
    (repo missing, gated, offline, network).
    """
    from paramtool.sources.hub import file_records
    from paramtool.sources.hub_errors import hub_errors

    with hub_errors(repo_id, revision):
        sha, records = file_records(repo_id, revision, token)
    files = {r.name: HubFile(r.name, r.size, r.sha256, r.blob_id, r.lfs) for r in records}
    return HubFiles(repo_id, sha, revision, files)


_WEIGHT_SUFFIXES = (
    ".safetensors",
    ".safetensors.index.json",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".gguf",
    ".bin.index.json",
)


@dataclass(frozen=True, slots=True)
class FileCheck:
    """One file compared with the Hub's record of it."""

    path: str  # in the repo
    local: str | None  # the local file, None when it is missing
    status: str  # ok, mismatch, missing, unverified
    required: bool  # part of the checkpoint (weights, index); other files are checked if present
    algorithm: str | None = None  # "sha256" (LFS) or "git-sha1" (blob id)
    expected: str | None = None
    actual: str | None = None
    expected_size: int | None = None
    actual_size: int | None = None


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """``paramtool verify``: local files against the hashes the Hub records."""

    path: str
    hub: HubFiles
    subfolder: str
    files: tuple[FileCheck, ...]
    extra: tuple[str, ...]  # local weight files the Hub does not list (not a failure)

    @property
    def ok(self) -> bool:
        return all(f.status == OK for f in self.files)

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    def to_dict(self) -> dict[str, Any]:
        """The document ``paramtool verify --json`` prints."""
        return {
            "schema_version": SCHEMA_VERSION,
            "path": self.path,
            "repo_id": self.hub.repo_id,
            "revision": self.hub.revision,
            "requested_revision": self.hub.requested_revision,
            "subfolder": self.subfolder,
            "ok": self.ok,
            "counts": {s: self.count(s) for s in ("ok", "mismatch", "missing", "unverified")},
            "files": [
                {
                    "path": f.path,
                    "local": f.local,
                    "required": f.required,
                    "status": f.status,
                    "algorithm": f.algorithm,
                    "expected": f.expected,
                    "actual": f.actual,
                    "expected_bytes": f.expected_size,
                    "actual_bytes": f.actual_size,
                }
                for f in self.files
            ],
            "extra": list(self.extra),
        }


@dataclass(frozen=True, slots=True)
class VerifyPlan:
    """Which Hub files :func:`run_verify` compares with which local files."""

    path: str
    hub: HubFiles
    subfolder: str
    jobs: tuple[tuple[HubFile, Path | None, bool], ...]  # (Hub entry, local file, required)
    extra: tuple[str, ...]

    @property
    def total_bytes(self) -> int:
        """Bytes the comparison reads at most (for a progress bar)."""
        return sum(_size(local) for _, local, _ in self.jobs)


def _size(path: Path | None) -> int:
    return path.stat().st_size if path is not None else 0


def _required(hub: HubFiles, prefix: str, local_root: Path) -> list[str]:
    """The repo paths that make up the checkpoint: what paramtool would read from the repo.

    For a sharded checkpoint the shard list comes from the local index once that
    index matches the Hub's; otherwise every weight file at that level is required.
    Repos with pickles only (or no weights) require every weight-like file: hashing
    a pickle is safe, it is never loaded.
    """
    from paramtool.sources.hub import pick_repo_weights

    level = [p for p in hub.files if p.startswith(prefix) and "/" not in p[len(prefix) :]]
    try:
        index, weights = pick_repo_weights(list(hub.files), prefix.rstrip("/"), hub.repo_id)
    except ParamtoolError:
        return sorted(p for p in level if p.endswith(_WEIGHT_SUFFIXES))
    if index is None:
        return weights
    local_index = local_root / index[len(prefix) :]
    if local_index.is_file() and _matches(hub.files[index], local_index):
        try:
            raw = read_capped(local_index, MAX_JSON_SIDECAR)  # a regular file, capped
            weight_map, _ = parse_index(raw, str(local_index))
        except ParamtoolError:
            weight_map = {}
        shards = sorted({prefix + s for s in weight_map.values()})
        if shards:
            return [index, *shards]
    return [index, *sorted(p for p in level if p.endswith(".safetensors"))]


def _matches(entry: HubFile, local: Path) -> bool:
    """Whether a local file is the Hub's (used to trust the local index): size, then hash."""
    if entry.size is not None and local.stat().st_size != entry.size:
        return False
    if entry.sha256:
        return file_sha256(local) == entry.sha256
    return entry.blob_id is not None and git_blob_sha1(local) == entry.blob_id


def _check(entry: HubFile, local: Path | None, required: bool, progress: Progress) -> FileCheck:
    """Compare one file: sizes first, then the hash the Hub records for it."""
    if local is None:
        return FileCheck(entry.path, None, MISSING, required, expected_size=entry.size)
    size = local.stat().st_size
    check = FileCheck(entry.path, str(local), OK, required, None, None, None, entry.size, size)
    if entry.sha256:
        check = replace(check, algorithm="sha256", expected=entry.sha256)
    elif entry.blob_id and not entry.lfs:
        check = replace(check, algorithm="git-sha1", expected=entry.blob_id)
    else:
        return replace(check, status=UNVERIFIED)
    if entry.size is not None and size != entry.size:
        progress(size)
        return replace(check, status=MISMATCH)
    hasher = file_sha256 if check.algorithm == "sha256" else git_blob_sha1
    actual = hasher(local, progress)
    return replace(check, actual=actual, status=OK if actual == check.expected else MISMATCH)


def plan_verify(path: str | os.PathLike[str], hub: HubFiles, subfolder: str = "") -> VerifyPlan:
    """Which Hub files to compare with which local files, and the local weights it does not list.

    A folder stands for the repo's ``subfolder``: the checkpoint's files are
    required, every other file the Hub lists is checked when it is present. A
    single file is compared with the repo file of the same name.
    """
    root = Path(path)
    prefix = f"{subfolder.strip('/')}/" if subfolder.strip("/") else ""
    if not root.exists():
        raise SourceNotFound(str(root), "no such file or directory")
    if root.is_file():
        name = prefix + root.name
        entry = hub.files.get(name)
        if entry is None:
            raise HubError(f"{hub.repo_id}@{hub.revision[:12]}", f"the repo has no file {name!r}")
        return VerifyPlan(str(root), hub, prefix.rstrip("/"), ((entry, root, True),), ())
    required = set(_required(hub, prefix, root))
    jobs = []
    for name in sorted(hub.files):
        parts = PurePosixPath(name[len(prefix) :]).parts
        if not name.startswith(prefix) or ".." in parts or name.startswith("/"):
            continue
        local = root.joinpath(*parts)
        present = local.is_file()
        if name in required or present:
            jobs.append((hub.files[name], local if present else None, name in required))
    listed = {name[len(prefix) :] for name in hub.files if name.startswith(prefix)}
    extra = sorted(
        str(p)
        for p in root.iterdir()
        if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES) and p.name not in listed
    )
    return VerifyPlan(str(root), hub, prefix.rstrip("/"), tuple(jobs), tuple(extra))


def run_verify(
    plan: VerifyPlan, *, workers: int | None = None, progress: Progress | None = None
) -> VerifyReport:
    """Hash the planned local files (largest first, in parallel) and compare."""
    advance = locked(progress)
    jobs = plan.jobs
    order = sorted(range(len(jobs)), key=lambda i: -_size(jobs[i][1]))
    results: list[FileCheck | None] = [None] * len(jobs)
    for i, check in unordered_map(
        lambda i: _check(*jobs[i], advance), order, workers or default_workers()
    ):
        results[i] = check
    checks = tuple(r for r in results if r is not None)
    return VerifyReport(plan.path, plan.hub, plan.subfolder, checks, plan.extra)


def verify_against_hub(
    path: str | os.PathLike[str],
    repo_id: str,
    revision: str | None = None,
    *,
    token: str | None = None,
    subfolder: str = "",
    workers: int | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Compare local files with the hashes the Hub records, without downloading anything."""
    hub = hub_file_hashes(repo_id, revision, token)
    return run_verify(plan_verify(path, hub, subfolder), workers=workers, progress=progress)
