"""OpenSSF model-signing signatures over a checkpoint folder: who signed it, and what it covers.

The ``model-signing`` library decides whether the signature is authentic and whether the
files it covers hash to what was signed; this module reads the signed manifest (the DSSE
payload's in-toto statement) to report, file by file, what is covered, changed or missing,
and which files in the folder the signature does not cover. ``model_signing`` is imported
only here, and only when a signature is verified.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal, TypeVar

from paramtool.errors import ParamtoolError, Why
from paramtool.files import read_capped

SCHEMA_VERSION = 1  # of the --json document

MAX_SIGNATURE = 64 << 20  # a bundle listing ~400k resources; real ones are kilobytes
SIGSTORE_TIMEOUT = 15.0  # seconds to fetch Sigstore's trust root before giving up

# Always skipped when listing the folder: what model-signing's hasher skips by default.
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")

Method = Literal["key", "certificate", "sigstore"]
FileStatus = Literal["ok", "changed", "missing"]

T = TypeVar("T")


class SignatureError(ParamtoolError):
    """A signature, key or certificate that cannot be read, or a verifier that cannot start."""


@dataclass(frozen=True, slots=True)
class SignedFile:
    """One file the signature covers: its signed digest(s) and how the local file compares."""

    path: str
    algorithm: str
    digests: tuple[str, ...]  # one per file, or one per shard ("shards" serialization)
    status: FileStatus | None  # None: not compared (the signature itself did not verify)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "algorithm": self.algorithm,
            "digests": list(self.digests),
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class SignatureReport:
    """The outcome of verifying one signature over one folder."""

    path: str
    signature: str
    method: Method
    signature_valid: bool  # the envelope verifies with the key, certificate or identity
    reason: str | None  # why not verified, one line; None when verified
    model_name: str
    serialization: dict[str, Any]  # as signed: method, hash_type, shard_size, ignore_paths...
    files: tuple[SignedFile, ...]
    uncovered: tuple[str, ...]  # present in the folder, not covered, not ignored
    ignored: tuple[str, ...]  # paths never listed: git paths, the signed ignore_paths, the .sig
    allow_uncovered: bool
    warnings: tuple[str, ...] = field(default=())

    @property
    def changed(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files if f.status == "changed")

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files if f.status == "missing")

    @property
    def ok(self) -> bool:
        """Authentic, every covered file intact, and nothing uncovered unless allowed."""
        return (
            self.signature_valid
            and self.reason is None
            and not self.changed
            and not self.missing
            and (self.allow_uncovered or not self.uncovered)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "path": self.path,
            "signature": self.signature,
            "method": self.method,
            "ok": self.ok,
            "signature_valid": self.signature_valid,
            "reason": self.reason,
            "model_name": self.model_name,
            "serialization": self.serialization,
            "counts": {
                "covered": len(self.files),
                "changed": len(self.changed),
                "missing": len(self.missing),
                "uncovered": len(self.uncovered),
            },
            "files": [f.to_dict() for f in self.files],
            "uncovered": list(self.uncovered),
            "allow_uncovered": self.allow_uncovered,
            "ignored": list(self.ignored),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, slots=True)
class _Signed:
    """What the bundle claims, read without verifying anything."""

    model_name: str
    serialization: dict[str, Any]
    resources: tuple[tuple[str, str, str], ...]  # (name, algorithm, digest hex)


def read_signed_manifest(signature: str | os.PathLike[str]) -> _Signed:
    """The manifest inside a model-signing bundle (unverified: the library verifies it)."""
    shown = os.fspath(signature)
    raw = read_capped(signature, MAX_SIGNATURE, shown, too_large=SignatureError)
    try:
        bundle = json.loads(raw)
        envelope = bundle["dsseEnvelope"]
        payload = json.loads(base64.b64decode(envelope["payload"], validate=True))
        predicate = payload["predicate"]
        serialization = dict(predicate["serialization"])
        subjects = payload["subject"]
        name = str(subjects[0]["name"]) if subjects else ""
        resources = tuple(
            (str(r["name"]), str(r["algorithm"]), str(r["digest"])) for r in predicate["resources"]
        )
    except (ValueError, KeyError, TypeError, IndexError, binascii.Error) as e:
        why = f"not a model-signing bundle ({type(e).__name__}: {e})"
        raise SignatureError(shown, why[:300]) from None
    return _Signed(name, serialization, resources)


def _file_of(resource: str, method: str) -> str:
    """The file a resource names: itself, or ``path`` of a shard ``path:start:end``."""
    if method == "shards":
        parts = resource.rsplit(":", 2)
        if len(parts) == 3:
            return parts[0]
    return resource


def _ignored_by(rel: str, ignored: Iterable[str]) -> bool:
    return any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in ignored)


def _listing(root: Path, ignored: Sequence[str]) -> list[str]:
    """Every regular file and symlink under ``root``, relative, POSIX, minus ``ignored``."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath).relative_to(root)
        keep = []
        for d in dirnames:
            rel = PurePosixPath(*base.parts, d).as_posix()
            if _ignored_by(rel, ignored):
                continue
            if (Path(dirpath) / d).is_symlink():
                out.append(rel)
            else:
                keep.append(d)
        dirnames[:] = sorted(keep)
        for f in filenames:
            rel = PurePosixPath(*base.parts, f).as_posix()
            if not _ignored_by(rel, ignored):
                out.append(rel)
    return sorted(out)


def _with_deadline(fn: Callable[[], T], seconds: float, what: str, why: Why) -> T:
    """``fn()``, or a :class:`SignatureError` when it has not returned within ``seconds``.

    The call runs on a daemon thread, so a network request that never answers does not keep
    the process alive after the error is reported.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    thread = threading.Thread(target=run, name="paramtool-sigstore", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise SignatureError(what, why)
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _verifier(
    method: Method,
    *,
    public_key: str | None,
    certificate_chain: Sequence[str],
    identity: str | None,
    issuer: str | None,
    trust_config: str | None,
    timeout: float,
) -> Any:
    """A configured ``model_signing.verifying.Config``; bad key material is a SignatureError."""
    # model-signing 1.1 imports pyOpenSSL for certificate chains without declaring it.
    import OpenSSL  # noqa: F401
    from model_signing import verifying

    config: Any = verifying.Config()  # type: ignore[no-untyped-call]
    if method == "key":
        assert public_key is not None
        try:
            return config.use_elliptic_key_verifier(public_key=Path(public_key))
        except (ValueError, TypeError, OSError) as e:
            raise SignatureError(public_key, f"not a usable public key: {_one_line(e)}") from None
    if method == "certificate":
        try:
            return config.use_certificate_verifier(
                certificate_chain=[Path(c) for c in certificate_chain]
            )
        except (ValueError, TypeError, OSError) as e:
            shown = ", ".join(certificate_chain) or "the system's certificates"
            raise SignatureError(shown, f"not usable certificates: {_one_line(e)}") from None
    assert identity is not None and issuer is not None

    def build() -> Any:
        return config.use_sigstore_verifier(
            identity=identity,
            oidc_issuer=issuer,
            trust_config=Path(trust_config) if trust_config else None,
        )

    def why(detail: str) -> Why:
        return lambda p: (
            f"cannot fetch Sigstore's trust root{detail}; offline, give {p('trust_config')}"
        )

    try:
        return _with_deadline(build, timeout, "sigstore", why(f" within {timeout:g} s"))
    except SignatureError:
        raise
    except Exception as e:
        if trust_config:
            raise SignatureError(trust_config, f"not a trust config: {_one_line(e)}") from None
        raise SignatureError("sigstore", why(f" ({_one_line(e)})")) from None


def _hashing_config(serialization: dict[str, Any], calls: dict[str, Any]) -> Any:
    """A model-signing hashing config matching the signed serialization, recording its use.

    ``hash`` being called means the library has already verified the signature itself;
    covered files that are absent are left out (and recorded) so that the rest still hash.
    """
    from model_signing import hashing

    class Recording(hashing.Config):
        def hash(self, model_path: Any, *, files_to_hash: Any = None) -> Any:
            calls["reached"] = True
            root = Path(model_path)
            present = None
            if files_to_hash is not None:
                files = {Path(p) for p in files_to_hash}
                if serialization.get("method") == "shards":
                    files = {Path(_file_of(os.fspath(p), "shards")) for p in files}
                present = sorted(p for p in files if p.is_file() or p.is_symlink())
                calls["missing"] = {p.relative_to(root).as_posix() for p in files} - {
                    p.relative_to(root).as_posix() for p in present
                }
            manifest = super().hash(model_path, files_to_hash=present)
            calls["actual"] = {
                rd.identifier: rd.digest.digest_hex for rd in manifest.resource_descriptors()
            }
            return manifest

    method = serialization.get("method")
    common: dict[str, Any] = {
        "hashing_algorithm": serialization.get("hash_type", "sha256"),
        "allow_symlinks": bool(serialization.get("allow_symlinks", False)),
        "ignore_paths": serialization.get("ignore_paths", ()),
    }
    config: Any = Recording()  # type: ignore[no-untyped-call]
    if method == "files":
        return config.use_file_serialization(**common)
    if method == "shards":
        # The bundle's JSON (a protobuf Struct) spells the size as a float: 1048576.0.
        shard_size = int(serialization["shard_size"])
        return config.use_shard_serialization(shard_size=shard_size, **common)
    raise SignatureError("signature", f"unknown serialization method {method!r}")


def verify_signature(
    path: str | os.PathLike[str],
    signature: str | os.PathLike[str],
    *,
    public_key: str | None = None,
    certificate_chain: Sequence[str] = (),
    certificate: str | None = None,
    identity: str | None = None,
    identity_provider: str | None = None,
    trust_config: str | None = None,
    allow_uncovered: bool = False,
    timeout: float = SIGSTORE_TIMEOUT,
) -> SignatureReport:
    """Verify a model-signing ``signature`` over the folder ``path``.

    Exactly one way: ``public_key`` (an elliptic-curve PEM key, P-256/384/521, as
    model-signing supports), ``certificate_chain`` and/or ``certificate`` (the trusted
    certificates, and optionally the exact signing certificate the bundle must carry), or
    ``identity`` with ``identity_provider`` (Sigstore; its trust root is fetched unless
    ``trust_config`` is given, within ``timeout`` seconds). Bad input (no folder, unreadable
    or malformed signature, unusable key) raises :class:`SignatureError`; a signature that
    does not verify or a folder that does not match is a report with ``ok`` false.
    """
    root = Path(path)
    shown = os.fspath(path)
    if not root.is_dir():
        why = "no such folder" if not root.exists() else "not a folder (a signature covers one)"
        raise SignatureError(shown, why)
    method: Method
    ways = [public_key is not None, bool(certificate_chain) or certificate is not None]
    ways.append(identity is not None or identity_provider is not None)
    if sum(ways) != 1:
        raise SignatureError(
            "verification",
            lambda p: (
                f"give exactly one of {p('public_key')}, {p('certificate')} "
                f"(or {p('certificate_chain')}), {p('identity')} with {p('identity_provider')}"
            ),
        )
    if ways[0]:
        method = "key"
    elif ways[1]:
        method = "certificate"
    else:
        method = "sigstore"
        if identity is None or identity_provider is None:
            raise SignatureError(
                "sigstore", lambda p: f"give both {p('identity')} and {p('identity_provider')}"
            )

    signed = read_signed_manifest(signature)
    warnings: list[str] = []
    pin_reason = None
    if certificate is not None:
        pin_reason = _pinned_reason(signature, certificate)
        if not certificate_chain:
            certificate_chain = (certificate,)
    verifier = _verifier(
        method,
        public_key=public_key,
        certificate_chain=certificate_chain,
        identity=identity,
        issuer=identity_provider,
        trust_config=trust_config,
        timeout=timeout,
    )
    calls: dict[str, Any] = {}
    verifier.set_hashing_config(_hashing_config(signed.serialization, calls))
    verifier.set_ignore_unsigned_files(True)
    reason: str | None = pin_reason
    captured = io.StringIO()
    try:
        # The library prints a warning for old bundles; the core never prints.
        with contextlib.redirect_stdout(captured):
            if pin_reason is None:
                verifier.verify(root, Path(signature))
    except Exception as e:
        reason = _one_line(e)
    warnings += [line.strip() for line in captured.getvalue().splitlines() if line.strip()]
    valid = bool(calls.get("reached"))
    method_name = str(signed.serialization.get("method", ""))

    by_file: dict[str, list[tuple[str, str, str]]] = {}
    for name, algorithm, digest in signed.resources:
        by_file.setdefault(_file_of(name, method_name), []).append((name, algorithm, digest))
    hashed = "actual" in calls  # the folder was hashed (not stopped by an error on the way)
    actual: dict[str, str] = calls.get("actual", {})
    missing: set[str] = calls.get("missing", set())
    files = []
    for rel in sorted(by_file):
        items = by_file[rel]
        status: FileStatus | None = None
        if valid and hashed:
            if rel in missing:
                status = "missing"
            elif all(actual.get(name) == digest for name, _, digest in items) and not any(
                _file_of(a, method_name) == rel and a not in {n for n, _, _ in items}
                for a in actual
            ):
                status = "ok"
            else:
                status = "changed"
        files.append(SignedFile(rel, items[0][1], tuple(d for _, _, d in items), status))
    if valid and hashed and reason is not None and any(f.status != "ok" for f in files):
        reason = None  # the library's mismatch, said file by file instead

    ignored = list(GIT_PATHS) + [str(p) for p in signed.serialization.get("ignore_paths", ())]
    sig = Path(signature).resolve()
    with contextlib.suppress(ValueError):
        ignored.append(sig.relative_to(root.resolve()).as_posix())
    ignored = sorted(set(ignored))
    uncovered = tuple(p for p in _listing(root, ignored) if p not in by_file)
    return SignatureReport(
        path=shown,
        signature=os.fspath(signature),
        method=method,
        signature_valid=valid,
        reason=reason,
        model_name=signed.model_name,
        serialization=signed.serialization,
        files=tuple(files),
        uncovered=uncovered,
        ignored=tuple(ignored),
        allow_uncovered=allow_uncovered,
        warnings=tuple(warnings),
    )


def _pinned_reason(signature: str | os.PathLike[str], certificate: str) -> str | None:
    """Why the bundle's signing certificate is not exactly ``certificate`` (PEM), or None."""
    import ssl

    raw = read_capped(certificate, 1 << 20, certificate, too_large=SignatureError)
    try:
        pinned = ssl.PEM_cert_to_DER_cert(raw.decode("ascii", "replace"))
    except ValueError as e:
        raise SignatureError(certificate, f"not a PEM certificate: {_one_line(e)}") from None
    shown = os.fspath(signature)
    bundle = json.loads(read_capped(signature, MAX_SIGNATURE, shown, too_large=SignatureError))
    try:
        chain = bundle["verificationMaterial"]["x509CertificateChain"]["certificates"]
        leaf = base64.b64decode(chain[0]["rawBytes"], validate=True)
    except (KeyError, TypeError, IndexError, ValueError, binascii.Error):
        return "the signature carries no signing certificate (it is not certificate-signed)"
    if leaf != pinned:
        return f"signed with another certificate than {certificate}"
    return None
